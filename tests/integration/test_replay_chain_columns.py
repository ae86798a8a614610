"""A replay refuses a log altered in any column the chain covers, at either
end of the log, in either payload form, read in pages as small as one event
(every page a seam between processes), against real PostgreSQL; and the log's
end is checked against what log_head says it is: its position and its hash.
(tests/integration/test_replay_chain.py: how a refused replay leaves the live
projection.)"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest

from lrs.eventlog import record_hash
from lrs.payload_codec import MAGIC, open_payload, store_payload
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from projections.competency import parallel_replay, read_shares
from projections.competency.store import CompetencyProjection
from projections.log_chain import ChainBroken
from projections.replay import LogPages, replay
from tests.integration.competency_statements import CATALOG
from tests.integration.test_replay_chain import READINGS, assert_refused, audited_log, tamper
from tests.integration.test_replay_shares import assert_nothing_swapped_in


@pytest.fixture(params=[1, 2], ids=["pages of 1", "pages of 2"])
def page_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    init = LogPages.__init__

    def small(self: LogPages, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.page_size = request.param

    monkeypatch.setattr(LogPages, "__init__", small)
    monkeypatch.setattr(read_shares, "MIN_SHARED_EVENTS", 1)
    monkeypatch.setattr(parallel_replay, "MIN_PARALLEL_EVENTS", 1)
    return request.param


async def rehashed(pool: asyncpg.Pool, position: int, **changes: Any) -> None:
    """The event at ``position`` changed and hashed again over its change
    (its prev_hash as it was): only what comes after it names the old hash."""
    (record,) = await read_events_after(pool, position - 1, 1)
    forged = msgspec.structs.replace(record, **changes)
    await tamper(pool, "UPDATE events SET payload = $1, hash = $2 WHERE position = $3",
                 forged.payload, record_hash(forged), position)


async def alter(pool: asyncpg.Pool, alteration: str, total: int) -> int:
    """The log altered as ``alteration`` says; the first position it breaks."""
    middle = total // 2
    simple = {
        "tenant": "UPDATE events SET tenant = 'other' WHERE position = $1",
        "event_type": "UPDATE events SET event_type = 'roster' WHERE position = $1 AND event_type = 'statement'",
        "stored": "UPDATE events SET stored = stored + interval '1 microsecond' WHERE position = $1",
        "event_id": "UPDATE events SET event_id = gen_random_uuid() WHERE position = $1",
        "hash": "UPDATE events SET hash = sha256(hash) WHERE position = $1",
        "prev_hash": "UPDATE events SET prev_hash = sha256(prev_hash) WHERE position = $1",
    }
    if alteration in simple:
        await tamper(pool, simple[alteration], middle)
        return middle
    if alteration == "first event":
        stored = await pool.fetchval("SELECT payload FROM events WHERE position = 1")
        await tamper(pool, "UPDATE events SET payload = $1 WHERE position = 1",
                     open_payload(stored).replace(b'"mailto:', b'"mailto:x', 1))
        return 1
    if alteration == "compressed frame":  # the same content compressed again: a frame that reads otherwise
        stored = bytes(await pool.fetchval("SELECT payload FROM events WHERE position = $1", middle))
        assert stored.startswith(MAGIC)
        altered = store_payload(open_payload(stored).replace(b'"mailto:', b'"mailto:x', 1))
        await tamper(pool, "UPDATE events SET payload = $1 WHERE position = $2", altered, middle)
        return middle
    if alteration == "plain payload":  # the other form: canonical JSON kept as it is
        stored = bytes(await pool.fetchval("SELECT payload FROM events WHERE position = $1", middle))
        await tamper(pool, "UPDATE events SET payload = $1 WHERE position = $2",
                     open_payload(stored).replace(b'"mailto:', b'"mailto:x', 1), middle)
        return middle
    if alteration == "swapped":
        await tamper(pool, "UPDATE events SET position = -1 WHERE position = $1", middle)
        await tamper(pool, "UPDATE events SET position = $1 WHERE position = $2", middle, middle + 1)
        await tamper(pool, "UPDATE events SET position = $1 WHERE position = -1", middle + 1)
        return middle
    if alteration == "appended with a wrong prev_hash":  # beyond the log head, correct-looking but unlinked
        (last,) = await read_events_after(pool, total - 1, 1)
        forged = msgspec.structs.replace(last, position=total + 1, prev_hash=b"\x02" * 32)
        await tamper(pool, "INSERT INTO events (position, event_id, tenant, event_type, statement_id, stored, payload,"
                     " prev_hash, hash) SELECT $1, gen_random_uuid(), tenant, event_type, NULL, stored, payload, $2, $3"
                     " FROM events WHERE position = $4", total + 1, forged.prev_hash, record_hash(forged), total)
        await pool.execute("UPDATE log_head SET position = $1 WHERE singleton", total + 1)
        return total + 1
    raise AssertionError(alteration)


ALTERATIONS = ["tenant", "event_type", "stored", "event_id", "hash", "prev_hash", "first event", "compressed frame",
               "plain payload", "swapped", "appended with a wrong prev_hash"]


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize("alteration", ALTERATIONS)
async def test_an_alteration_of_any_column_is_refused_where_audit_verify_names_it(
    alteration: str, reading: str, page_size: int, pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    runner, live, checkpoint, before = await audited_log(pool, writer)
    total = await pool.fetchval("SELECT position FROM log_head")
    await assert_refused(pool, database_url, reading, await alter(pool, alteration, total))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


@pytest.mark.parametrize("reading", sorted(READINGS))
async def test_the_last_event_altered_and_hashed_again_is_refused_as_log_head_names_another_hash(
    reading: str, page_size: int, pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    """No event after the last names its hash: only log_head does (the writer
    sets it with the event, in one transaction).  A replay that checked only
    log_head's position swapped the rewritten last event in."""
    runner, live, checkpoint, before = await audited_log(pool, writer)
    total = await pool.fetchval("SELECT position FROM log_head")
    (last,) = await read_events_after(pool, total - 1, 1)
    assert b'"mailto:' in last.payload
    await rehashed(pool, total, payload=last.payload.replace(b'"mailto:', b'"mailto:x', 1))
    await assert_refused(pool, database_url, reading, total)  # audit verify names it too
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


@pytest.mark.parametrize("processes", [1, 3])
async def test_the_services_own_rebuild_without_other_connections_refuses_a_rewritten_last_event(
    processes: int, page_size: int, pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """As the supervisor's auto-rebuild calls it (no ``connect``: only the
    processes beyond two read, from pages sent to them)."""
    runner, live, checkpoint, before = await audited_log(pool, writer)
    total = await pool.fetchval("SELECT position FROM log_head")
    (last,) = await read_events_after(pool, total - 1, 1)
    await rehashed(pool, total, payload=last.payload.replace(b'"mailto:', b'"mailto:x', 1))
    with pytest.raises(ChainBroken, match=rf"^hash chain broken: first altered or missing position {total} "):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
