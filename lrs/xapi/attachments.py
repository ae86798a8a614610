"""Attachment headers inside a Statement (Data 2.4.11)."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from lrs.xapi.common import Iri, LanguageMap, MediaType, Sha2Hex, Strict

__all__ = ["Attachment", "SIGNATURE_USAGE_TYPE"]

SIGNATURE_USAGE_TYPE = "http://adlnet.gov/expapi/attachments/signature"


class Attachment(Strict, kw_only=True):
    usageType: Iri
    display: LanguageMap
    description: LanguageMap | UnsetType = UNSET
    contentType: MediaType
    length: Annotated[int, Meta(ge=0)]
    sha2: Sha2Hex
    fileUrl: Iri | UnsetType = UNSET
