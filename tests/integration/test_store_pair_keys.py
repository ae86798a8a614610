"""The activity + verb pair key (schemas/postgres/0141) over a store migrated
mid-life: Statements stored before the migration have no pair key, so a page
walks the pair key above the low-water and the activity's entries (the verb
checked on each row) at or below it.  Every page must be what the plain xAPI
rules give and what the activity's walk alone gives (the reader before the
key), and stay so once the older Statements are given their keys: order, ``more``, both directions, since/until, voided Statements, and
StatementRefs whose referrer and target lie on either side of the low-water."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import pair_key
from lrs.store import pair_keys as pair_keys_module
from lrs.store.pair_keys import LowWaterMoved, PairKeysEverywhere, backfill_pair_keys
from tests.integration import test_store_query_properties as rules

APP = rules.APP
A0, A1 = rules.ACTIVITIES[:2]
V0, V1, V2 = rules.VERBS
P0, P1 = (dict(p, objectType="Agent") for p in rules.PEOPLE[:2])
NO_PAIR_KEYS = 9223372036854775807  # a low-water above every Statement: the activity's walk everywhere


def body(n: str, verb: str, obj: dict[str, Any], actor: dict[str, Any] = P0) -> dict[str, Any]:
    return {"id": n, "actor": actor, "verb": {"id": verb}, "object": obj}


def ref(target: str) -> dict[str, str]:
    return {"objectType": "StatementRef", "id": target}


async def test_pages_of_a_store_migrated_mid_life_are_those_of_the_rules_and_of_the_activity_walk(
    pool: asyncpg.Pool,
) -> None:
    ids = {name: str(uuid.uuid4()) for name in (
        "o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8")}
    older = [
        body(ids["o1"], V0, {"id": A0}),
        body(ids["o2"], V1, {"id": A0}, P1),          # the activity, another verb
        body(ids["o3"], V2, ref(ids["o1"])),          # referrer and target before the low-water
        body(ids["o4"], V2, ref(ids["n1"])),          # its target is stored after the low-water
        body(ids["o5"], V0, {"id": A0}),              # voided after the low-water
        body(ids["o6"], V0, {"id": A0}, P1),
        body(ids["o7"], V0, {"id": A1}),
        body(ids["o8"], V0, {"id": A0}),
    ]
    newer = [
        body(ids["n1"], V0, {"id": A0}),
        body(ids["n2"], V1, ref(ids["o1"]), P1),      # a new referrer of an old target
        body(ids["n3"], rules.VOIDED, ref(ids["o5"])),
        body(ids["n4"], V1, {"id": A0}),
        body(ids["n5"], V0, {"id": A0}, P1),
        body(ids["n6"], V2, ref(ids["n2"])),          # new -> new -> old
        body(ids["n7"], V0, {"id": A0}),
        body(ids["n8"], V0, ref(ids["o2"])),          # its target has the activity, not with this verb
    ]
    specs = [{"body": b, "authority": APP} for b in older + newer]
    store = await rules.write_store(pool, "t", specs, together=2, migrated_at=len(older))
    low = await pool.fetchval("SELECT position FROM pair_keys_low_water")
    assert low == len(older)  # one position a Statement, from 1
    pair_rows = await pool.fetch(
        "SELECT position FROM statement_keys WHERE key = statement_key('t', $1) ORDER BY position",
        pair_key(A0, V0))
    # after the low-water the Statements with A0 and V0 and their referrers (n2 and n6
    # for o1, the voiding n3 for o5; o4, below it, holds n1's too: its target came
    # later); none before it had one
    assert [r["position"] for r in pair_rows] == [4, 9, 10, 11, 13, 14, 15]

    times = [s["stored"] for s in store]
    queries = [StatementQuery(limit=limit, activity=A0, verb=V0, ascending=ascending)
               for limit in (1, 2, 3, 100) for ascending in (False, True)]
    queries += [StatementQuery(limit=2, activity=A0, verb=V1), StatementQuery(limit=2, activity=A0, verb=V1,
                                                                               ascending=True),
                StatementQuery(limit=2, activity=A1, verb=V0), StatementQuery(limit=2, activity=A1, verb=V1)]
    queries += [rules.with_times(StatementQuery(limit=2, activity=A0, verb=V0, ascending=ascending), times,
                                 since, until, 0)
                for ascending in (False, True) for since, until in ((2, 12), (-1, 5), (9, -1))]
    found = rules.expected_ids(store, StatementQuery(limit=100, activity=A0, verb=V0), None)
    assert found == [ids[n] for n in ("n7", "n6", "n5", "n3", "n2", "n1", "o8", "o6", "o4", "o3", "o1")]
    known = PairKeysEverywhere(recheck_s=0.0)
    for query in queries:
        for mine in (None, rules.authority_of(APP)):
            expected = rules.chunks(rules.expected_ids(store, query, mine), query.limit)
            assert await rules.paged_ids(pool, "t", query, mine) == expected, (query, mine)
            assert await rules.paged_ids(pool, "t", query, mine, known) == expected, (query, mine)
            assert not known.seen
            await pool.execute("UPDATE pair_keys_low_water SET position = $1", NO_PAIR_KEYS)
            try:
                assert await rules.paged_ids(pool, "t", query, mine) == expected, ("activity walk", query, mine)
            finally:
                await pool.execute("UPDATE pair_keys_low_water SET position = $1", low)

    # The older Statements given their keys (lrs backfill-pair-keys), a few positions a step:
    # the rows are those of a store written with the key from the start, the low-water 0,
    # and every page the same.
    steps: list[tuple[int, int]] = []
    written = await backfill_pair_keys(pool, batch=3, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(3, 8), (6, 8), (8, 8)]
    assert await pool.fetchval("SELECT position FROM pair_keys_low_water") == 0
    assert await rules.key_rows(pool, "t") == await rules.own_and_reached_key_rows(pool, "t")
    assert written == 7  # o1, o2, o5, o6, o7, o8 their own, o3 o1's; o4 had n1's from the writer
    assert await backfill_pair_keys(pool, batch=3) == 0
    for query in queries:
        for mine in (None, rules.authority_of(APP)):
            expected = rules.chunks(rules.expected_ids(store, query, mine), query.limit)
            assert await rules.paged_ids(pool, "t", query, mine) == expected, ("backfilled", query, mine)
            # known to be 0 now: the pair key's walk alone
            assert await rules.paged_ids(pool, "t", query, mine, known) == expected, ("pair key alone", query, mine)
    assert known.seen


async def test_a_fresh_store_walks_the_pair_key_alone(pool: asyncpg.Pool) -> None:
    """Migrated before its first Statement, a store's low-water is 0: a page
    of activity + verb walks the pair key's rows alone."""
    assert await pool.fetchval("SELECT position FROM pair_keys_low_water") == 0
    specs = [{"body": body(str(uuid.uuid4()), verb, {"id": A0}), "authority": APP} for verb in (V0, V1, V0)]
    store = await rules.write_store(pool, "t", specs)
    query = StatementQuery(limit=1, activity=A0, verb=V0)
    expected = rules.chunks(rules.expected_ids(store, query, None), 1)
    assert len(expected) == 2
    known = PairKeysEverywhere()
    assert await rules.paged_ids(pool, "t", query, None) == expected
    assert await rules.paged_ids(pool, "t", query, None, known) == expected
    assert known.seen
    # without its pair row a Statement is not found: the page walked the pair key
    await pool.execute("DELETE FROM statement_keys WHERE key = statement_key('t', $1) AND position = 3",
                       pair_key(A0, V0))
    assert await rules.paged_ids(pool, "t", query, None) == expected[1:]
    assert await rules.paged_ids(pool, "t", query, None, known) == expected[1:]



