"""What a write request does to one document, given its current version.

Each function checks the preconditions first (a failed one changes nothing;
the rules depend on the request's xAPI ``version``, see ``check_preconditions``)
and returns the new version, or for DELETE whether there is something to
delete.  The store calls them while it holds the log lock, so the check and
the write are atomic.
"""

from __future__ import annotations

from lrs.documents.concurrency import Preconditions, check_preconditions, etag_of
from lrs.documents.content import check_json, merge_json
from lrs.documents.model import NewVersion, Resource, StoredDocument

__all__ = ["plan_delete", "plan_post", "plan_put"]


def _etag(existing: StoredDocument | None) -> str | None:
    return None if existing is None else existing.etag


def plan_put(
    resource: Resource,
    existing: StoredDocument | None,
    content: bytes,
    content_type: str,
    preconditions: Preconditions,
    version: str = "2.0.0",
) -> NewVersion:
    check_preconditions(resource, "PUT", _etag(existing), preconditions, version)
    check_json(content, content_type)
    return NewVersion(content, content_type, etag_of(content))


def plan_post(
    resource: Resource,
    existing: StoredDocument | None,
    content: bytes,
    content_type: str,
    preconditions: Preconditions,
    version: str = "2.0.0",
) -> NewVersion:
    check_preconditions(resource, "POST", _etag(existing), preconditions, version)
    merged, merged_type = merge_json(existing, content, content_type)
    return NewVersion(merged, merged_type, etag_of(merged))


def plan_delete(
    resource: Resource, existing: StoredDocument | None, preconditions: Preconditions, version: str = "2.0.0"
) -> bool:
    """True if there is a document to delete (deleting nothing is not an error)."""
    check_preconditions(resource, "DELETE", _etag(existing), preconditions, version)
    return existing is not None
