"""Document content: media types, the JSON check, and the JSON merge on POST.

Documents can have any content type (Communication 1.5.b1); content is kept
byte for byte and returned with the Content-Type it was stored with.  A PUT
declared ``application/json`` must be JSON (3.2.s3.b6).  A POST merges JSON
Objects (2.2.s7): each top-level property of the posted Object replaces the
one of the stored Object; if the posted or the stored document is not
``application/json`` or not a JSON Object, the answer is 400 and nothing
changes (2.2.s8.b1).
"""

from __future__ import annotations

from typing import Any

import msgspec

from lrs.documents.model import StoredDocument
from lrs.xapi.errors import XapiError

__all__ = ["DEFAULT_CONTENT_TYPE", "check_json", "content_type_of", "is_json_type", "merge_json"]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
JSON_TYPE = "application/json"

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def content_type_of(header: str | None) -> str:
    """The Content-Type to store: as sent, or ``application/octet-stream``."""
    if header is None or not header.strip():
        return DEFAULT_CONTENT_TYPE
    return header.strip()


def is_json_type(content_type: str) -> bool:
    """Whether the media type (parameters such as charset ignored) is application/json."""
    return content_type.split(";", 1)[0].strip().lower() == JSON_TYPE


def _parse(content: bytes, what: str) -> Any:
    try:
        return _decode(content)
    except msgspec.DecodeError as err:
        raise XapiError(400, f"{what} is declared application/json but is not JSON ({err})") from None


def check_json(content: bytes, content_type: str) -> None:
    """A document declared as JSON must parse as JSON."""
    if is_json_type(content_type):
        _parse(content, "the document")


def merge_json(
    existing: StoredDocument | None, posted: bytes, posted_type: str
) -> tuple[bytes, str]:
    """The content and content type a POST leaves stored.

    Without an existing document the posted bytes are stored as they are.
    """
    if not is_json_type(posted_type):
        raise XapiError(
            400, f"POST merges JSON documents: Content-Type must be application/json, got {posted_type!r}",
            "Content-Type",
        )
    posted_object = _parse(posted, "the posted document")
    if not isinstance(posted_object, dict):
        raise XapiError(400, "POST merges JSON Objects: the posted document is not a JSON Object")
    if existing is None:
        return posted, posted_type
    if not is_json_type(existing.content_type):
        raise XapiError(
            400,
            f"cannot merge into the stored document: its Content-Type is {existing.content_type!r}, "
            "not application/json (use PUT to replace it)",
        )
    try:
        stored_object = _decode(existing.content)
    except msgspec.DecodeError:
        stored_object = None
    if not isinstance(stored_object, dict):
        raise XapiError(
            400, "cannot merge into the stored document: it is not a JSON Object (use PUT to replace it)"
        )
    stored_object.update(posted_object)
    return _encode(stored_object), existing.content_type
