"""Filtered pages with StatementRefs: the page query (a direct part and two
bounded StatementRef parts, lrs/store/reader.py) returns exactly what the
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
from lrs.store.reader import MAX_REF_DEPTH, SELECT_PAGE, _filters, query_statements
from lrs.payload_codec import open_payload

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
AGENTS = [f"mailto:p{i}@example.com" for i in range(4)]
VERBS = [f"http://example.com/v/{v}" for v in ("did", "passed", "said")]
ACTIVITIES = [f"http://example.com/act/{i}" for i in range(4)]
REGISTRATIONS = [uuid.UUID(int=i + 1) for i in range(3)]
TENANT = "t"
# The StatementRef rule as plainly as SQL says it (the reader walks the chain its
# own way): every id of the chain, up to MAX_REF_DEPTH, checked against the filters.
REF_RULE = """EXISTS (
    WITH RECURSIVE chain(id, depth) AS (
        SELECT s.statement_ref, 1
        UNION ALL
        SELECT t.statement_ref, c.depth + 1
        FROM chain c, LATERAL (
            SELECT t.statement_ref FROM statements t
            WHERE t.tenant = $1 AND t.statement_id = c.id AND t.statement_ref IS NOT NULL OFFSET 0
        ) AS t
        WHERE c.depth < {max_depth}
    )
    -- each target by its id (OFFSET 0: never by the filters over the tenant)
    SELECT 1 FROM chain c, LATERAL (
        SELECT 1 FROM statements t WHERE t.tenant = $1 AND t.statement_id = c.id AND {target_filters} OFFSET 0
    ) AS m
)"""


def reference_query(query: StatementQuery, after: int | None, limit: int) -> tuple[str, list[Any]]:
    """The rule as one condition: own filters OR a chain target matching them."""
    params: list[Any] = [TENANT]
    where = ["s.tenant = $1", "NOT s.voided"]
    if after is not None:
        params.append(after)
        where.append(f"s.position {'>' if query.ascending else '<'} ${len(params)}::bigint")
    if query.since is not None:
        params.append(query.since)
        where.append(f"s.stored > ${len(params)}")
    if query.until is not None:
        params.append(query.until)
        where.append(f"s.stored <= ${len(params)}")
    own = _filters(query, "s", params)
    if own:
        targets = _filters(query, "t", params)
        ref = REF_RULE.format(max_depth=MAX_REF_DEPTH, target_filters=" AND ".join(targets))
        where.append(f"(({' AND '.join(own)}) OR (s.statement_ref IS NOT NULL AND {ref}))")
    sql = SELECT_PAGE.format(times="", where=" AND ".join(where), direction="ASC" if query.ascending else "DESC",
                             limit=limit + 1)
    return sql, params


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
            sql, params = reference_query(query, after, query.limit)
            rows = await pool.fetch(sql, *params)
            expected = [msgspec.json.decode(open_payload(r["payload"]))["id"] for r in rows[: query.limit]]
            assert [msgspec.json.decode(b)["id"] for b in bodies] == expected, (query, after)
            assert more == (len(rows) > query.limit), (query, after)
            compared += 1
            if not more:
                break
            after = last
    assert compared > 80  # many queries paged through several pages each


async def test_a_reference_found_only_through_a_chain(pool: asyncpg.Pool) -> None:
    """A chain of three StatementRefs stored before the statement it ends at:
    each of them is in the activity's pages, found by the walk from the match."""
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
