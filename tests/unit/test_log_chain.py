"""The walk of the hash chain (lrs/chain_walk.py) and a replay's pages
(projections/log_chain.py): pages checked apart and walked in order find
the first position that ``lrs audit verify`` (the same walk over batches
read whole) finds, whatever the pages' or batches' size and however the log
was altered."""

from __future__ import annotations

import random
import struct
import uuid
from datetime import datetime, timedelta, timezone
import msgspec
import pytest

from lrs.eventlog import POSTGRES_EPOCH, GENESIS_HASH, EventRecord, event_hash, record_hash, verify_chain
from lrs.chain_walk import ChainBroken, ChainWalk, page_chain
from projections.log_chain import checked_page

START = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def sent(moment: datetime) -> bytes:
    """``moment`` as PostgreSQL's timestamptz_send gives it."""
    return struct.pack(">q", (moment - POSTGRES_EPOCH) // timedelta(microseconds=1))


def page_rows(records: list[EventRecord]) -> list[tuple]:
    """``records`` as a replay reads them (projections.replay.SELECT_LOG_PAGE)."""
    return [(r.position, r.event_id, r.tenant, r.event_type, sent(r.stored), r.payload, r.prev_hash, r.hash)
            for r in records]


def chained_log(count: int, seed: int = 1) -> list[EventRecord]:
    rng = random.Random(seed)
    records, prev = [], GENESIS_HASH
    for position in range(1, count + 1):
        event_type = "roster" if position % 11 == 0 else "statement"
        payload = b'{"n":%d,"v":"%s"}' % (position, rng.choice([b"a", b"bb", b"ccc"]))
        stored = START + timedelta(microseconds=rng.randrange(10**7) + position * 10**6)
        event_id = uuid.UUID(int=rng.getrandbits(128))
        digest = event_hash(prev, position, event_id, "default", event_type, stored, payload)
        records.append(EventRecord(position, event_id, "default", event_type, None, stored, payload, prev, digest))
        prev = digest
    return records


def altered(records: list[EventRecord], how: str, at: int) -> list[EventRecord]:
    """``records`` with the event at position ``at`` altered as ``how`` says."""
    log = list(records)
    index = at - 1
    if how == "payload":
        log[index] = msgspec.structs.replace(log[index], payload=log[index].payload + b" ")
    elif how == "hash":
        log[index] = msgspec.structs.replace(log[index], hash=b"\x02" * 32)
    elif how == "relinked":  # another hash before it, hashed again over it: only its link shows it
        forged = msgspec.structs.replace(log[index], prev_hash=b"\x01" * 32)
        log[index] = msgspec.structs.replace(forged, hash=record_hash(forged))
    elif how == "stored":
        log[index] = msgspec.structs.replace(log[index], stored=log[index].stored + timedelta(microseconds=1))
    elif how == "deleted":
        del log[index]
    elif how == "tail deleted":
        del log[index:]
    elif how == "rehashed":  # its content changed and hashed again: the next link, or log_head, shows it
        forged = msgspec.structs.replace(log[index], payload=log[index].payload + b" ")
        log[index] = msgspec.structs.replace(forged, hash=record_hash(forged))
    return log


def walked(log: list[EventRecord], total: int, size: int) -> int | None:
    """The first bad position found by pages of ``size`` positions checked
    apart (as the processes of a replay read them) and walked in order."""
    walk = ChainWalk(total)
    try:
        for after in range(0, total, size):
            walk.page(page_chain([r for r in log if after < r.position <= after + size]))
        walk.end()
    except ChainBroken as exc:
        return exc.position
    return None


def audited(log: list[EventRecord], total: int) -> int | None:
    """What lrs audit verify finds: the chain over the whole log, then its head."""
    bad = verify_chain(log)
    if bad is None and (log[-1].position if log else 0) < total:
        return (log[-1].position if log else 0) + 1
    return bad


def test_an_intact_log_walks_to_its_end_in_pages_of_any_size() -> None:
    log = chained_log(50)
    for size in (1, 3, 7, 50, 64):
        walk = ChainWalk(50)
        for after in range(0, 50, size):
            walk.page(page_chain(log[after:after + size]))
        walk.end()
        assert (walk.position, walk.hash) == (50, log[-1].hash)


@pytest.mark.parametrize("how", ["payload", "hash", "relinked", "deleted", "tail deleted"])
def test_pages_checked_apart_find_the_position_audit_verify_finds(how: str) -> None:
    rng = random.Random(how)
    for _ in range(60):
        total = rng.randrange(2, 60)
        log = altered(chained_log(total, rng.randrange(1000)), how, rng.randrange(1, total + 1))
        expected = audited(log, total)
        assert expected is not None
        for size in (1, 2, 5, 7, total):
            assert walked(log, total, size) == expected, (how, total, size)


def test_a_relinked_first_event_of_a_page_shows_at_the_seam_before_its_page_does() -> None:
    log = altered(chained_log(21), "relinked", 8)
    chain = page_chain(log[7:14])
    assert chain.first_prev == b"\x01" * 32
    assert chain.bad == 9  # its page, checked alone from its first event, breaks only at the next link
    assert walked(log, 21, 7) == 8 == verify_chain(log)


def test_a_page_of_missing_events_is_named_by_the_next_page_or_the_end() -> None:
    log = [r for r in chained_log(30) if not 8 <= r.position <= 14]
    assert walked(log, 30, 7) == 8
    assert walked(chained_log(30)[:14], 30, 7) == 15  # the log head names 30


def test_a_page_is_cut_before_its_first_bad_event_and_carries_the_positions_read() -> None:
    log = altered(chained_log(14), "payload", 10)
    page, chain = checked_page(page_rows(log[7:]))
    assert [e[0] for e in page] == [8, 9]
    assert (chain.count, chain.first, chain.last, chain.bad) == (7, 8, 14, 10)
    page, chain = checked_page(page_rows(chained_log(14)[7:]))
    assert [e[:3] for e in page] == [(p, "default", "roster" if p == 11 else "statement") for p in range(8, 15)]
    assert chain.bad is None and chain.last_hash == chained_log(14)[-1].hash


@pytest.mark.parametrize("how", ["payload", "stored", "hash", "relinked", "deleted"])
def test_a_page_read_as_columns_breaks_where_verify_chain_over_its_records_does(how: str) -> None:
    """checked_page (a replay's page: stored as its 8 sent bytes, checked by
    columns) finds what verify_chain, which lrs audit verify runs, finds."""
    rng = random.Random("columns " + how)
    for _ in range(80):
        total = rng.randrange(2, 40)
        log = altered(chained_log(total, rng.randrange(1000)), how, rng.randrange(1, total + 1))
        part = log[rng.randrange(0, len(log)):]
        page, chain = checked_page(page_rows(part))
        assert chain == page_chain(part)
        assert chain.bad == verify_chain(part, prev_position=part[0].position - 1, prev_hash=part[0].prev_hash)
        assert page == [(r.position, r.tenant, r.event_type, r.payload) for r in part
                        if chain.bad is None or r.position < chain.bad]


def test_a_stored_zstd_payload_is_hashed_opened_and_given_opened() -> None:
    from lrs.payload_codec import store_payload

    log = chained_log(3)
    big = [msgspec.structs.replace(r, payload=r.payload[:-1] + b', "pad": "' + b"x" * 400 + b'"}') for r in log]
    prev, rows = GENESIS_HASH, []
    for r in big:
        digest = event_hash(prev, r.position, r.event_id, r.tenant, r.event_type, r.stored, r.payload)
        stored = store_payload(r.payload)
        assert stored != r.payload  # compressed
        rows.append((r.position, r.event_id, r.tenant, r.event_type, sent(r.stored), stored, prev, digest))
        prev = digest
    page, chain = checked_page(rows)
    assert chain.bad is None and [e[3] for e in page] == [r.payload for r in big]


def test_records_read_whole_go_on_from_the_walk() -> None:
    log = chained_log(20)
    walk = ChainWalk(10)
    walk.page(page_chain(log[:10]))
    walk.end()
    walk.records(log[10:15])
    assert walk.position == 15
    with pytest.raises(ChainBroken, match="position 17 "):
        walk.records(altered(log, "payload", 17)[15:])


def test_the_refusal_says_what_audit_verify_says() -> None:
    assert str(ChainBroken(8)) == "hash chain broken: first altered or missing position 8 (intact through position 7)"


def batched(log: list[EventRecord], total: int, head_hash: bytes, size: int) -> int | None:
    """The first bad position ``lrs audit verify`` finds: batches of ``size``
    events read whole after where the walk ends, up to the end of ``log``
    (which may go on past the log head at ``total``)."""
    walk = ChainWalk(total, head_hash)
    try:
        while batch := [r for r in log if r.position > walk.position][:size]:
            walk.records(batch)
        walk.end()
    except ChainBroken as exc:
        return exc.position
    return None


def paged(log: list[EventRecord], total: int, head_hash: bytes, size: int) -> int | None:
    walk = ChainWalk(total, head_hash)
    try:
        for after in range(0, total, size):
            walk.page(page_chain([r for r in log if after < r.position <= min(after + size, total)]))
        walk.end()
    except ChainBroken as exc:
        return exc.position
    return None


@pytest.mark.parametrize("how", ["payload", "hash", "relinked", "deleted", "tail deleted", "rehashed"])
def test_batches_read_whole_and_pages_find_the_same_first_position(how: str) -> None:
    rng = random.Random(how)
    for _ in range(40):
        total = rng.randrange(2, 40)
        intact = chained_log(total + rng.choice([0, 0, 3]), rng.randrange(1000))  # events written since the head was read
        at = rng.randrange(1, total + 1)
        log = altered(intact, how, at)
        expected = at + 1 if how == "rehashed" and at < total else at  # a rehashed event: the next one names its old hash
        for size in (1, 2, 5, total, total + 5):
            assert batched(log, total, intact[total - 1].hash, size) == expected, (how, total, at, size)
            assert paged(log, total, intact[total - 1].hash, size) == expected, (how, total, at, size)


@pytest.mark.parametrize("size", [1, 2, 5, 100])
def test_the_event_at_the_log_head_rewritten_is_named_though_events_follow_it(size: int) -> None:
    """No event names the hash of the one at the head, log_head does; the
    event after it (written since the head was read) names its old hash, so
    the chain breaks there too, after the head: the walk names the head."""
    intact = chained_log(12)
    log = altered(intact, "rehashed", 9)
    assert verify_chain(log) == 10
    assert batched(log, 9, intact[8].hash, size) == 9
    assert batched(log[:9], 9, intact[8].hash, size) == 9
    assert batched(intact, 9, intact[8].hash, size) is None
