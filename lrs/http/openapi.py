"""``/xapi/openapi.json``: the OpenAPI 3.1 document kept in ``schemas/openapi.json``.

The file references the generated JSON Schemas by relative path
(``json/statement.json``, ``json/agent.json#/$defs/Account``) so that tools
reading it from the repository resolve them.  The served document is
self-contained: each referenced schema file is included under
``components/schemas`` and every reference points there.
"""

from __future__ import annotations

import functools
import json
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from lrs.contracts import OPENAPI, SCHEMAS

__all__ = ["OPENAPI_FILE", "documented_routes", "openapi_handler", "routes_of", "served_document"]

OPENAPI_FILE = OPENAPI


def _component_name(file_ref: str) -> str:
    """``json/statement.json`` -> ``Statement``."""
    stem = PurePosixPath(file_ref).stem
    return "".join(part.capitalize() for part in stem.replace("-", "_").split("_"))


def served_document(contracts: Traversable = SCHEMAS) -> dict[str, Any]:
    """The document (``openapi.json`` in ``contracts``) with every file
    reference replaced by a components reference."""
    document = json.loads((contracts / "openapi.json").read_text(encoding="utf-8"))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    included: dict[str, str] = {}  # file ref -> component name

    def include(file_ref: str) -> str:
        name = included.get(file_ref)
        if name is None:
            name = included[file_ref] = _component_name(file_ref)
            if name in schemas:
                raise ValueError(f"components/schemas/{name} exists already; cannot include {file_ref}")
            schema = json.loads(contracts.joinpath(*file_ref.split("/")).read_text(encoding="utf-8"))
            schema.pop("$schema", None)  # OpenAPI 3.1's dialect is 2020-12 already
            schemas[name] = _rebase(schema, f"#/components/schemas/{name}")
        return name

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and not target.startswith("#"):
                file_ref, _, pointer = target.partition("#")
                node = {**node, "$ref": f"#/components/schemas/{include(file_ref)}{pointer}"}
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    document["paths"] = walk(document.get("paths", {}))
    document["components"] = walk(document["components"])
    return document


def _rebase(schema: Any, base: str) -> Any:
    """Point a schema's internal references (``#/$defs/...``) at its new place."""
    if isinstance(schema, dict):
        out = {key: _rebase(value, base) for key, value in schema.items()}
        target = out.get("$ref")
        if isinstance(target, str) and target.startswith("#"):
            out["$ref"] = base + target[1:]
        return out
    if isinstance(schema, list):
        return [_rebase(item, base) for item in schema]
    return schema


@functools.cache
def _served_bytes() -> bytes:
    return json.dumps(served_document(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=_served_bytes(), content_type="application/json")


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(path, lower-case method) of every route, without the HEAD that each GET adds."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        found.add((resource.canonical, route.method.lower()))
    return found


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return {(path, method) for path, item in document["paths"].items() for method in item if method in methods}
