"""Filtered pages with StatementRefs: the page query (one walk of the keys a
Statement holds, its own and those of the Statements its chain reaches,
lrs/store/reader.py and lrs/store/ref_keys.py) returns exactly what the
rule says, written here as the single condition it is in xAPI-Communication
2.1.3: a statement matches when it or a statement its StatementRef chain
reaches (up to MAX_REF_DEPTH steps) matches the filters; and since/until,
which the page query turns into positions, give what comparing ``stored``
gives, at and a microsecond around every stored time.

A random store with chains (targets stored before and after their
referrers, unknown targets, cycles, voided targets and referrers), then every
page of many random queries in both directions, compared page by page."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any, AsyncIterator

import asyncpg
import msgspec
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.store import StatementWriter, create_pool
from lrs.service import migrate
from lrs.ingest.stored_keys import meets_filters, statement_ref_target
from lrs.store.reader import MAX_REF_DEPTH, query_statements
from lrs.payload_codec import open_payload

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
AGENTS = [f"mailto:p{i}@example.com" for i in range(4)]
VERBS = [f"http://example.com/v/{v}" for v in ("did", "passed", "said")]
ACTIVITIES = [f"http://example.com/act/{i}" for i in range(4)]
REGISTRATIONS = [uuid.UUID(int=i + 1) for i in range(3)]
TENANT = "t"
# Every stored Statement of TENANT, in position order, for the rule below.
ALL_ROWS = """
SELECT s.position, s.stored, s.voided, s.statement_id, s.statement_ref, e.payload
FROM statements s JOIN events e ON e.position = s.position WHERE s.tenant = $1 ORDER BY s.position
"""


async def reference_page(pool: asyncpg.Pool, query: StatementQuery, after: int | None,
                         limit: int) -> list[tuple[int, str]]:
    """The rule as one condition, on every stored Statement's JSON (no index
    and no key the reader uses): it, or a Statement its chain reaches (up to
    MAX_REF_DEPTH, voided or not), meets the filters
    (:func:`lrs.ingest.stored_keys.meets_filters`, held equal to the writer's
    keys by tests/unit/test_stored_keys.py); not voided; within since/until
    and after the cursor.  (position, id) of the first ``limit`` + 1."""
    rows = await pool.fetch(ALL_ROWS, TENANT)
    bodies = {r["statement_id"]: msgspec.json.decode(open_payload(r["payload"])) for r in rows}

    def matches(statement_id: uuid.UUID) -> bool:
        body = bodies[statement_id]
        if meets_filters(query, body):
            return True
        for _ in range(MAX_REF_DEPTH):
            target = statement_ref_target(body)
            if target is None or target not in bodies:
                return False
            body = bodies[target]
            if meets_filters(query, body):
                return True
        return False

    chosen = [
        (r["position"], str(r["statement_id"])) for r in rows
        if not r["voided"]
        and (after is None or (r["position"] > after if query.ascending else r["position"] < after))
        and (query.since is None or r["stored"] > query.since)
        and (query.until is None or r["stored"] <= query.until)
        and matches(r["statement_id"])
    ]
    return (chosen if query.ascending else chosen[::-1])[: limit + 1]


def random_statements(rng: random.Random, count: int) -> list[dict[str, Any]]:
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    unknown = [str(uuid.uuid4()) for _ in range(5)]
    bodies = []
    for i, sid in enumerate(ids):
        body: dict[str, Any] = {"id": sid, "actor": {"mbox": rng.choice(AGENTS)}, "verb": {"id": rng.choice(VERBS)}}
        kind = rng.random()
        if kind < 0.35 and i > 0:  # a StatementRef to an earlier, later, unknown or own-chain statement
            target = rng.choice([rng.choice(ids[:i]), rng.choice(ids), rng.choice(unknown)])
            body["object"] = {"objectType": "StatementRef", "id": target}
        elif kind < 0.42 and i > 0:  # voiding
            body["verb"] = {"id": "http://adlnet.gov/expapi/verbs/voided"}
            body["object"] = {"objectType": "StatementRef", "id": rng.choice(ids)}
        else:
            body["object"] = {"id": rng.choice(ACTIVITIES)}
        if rng.random() < 0.5:
            context: dict[str, Any] = {"registration": str(rng.choice(REGISTRATIONS))}
            if rng.random() < 0.4:
                context["instructor"] = {"mbox": rng.choice(AGENTS)}
            if rng.random() < 0.4:
                context["contextActivities"] = {"parent": [{"id": rng.choice(ACTIVITIES)}]}
            body["context"] = context
        bodies.append(body)
    rng.shuffle(bodies)  # targets stored after their referrers too
    return bodies


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    rng = random.Random(19)
    bodies = random_statements(rng, 240)
    for start in range(0, len(bodies), 12):
        batch = prepare_statements(bodies[start:start + 12], version="1.0.3", authority=AUTHORITY,
                                   new_id=uuid.uuid4)
        try:
            await writer.append(TENANT, batch)
        except Exception:  # a batch voiding a voiding statement is refused whole: store the rest one by one
            for one in batch:
                try:
                    await writer.append(TENANT, [one])
                except Exception:
                    pass
    await writer.close()
    yield pool
    await pool.close()


def random_query(rng: random.Random, times: list[Any]) -> StatementQuery:
    fields: dict[str, Any] = {}
    one_microsecond = timedelta(microseconds=1)
    if rng.random() < 0.3:
        fields["since"] = rng.choice(times) + rng.choice([-one_microsecond, timedelta(0), one_microsecond])
    if rng.random() < 0.3:
        fields["until"] = rng.choice(times) + rng.choice([-one_microsecond, timedelta(0), one_microsecond])
    if rng.random() < 0.5:
        fields["agent"] = "mbox:" + rng.choice(AGENTS)
        fields["related_agents"] = rng.random() < 0.4
    if rng.random() < 0.35:
        fields["verb"] = rng.choice(VERBS)
    if rng.random() < 0.4:
        fields["activity"] = rng.choice(ACTIVITIES)
        fields["related_activities"] = rng.random() < 0.4
    if rng.random() < 0.3:
        fields["registration"] = rng.choice(REGISTRATIONS)
    return StatementQuery(limit=rng.randint(2, 9), ascending=rng.random() < 0.5, **fields)


async def test_every_page_matches_the_rule(pool: asyncpg.Pool) -> None:
    rng = random.Random(7)
    stored = await pool.fetchval("SELECT count(*) FROM statements WHERE statement_ref IS NOT NULL")
    assert stored > 50  # the store does hold StatementRefs (and chains of them)
    times = [r[0] for r in await pool.fetch("SELECT stored FROM events ORDER BY position")]
    times += [times[0] - timedelta(days=1), times[-1] + timedelta(days=1)]
    compared = 0
    for _ in range(40):
        query = random_query(rng, times)
        after: int | None = None
        while True:
            bodies, last, more = await query_statements(pool, TENANT, query, after_position=after, limit=query.limit)
            rows = await reference_page(pool, query, after, query.limit)
            expected = [statement_id for _, statement_id in rows[: query.limit]]
            assert [msgspec.json.decode(b)["id"] for b in bodies] == expected, (query, after)
            assert more == (len(rows) > query.limit), (query, after)
            compared += 1
            if not more:
                break
            after = last
    assert compared > 80  # many queries paged through several pages each


async def test_a_reference_found_only_through_a_chain(pool: asyncpg.Pool) -> None:
    """A chain of three StatementRefs stored before the statement it ends at:
    each of them is in the activity's pages, through the keys each was given
    when the statement it ends at came."""
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    activity = "http://example.com/act/only-here"

    async def add(body: dict[str, Any]) -> None:
        await writer.append(TENANT, prepare_statements([body], version="1.0.3", authority=AUTHORITY,
                                                       new_id=uuid.uuid4))

    for i in (3, 2, 1):
        await add({"id": ids[i], "actor": {"mbox": AGENTS[0]}, "verb": {"id": VERBS[0]},
                   "object": {"objectType": "StatementRef", "id": ids[i - 1]}})
    await add({"id": ids[0], "actor": {"mbox": AGENTS[1]}, "verb": {"id": VERBS[1]}, "object": {"id": activity}})
    await writer.close()
    for ascending in (False, True):
        query = StatementQuery(limit=2, activity=activity, ascending=ascending)
        seen: list[str] = []
        after = None
        while True:
            bodies, after, more = await query_statements(pool, TENANT, query, after_position=after, limit=2)
            seen += [msgspec.json.decode(b)["id"] for b in bodies]
            if not more:
                break
        assert seen == (ids[::-1] if ascending else ids)
