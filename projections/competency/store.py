"""The competency projection in Postgres (tables in schemas/postgres/0100_competency.sql).

:class:`CompetencyProjection` applies one log event inside the runner's
transaction: it asks the pure rules (policy.py) what the statement means,
routes it to the learner it concerns, folds it into that learner's state and
writes the state back.  A voiding statement reaches the voided statement's
learner through ``competency_statement_learners``; every voiding is kept in
``competency_voids`` so a statement projected after its voiding stays out.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from projections.competency.catalog import Catalog
from projections.competency.model import (
    RULE_VERSION,
    LearnerState,
    StatementEvidence,
    StatementVoided,
)
from projections.competency.policy import evolve, interpret
from projections.runner import LogEvent

SELECT_STATE = "SELECT state FROM competency_learners WHERE tenant = $1 AND learner = $2"
UPSERT_STATE = """
INSERT INTO competency_learners (tenant, learner, state, position) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, learner) DO UPDATE SET state = EXCLUDED.state, position = EXCLUDED.position
"""
DELETE_STATES = "DELETE FROM competency_states WHERE tenant = $1 AND learner = $2"
INSERT_STATE_ROW = """
INSERT INTO competency_states (tenant, learner, competency, status, level, level_rank, best_score,
    latest_score, evidence_count, first_mastered_at, rule_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""
DELETE_CERTIFICATIONS = "DELETE FROM competency_certifications WHERE tenant = $1 AND learner = $2"
INSERT_CERTIFICATION = """
INSERT INTO competency_certifications (tenant, learner, program, program_version, earned, earned_at, statement_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
INSERT_STATEMENT_LEARNER = """
INSERT INTO competency_statement_learners (tenant, statement_id, learner) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""
SELECT_STATEMENT_LEARNER = "SELECT learner FROM competency_statement_learners WHERE tenant = $1 AND statement_id = $2"
INSERT_VOID = """
INSERT INTO competency_voids (tenant, target_id, voiding_statement_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""
SELECT_VOID = "SELECT voiding_statement_id FROM competency_voids WHERE tenant = $1 AND target_id = $2"
SELECT_ALL_STATES = "SELECT tenant, learner, state FROM competency_learners ORDER BY tenant, learner"
TRUNCATE_ALL = """
TRUNCATE competency_learners, competency_states, competency_certifications,
    competency_statement_learners, competency_voids
"""

_ENCODER = msgspec.json.Encoder(order="sorted")
_STATE_DECODER = msgspec.json.Decoder(LearnerState)

__all__ = ["CompetencyProjection", "digest"]


class CompetencyProjection:
    """Each learner's competency state and programme certifications."""

    name = "competency"
    rule_version = RULE_VERSION
    tables = (
        "competency_learners",
        "competency_states",
        "competency_certifications",
        "competency_statement_learners",
        "competency_voids",
    )

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.catalog_digest = catalog.digest

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        if event.event_type != "statement":
            return
        meaning = interpret(json.loads(event.payload), self.catalog)
        if meaning is None:
            return
        tenant = event.tenant
        if isinstance(meaning, StatementVoided):
            await conn.execute(INSERT_VOID, tenant, _uuid(meaning.target_id), _uuid(meaning.statement_id))
            learner = await conn.fetchval(SELECT_STATEMENT_LEARNER, tenant, _uuid(meaning.target_id))
            if learner is not None:
                await self._change(conn, tenant, learner, event.position, [meaning])
            return
        events: list[StatementEvidence | StatementVoided] = [meaning]
        voider = await conn.fetchval(SELECT_VOID, tenant, _uuid(meaning.statement_id))
        if voider is not None:
            events.append(StatementVoided(statement_id=str(voider), target_id=meaning.statement_id))
        await conn.execute(INSERT_STATEMENT_LEARNER, tenant, _uuid(meaning.statement_id), meaning.learner)
        await self._change(conn, tenant, meaning.learner, event.position, events)

    async def _change(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        learner: str,
        position: int,
        events: list[StatementEvidence | StatementVoided],
    ) -> None:
        raw = await conn.fetchval(SELECT_STATE, tenant, learner)
        before = LearnerState(learner=learner) if raw is None else _STATE_DECODER.decode(raw)
        after = before
        for item in events:
            after = evolve(after, item, self.catalog)
        if after is before:
            return  # a duplicate: nothing changes, not even the derived rows
        await conn.execute(UPSERT_STATE, tenant, learner, _ENCODER.encode(after), position)
        await _write_rows(conn, tenant, after)

    async def reset(self, conn: asyncpg.Connection) -> None:
        await conn.execute(TRUNCATE_ALL)


async def _write_rows(conn: asyncpg.Connection, tenant: str, state: LearnerState) -> None:
    learner = state.learner
    await conn.execute(DELETE_STATES, tenant, learner)
    if state.competencies:
        await conn.executemany(
            INSERT_STATE_ROW,
            [
                (
                    tenant,
                    learner,
                    c.competency,
                    c.status,
                    c.level,
                    max((a.level_rank for a in c.attainments), default=0),
                    c.best_score,
                    c.latest_score,
                    c.evidence_count,
                    _time(c.first_mastered_at),
                    c.rule_version,
                )
                for c in state.competencies.values()
            ],
        )
    await conn.execute(DELETE_CERTIFICATIONS, tenant, learner)
    if state.certifications:
        await conn.executemany(
            INSERT_CERTIFICATION,
            [
                (tenant, learner, p.program, p.program_version, p.earned, _time(p.earned_at), [_uuid(i) for i in p.statement_ids])
                for p in state.certifications.values()
            ],
        )


async def digest(conn: asyncpg.Connection | asyncpg.Pool) -> str:
    """SHA-256 over every learner's canonical state, in (tenant, learner) order.

    Positions and wall-clock columns are left out: a rebuild from the log and
    the live projection give the same digest exactly when their states agree."""
    sha = hashlib.sha256()
    for row in await conn.fetch(SELECT_ALL_STATES):
        for part in (row["tenant"].encode(), row["learner"].encode(), bytes(row["state"])):
            sha.update(len(part).to_bytes(8, "big"))
            sha.update(part)
    return sha.hexdigest()


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
