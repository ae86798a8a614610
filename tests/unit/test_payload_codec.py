"""lrs.payload_codec: the stored forms of an event payload and their way back to the canonical JSON."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import zstandard

from lrs import payload_codec
from lrs.eventlog import finalize_with_text
from lrs.ingest.prepare import prepare_statements
from lrs.payload_codec import (
    CURRENT_DICTIONARY,
    MAGIC,
    DamagedPayload,
    PayloadFormatError,
    UnknownDictionary,
    open_payload,
    open_payloads,
    store_payload,
    store_payloads,
)

# A shipped dictionary is never changed: rows name it for as long as they
# exist.  A new one gets a new id (bench/payload_dictionary.py).
SHIPPED = {1: "fe5064e392ce6331f755ce05e88dcfdb48ed46a0d67497ca217d5041d078dd89"}

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.test", "name": "key"}}


def stored_statement(**extra: object) -> bytes:
    body = {
        "actor": {"objectType": "Agent", "name": "Trần Thị Bình", "mbox": "mailto:binh@school.test"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "https://school.test/courses/a/unit-3",
                   "definition": {"name": {"vi-VN": "Bài 3"}, "type": "http://adlnet.gov/expapi/activities/lesson"}},
        "result": {"completion": True, "score": {"scaled": 0.82}},
        **extra,
    }
    [prepared] = prepare_statements([body], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
    return finalize_with_text(prepared.body, "2026-12-06T07:00:00.123456Z")


def test_every_shipped_dictionary_is_the_one_rows_were_written_with():
    shipped = {
        int(f.name.removeprefix("events-").removesuffix(".dict")): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in payload_codec.DICTIONARIES.iterdir() if f.name.endswith(".dict")
    }
    assert shipped == SHIPPED
    assert CURRENT_DICTIONARY in shipped


def test_a_statement_round_trips_smaller():
    payload = stored_statement()
    stored = store_payload(payload)
    assert stored[:4] == MAGIC
    assert len(stored) < len(payload) / 2
    assert open_payload(stored) == payload
    assert zstandard.get_frame_parameters(stored).dict_id == CURRENT_DICTIONARY


def test_a_batch_round_trips_in_order():
    payloads = [stored_statement(context={"registration": str(uuid.uuid4())}) for _ in range(20)]
    stored = store_payloads(payloads)
    assert len(set(stored)) == 20
    assert open_payloads(stored) == payloads
    assert stored == [store_payload(p) for p in payloads]


def test_rows_written_before_compression_read_as_they_are():
    payload = stored_statement()
    assert open_payload(payload) is payload
    assert open_payload(b'{"op":"link"}') == b'{"op":"link"}'


def test_without_a_dictionary_the_payload_is_kept_as_it_is():
    payload = stored_statement()
    assert store_payload(payload, None) is payload
    assert store_payloads([payload], None) == [payload]


def test_a_payload_compression_would_not_shrink_is_kept_as_it_is():
    tiny = b"{}"
    assert store_payload(tiny) == tiny
    assert store_payloads([tiny]) == [tiny]


def test_a_statement_with_attachments_stays_searchable_in_sql():
    # lrs/store/erasure.py searches the stored bytes for "attachments" and a sha2.
    sha2 = "ab" * 32
    payload = stored_statement(attachments=[{
        "usageType": "http://adlnet.gov/expapi/attachments/signature", "display": {"en-US": "signature"},
        "contentType": "application/octet-stream", "length": 4, "sha2": sha2,
    }])
    assert store_payload(payload) is payload
    assert store_payloads([payload]) == [payload]
    assert b'"attachments"' in store_payload(payload) and sha2.encode() in store_payload(payload)


def test_an_unknown_dictionary_is_a_clear_error():
    trained = zstandard.train_dictionary(
        4096, [json.dumps({"n": n, "verb": "completed" * (n % 7)}).encode() for n in range(400)], dict_id=4242, k=64, d=8
    )
    frame = zstandard.ZstdCompressor(dict_data=trained).compress(stored_statement())
    with pytest.raises(UnknownDictionary, match="zstd dictionary 4242, which this version of lrs does not ship"):
        open_payload(frame)


def test_a_damaged_frame_is_a_clear_error():
    stored = store_payload(stored_statement())
    with pytest.raises(DamagedPayload, match="does not decompress"):
        open_payload(stored[:-5])
    with pytest.raises(DamagedPayload, match="not a readable zstd frame"):
        open_payload(MAGIC + b"\xff")


def test_a_frame_without_a_dictionary_still_opens():
    payload = stored_statement()
    frame = zstandard.ZstdCompressor().compress(payload)
    assert open_payload(frame) == payload


def test_bytes_appended_to_a_frame_are_an_alteration_not_skipped():
    stored = store_payload(stored_statement())
    with pytest.raises(DamagedPayload, match="unused data"):
        open_payload(stored + b" ")
    assert issubclass(DamagedPayload, PayloadFormatError) and issubclass(UnknownDictionary, PayloadFormatError)


def test_a_group_with_attachments_keeps_only_those_as_they_are():
    # store_payloads searches the group's joined bytes once; when the key
    # is there, each payload is searched on its own.
    payloads = [stored_statement(context={"registration": str(uuid.uuid4())}) for _ in range(3)]
    payloads.insert(1, stored_statement(attachments=[{
        "usageType": "http://adlnet.gov/expapi/attachments/signature", "display": {"en-US": "signature"},
        "contentType": "application/octet-stream", "length": 4, "sha2": "cd" * 32,
    }]))
    stored = store_payloads(payloads)
    assert stored[1] is payloads[1]
    assert [s[:4] for i, s in enumerate(stored) if i != 1] == [MAGIC] * 3
    assert stored == [store_payload(p) for p in payloads]


def test_the_attachments_key_across_two_payloads_is_no_attachment():
    # Joined, the end of one and the start of the next spell the key; neither
    # holds it, so both are compressed as they would be alone.
    first = stored_statement() + b'"attach'
    second = b'ments"' + stored_statement()
    assert b'"attachments"' in first + second
    stored = store_payloads([first, second])
    assert [s[:4] for s in stored] == [MAGIC, MAGIC]
    assert stored == [store_payload(first), store_payload(second)]
