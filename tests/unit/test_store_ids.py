"""The C-built UUIDs of the ingest path behave as uuid.UUID does."""

from __future__ import annotations

import uuid

import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.store.ids import RandomUuids, TimeOrderedUuids, parse_uuid


def test_random_uuids_are_distinct_version_4_uuids() -> None:
    new = RandomUuids()
    ids = [new() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert isinstance(value, uuid.UUID)
        assert value.version == 4 and value.variant == uuid.RFC_4122
        assert uuid.UUID(str(value)) == value


def test_time_ordered_uuids_are_distinct_version_7_uuids_in_millisecond_order() -> None:
    ticks = iter(range(1_700_000_000_000_000_000, 1_700_000_000_000_000_000 + 4000 * 250_000, 250_000))
    new = TimeOrderedUuids(clock_ns=lambda: next(ticks))  # four per millisecond
    ids = [new() for _ in range(4000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert isinstance(value, uuid.UUID)
        assert value.version == 7 and value.variant == uuid.RFC_4122
        assert uuid.UUID(str(value)) == value
    millis = [value.int >> 80 for value in ids]
    assert millis == [1_700_000_000_000 + i // 4 for i in range(4000)]
    # Ids of different milliseconds sort by time; within one, at random.
    assert all(a < b for a, b in zip(ids[::4], ids[4::4]))


@pytest.mark.parametrize(
    "text",
    ["0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5bd9cb469fa16570867728950e"],
)
def test_parse_uuid_matches_the_standard_library(text: str) -> None:
    fast, standard = parse_uuid(text), uuid.UUID(text)
    assert fast == standard and hash(fast) == hash(standard) and str(fast) == str(standard)
    assert fast.bytes == standard.bytes and {fast: 1}[standard] == 1


def test_prepare_gives_the_same_result_with_either_parser() -> None:
    statements = [
        {"id": "0F8FAD5B-D9CB-469F-A165-70867728950E", "actor": {"mbox": "mailto:a@example.com"},
         "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
         "object": {"objectType": "StatementRef", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}},
        {"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://example.com/v"},
         "object": {"id": "http://example.com/a"},
         "context": {"registration": "E7C9E667-9742-440D-E944-BE07FC1F90AE"}},
    ]
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]

    def prepared(**parser):
        pending = list(ids)
        return prepare_statements(statements, version="1.0.3", authority={"mbox": "mailto:x@example.com"},
                                  new_id=pending.pop, **parser)

    assert prepared(parse_id=parse_uuid) == prepared()
