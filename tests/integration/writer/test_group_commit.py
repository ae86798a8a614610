"""The group-commit writer against a real PostgreSQL: what a group stores,
and what one request's failure does to the others."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from lrs.eventlog import verify_chain
from lrs.ingest.model import PreparedStatement
from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter, WriterClosedError
from lrs.store.log_reader import last_position, read_events_after
from lrs.store.reader import get_statement
from lrs.xapi.errors import ConflictError, XapiError
from lrs.xapi.identity import authority_key
from lrs.payload_codec import open_payload
from tests.integration.writer.statements import prepared, statement, voiding


async def test_appends_and_reads_back(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    batch = prepared(statement(), statement())
    results = await writer.append("default", batch)
    assert [r.statement_id for r in results] == [s.statement_id for s in batch]
    assert all(r.inserted for r in results)
    assert [r.position for r in results] == [1, 2]
    assert writer.last_position == 2 == await last_position(pool)
    body = await get_statement(pool, "default", batch[0].statement_id, voided=False)
    assert body is not None and b'"stored":"' in body
    assert await get_statement(pool, "other-tenant", batch[0].statement_id, voided=False) is None


async def test_equivalent_duplicate_is_not_inserted(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    body = statement()
    first = await writer.append("default", prepared(body))
    again = await writer.append("default", prepared(dict(body, timestamp="2020-01-01T00:00:00Z")))
    assert first[0].inserted and not again[0].inserted
    assert again[0].stored == first[0].stored and again[0].position == first[0].position
    assert await last_position(pool) == 1


async def test_conflict_in_a_group_leaves_the_other_requests_alone(pool: asyncpg.Pool) -> None:
    # A long gathering window puts both requests in one transaction.
    writer = StatementWriter(pool, wait_ms=300.0)
    await writer.start()
    try:
        stored = statement()
        await writer.append("default", prepared(stored))
        groups_before = writer.groups_committed
        clash = dict(stored, object={"id": "http://example.com/different"})
        loser_new, winner = prepared(statement()), prepared(statement(), statement())
        outcome = await asyncio.gather(
            writer.append("default", loser_new + prepared(clash)),
            writer.append("default", winner),
            return_exceptions=True,
        )
        assert isinstance(outcome[0], ConflictError) and outcome[0].status == 409
        assert [r.inserted for r in outcome[1]] == [True, True]  # type: ignore[union-attr]
        assert writer.groups_committed == groups_before + 1  # one shared transaction
        assert await get_statement(pool, "default", loser_new[0].statement_id, voided=False) is None
        for s in winner:
            assert await get_statement(pool, "default", s.statement_id, voided=False) is not None
    finally:
        await writer.close()


async def test_rows_keep_awkward_text_nulls_and_the_event_they_belong_to(pool: asyncpg.Pool) -> None:
    # One group of three tenants: quotes, backslashes, commas, braces and the
    # word NULL in tenants, verbs and filter keys must come back as sent, and
    # each read-model row must sit at its own event, with that event's stored time.
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()
    try:
        tenants = ['a "quoted", {braced} \\ tenant', "NULL", "ünïcødé tenant"]
        bodies = [
            statement(verb={"id": "http://example.com/verbs/a,b{c}"}, context={"registration": str(uuid.uuid4())}),
            statement(actor={"mbox": "mailto:o'neil,{x}@example.com"}),
            voiding(uuid.uuid4()),
        ]
        batches = [prepared(*bodies) for _ in tenants]  # same ids in each tenant
        await asyncio.gather(*(writer.append(t, b) for t, b in zip(tenants, batches)))
        assert writer.groups_committed == 1
    finally:
        await writer.close()
    rows = await pool.fetch(
        "SELECT s.tenant, s.statement_id, s.position, s.stored, s.verb_key, s.authority_key, s.registration,"
        " s.voids, s.statement_ref, e.tenant AS event_tenant, e.statement_id AS event_statement, e.stored AS"
        " event_stored, e.payload FROM statements s JOIN events e USING (position) ORDER BY position"
    )
    assert [r["position"] for r in rows] == list(range(1, 10))
    expected = [(t, s) for t, batch in zip(tenants, batches) for s in batch]
    for row, (tenant, prepared_statement) in zip(rows, expected):
        assert (row["tenant"], row["event_tenant"]) == (tenant, tenant)
        assert row["statement_id"] == row["event_statement"] == prepared_statement.statement_id
        assert row["verb_key"] == await pool.fetchval(
            "SELECT statement_key($1, 'V:' || $2)", tenant, prepared_statement.verb_id)
        assert row["authority_key"] == await pool.fetchval(
            "SELECT statement_key($1, 'U:' || $2)", tenant, authority_key(prepared_statement.body["authority"]))
        assert row["registration"] == prepared_statement.registration
        assert row["voids"] == prepared_statement.voids
        assert row["statement_ref"] == prepared_statement.statement_ref
        assert await pool.fetchval(
            "SELECT count(*) FROM statement_keys WHERE key = statement_key($1, $2) AND position = $3",
            tenant, "A:" + prepared_statement.actor_keys[0], row["position"]) == 1
        payload = json.loads(open_payload(row["payload"]))
        assert payload["id"] == str(prepared_statement.statement_id)
        assert row["stored"] == row["event_stored"]
        assert payload["stored"] == row["stored"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [r["registration"] is None for r in rows] == [False, True, True] * 3
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def test_one_tenant_group_of_two_senders_keeps_each_senders_authority(pool: asyncpg.Pool) -> None:
    # One tenant (sent once), two authorities (sent per row), no registration,
    # voiding or StatementRef in the first sender's statements (sent as NULL):
    # each row as if every column had been sent in full.
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()
    other = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "other sender"}}
    try:
        first = prepared(statement(), statement())
        second = prepare_statements([statement(context={"registration": str(uuid.uuid4())})], version="1.0.3",
                                    authority=other, new_id=uuid.uuid4)
        await asyncio.gather(writer.append("t1", first), writer.append("t1", second))
        assert writer.groups_committed == 1
    finally:
        await writer.close()
    rows = await pool.fetch("SELECT tenant, statement_id, authority_key, registration, voided, voids, statement_ref"
                            " FROM statements ORDER BY position")
    assert len(rows) == 3
    by_id = {r["statement_id"]: r for r in rows}
    for prepared_statement in [*first, *second]:
        row = by_id[prepared_statement.statement_id]
        assert row["tenant"] == "t1"
        assert row["authority_key"] == await pool.fetchval(
            "SELECT statement_key('t1', 'U:' || $1)", authority_key(prepared_statement.body["authority"]))
        assert row["registration"] == prepared_statement.registration
        assert (row["voided"], row["voids"], row["statement_ref"]) == (False, None, None)
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def test_database_error_fails_only_that_group(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    bad = prepared(statement())[0]
    # PostgreSQL text cannot hold NUL: COPY fails inside the transaction.
    bad = PreparedStatement(**{**{f: getattr(bad, f) for f in bad.__struct_fields__}, "verb_id": "bad\x00verb"})  # type: ignore[attr-defined]
    with pytest.raises(asyncpg.PostgresError):
        await writer.append("default", [bad])
    assert await last_position(pool) == 0
    results = await writer.append("default", prepared(statement()))
    assert results[0].position == 1  # the writer goes on; no position was lost


async def test_voiding(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    target = prepared(statement())
    await writer.append("default", target)
    target_id = target[0].statement_id
    voider = prepared(voiding(target_id))
    await writer.append("default", voider)
    assert await get_statement(pool, "default", target_id, voided=False) is None
    assert await get_statement(pool, "default", target_id, voided=True) is not None
    # A voiding statement cannot be voided: 400, and nothing of that request is kept.
    other = prepared(statement(), voiding(voider[0].statement_id))
    with pytest.raises(XapiError) as caught:
        await writer.append("default", other)
    assert caught.value.status == 400
    assert await get_statement(pool, "default", other[0].statement_id, voided=False) is None
    # A statement arriving after its voiding statement is stored voided.
    late_id = uuid.uuid4()
    await writer.append("default", prepared(voiding(late_id)))
    await writer.append("default", prepared(statement(id=str(late_id))))
    assert await get_statement(pool, "default", late_id, voided=False) is None
    assert await get_statement(pool, "default", late_id, voided=True) is not None


async def test_close_answers_everything_accepted(pool: asyncpg.Pool) -> None:
    writer = StatementWriter(pool, wait_ms=50.0)
    await writer.start()
    pending = [asyncio.ensure_future(writer.append("default", prepared(statement()))) for _ in range(20)]
    await asyncio.sleep(0)  # let every request enqueue
    assert writer.in_flight == 20
    await writer.close()
    results = await asyncio.gather(*pending)
    assert sorted(r[0].position for r in results) == list(range(1, 21))
    assert writer.in_flight == 0
    with pytest.raises(WriterClosedError):
        await writer.append("default", prepared(statement()))


async def test_committed_listeners_and_consistent_through(writer: StatementWriter) -> None:
    seen: list[int] = []
    writer.committed.append(seen.append)
    before = writer.consistent_through()
    results = await writer.append("default", prepared(statement(), statement()))
    assert seen == [2]
    assert results[0].stored > before  # nothing is stored at or below a handed-out time
    assert writer.consistent_through() >= results[-1].stored
