"""Generate the JSON Schemas in ``schemas/json/`` from the msgspec types.

    python -m lrs.xapi.jsonschema          # rewrite the files
    python -m lrs.xapi.jsonschema --check  # exit 1 if they have drifted

The schemas describe the shapes and formats; rules that span fields (one
identifier per Agent, score ranges, per-objectType properties, calendar dates)
are enforced only by the code in ``lrs.xapi``.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import as_file
from importlib.resources.abc import Traversable

import msgspec

from lrs.contracts import JSON_SCHEMAS
from lrs.xapi.actors import Actor
from lrs.xapi.common import PUBLISHED_PATTERNS
from lrs.xapi.statement import Statement

_TYPES: dict[str, object] = {
    "statement.json": Statement,
    "statements.json": Statement | list[Statement],
    "agent.json": Actor,
}


def _published(node: object) -> object:
    """Patterns applied in a Python-only form, replaced by their portable form."""
    if isinstance(node, dict):
        return {
            key: PUBLISHED_PATTERNS.get(value, value) if key == "pattern" else _published(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_published(item) for item in node]
    return node


def render() -> dict[str, bytes]:
    """File name -> schema bytes (sorted keys, two-space indent, trailing newline)."""
    out: dict[str, bytes] = {}
    for name, tp in _TYPES.items():
        schema = _published(msgspec.json.schema(tp))
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        text = msgspec.json.format(msgspec.json.encode(schema, order="sorted"), indent=2)
        out[name] = text + b"\n"
    return out


def drifted(directory: Traversable = JSON_SCHEMAS) -> list[str]:
    """Names of schema files that are missing or differ from what ``render`` produces."""
    return [
        name
        for name, data in render().items()
        if not (directory / name).is_file() or (directory / name).read_bytes() != data
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted()
        for name in stale:
            print(f"schemas/json/{name} is out of date", file=sys.stderr)
        return 1 if stale else 0
    # Rewriting is for the source tree, where the package data are plain files.
    with as_file(JSON_SCHEMAS) as directory:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in render().items():
            (directory / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
