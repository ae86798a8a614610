"""Verb (Data 2.4.3)."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from lrs.xapi.common import Iri, LanguageMap, Strict

__all__ = ["Verb", "VOIDED"]

# The one verb the spec reserves (Data 2.3.2).
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


class Verb(Strict, kw_only=True):
    id: Iri
    display: LanguageMap | UnsetType = UNSET
