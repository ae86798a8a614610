"""Per-unit counts kept incrementally agree with counting from scratch, across
statements, voidings, roster transfers, memberships starting later, and replay."""

from __future__ import annotations

import asyncio
import random
from datetime import date, datetime, timedelta, timezone
from typing import Any

import asyncpg

from lrs.store import StatementWriter
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from projections.units.roster import parse_json
from projections.units.series_store import series_counts, series_counts_daily
from projections.units.reads import unit_counts
from projections.units.store import advance_clock, load_roster
from tests.integration.competency_statements import CATALOG, MODULES, PROGRAM, VOIDED, course_statement, learner_key, voiding, write

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
UNITS = [
    {"id": "mic", "kind": "ministry", "name": "Ministry"},
    {"id": "mic-a", "parent": "mic", "kind": "agency", "name": "Agency A"},
    {"id": "mic-a-1", "parent": "mic-a", "kind": "unit", "name": "Division A1"},
    {"id": "mic-a-1-x", "parent": "mic-a-1", "kind": "unit", "name": "Team A1x"},
    {"id": "mic-b", "parent": "mic", "kind": "agency", "name": "Agency B"},
]
LEAVES = ["mic-a", "mic-a-1", "mic-a-1-x", "mic-b"]

RECOUNT = """
SELECT p.unit_id, count(*) FROM learner_units p
JOIN competency_certifications c ON c.tenant = p.tenant AND c.learner = p.learner
WHERE c.earned AND c.program = $1 AND c.program_version = $2 GROUP BY p.unit_id
"""


def membership(n: int, unit: str, start: datetime, end: datetime | None = None) -> dict[str, Any]:
    return {"learner": learner_key(n), "unit": unit, "valid_from": start.isoformat(), "valid_to": end and end.isoformat()}


async def stored_counts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT unit_id, certified FROM unit_certified WHERE certified <> 0")
    return {r["unit_id"]: r["certified"] for r in rows}


async def recounted(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["unit_id"]: r["count"] for r in await pool.fetch(RECOUNT, *PROGRAM)}


