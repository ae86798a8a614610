"""ETags and the optimistic concurrency rules (Communication 3.1).

- An ETag is the SHA-1 of the document's bytes as lowercase hex, in quotes.
- ``If-Match`` (a list of ETags or ``*``) and ``If-None-Match`` are handled as
  in RFC 7232 for PUT, POST and DELETE on every document resource: a failed
  precondition is 412 and nothing changes.
- A PUT without either header to a document that exists is 409 and changes
  nothing (1.0.3 Communication 3.1.s4.b13, 2.0 4.1.4).  Which documents that
  covers depends on the request's version:

  - 2.0.0: every document resource, the State resource included (2.0 4.1.4
    lists State beside the two profile resources).
  - 1.0.3: the Activity and Agent Profile resources; the State resource
    permits writes without the headers (3.1.s3), so a PUT there simply
    replaces the document.  A PUT without either header to a profile
    document that does not exist yet is 400: "A Client making a PUT request
    to either the Agent Profile Resource or Activity Profile Resource MUST
    include the If-Match header or the If-None-Match header." (3.1.s3.b1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lrs.documents.model import Resource
from lrs.xapi.errors import ConflictError, XapiError

__all__ = ["Preconditions", "check_preconditions", "etag_of", "parse_etag_list"]


def etag_of(content: bytes) -> str:
    """``"<sha1 hex>"``: the quoted, lowercase SHA-1 of ``content``."""
    return '"' + hashlib.sha1(content).hexdigest() + '"'


@dataclass(frozen=True, slots=True)
class Preconditions:
    """The raw ``If-Match`` and ``If-None-Match`` header values (None if absent)."""

    if_match: str | None = None
    if_none_match: str | None = None

    @property
    def present(self) -> bool:
        return self.if_match is not None or self.if_none_match is not None


def parse_etag_list(value: str) -> frozenset[str] | None:
    """The entity tags of an If-Match/If-None-Match value, normalised to
    lowercase without quotes or weak marker; None for ``*``.

    Clients that send the hash unquoted are understood too.
    """
    if value.strip() == "*":
        return None
    tags = set()
    for part in value.split(","):
        tag = part.strip()
        if tag.startswith(("W/", "w/")):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            tags.add(tag.lower())
    return frozenset(tags)


def _matches(value: str, current_etag: str | None) -> bool:
    """Whether the header ``value`` matches the current document (RFC 7232)."""
    if current_etag is None:
        return False
    tags = parse_etag_list(value)
    if tags is None:
        return True
    return current_etag.strip('"').lower() in tags


def check_preconditions(
    resource: Resource,
    method: str,
    current_etag: str | None,
    headers: Preconditions,
    version: str = "2.0.0",
) -> None:
    """Raise 412, 409 or 400 if ``method`` may not change the document whose ETag
    is ``current_etag`` (None: no such document) in a request of xAPI
    ``version`` ("1.0.3" or "2.0.0")."""
    if headers.if_match is not None and not _matches(headers.if_match, current_etag):
        if current_etag is None:
            message = "If-Match failed: the document does not exist"
        else:
            message = f"If-Match failed: the document's ETag is now {current_etag}"
        raise XapiError(412, message, "If-Match")
    if headers.if_none_match is not None and _matches(headers.if_none_match, current_etag):
        raise XapiError(
            412, f"If-None-Match failed: the document exists with ETag {current_etag}", "If-None-Match"
        )
    if method != "PUT" or headers.present:
        return
    v1 = not version.startswith("2.")
    if v1 and resource is Resource.STATE:
        return
    if current_etag is None:
        if v1:
            raise XapiError(
                400,
                "a PUT to the Activity or Agent Profile resource must send If-Match or If-None-Match "
                "(If-None-Match: * to create the document)",
                "If-None-Match",
            )
        return
    raise ConflictError(
        409,
        "the document already exists: check its current state (GET) and send If-Match with "
        f"its current ETag ({current_etag}) to replace it, or If-None-Match: * to create only",
    )
