"""Document event payloads and their replay."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

from lrs.documents.concurrency import etag_of
from lrs.documents.events import DOCUMENT_EVENT, document_event_payload, replay_documents, row_key
from lrs.documents.model import DocumentKey, DocumentSet, NewVersion, Resource

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
AGENT = {"objectType": "Agent", "mbox": "mailto:ann@example.org"}
STATE = DocumentSet(Resource.STATE, "http://example.org/a", "mbox:mailto:ann@example.org", AGENT, "reg-1")
PROFILE = DocumentSet(Resource.ACTIVITY_PROFILE, "http://example.org/a")


def version(content: bytes, content_type: str = "application/octet-stream") -> NewVersion:
    return NewVersion(content, content_type, etag_of(content))


def test_payload_is_canonical_json_with_content_base64() -> None:
    content = b"\x00\x01\xfe\xff"
    payload = document_event_payload(DocumentKey(STATE, "s1"), "put", version(content))
    body = json.loads(payload)
    assert list(body) == sorted(body)
    assert body == {
        "resource": "state",
        "op": "put",
        "activityId": "http://example.org/a",
        "agent": AGENT,
        "agentKey": "mbox:mailto:ann@example.org",
        "registration": "reg-1",
        "stateId": "s1",
        "contentType": "application/octet-stream",
        "content": base64.b64encode(content).decode(),
        "etag": etag_of(content),
    }
    assert b" " not in payload


def test_profile_payload_names_profile_id_and_omits_unused_parts() -> None:
    body = json.loads(document_event_payload(DocumentKey(PROFILE, "p"), "delete", None))
    assert body == {"resource": "activity_profile", "op": "delete", "activityId": "http://example.org/a", "profileId": "p"}


def test_replay_folds_puts_and_deletes_and_skips_statements() -> None:
    a, b = DocumentKey(STATE, "a"), DocumentKey(PROFILE, "b")
    events = [
        (1, "t", DOCUMENT_EVENT, T0, document_event_payload(a, "put", version(b"one"))),
        (2, "t", "statement", T0, b"{}"),
        (3, "t", DOCUMENT_EVENT, T0 + timedelta(seconds=1), document_event_payload(b, "put", version(b"{}", "application/json"))),
        (4, "t", DOCUMENT_EVENT, T0 + timedelta(seconds=2), document_event_payload(a, "post", version(b"two"))),
        (5, "t", DOCUMENT_EVENT, T0 + timedelta(seconds=3), document_event_payload(b, "delete", None)),
    ]
    documents = replay_documents(events)
    assert list(documents) == [row_key("t", a)]
    row = documents[row_key("t", a)]
    assert (row.content, row.etag, row.updated, row.position) == (b"two", etag_of(b"two"), T0 + timedelta(seconds=2), 4)
