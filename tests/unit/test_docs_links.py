"""The documentation names files that exist: relative links in README.md and
docs/*.md resolve, and every repository path they quote (``lrs/...py``,
``tests/...py``) is still there after files move."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
QUOTED_PATH = re.compile(r"`((?:lrs|projections|connectors|tests|bench|schemas|docs)/[\w./-]+\.(?:py|md|sql|json))`")


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or re.match(r"^[a-z]+:", path):
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_quoted_repository_paths_exist() -> None:
    missing = []
    for page in PAGES:
        for path in QUOTED_PATH.findall(page.read_text(encoding="utf-8")):
            if "*" not in path and not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert missing == []
