"""Group commits that mix tenants and senders, against real PostgreSQL: the
group INSERT sends a column once when the whole group shares it (tenant,
authority key) and as NULL when no row has a value (registration, voids,
StatementRef, voided), so each row is checked against its own Statement's
JSON, in groups where some rows have those values and others not, with a
Statement voided by another in the same group and one voided before it was
stored; then filtered pages of each tenant, through the voided Statements'
index, hold exactly that tenant's matches."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import msgspec

from lrs.batching import AUTHORITY_KEY, RELATED_AGENT_KEY, filter_keys
from lrs.eventlog import verify_chain
from lrs.ingest.prepare import VOIDED_VERB, prepare_statements, prepared_from_stored
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import pair_keys
from lrs.payload_codec import open_payload
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from lrs.store.reader import query_statements
from lrs.xapi.identity import authority_key

SENDERS = (
    {"objectType": "Agent", "mbox": "mailto:authority@example.com"},
    {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "other sender"}},
)
REGISTRATION = uuid.UUID("6f0c1a52-2b1e-4d59-9a55-0c7f8d1e2a11")


def sid(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mixed-{n}"))


def statement(n: int, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": sid(n), "actor": {"mbox": f"mailto:learner{n % 2}@example.com"},
                            "verb": {"id": "http://example.com/v/did"}, "object": {"id": f"http://example.com/a/{n % 2}"}}
    body.update(extra)
    return body


def with_registration(n: int) -> dict[str, Any]:
    return statement(n, context={"registration": str(REGISTRATION)})


def referring(n: int, target: int) -> dict[str, Any]:
    return statement(n, object={"objectType": "StatementRef", "id": sid(target)})


def voiding(n: int, target: int) -> dict[str, Any]:
    return statement(n, verb={"id": VOIDED_VERB}, object={"objectType": "StatementRef", "id": sid(target)})


async def test_mixed_groups_store_each_row_as_its_statement_says(pool: asyncpg.Pool) -> None:
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()

    async def send(tenant: str, sender: int, *bodies: dict[str, Any]) -> None:
        await writer.append(tenant, prepare_statements(list(bodies), version="1.0.3", authority=SENDERS[sender],
                                                       new_id=uuid.uuid4))

    try:
        await send("t", 0, statement(1), statement(2))
        # tenants and senders mixed; registration, voiding and StatementRef in some rows only;
        # 2 voided by a Statement stored before 1's voiding; 5 voided in its own group;
        # 9 voided (in another tenant's group) before it is stored
        await asyncio.gather(
            send("t", 0, statement(3), with_registration(4)),
            send("u", 0, statement(3), voiding(20, 9)),
            send("t", 1, voiding(21, 2), referring(22, 1), statement(5)),
            send("u", 1, with_registration(6), statement(7)),
            send("t", 1, voiding(23, 5), referring(24, 4)),
        )
        await asyncio.gather(send("u", 0, statement(9)), send("t", 0, statement(9), statement(10)))
    finally:
        await writer.close()
    assert writer.groups_committed == 3

    assert verify_chain(await read_events_after(pool, 0, 100)) is None
    rows = await pool.fetch(
        "SELECT s.tenant, s.statement_id, s.position, s.authority_key, s.registration, s.voided, s.voids,"
        " s.statement_ref, s.stored = e.stored AND s.tenant = e.tenant AND s.statement_id = e.statement_id AS same,"
        " e.payload FROM statements s JOIN events e ON e.position = s.position ORDER BY s.position")
    assert len(rows) == 16
    bodies = {(r["tenant"], r["statement_id"]): msgspec.json.decode(open_payload(r["payload"])) for r in rows}
    voided_ids = {(t, uuid.UUID(b["object"]["id"])) for (t, _), b in bodies.items() if b["verb"]["id"] == VOIDED_VERB}
    for row in rows:
        tenant, body = row["tenant"], bodies[(row["tenant"], row["statement_id"])]
        assert row["same"], row
        assert row["authority_key"] == await pool.fetchval(
            "SELECT statement_key($1, $2)", tenant, AUTHORITY_KEY + authority_key(body["authority"]))
        registration = body.get("context", {}).get("registration")
        assert row["registration"] == (None if registration is None else uuid.UUID(registration)), row
        target = uuid.UUID(body["object"]["id"]) if body["object"].get("objectType") == "StatementRef" else None
        assert row["statement_ref"] == target, row
        assert row["voids"] == (target if body["verb"]["id"] == VOIDED_VERB else None), row
        assert row["voided"] == ((tenant, row["statement_id"]) in voided_ids), row
        if target is None:  # a referring Statement also holds the keys of its target (lrs/store/ref_keys.py)
            keys = await pool.fetchval(
                "SELECT array_agg(key ORDER BY key) FROM statement_keys WHERE position = $1", row["position"])
            # with the activity + verb pair; without the Agent authority's
            # related agent key, which statements.authority_key answers
            # (lrs.store.group_columns.key_literal)
            expected = await pool.fetchval(
                "SELECT array_agg(DISTINCT statement_key($1, k) ORDER BY statement_key($1, k))"
                " FROM unnest($2::text[]) k WHERE left(k, 2) <> 'U:' AND k <> $3",
                tenant, filter_keys(prepared_from_stored(body)) + sorted(pair_keys(body)),
                RELATED_AGENT_KEY + authority_key(body["authority"]))
            assert keys == expected, row

    async def page(tenant: str, **filters: Any) -> list[str]:
        query = StatementQuery(limit=2, ascending=True, **filters)
        found, after = [], None
        while True:
            bodies_, after, more = await query_statements(pool, tenant, query, after_position=after, limit=2)
            found += [msgspec.json.decode(b)["id"] for b in bodies_]
            if not more:
                return found

    position = {(r["tenant"], str(r["statement_id"])): r["position"] for r in rows}

    def in_order(tenant: str, *ns: int) -> list[str]:
        return sorted((sid(n) for n in ns), key=lambda i: position[(tenant, i)])

    learner0 = "mbox:mailto:learner0@example.com"
    # learner0 is the actor of the even-numbered ones (2 voided) and of 20;
    # 21 voids 2, and a StatementRef matches by its target, voided or not
    assert await page("t", agent=learner0) == in_order("t", 4, 21, 22, 24, 10)
    assert await page("u", agent=learner0) == in_order("u", 20, 6)
    assert await page("t", registration=REGISTRATION) == in_order("t", 4, 24)
    assert await page("u", registration=REGISTRATION) == in_order("u", 6)
    # the odd-numbered ones' object (5 and u's 9 voided), and 22, 23 and 20 by their targets
    assert await page("t", activity="http://example.com/a/1") == in_order("t", 1, 3, 22, 23, 9)
    assert await page("u", activity="http://example.com/a/1") == in_order("u", 3, 20, 7)