async def test_incremental_counts_equal_a_recount_through_transfers_voids_and_replay(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    rng = random.Random(7)
    learners = range(12)
    home = {n: rng.choice(LEAVES) for n in learners}
    await load_roster(pool, "default", parse_json({
        "units": UNITS,
        "memberships": [membership(n, home[n], NOW - timedelta(days=100)) for n in learners if n != 11],
    }), now=NOW)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    written: list[dict[str, Any]] = []
    for round_ in range(3):
        bodies = []
        for n in learners:
            modules = MODULES if rng.random() < 0.6 else rng.sample(MODULES, 5)
            bodies.extend(course_statement(n, m, v, rng.randrange(4000)) for m, v in modules)
        targets = [b for b in written or bodies if b["verb"]["id"] != VOIDED]
        bodies += [voiding(b["id"]) for b in rng.sample(targets, 6)]
        rng.shuffle(bodies)
        await write(writer, *bodies)
        written += bodies
        if round_ == 1:  # some learners change unit while evidence is still arriving
            moved = rng.sample([n for n in learners if n != 11], 4)
            await load_roster(pool, "default", parse_json({"memberships": [
                m for n in moved for m in (
                    membership(n, home[n], NOW - timedelta(days=100), NOW + timedelta(days=1)),
                    membership(n, rng.choice(LEAVES), NOW + timedelta(days=1)),
                )
            ]}), now=NOW + timedelta(days=2))
        await runner.catch_up(batch_size=rng.choice([7, 50, 500]))
    counts = await stored_counts(pool)
    assert counts == await recounted(pool) and sum(counts.values()) > 0
    async with pool.acquire() as conn:
        whole = await unit_counts(conn, "default", "mic", *PROGRAM, True)
        team = await unit_counts(conn, "default", "mic-a-1-x", *PROGRAM, False)
    assert whole == (11, sum(counts.values()))  # learner 11 has evidence but no roster entry: not counted
    assert team[1] == counts.get("mic-a-1-x", 0)

    live = await digest(pool)
    await pool.execute("UPDATE unit_certified SET certified = certified + 1")
    assert await digest(pool) != live
    await compare_series(pool)
    await replay(pool, CompetencyProjection(CATALOG), batch_size=64)
    assert await digest(pool) == live
    assert await stored_counts(pool) == counts
    await compare_series(pool)  # recounted after the swap
    # the swapped-in tables keep the deltas too: more evidence, a retroactive move
    await write(writer, *(course_statement(n, m, v, 4000 + i) for n in (1, 2) for i, (m, v) in enumerate(MODULES)))
    await load_roster(pool, "default", parse_json({"memberships": [
        membership(1, "mic-b", NOW - timedelta(days=100), NOW - timedelta(days=20))]}), now=NOW + timedelta(days=3))
    await runner.catch_up()
    await compare_series(pool)


async def compare_series(pool: asyncpg.Pool) -> None:
    """The per-day deltas the triggers keep give the series the intervals give, on both clocks."""
    ends = [date(2024, 12, 1) + timedelta(days=d) for d in range(0, 400, 9)]
    certified = 0
    async with pool.acquire() as conn:
        for unit in ["mic", *LEAVES]:
            for clock in ("achieved", "known"):
                daily = await series_counts_daily(conn, "default", unit, *PROGRAM, ends, clock)
                moments = [datetime.combine(d, datetime.min.time(), tzinfo=timezone.utc) - timedelta(microseconds=1) for d in ends]
                exact = await series_counts(conn, "default", unit, *PROGRAM, True, moments, clock)
                assert daily == exact, (unit, clock)
                certified += sum(c for _, c in exact)
    assert certified > 0


async def test_memberships_that_start_and_end_later_are_counted_when_their_time_comes(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    await load_roster(pool, "default", parse_json({
        "units": UNITS,
        "memberships": [
            membership(1, "mic-a", NOW - timedelta(days=10), NOW + timedelta(hours=1)),
            membership(1, "mic-b", NOW + timedelta(hours=1)),
            membership(2, "mic-b", NOW + timedelta(hours=2)),
        ],
    }), now=NOW)
    await write(writer, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()

    async def counts(unit: str) -> tuple[int, int]:
        async with pool.acquire() as conn:
            return await unit_counts(conn, "default", unit, *PROGRAM, True)

    assert (await counts("mic-a"), await counts("mic-b")) == ((1, 1), (0, 0))
    assert await advance_clock(pool, "default", NOW + timedelta(minutes=30)) == NOW + timedelta(minutes=30)
    assert await pool.fetchval("SELECT counted_at FROM roster_clock") == NOW  # nothing crossed: nothing written
    assert await advance_clock(pool, "default", NOW + timedelta(hours=1)) == NOW + timedelta(hours=1)
    assert (await counts("mic-a"), await counts("mic-b")) == ((0, 0), (1, 1))
    await advance_clock(pool, "default", NOW + timedelta(hours=3))
    assert (await counts("mic-b"), await counts("mic")) == ((2, 1), (2, 1))
    assert await advance_clock(pool, "default", NOW) == NOW + timedelta(hours=3)  # the clock never goes back


async def test_a_large_roster_load_counts_the_series_once_and_gives_the_same_deltas(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: Any
) -> None:
    from projections.units import store

    await load_roster(pool, "default", parse_json({"units": UNITS, "memberships": [
        membership(n, LEAVES[n % 4], NOW - timedelta(days=200)) for n in range(6)]}), now=NOW)
    await write(writer, *(course_statement(n, m, v, i) for n in (0, 1, 2) for i, (m, v) in enumerate(MODULES)))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    monkeypatch.setattr(store, "SERIES_BULK_MEMBERSHIPS", 1)  # every load is "large": recounted at its end
    await load_roster(pool, "default", parse_json({"memberships": [
        membership(n, LEAVES[(n + 1) % 4], NOW - timedelta(days=50)) for n in range(0, 6, 2)]}), now=NOW + timedelta(days=1))
    await compare_series(pool)


async def test_a_roster_load_reports_learners_that_joined_moved_and_left(
    pool: asyncpg.Pool, database_url: str, tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    """A first load places learners who were in no unit: they joined, none
    changed unit; a later load tells transfers and departures apart; the
    command's line says so too."""
    from lrs.cli import main

    start = NOW - timedelta(days=10)
    first = await load_roster(pool, "default", parse_json({
        "units": UNITS, "memberships": [membership(n, "mic-a", start) for n in range(3)],
    }), now=NOW)
    assert (first.joined, first.moved, first.left) == (3, 0, 0)
    later = await load_roster(pool, "default", parse_json({"memberships": [
        membership(0, "mic-b", start), membership(1, "mic-a", start, NOW - timedelta(days=1)),
        membership(3, "mic-b", start),
    ]}), now=NOW)
    assert (later.joined, later.moved, later.left) == (1, 1, 1)

    roster_file = tmp_path / "roster.json"
    roster_file.write_text('{"memberships": [{"learner": "mbox:mailto:new@example.gov.vn", "unit": "mic-b", '
                           '"valid_from": "2025-01-01T00:00:00Z", "valid_to": null}]}')
    monkeypatch.setenv("LRS_DATABASE_URL", database_url)
    monkeypatch.setenv("LRS_SEAL_PERSONAL_DATA", "false")
    monkeypatch.setattr("lrs.commands.common.setup", lambda settings, **_: None)
    assert await asyncio.to_thread(main, ["roster", "load", str(roster_file)]) == 0  # a command runs its own loop
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(
        "of 1 learner for tenant default; 1 learner joined a unit, 0 changed unit, 0 left their unit"
    )
