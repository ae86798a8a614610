"""Reading the competency projection: the answers behind /competency/....

Every answer carries ``position``: the log position it reflects (the
projection's checkpoint read in the same snapshot, or for a point-in-time
answer the last event stored at or before ``as_of`` that the projection has
reached).  All reads are per tenant.

Point-in-time summaries (``as_of``) on the known clock count the learners
whose roster membership, as known then, covers ``as_of`` and whose
certification the LRS knew by then (:mod:`projections.competency.known_clock`:
the state's ``known_at``, with the few learners who lost evidence to a later
voiding folded again from the log); on the achieved clock they sum the kept
series deltas; the present-time summary reads materialised counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import asyncpg

from projections.competency.catalog import Catalog
from projections.competency.codec import StateFormatError, StateRulesError, decode_state
from projections.competency.frameworks import Framework, Program
from projections.competency.known_clock import certified_known_at
from projections.competency.model import CompetencyState
from projections.competency.standing import STATUSES, Standing, standing
from projections.competency.targets import in_force, progress, schedule_for
from lrs.store import identities
from projections.units import series_store
from projections.units import reads as unit_reads
from projections.units import store as units
from projections.units.roster import Unit

SELECT_CHECKPOINT = "SELECT position FROM projection_checkpoints WHERE name = 'competency'"
SELECT_LEARNER = "SELECT state, position FROM competency_learners WHERE tenant = $1 AND learner = $2"
# Binary search for the last position stored at or before $1: each step
# reads the stored time of the middle position by the primary key.
SELECT_POSITION_AT = """
WITH RECURSIVE search(low, high) AS (
    SELECT 0::bigint, coalesce((SELECT position FROM log_head WHERE singleton), 0)::bigint
  UNION ALL
    SELECT CASE WHEN (SELECT stored FROM events WHERE position = (low + high + 1) / 2) <= $1
                THEN (low + high + 1) / 2 ELSE low END,
           CASE WHEN (SELECT stored FROM events WHERE position = (low + high + 1) / 2) <= $1
                THEN high ELSE (low + high + 1) / 2 - 1 END
    FROM search WHERE low < high
)
SELECT low FROM search WHERE low >= high
"""

SELECT_STATES_OF = "SELECT learner, state FROM competency_learners WHERE tenant = $1 AND learner = ANY($2::text[])"
SELECT_MISMATCHES = """
SELECT platform, activity, mastery_score, array_agg(DISTINCT statement_mastery ORDER BY statement_mastery) AS stated,
       count(*) AS statements, count(*) FILTER (WHERE passed IS NOT TRUE) AS not_passed,
       min(timestamp) AS first_at, max(timestamp) AS last_at
