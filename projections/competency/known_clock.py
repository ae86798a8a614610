"""How many of a unit's learners held a certification at ``as_of`` on the
known clock: folding the statements stored by then gives the same answer as
the certification's ``known_at`` in the present state, except for learners
who lost evidence to a voiding stored after ``as_of``.

Why: without voidings a learner's evidence only grows as the LRS stores
more, and a level, a requirement and so a certification reached on some of
it stay reached on more (:func:`projections.competency.policy.certifications`);
``known_at`` is the earliest stored time at which the evidence stored by
then earns it.  So the fold of the evidence stored by ``as_of`` earns the
certification exactly when the present state has it earned with
``known_at <= as_of`` -- unless a voiding stored later took some of that
evidence away from the present state.  Those learners (a voiding stored
after ``as_of`` of one of their statements; few) are folded again from the
log, as every learner was before.  If the state was built with other rules
or frameworks than the catalog's, everyone is folded again.

The count is one query over the roster history, the certifications' primary
key and the voidings: it no longer reads the members' evidence, so it does
not grow with the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import asyncpg

from lrs.payload_codec import open_payload
from projections.competency.catalog import Catalog
from projections.competency.frameworks import Program
from projections.competency.model import RULE_VERSION, LearnerEvent, StatementVoided
from projections.competency.policy import fold, interpret_stored
from projections.units.sql import SELECT_MEMBERS_AT

__all__ = ["certified_known_at", "certified_by_refold"]

CHUNK = 5000

SELECT_BUILT_WITH = "SELECT rule_version, catalog_digest FROM projection_checkpoints WHERE name = 'competency'"
SELECT_PLANNER_SETTINGS = (
    "SELECT current_setting('plan_cache_mode') AS plan_cache_mode, current_setting('enable_nestloop') AS enable_nestloop"
)
RESTORE_PLANNER_SETTINGS = "SELECT set_config('plan_cache_mode', $1, true), set_config('enable_nestloop', $2, true)"

# $1..$5 as SELECT_MEMBERS_AT (tenant, unit, descendants, moment, known); $6
# the last position folded at as_of, $7 programme, $8 version.  A learner is
# folded again (``refold``) when a voiding after $6 reached one of their
# statements, or when an earned certification has no known_at (a state from
# before known_at was kept).  Only the voidings of the members' statements
# are looked at (MATERIALIZED: before the log is read), and each one's
# position is looked up by its statement id (a scalar subquery), never by a
# range of positions: after an early as_of that range is most of the log.
SELECT_KNOWN_COUNTS = f"""
WITH members AS ({SELECT_MEMBERS_AT}),
member_voidings AS MATERIALIZED (
    SELECT s.learner, v.voiding_statement_id FROM competency_voids v
    JOIN competency_statement_learners s ON s.tenant = v.tenant AND s.statement_id = v.target_id
    JOIN members m ON m.learner = s.learner
    WHERE v.tenant = $1
),
voided_since AS (
    SELECT DISTINCT w.learner FROM member_voidings w
    WHERE (SELECT st.position FROM statements st WHERE st.tenant = $1 AND st.statement_id = w.voiding_statement_id) > $6
),
judged AS (
    SELECT m.learner,
           (r.learner IS NOT NULL OR coalesce(c.earned AND c.known_at IS NULL, false)) AS refold,
           coalesce(c.earned AND c.known_at <= $4, false) AS held
    FROM members m
    LEFT JOIN voided_since r ON r.learner = m.learner
    LEFT JOIN competency_certifications c
           ON c.tenant = $1 AND c.learner = m.learner AND c.program = $7 AND c.program_version = $8
)
SELECT count(*) AS headcount,
       count(*) FILTER (WHERE held AND NOT refold) AS certified,
       coalesce(array_agg(learner ORDER BY learner) FILTER (WHERE refold), '{{}}') AS refold
