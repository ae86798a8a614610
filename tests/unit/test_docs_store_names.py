"""The docs name functions and constants of lrs/store/ where they are defined:
after reader.py's split (page_query.py, statement_walks.py), docs/scaling.md
still sent readers to reader.py for ``_select``, ``_walks`` and
``AUTHORITY_WALK_MAX``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("**/*.md")), ROOT / "README.md", ROOT / "bench" / "README.md"]
# "`lrs/store/page_query.py` `_select`" and "`AUTHORITY_WALK_MAX` in `lrs/store/statement_walks.py`"
PATH_THEN_NAME = re.compile(r"`(lrs/store/\w+\.py)`,?\s+`(\w+)`")
NAME_IN_PATH = re.compile(r"`(\w+)`\s+in\s+`(lrs/store/\w+\.py)`")


def defined(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_store_function_the_docs_name_is_defined_in_the_file_they_name():
    named: list[tuple[str, str, str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        named += [(doc.name, path, name) for path, name in PATH_THEN_NAME.findall(text)]
        named += [(doc.name, path, name) for name, path in NAME_IN_PATH.findall(text)]
    assert named, "the patterns no longer find what the docs name"
    wrong = [(doc, path, name) for doc, path, name in named
             if not (ROOT / path).exists() or name not in defined(ROOT / path)]
    assert wrong == []
