"""Pulled statements -> statements to POST (pure).

Original ids are kept, so pulling twice stores nothing twice.  ``stored`` is
dropped (the receiving LRS sets its own); everything else is sent as it was
received, including ``authority`` (an LRS may overwrite it).
"""

from __future__ import annotations

from connectors.framework.model import Mapped, MapResult, Skip, SourceItem


def map_pulled(item: SourceItem) -> MapResult:
    statement = item.data
    if not isinstance(statement, dict):
        return Skip("not a statement object")
    if not isinstance(statement.get("id"), str):
        return Skip("statement without id")
    return Mapped([{key: value for key, value in statement.items() if key != "stored"}])
