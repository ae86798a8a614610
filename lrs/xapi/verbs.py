"""Verb (Data 2.4.3)."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from lrs.xapi.common import (
    IRI_EXPECTED,
    KNOWN_IRIS,
    KNOWN_LANGUAGE_TAGS,
    CheckedIri,
    CheckedLanguageMap,
    Strict,
    check_language_map,
    is_iri,
)
from lrs.xapi.errors import field_error

__all__ = ["Verb", "VOIDED"]

# The one verb the spec reserves (Data 2.3.2).
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


class Verb(Strict, kw_only=True):
    id: CheckedIri
    display: CheckedLanguageMap | UnsetType = UNSET

    def __post_init__(self) -> None:
        # A set look-up settles the usual case (lrs.xapi.common.KNOWN_*).
        if self.id not in KNOWN_IRIS and not is_iri(self.id):
            raise field_error(".id", IRI_EXPECTED)
        display = self.display
        if display is not UNSET and not KNOWN_LANGUAGE_TAGS.issuperset(display):
            check_language_map(display, ".display")