FROM judged
"""

SELECT_EVIDENCE_EVENTS = """
SELECT s.learner, e.payload FROM competency_statement_learners s
JOIN statements st ON st.tenant = s.tenant AND st.statement_id = s.statement_id
JOIN events e ON e.position = st.position
WHERE s.tenant = $1 AND s.learner = ANY($2::text[]) AND e.position <= $3
"""
SELECT_VOIDS_BEFORE = """
SELECT s.learner, v.target_id, v.voiding_statement_id FROM competency_voids v
JOIN competency_statement_learners s ON s.tenant = v.tenant AND s.statement_id = v.target_id
JOIN statements st ON st.tenant = v.tenant AND st.statement_id = v.voiding_statement_id
JOIN events e ON e.position = st.position
WHERE v.tenant = $1 AND s.learner = ANY($2::text[]) AND e.position <= $3
"""


async def certified_known_at(
    conn: asyncpg.Connection, catalog: Catalog, tenant: str, unit_id: str, program: Program, descendants: bool,
    as_of: datetime, position: int,
) -> tuple[int, int]:
    """(headcount, certified) of the unit at ``as_of`` on the known clock, the
    roster as known then and the evidence up to ``position`` (the last event
    stored at or before ``as_of`` that the projection has reached).  Inside
    the caller's (repeatable-read) transaction."""
    built = await conn.fetchrow(SELECT_BUILT_WITH)
    if built is None or (built["rule_version"], built["catalog_digest"]) != (RULE_VERSION, catalog.digest):
        members = [r["learner"] for r in await conn.fetch(SELECT_MEMBERS_AT, tenant, unit_id, descendants, as_of, as_of)]
        return len(members), await certified_by_refold(conn, catalog, tenant, program, members, position)
    # A count over every member: hash joins.  Planned for these values each
    # time, and without nested loops: a generic plan, or tables a replay has
    # just swapped in (no statistics yet), make the planner expect a handful
    # of rows and loop over the certifications per member (0.3-0.5 s at
    # 30,000-100,000 statements right after a replay, against 10 ms).
    # The settings end with the count: the refold below looks each learner's
    # evidence up by statement id, which without nested loops read the whole log.
    kept = await conn.fetchrow(SELECT_PLANNER_SETTINGS)
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    await conn.execute("SET LOCAL enable_nestloop = off")
    row = await conn.fetchrow(
        SELECT_KNOWN_COUNTS, tenant, unit_id, descendants, as_of, as_of, position, program.iri, program.version
    )
    await conn.execute(RESTORE_PLANNER_SETTINGS, kept["plan_cache_mode"], kept["enable_nestloop"])
    again = await certified_by_refold(conn, catalog, tenant, program, list(row["refold"]), position)
    return int(row["headcount"]), int(row["certified"]) + again


async def certified_by_refold(
    conn: asyncpg.Connection, catalog: Catalog, tenant: str, program: Program, learners: Sequence[str], position: int
) -> int:
    """How many of ``learners`` hold ``program`` when their statements up to
    ``position`` (and the voidings up to it) are folded again from the log."""
    key = f"{program.iri}|{program.version}"
    certified = 0
    for start in range(0, len(learners), CHUNK):
        chunk = list(learners[start : start + CHUNK])
        events: dict[str, list[LearnerEvent]] = {learner: [] for learner in chunk}
        for row in await conn.fetch(SELECT_EVIDENCE_EVENTS, tenant, chunk, position):
            meaning = interpret_stored(open_payload(row["payload"]), catalog)
            if meaning is not None and not isinstance(meaning, StatementVoided):
                events[row["learner"]].append(meaning)
        for row in await conn.fetch(SELECT_VOIDS_BEFORE, tenant, chunk, position):
            events[row["learner"]].append(
                StatementVoided(statement_id=str(row["voiding_statement_id"]), target_id=str(row["target_id"]))
            )
        for learner, items in events.items():
            held = fold(learner, items, catalog).certifications.get(key)
            if held is not None and held.earned:
                certified += 1
    return certified