async def test_a_process_that_saw_the_low_water_at_0_reads_it_again_after_a_restore(pool: asyncpg.Pool) -> None:
    """The low-water only falls in one database, but a database restored
    under a running service from a backup taken before its backfill ended
    is one again: its older Statements lack their pair keys.  A process
    that had seen 0 before must not walk the pair key alone there for good."""
    specs = [{"body": body(str(uuid.uuid4()), verb, {"id": A0}), "authority": APP} for verb in (V0, V1, V0, V0)]
    store = await rules.write_store(pool, "t", specs)
    query = StatementQuery(limit=2, activity=A0, verb=V0)
    expected = rules.chunks(rules.expected_ids(store, query, None), 2)
    known = PairKeysEverywhere(recheck_s=0.0)
    assert await rules.paged_ids(pool, "t", query, None, known) == expected
    assert known.seen
    # the backup's state: the first three Statements stored before migration 0141, not backfilled yet
    await pool.execute("UPDATE pair_keys_low_water SET position = 3")
    await pool.execute("DELETE FROM statement_keys WHERE key = statement_key('t', $1) AND position <= 3",
                       pair_key(A0, V0))
    assert await rules.paged_ids(pool, "t", query, None, known) == expected
    assert not known.seen



async def test_a_backfill_whose_low_water_another_lowered_meanwhile_stops_with_its_own_error(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two backfills at once: the one that finds the low-water moved under its
    step rolls that step back and stops with LowWaterMoved (the command's
    one-line error); the store is what the other run made of it."""
    specs = [{"body": body(str(uuid.uuid4()), V0, {"id": A0}), "authority": APP} for _ in range(6)]
    await rules.write_store(pool, "t", specs)
    await pool.execute("UPDATE pair_keys_low_water SET position = 6")
    await pool.execute("DELETE FROM statement_keys WHERE key = statement_key('t', $1)", pair_key(A0, V0))
    range_keys = pair_keys_module._range_keys
    steps: list[tuple[int, int]] = []

    async def another_backfill_runs_before_the_second_step(conn: Any, low: int, high: int) -> Any:
        steps.append((low, high))
        if len(steps) == 2:  # the other run, unpatched, goes to the end
            monkeypatch.setattr(pair_keys_module, "_range_keys", range_keys)
            await backfill_pair_keys(pool, batch=3)
        return await range_keys(conn, low, high)

    monkeypatch.setattr(pair_keys_module, "_range_keys", another_backfill_runs_before_the_second_step)
    with pytest.raises(LowWaterMoved, match="another backfill"):
        await backfill_pair_keys(pool, batch=2)
    assert steps == [(4, 6), (2, 4)]
    assert await pool.fetchval("SELECT position FROM pair_keys_low_water") == 0
    assert await rules.key_rows(pool, "t") == await rules.own_and_reached_key_rows(pool, "t")
    assert await backfill_pair_keys(pool, batch=2) == 0