FROM competency_mastery_mismatches WHERE tenant = $1
GROUP BY platform, activity, mastery_score ORDER BY platform, activity, mastery_score
"""

__all__ = [
    "QueryError",
    "StateNotRebuilt",
    "learner_view",
    "trail_view",
    "resolve_program",
    "unit_summary",
    "position_at",
    "mastery_mismatches",
    "unit_learners",
    "learner_standings",
]


class QueryError(ValueError):
    """A request names something that does not exist or is ambiguous."""

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter

    def told(self, what_is_done: str) -> str:
        """The message for the asker; a refusal until the projection is
        rebuilt adds ``what_is_done`` about that (:class:`StateNotRebuilt`)."""
        return self.message


class StateNotRebuilt(QueryError):
    """503: a learner's state stored under other rules, never folded with
    these; answered once the projection is rebuilt, by the service itself
    or by a replay, which only the caller knows
    (:func:`projections.supervisor.until_rebuilt`)."""

    def told(self, what_is_done: str) -> str:
        return f"{self.message}; {what_is_done}"


def _checkpoint(value: int | None) -> int:
    return int(value or 0)


def _competency_json(state: CompetencyState, catalog: Catalog) -> dict[str, Any]:
    info = catalog.competencies.get(state.competency)
    return {
        "competency": state.competency,
        "code": info.code if info else None,
        "status": state.status,
        "level": state.level,
        "best_score": state.best_score,
        "latest_score": state.latest_score,
        "evidence_count": state.evidence_count,
        "first_evidence_at": state.first_evidence_at,
        "last_evidence_at": state.last_evidence_at,
        "first_mastered_at": state.first_mastered_at,
        "attainments": [
            {"level": a.level, "achieved_at": a.achieved_at, "statement_ids": list(a.statement_ids)}
            for a in state.attainments
        ],
        "rule_version": state.rule_version,
    }


async def _read(pool: asyncpg.Pool, tenant: str, learner: str) -> tuple[Any, int]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(SELECT_LEARNER, tenant, learner)
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    if row is None:
        return None, position
    try:
        return decode_state(row["state"]), position
    except StateFormatError as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: StateFormatError) -> QueryError:
    """503 for a stored state this LRS does not answer from: one stored under
    other rules (never folded with these: docs/competency.md, "A state stored
    under other rules"), or by another version of the LRS."""
    if isinstance(exc, StateRulesError):
        return StateNotRebuilt(503, f"the competency projection is not answered from until it is rebuilt: {exc}")
    return QueryError(
        503, "the competency projection was stored by another version of the LRS: run `lrs replay competency`"
    )


async def _person(pool: asyncpg.Pool, tenant: str, key: str) -> dict[str, Any]:
    """Who ``key`` names: the person it is linked to (or itself), with every
    identifier of that person and those merged into its answers."""
    person = await identities.person_of(pool, tenant, key) or key
    merged = await identities.identifiers_of(pool, tenant, person)
    return {"person": person, "identifiers": [person, *merged], "merged": merged}


async def learner_view(pool: asyncpg.Pool, catalog: Catalog, tenant: str, learner: str) -> dict[str, Any] | None:
    """The learner's state in every loaded framework, and the programmes it
    has evidence towards; None when the projection knows nothing of it.
    ``learner`` may be any identifier of a person: the answer is the person's."""
    who = await _person(pool, tenant, learner)
    state, position = await _read(pool, tenant, who["person"])
    if state is None:
        if not await unit_reads.is_rostered(pool, tenant, who["person"]):
            return None
        return {
            "learner": learner, **who, "position": position, "status": "not_started",
            "frameworks": [], "certifications": [], "voided_statement_ids": [],
        }
    frameworks = []
    for doc in catalog.documents:
        if not isinstance(doc, Framework):
            continue
        owned = [
            c for iri, c in state.competencies.items()
            if (info := catalog.competencies.get(iri)) and (info.framework, info.framework_version) == (doc.iri, doc.version)
        ]
        total = sum(len(area.competences) for area in doc.areas)
        frameworks.append({
            "framework": doc.iri,
            "version": doc.version,
            "title": doc.title,
            "competences": total,
            "mastered": sum(1 for c in owned if c.status == "mastered"),
            "in_progress": sum(1 for c in owned if c.status == "in_progress"),
            "competencies": [_competency_json(c, catalog) for c in owned],
        })
    frameworks.sort(key=lambda f: (f["framework"], f["version"]))
    return {
        "learner": learner,
        **who,
        "position": position,
        "status": "known",
        "frameworks": frameworks,
        "certifications": [
            {
                "program": p.program,
                "program_version": p.program_version,
                "earned": p.earned,
                "earned_at": p.earned_at,
                "statement_ids": list(p.statement_ids),
                "met": list(p.met),
                "missing": list(p.missing),
            }
            for _, p in sorted(state.certifications.items())
        ],
        "voided_statement_ids": list(state.voided),
    }


async def trail_view(
    pool: asyncpg.Pool, catalog: Catalog, tenant: str, learner: str, competency: str
) -> dict[str, Any] | None:
    """The evidence behind the learner's state for ``competency`` (oldest
    first), with the state it folds to; None when the learner is unknown."""
    if competency not in catalog.competencies:
        raise QueryError(404, f"no loaded framework has the competence {competency!r}", "competency")
    who = await _person(pool, tenant, learner)
    state, position = await _read(pool, tenant, who["person"])
    if state is None:
        return None
    current = state.competencies.get(competency)
    return {
        "learner": learner,
        **who,
        "competency": competency,
        "position": position,
        "state": _competency_json(current, catalog) if current else {"competency": competency, "status": "not_started"},
        "evidence": [
            {
                "statement_id": e.statement_id,
                "timestamp": e.timestamp,
                "verb": e.verb,
                "activity": e.activity,
                "source": e.source,
                "level": e.level,
                "registration": e.registration,
                "passed": e.passed,
                "completed": e.completed,
                "score": e.score,
                "move_on": e.move_on,
                "mastery_score": e.mastery_score,
                "statement_mastery_score": e.statement_mastery_score,
                "mastery_differs": e.mastery_differs,
                "platform": e.platform,
            }
            for e in state.evidence
            if e.competency == competency
        ],
    }


async def mastery_mismatches(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    """Per platform, the aligned activities whose statements carried a
    masteryScore other than the alignment table's (which judged them)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(SELECT_MISMATCHES, tenant)
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    platforms: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = platforms.setdefault(r["platform"], {"platform": r["platform"] or None, "statements": 0, "activities": []})
        entry["statements"] += r["statements"]
        entry["activities"].append({
            "activity": r["activity"],
            "mastery_score": r["mastery_score"],
            "statement_mastery_scores": list(r["stated"]),
            "statements": r["statements"],
            "not_passed": r["not_passed"],
            "first_at": _iso(r["first_at"]),
            "last_at": _iso(r["last_at"]),
        })
    return {"position": position, "platforms": list(platforms.values())}


def _unit_json(unit: Unit) -> dict[str, Any]:
    return {"id": unit.unit_id, "name": unit.name, "kind": unit.kind, "parent": unit.parent_id}


async def learner_standings(
    conn: asyncpg.Connection, catalog: Catalog, tenant: str, program: Program, page: list[unit_reads.UnitLearner]
) -> list[tuple[unit_reads.UnitLearner, Standing]]:
    """Each learner of ``page`` with where it stands in ``program`` (the
    states of those in progress are read and explained)."""
    wanted = [m.learner for m in page if m.status == "in_progress"]
    states = {}
    if wanted:
        for row in await conn.fetch(SELECT_STATES_OF, tenant, wanted):
            try:
                states[row["learner"]] = decode_state(row["state"])
            except StateFormatError as exc:
                raise _unreadable(exc) from None
    result = []
    for member in page:
        if member.status == "certified":
            result.append((member, Standing("certified", _iso(member.earned_at), ())))
        else:
            result.append((member, standing(states.get(member.learner), program, catalog)))
    return result


async def unit_learners(
    pool: asyncpg.Pool,
    catalog: Catalog,
    tenant: str,
    unit_id: str,
    *,
    program: Program,
    descendants: bool,
    statuses: tuple[str, ...] = STATUSES,
    after: str = "",
    limit: int = 100,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The unit's rostered learners (at the present roster) with their status
    in ``program`` and, for those not certified, what is missing and why;
    ``limit`` learners after ``after`` in learner order."""
    unit = await unit_reads.fetch_unit(pool, tenant, unit_id)
    if unit is None:
        raise QueryError(404, f"no unit {unit_id!r}", "unit")
    roster_at = await units.advance_clock(pool, tenant, now or datetime.now(timezone.utc))
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        counts = await unit_reads.unit_statuses(conn, tenant, unit_id, program.iri, program.version, descendants)
        page = await unit_reads.unit_learners(
            conn, tenant, unit_id, program.iri, program.version, descendants, statuses, after, limit
        )
        standings = await learner_standings(conn, catalog, tenant, program, page)
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    return {
        "unit": _unit_json(unit),
        "program": program.iri,
        "program_version": program.version,
        "descendants": descendants,
        "roster_as_of": _iso(roster_at),
        "statuses": list(statuses),
        "headcount": sum(counts.values()),
        "counts": {status: counts.get(status, 0) for status in STATUSES},
        "learners": [{"learner": m.learner, "unit": m.unit_id, **s.json()} for m, s in standings],
        "next_after": page[-1].learner if len(page) == limit else None,
        "position": position,
    }


def resolve_program(catalog: Catalog, iri: str | None, version: str | None) -> Program:
    if not iri:
        if len(catalog.programs) == 1:
            return catalog.programs[0]
        raise QueryError(400, "the program parameter (a programme IRI) is required: several are loaded", "program")
    versions = [p for p in catalog.programs if p.iri == iri]
    if not versions:
        raise QueryError(404, f"no loaded programme {iri!r}", "program")
    if version is not None:
        for program in versions:
            if program.version == version:
                return program
        raise QueryError(404, f"programme {iri!r} has no version {version!r}", "version")
    if len(versions) > 1:
        listed = ", ".join(p.version for p in versions)
        raise QueryError(400, f"programme {iri!r} has several versions ({listed}): give version=", "version")
    return versions[0]


async def position_at(conn: asyncpg.Connection, moment: datetime) -> int:
    """The last position stored at or before ``moment`` (``stored`` grows with
    position, so a binary search over the primary key finds it: in one query,
    one round trip)."""
    return int(await conn.fetchval(SELECT_POSITION_AT, moment))


@dataclass(frozen=True, slots=True)
class _Counts:
    headcount: int
    certified: int
    position: int
    roster_at: datetime | None


async def _counts_now(
    pool: asyncpg.Pool, tenant: str, unit_id: str, program: Program, descendants: bool, now: datetime
) -> _Counts:
    roster_at = await units.advance_clock(pool, tenant, now)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        headcount, certified = await unit_reads.unit_counts(conn, tenant, unit_id, program.iri, program.version, descendants)
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    return _Counts(headcount, certified, position, roster_at)


async def _counts_as_of(
    pool: asyncpg.Pool, catalog: Catalog, tenant: str, unit_id: str, program: Program, descendants: bool, as_of: datetime
) -> _Counts:
    """At ``as_of`` by the statements' stored times, with the roster as known then."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = min(await position_at(conn, as_of), _checkpoint(await conn.fetchval(SELECT_CHECKPOINT)))
        headcount, certified = await certified_known_at(
            conn, catalog, tenant, unit_id, program, descendants, as_of, position
        )
    return _Counts(headcount, certified, position, as_of)


async def _counts_achieved(
    pool: asyncpg.Pool, tenant: str, unit_id: str, program: Program, descendants: bool, as_of: datetime
) -> _Counts:
    """At ``as_of`` by the statements' timestamps, with the roster valid then as recorded now."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        ((headcount, certified),) = await series_store.series_counts(
            conn, tenant, unit_id, program.iri, program.version, descendants, [as_of], "achieved"
        )
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    return _Counts(headcount, certified, position, as_of)


async def unit_summary(
    pool: asyncpg.Pool,
    catalog: Catalog,
    tenant: str,
    unit_id: str,
    *,
    program: Program,
    descendants: bool,
    as_of: datetime | None = None,
    clock: str = "achieved",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Headcount (from the roster), certified, rate, and the target in force
    and the next one.  ``as_of`` on the ``achieved`` clock counts the
    certifications earned by then (statement timestamps) among the roster
    valid then; on the ``known`` clock the certifications the LRS knew by
    then (what folding the statements stored by then gives), with the roster
    as known then."""
    unit = await unit_reads.fetch_unit(pool, tenant, unit_id)
    if unit is None:
        raise QueryError(404, f"no unit {unit_id!r}", "unit")
    moment = now or datetime.now(timezone.utc)
    if as_of is None:
        counts = await _counts_now(pool, tenant, unit_id, program, descendants, moment)
    elif clock == "known":
        counts = await _counts_as_of(pool, catalog, tenant, unit_id, program, descendants, as_of)
    else:
        counts = await _counts_achieved(pool, tenant, unit_id, program, descendants, as_of)
    rate = counts.certified / counts.headcount if counts.headcount else None
    schedule = schedule_for(program, await unit_reads.ancestors(pool, tenant, unit_id))
    target, following, overdue = in_force(schedule, as_of or moment)
    return {
        "unit": _unit_json(unit),
        "program": program.iri,
        "program_version": program.version,
        "descendants": descendants,
        "as_of": _iso(as_of),
        "clock": None if as_of is None else clock,
        "roster_as_of": _iso(counts.roster_at),
        "headcount": counts.headcount,
        "certified": counts.certified,
        "rate": rate,
        "target": progress(target, counts.headcount, counts.certified, overdue),
        "next_target": progress(following, counts.headcount, counts.certified),
        "position": counts.position,
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
