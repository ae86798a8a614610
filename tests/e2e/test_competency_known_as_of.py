"""``as_of`` on the known clock from the certifications' ``known_at``
(projections/competency/known_clock.py) against folding the members'
statements stored by then again from the log (what it did before, kept as
``certified_by_refold``): equal on generated learners, statements, voidings
and roster moves, at stored times of the log (every voiding's and a sample of the others)
and just before them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from projections.competency.catalog import load_catalog
from projections.competency.known_clock import certified_by_refold, certified_known_at
from projections.competency.queries import position_at, resolve_program
from projections.units.sql import SELECT_MEMBERS_AT
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, PROGRAM, caught_up, get_json, post, roster
from tests.integration.competency_statements import FAILED, course_statement, learner_key, voiding

LEARNERS = 24
UNITS = ["mic-dt-1", "mic-dt-2", "moh"]
SAMPLED = 24  # stored times besides the voidings'
SCOPES = [("mic", True), ("mic-dt", True), ("mic-dt-1", False), ("mic-dt-2", False), ("moh", True)]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


async def grow(client: Any, rng: random.Random) -> None:
    """Rounds of statements (whole courses, parts of them, failures), voidings
    of earlier ones and roster moves, some backdated."""
    placed = {n: rng.choice(UNITS) for n in range(1, LEARNERS + 1)}
    by_unit: dict[str, list[int]] = {}
    for n, unit in placed.items():
        by_unit.setdefault(unit, []).append(n)
    await load_roster(client, roster(by_unit))
    sent: list[str] = []
    moments: list[datetime] = []
    for _ in range(6):
        bodies = []
        for n in rng.sample(range(1, LEARNERS + 1), 8):
            modules = CERTIFYING if rng.random() < 0.6 else rng.sample(CERTIFYING, rng.randint(1, len(CERTIFYING)))
            for i, (module, verb) in enumerate(modules):
                bodies.append(course_statement(n, module, FAILED if rng.random() < 0.05 else verb, i))
        rng.shuffle(bodies)
        for start in range(0, len(bodies), 25):
            await post(client, *bodies[start : start + 25])
        sent.extend(b["id"] for b in bodies)
        if rng.random() < 0.8:
            await post(client, *(voiding(target) for target in rng.sample(sent, 3)))
        moments.append(datetime.now(timezone.utc))
        moves = []
        for n in rng.sample(range(1, LEARNERS + 1), 3):
            since = rng.choice(moments[:-1] or moments)  # backdated, or from now
            target = rng.choice([u for u in UNITS if u != placed[n]])
            moves += [{"learner": learner_key(n), "unit": placed[n], "valid_from": "2024-01-01", "valid_to": _iso(since)},
                      {"learner": learner_key(n), "unit": target, "valid_from": _iso(since)}]
            placed[n] = target
        await load_roster(client, {"memberships": moves})


async def load_roster(client: Any, body: dict[str, Any]) -> None:
    """A roster load, while the projection applies the statements just sent
    (tests/integration/test_roster_lock_order.py: the two never deadlock)."""
    response = await client.post("/competency/admin/roster", json=body, headers=xapi_headers())
    assert response.status == 200, await response.text()


async def reference(conn: asyncpg.Connection, unit: str, descendants: bool, as_of: datetime, position: int,
                    program: Any) -> tuple[int, int]:
    members = [r["learner"] for r in await conn.fetch(SELECT_MEMBERS_AT, "default", unit, descendants, as_of, as_of)]
    return len(members), await certified_by_refold(conn, load_catalog(), "default", program, members, position)


async def test_known_at_gives_what_folding_the_log_again_gives(client: Any, database_url: str) -> None:
    await grow(client, random.Random(20261206))
    await caught_up(client, database_url)
    catalog = load_catalog()
    program = resolve_program(catalog, PROGRAM, None)
    conn = await asyncpg.connect(database_url)
    try:
        stored = [r["stored"] for r in await conn.fetch("SELECT stored FROM events ORDER BY position")]
        voided_at = [r["stored"] for r in await conn.fetch(
            "SELECT e.stored FROM competency_voids v JOIN events e ON e.statement_id = v.voiding_statement_id")]
        # every voiding's stored time, and a sample of the others, each exactly and just before
        # (each moment refolds five scopes' members from the log: the sample is what costs)
        chosen = set(voided_at) | set(random.Random(7).sample(stored, min(len(stored), SAMPLED)))
        moments = sorted({m for s in chosen for m in (s, s - timedelta(microseconds=1))} | {stored[0] - timedelta(days=1)})
        seen: set[tuple[int, int]] = set()
        refolded = 0
        for as_of in moments:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                position = await position_at(conn, as_of)
                assert position == await conn.fetchval(
                    "SELECT coalesce(max(position), 0) FROM events WHERE stored <= $1", as_of)
                for unit, descendants in SCOPES:
                    expected = await reference(conn, unit, descendants, as_of, position, program)
                    got = await certified_known_at(conn, catalog, "default", unit, program, descendants, as_of,
                                                   position)
                    assert got == expected, (unit, descendants, as_of)
                    seen.add(got)
                refolded += await conn.fetchval(
                    "SELECT count(*) FROM competency_voids v JOIN events e ON e.statement_id = v.voiding_statement_id "
                    "WHERE e.position > $1", position)
        await built_with_other_frameworks(conn, catalog, program, moments[len(moments) // 2 :: 7])
    finally:
        await conn.close()
    # Guards: the data reach certified learners, changing counts and voidings after as_of.
    assert len(seen) > 10 and max(c for _, c in seen) >= 5 and refolded > 0
    now = await get_json(client, "/competency/units/mic/summary", program=PROGRAM)
    known = await get_json(client, "/competency/units/mic/summary", program=PROGRAM, clock="known",
                           as_of=_iso(datetime.now(timezone.utc)))
    assert (known["headcount"], known["certified"]) == (now["headcount"], now["certified"])


async def built_with_other_frameworks(conn: asyncpg.Connection, catalog: Any, program: Any,
                                      moments: list[datetime]) -> None:
    """A state built with other frameworks than the catalog's is not trusted:
    everyone is folded again.  (In a transaction rolled back: the known_at
    kept are moved far away, which only the trusted path would read.)"""
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("UPDATE competency_certifications SET known_at = known_at + interval '100 years'")
        as_of = max(moments)
        position = await position_at(conn, as_of)
        expected = await reference(conn, "mic", True, as_of, position, program)
        assert expected[1] > 0
        wrong = await certified_known_at(conn, catalog, "default", "mic", program, True, as_of, position)
        assert wrong[1] < expected[1]  # the trusted path reads known_at
        await conn.execute("UPDATE projection_checkpoints SET catalog_digest = 'other' WHERE name = 'competency'")
        for as_of in moments:
            position = await position_at(conn, as_of)
            got = await certified_known_at(conn, catalog, "default", "mic", program, True, as_of, position)
            assert got == await reference(conn, "mic", True, as_of, position, program), as_of
    finally:
        await tr.rollback()
