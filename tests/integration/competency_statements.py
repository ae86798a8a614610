"""The course the competency tests write statements about, and the helpers
that write them through the statement writer and read the projection back
(shared by the projection's integration, e2e and browser tests)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from projections.competency.catalog import load_catalog
from projections.competency.codec import decode_state
from projections.competency.model import LearnerState
from projections.runner import LogEvent


CATALOG = load_catalog()
AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.gov.vn"}
COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills"
VN = "https://lrs.example.org/competency/vn-tt02-2025/1.0/competences"
PROGRAM = ("https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills", "2025.1")
PASSED = "http://adlnet.gov/expapi/verbs/passed"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
FAILED = "http://adlnet.gov/expapi/verbs/failed"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
MODULES = [
    ("searching", PASSED), ("searching", COMPLETED), ("evaluating-sources", PASSED),
    ("online-communication", COMPLETED), ("e-government-services", PASSED), ("office-documents", COMPLETED),
    ("device-security", PASSED), ("personal-data", PASSED), ("troubleshooting", PASSED), ("using-ai-assistants", PASSED),
]


def learner_key(n: int) -> str:
    return f"mbox:mailto:cs{n}@example.gov.vn"


def course_statement(learner: int, module: str, verb: str, minute: int, score: float = 0.9) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": f"mailto:cs{learner}@example.gov.vn"},
        "verb": {"id": verb},
        "object": {"id": f"{COURSE}/modules/{module}"},
        "timestamp": f"2025-03-{1 + minute // 1440:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00Z",
    }
    if verb == PASSED:
        body["result"] = {"success": True, "score": {"scaled": score}}
    elif verb == FAILED:
        body["result"] = {"success": False, "score": {"scaled": score}}
    else:
        body["result"] = {"completion": True}
    return body


def voiding(target: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": "mailto:registrar@example.gov.vn"},
        "verb": {"id": VOIDED},
        "object": {"objectType": "StatementRef", "id": target},
    }


async def write(writer: StatementWriter, *bodies: dict[str, Any], tenant: str = "default") -> None:
    for body in bodies:  # one request each: one event each, in this order
        prepared = prepare_statements([body], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
        await writer.append(tenant, prepared)


async def learner_state(pool: asyncpg.Pool, learner: str, tenant: str = "default") -> LearnerState | None:
    raw = await pool.fetchval("SELECT state FROM competency_learners WHERE tenant = $1 AND learner = $2", tenant, learner)
    return None if raw is None else decode_state(raw)


async def log_events(pool: asyncpg.Pool) -> list[LogEvent]:
    records = await read_events_after(pool, 0, 100_000)
    return [LogEvent(r.position, r.tenant, r.event_type, bytes(r.payload)) for r in records]


INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name,
       replace(pg_get_indexdef(x.indexrelid), 'public.', '') AS definition, c.contype::text AS constraint_type
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
WHERE n.nspname = 'public' AND t.relname = ANY($1::text[]) ORDER BY 1, 2
"""


STATE_STORAGE = """
SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'public.competency_learners'::regclass AND attname = 'state'
"""
