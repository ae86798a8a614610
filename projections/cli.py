"""``lrs frameworks ...``: competency frameworks, programmes and alignment tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from projections.competency.catalog import FRAMEWORKS_DIR, Catalog
from projections.competency.frameworks import (
    AlignmentTable,
    Document,
    Framework,
    FrameworkError,
    Program,
    read_document,
)

__all__ = ["register", "validate_file"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    frameworks = subparsers.add_parser(
        "frameworks",
        help="validate and load competency frameworks, programmes and alignment tables",
        description="Competency frameworks, certification programmes and course alignment "
        "tables (format: schemas/frameworks/README.md).",
    )
    actions = frameworks.add_subparsers(dest="frameworks_command", metavar="ACTION")
    frameworks.set_defaults(handler=lambda args: _usage(frameworks))

    load = actions.add_parser(
        "load",
        help="validate a framework, programme or alignment document",
        description="Validate FILE on its own, then together with the documents in the "
        "context directories (references must resolve, IRIs must be unique).  Problems are "
        "reported as FILE: JSON-PATH: MESSAGE and the exit status is 1.",
    )
    load.add_argument("file", metavar="FILE", type=Path, help="a JSON document")
    load.add_argument(
        "--context",
        metavar="DIR",
        type=Path,
        action="append",
        help=f"directory of documents FILE may refer to (repeatable; default: {FRAMEWORKS_DIR})",
    )
    load.set_defaults(handler=_load)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def validate_file(file: Path, context: list[Path] | None = None) -> tuple[Document, Catalog]:
    """``file`` checked alone and within ``context``; a document in the context
    with the same kind, IRI and version as ``file`` is replaced by it."""
    document = read_document(file)
    named: list[tuple[str, Document]] = []
    for directory in context if context is not None else [FRAMEWORKS_DIR]:
        for path in sorted(Path(directory).glob("*.json")):
            if path.resolve() == file.resolve():
                continue
            other = read_document(path)
            if (type(other), other.iri, other.version) != (type(document), document.iri, document.version):
                named.append((str(path), other))
    named.append((str(file), document))
    return document, Catalog.build(named)


def describe(document: Document) -> str:
    if isinstance(document, Framework):
        competences = document.competences()
        return (
            f"framework {document.iri} version {document.version}: {len(document.areas)} areas, "
            f"{len(competences)} competences, {len(document.levels)} levels "
            f"({', '.join(level.code for level in document.levels)})"
        )
    if isinstance(document, Program):
        return (
            f"program {document.iri} version {document.version}: "
            f"{len(document.requirements)} required competences"
        )
    assert isinstance(document, AlignmentTable)
    return f"alignment for course {document.iri} version {document.version}: {len(document.alignments)} rules"


def _load(args: argparse.Namespace) -> int:
    try:
        document, _ = validate_file(args.file, args.context)
    except FrameworkError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print(f"valid: {describe(document)}")
    return 0
