"""The language-neutral contracts shipped with the code, read as package data.

In the source tree they are the files under ``schemas/``; installed, that
directory is the package ``lrs_schemas`` (``pyproject.toml`` maps one onto the
other, in a wheel and in an editable install alike).  Everything is reached
through ``importlib.resources``, never through a path relative to this file,
so an installed wheel finds its migrations wherever it lives.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = [
    "FRAMEWORKS",
    "JSON_SCHEMAS",
    "NATS_DEFINITIONS",
    "OPENAPI",
    "POSTGRES_MIGRATIONS",
    "SCHEMAS",
    "files_named",
]

SCHEMAS: Traversable = files("lrs_schemas")
POSTGRES_MIGRATIONS: Traversable = SCHEMAS / "postgres"
NATS_DEFINITIONS: Traversable = SCHEMAS / "nats"
JSON_SCHEMAS: Traversable = SCHEMAS / "json"
OPENAPI: Traversable = SCHEMAS / "openapi.json"
FRAMEWORKS: Traversable = SCHEMAS / "frameworks"


def files_named(directory: Traversable, suffix: str) -> list[Traversable]:
    """The files of ``directory`` whose names end with ``suffix``, sorted by
    name; none when ``directory`` does not exist.  Works on a
    :class:`pathlib.Path` as on any other ``Traversable``."""
    if not directory.is_dir():
        return []
    return sorted((f for f in directory.iterdir() if f.name.endswith(suffix) and f.is_file()), key=lambda f: f.name)
