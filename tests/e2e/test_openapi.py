"""The OpenAPI document: served without credentials, valid, and in step with the routes."""

from __future__ import annotations

import json

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from lrs.http.openapi import OPENAPI_FILE, documented_routes, routes_of, served_document


def _resolve(document: dict, pointer: str):
    node = document
    for part in pointer.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def test_served_without_credentials_or_version_header(client):
    response = await client.get("/xapi/openapi.json")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert document == json.loads(json.dumps(served_document()))


async def test_document_paths_and_methods_match_the_routes(client):
    served = await (await client.get("/xapi/openapi.json")).json()
    routes = routes_of(client.app)
    documented = documented_routes(served)
    assert not routes - documented, f"routes missing from schemas/openapi.json: {sorted(routes - documented)}"
    assert not documented - routes, f"schemas/openapi.json documents routes that do not exist: {sorted(documented - routes)}"


def test_kept_file_and_served_document_are_valid_openapi_3_1():
    spec, base_uri = read_from_filename(str(OPENAPI_FILE))
    validate(spec, base_uri=base_uri)
    validate(served_document())


def test_served_document_is_self_contained_and_every_reference_resolves():
    document = served_document()
    refs = set(_refs(document))
    assert refs and all(ref.startswith("#/") for ref in refs), sorted(r for r in refs if not r.startswith("#/"))
    for ref in refs:
        _resolve(document, ref)  # KeyError names a dangling reference
    # Statement bodies are described by the generated JSON Schemas.
    post = document["paths"]["/xapi/statements"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Statements"}
    assert "$defs" in document["components"]["schemas"]["Statement"]


def test_kept_file_references_the_json_schema_files():
    kept = json.loads(OPENAPI_FILE.read_text())
    files = {ref.partition("#")[0] for ref in _refs(kept) if not ref.startswith("#")}
    assert files == {"json/statement.json", "json/statements.json", "json/agent.json"}
    for name in files:
        assert (OPENAPI_FILE.parent / name).is_file()


def test_public_and_authenticated_operations_are_marked():
    document = served_document()
    public = {path for path, item in document["paths"].items()
              if all(op.get("security") == [] for op in item.values())}
    assert public == {"/xapi/about", "/xapi/openapi.json", "/health", "/ready"}
    assert document["security"] == [{"basicAuth": []}]
