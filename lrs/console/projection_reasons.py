"""Why the competency projection is not current, in the console's language.

The projection's freshness (``Freshness.json()``; ``/ready``'s
``checks.projections.competency``) gives a ``reason_code`` (one of
``projections.freshness_reasons.REASON_CODES``) and its ``reason_values``
beside the English ``reason``; the console words the code in the page's
language with the values filled in (counts written as the console writes
numbers, ``1,234``).  A code this does not know (a later version's), or
values its words do not fit, show the English ``reason`` as given (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lrs.console.i18n import MESSAGES

__all__ = ["PREFIX", "projection_reason"]

# A code's wording is the message ``projection_reason_<code>`` of the console's
# catalogue (lrs.console.i18n.MESSAGES), formatted with the reason's values.
PREFIX = "projection_reason_"


def projection_reason(why: Mapping[str, Any], language: str) -> str:
    """Why the projection is not current (``reason``, ``reason_code`` and
    ``reason_values`` as the API gives them), in ``language``."""
    english = str(why.get("reason") or "")
    wordings = MESSAGES.get(PREFIX + str(why.get("reason_code")))
    if wordings is None:
        return english
    try:
        return wordings.get(language, wordings["en"]).format(**(why.get("reason_values") or {}))
    except (KeyError, IndexError, TypeError, ValueError):  # values of another version
        return english
