"""The competency projection runner against real PostgreSQL (and NATS)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg
import nats
import nats.js.errors
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.nats.bus import STREAM_NAME
from lrs.payload_codec import open_payload
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.checkpoints import get_checkpoint
from lrs.store.log_reader import last_position, read_events_after
from projections.competency.catalog import load_catalog
from projections.competency.codec import MAGIC, decode_state, open_state
from projections.competency.model import LearnerState
from projections.competency.rows import CERTIFICATION_COLUMNS, STATE_COLUMNS, certification_rows, state_rows
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
import projections.applying
import projections.runner
from projections.jetstream_loop import next_batch_size
from projections.runner import LogEvent, ProjectionOutdated, ProjectionRunner, checkpoint_position, parked_events

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


async def test_catch_up_from_the_log_builds_state_rows_and_certification(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(1, m, v, 10 * i) for i, (m, v) in enumerate(MODULES)))
    await write(writer, course_statement(2, "device-security", FAILED, 5, 0.3))
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    assert await runner.catch_up() == await last_position(pool) == 11

    state = await learner_state(pool, learner_key(1))
    assert state is not None
    certification = state.certifications[f"{PROGRAM[0]}|{PROGRAM[1]}"]
    assert certification.earned and len(certification.statement_ids) == 10
    row = await pool.fetchrow(
        "SELECT earned, earned_at, statement_ids FROM competency_certifications WHERE learner = $1", learner_key(1)
    )
    assert row["earned"] is True
    assert sorted(str(i) for i in row["statement_ids"]) == list(certification.statement_ids)
    status = await pool.fetchval(
        "SELECT status FROM competency_states WHERE learner = $1 AND competency = $2", learner_key(2), f"{VN}/4.1"
    )
    assert status == "in_progress"


async def test_redelivered_duplicated_and_reordered_batches_change_nothing(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(n % 3, m, v, 7 * i) for n, (i, (m, v)) in enumerate(enumerate(MODULES * 2))))
    events = await log_events(pool)
    reference = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await reference.catch_up()
    expected = await digest(pool)

    await pool.execute("TRUNCATE competency_learners, competency_states, competency_certifications, "
                       "competency_statement_learners, competency_voids")
    await pool.execute("UPDATE projection_checkpoints SET position = 0")
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    shuffled = events + events[:5]
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 6):
        await runner.apply_batch(shuffled[start:start + 6])
        await runner.apply_batch(shuffled[:start])  # everything again: redeliveries
    assert await runner.checkpoint() == len(events)
    assert await digest(pool) == expected


async def test_a_gap_is_filled_from_the_postgres_log(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)))
    events = await log_events(pool)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    outcome = await runner.apply_batch([events[-1]])  # NATS delivered only the last one so far
    assert (outcome.checkpoint, outcome.applied) == (10, 10)
    state = await learner_state(pool, learner_key(1))
    assert state is not None and state.certifications[f"{PROGRAM[0]}|{PROGRAM[1]}"].earned


async def test_voiding_before_and_after_its_target_both_remove_the_evidence(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    early = course_statement(1, "device-security", PASSED, 10)
    late = course_statement(2, "device-security", PASSED, 10)
    # The voiding of "late" is logged before "late" itself.
    await write(writer, early, voiding(late["id"]), late, voiding(early["id"]))
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await runner.catch_up()
    for n, body in ((1, early), (2, late)):
        state = await learner_state(pool, learner_key(n))
        assert state is not None
        assert state.competencies == {} and state.voided == (body["id"],)
    assert await pool.fetchval("SELECT count(*) FROM competency_states") == 0


@pytest.mark.parametrize("batch", [1, 4])
async def test_state_rows_follow_the_states_batch_by_batch_through_later_voidings(
    pool: asyncpg.Pool, writer: StatementWriter, batch: int
) -> None:
    # A batch rewrites only the competency rows its events changed; after
    # every batch the rows must still be exactly the stored states' rows,
    # also when a voiding takes away a competency's only evidence.
    first = course_statement(1, "device-security", PASSED, 10)
    bodies = [first, *(course_statement(n, m, v, 10 * i) for i, (m, v) in enumerate(MODULES[:6]) for n in (1, 2))]
    # Learner 3 earns the programme (every module), then loses it to a voiding.
    third = [course_statement(3, m, v, 10 * i) for i, (m, v) in enumerate(MODULES)]
    bodies += third
    bodies += [course_statement(2, "device-security", FAILED, 900, 0.2), voiding(first["id"]), voiding(bodies[1]["id"])]
    bodies.append(voiding(third[2]["id"]))  # evaluating-sources: its only evidence
    # Learner 4 has one statement towards the programme, then none: the row goes.
    fourth = course_statement(4, "searching", PASSED, 5)
    bodies += [fourth, voiding(fourth["id"])]
    await write(writer, *bodies)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    events = await log_events(pool)
    seen_programs: set[tuple[Any, ...]] = set()
    for start in range(0, len(events), batch):
        event = events[min(start + batch, len(events)) - 1]
        await runner.apply_batch(events[start:start + batch])
        expected = sorted(
            _state_row_tuple(row)
            for raw in await pool.fetch("SELECT tenant, state FROM competency_learners")
            for row in state_rows(raw["tenant"], decode_state(raw["state"]))
        )
        stored = sorted(_state_row_tuple(tuple(r)) for r in await pool.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM competency_states"))
        assert stored == expected, f"after position {event.position}"
        # Certification rows too: only the programmes whose certification changed are rewritten.
        expected_programs = sorted(
            _state_row_tuple(row)
            for raw in await pool.fetch("SELECT tenant, state FROM competency_learners")
            for row in certification_rows(raw["tenant"], decode_state(raw["state"]))
        )
        stored_programs = sorted(
            _state_row_tuple(tuple(r))
            for r in await pool.fetch(f"SELECT {', '.join(CERTIFICATION_COLUMNS)} FROM competency_certifications")
        )
        assert stored_programs == expected_programs, f"after position {event.position}"
        seen_programs.update(stored_programs)
    state = await learner_state(pool, learner_key(1))
    assert state is not None and f"{VN}/4.1" not in state.competencies  # its only evidence was voided
    earned = {row[1] for row in seen_programs if row[4] == "True"}
    assert earned == {learner_key(3)}, "learner 3's certification row must have been earned on the way"
    final = await pool.fetchval("SELECT earned FROM competency_certifications WHERE learner = $1", learner_key(3))
    assert final is False
    assert learner_key(4) in {row[1] for row in seen_programs}, "learner 4's row must have existed on the way"
    assert await pool.fetchval("SELECT count(*) FROM competency_certifications WHERE learner = $1", learner_key(4)) == 0


def _state_row_tuple(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str([str(x) for x in v]) if isinstance(v, list) else str(v) for v in row)


class FailsAt(CompetencyProjection):
    """Fails on the given positions, as a rule bug or an unreadable event would."""

    def __init__(self, positions: set[int]) -> None:
        super().__init__(CATALOG)
        self.positions = positions

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        await super().apply(conn, event)  # its writes must be undone by the savepoint
        if event.position in self.positions:
            raise ValueError(f"cannot fold position {event.position}")

    async def apply_many(self, conn: asyncpg.Connection, events: Any) -> None:
        await super().apply_many(conn, events)
        for event in events:  # the runner then retries the batch one event at a time
            if event.position in self.positions:
                raise ValueError(f"cannot fold position {event.position}")


async def test_poison_event_is_retried_then_parked_and_the_others_flow(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 6)))
    events = await log_events(pool)
    runner = ProjectionRunner(pool, FailsAt({2}), max_attempts=3)
    first = await runner.apply_batch(events)
    assert (first.checkpoint, first.applied, first.failed_at) == (1, 1, 2)
    second = await runner.apply_batch(events)
    assert (second.checkpoint, second.failed_at) == (1, 2)
    third = await runner.apply_batch(events)
    assert (third.checkpoint, third.applied, third.parked, third.failed_at) == (5, 3, (2,), None)
    parked = await pool.fetchrow("SELECT position, tenant, attempts, error FROM projection_parked")
    assert (parked["position"], parked["tenant"], parked["attempts"]) == (2, "default", 3)
    assert "cannot fold position 2" in parked["error"]
    assert await pool.fetchval("SELECT count(*) FROM projection_failures") == 0
    assert await learner_state(pool, learner_key(2)) is None  # the failed attempt left nothing behind
    for n in (1, 3, 4, 5):
        assert await learner_state(pool, learner_key(n)) is not None


async def test_retrying_a_parked_event_applies_it_once_its_cause_is_fixed(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    projection = FailsAt({2})
    runner = ProjectionRunner(pool, projection, max_attempts=1)
    assert (await runner.apply_batch(await log_events(pool))).parked == (2,)
    assert [p.position for p in await parked_events(pool, "competency", "default")] == [2]
    assert await parked_events(pool, "competency", "other") == []  # per tenant

    # Still failing: it stays parked with the new error and one more attempt.
    assert "cannot fold position 2" in (await runner.retry_parked(2, "default") or "")
    (still,) = await parked_events(pool, "competency", "default")
    assert still.attempts == 2 and await learner_state(pool, learner_key(2)) is None
    with pytest.raises(LookupError):
        await runner.retry_parked(2, "other")  # another tenant's event is not there
    with pytest.raises(LookupError):
        await runner.retry_parked(1, "default")  # applied, never parked

    projection.positions.clear()  # the cause is fixed
    assert await runner.retry_parked(2, "default") is None
    assert await parked_events(pool, "competency", "default") == []
    state = await learner_state(pool, learner_key(2))
    assert state is not None and state.evidence
    assert await checkpoint_position(pool, "competency") == 3  # the checkpoint did not move


async def test_replay_unparks_what_it_applies_and_parks_what_it_fails_on(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 6)))
    live = await ProjectionRunner(pool, FailsAt({2, 3}), max_attempts=1).apply_batch(await log_events(pool))
    assert live.parked == (2, 3)
    # The cause of 2's failure is gone; 3 now fails in the rebuild's rules instead.
    from projections.competency import rebuild as rebuild_module

    interpret = rebuild_module.interpret_event

    def failing_for_learner_3(event_type: str, payload: bytes, catalog: Any) -> Any:
        if b"cs3@" in open_payload(payload):  # the rebuild is handed payloads as stored (zstd)
            return "ValueError('learner 3 cannot be read')"
        return interpret(event_type, payload, catalog)

    monkeypatch.setattr(rebuild_module, "interpret_event", failing_for_learner_3)
    await replay(pool, CompetencyProjection(CATALOG))
    parked = [(r["position"], r["error"]) for r in await pool.fetch("SELECT position, error FROM projection_parked")]
    assert parked == [(3, "ValueError('learner 3 cannot be read')")]
    assert await learner_state(pool, learner_key(2)) is not None
    assert await learner_state(pool, learner_key(3)) is None


async def test_state_built_with_other_frameworks_asks_for_a_replay(pool: asyncpg.Pool) -> None:
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).checkpoint()
    other = CompetencyProjection(CATALOG)
    other.catalog_digest = "0" * 64
    with pytest.raises(ProjectionOutdated, match="lrs replay competency"):
        await ProjectionRunner(pool, other).checkpoint()


async def test_replay_rebuilds_the_same_digest_and_swaps_tables(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    rng = random.Random(11)
    bodies: list[dict[str, Any]] = []
    for _ in range(60):
        module, verb = rng.choice(MODULES + [("troubleshooting", FAILED)])
        bodies.append(course_statement(rng.randrange(6), module, verb, rng.randrange(3000), rng.choice([0.5, 0.75, 0.95])))
    for target in rng.sample(bodies, 8):
        bodies.insert(rng.randrange(len(bodies) + 1), voiding(target["id"]))
    await write(writer, *bodies)
    live = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await live.catch_up()
    live_digest = await digest(pool)
    assert await pool.fetchval("SELECT count(*) FROM competency_learners") == 6

    await pool.execute("UPDATE competency_learners SET state = 'tampered' WHERE learner = $1", learner_key(0))
    assert await digest(pool) != live_digest
    seen: list[tuple[int, int]] = []
    position = await replay(pool, CompetencyProjection(CATALOG), batch_size=16, progress=lambda d, t: seen.append((d, t)))
    assert position == await last_position(pool)
    assert await digest(pool) == live_digest
    assert seen[-1] == (position, position) and len(seen) > 1
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'replay_competency'") == 0
    # the live runner carries on against the swapped-in tables
    await write(writer, course_statement(0, "personal-data", PASSED, 4000))
    assert await live.catch_up() == position + 1


@pytest.mark.slow
async def test_through_jetstream_with_a_restart_mid_stream_gives_the_replayed_digest(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    outcomes: list[int] = []

    async def consume_until(position: int) -> None:
        stop = asyncio.Event()

        def seen(outcome: Any) -> None:
            outcomes.append(outcome.checkpoint)
            if outcome.checkpoint >= position:
                stop.set()

        await asyncio.wait_for(runner.run(nats_control.url, stop, batch_size=20, fetch_timeout=0.2, on_batch=seen), 60)

    try:
        rng = random.Random(5)
        first = [course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000)) for _ in range(40)]
        await write(writer, *first)
        relay.notify()
        await consume_until(20)  # stops after some batch at or past 20: mid-stream
        stopped_at = await runner.checkpoint()
        assert 20 <= stopped_at <= 40
        second = [course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000)) for _ in range(30)]
        await write(writer, *second, voiding(first[3]["id"]))
        relay.notify()
        await consume_until(71)
        assert await runner.checkpoint() == 71 == await last_position(pool)
    finally:
        await relay.stop()
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live


def test_lrs_replay_command_rebuilds_and_prints_the_digest(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrs.cli import main

    monkeypatch.setenv("LRS_DATABASE_URL", database_url)
    # Leave the test session's logging alone (the command would point it at its own stderr).
    monkeypatch.setattr("lrs.commands.common.setup", lambda settings: None)
    assert main(["replay", "competency", "--batch-size", "10"]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith("replayed competency through position 0; digest ")
    assert last_line.endswith("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")  # no learners


def test_lrs_replay_prints_its_result_last_after_the_embedded_database_stops(tmp_path: Any) -> None:
    """A command's result is the last line it writes; its JSON logs (here the
    embedded PostgreSQL's stop) go to stderr before it, as every other
    command that opens the database does."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env.update(LRS_DATA_DIR=str(tmp_path), LRS_LOG_LEVEL="info")
    done = subprocess.run(
        [sys.executable, "-m", "lrs", "replay", "competency"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout
    assert any('"postgres_stopped"' in line for line in lines), done.stdout  # the embedded database did log its stop
    assert lines[-1].startswith("replayed competency through position 0; digest "), done.stdout


async def test_states_kept_in_memory_are_dropped_when_someone_else_moved_the_checkpoint(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A runner keeps learner states between batches; another runner (or a
    replay) that applied events meanwhile makes it read them again."""
    first, other = ProjectionRunner(pool, CompetencyProjection(CATALOG)), ProjectionRunner(pool, CompetencyProjection(CATALOG))
    passed = [m for m, v in MODULES if v == PASSED]
    await write(writer, *(course_statement(n, passed[0], PASSED, 10) for n in range(3)))
    await first.catch_up()
    await write(writer, *(course_statement(n, passed[1], PASSED, 20) for n in range(3)))
    await other.catch_up()  # `first` has not seen these
    await write(writer, *(course_statement(n, passed[2], PASSED, 30) for n in range(3)))
    await first.catch_up()
    for n in range(3):
        state = await learner_state(pool, learner_key(n))
        assert state is not None and len({e.statement_id for e in state.evidence}) == 3
    live_digest = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live_digest
    # after a replay with nothing new, the kept states are still the stored ones
    await write(writer, course_statement(0, passed[3], PASSED, 40))
    await first.catch_up()
    state = await learner_state(pool, learner_key(0))
    assert state is not None and len({e.statement_id for e in state.evidence}) == 4
    after = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == after


INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name,
       replace(pg_get_indexdef(x.indexrelid), 'public.', '') AS definition, c.contype::text AS constraint_type
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
WHERE n.nspname = 'public' AND t.relname = ANY($1::text[]) ORDER BY 1, 2
"""


async def test_replayed_tables_have_the_indexes_and_keys_of_the_live_ones(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    tables = list(CompetencyProjection.tables)
    await write(writer, *(course_statement(n, "searching", PASSED, n) for n in range(4)))
    before = [tuple(r) for r in await pool.fetch(INDEXES, tables)]
    assert sum(1 for r in before if r[3] == "p") == len(tables)
    await replay(pool, CompetencyProjection(CATALOG), batch_size=3)
    await replay(pool, CompetencyProjection(CATALOG))
    assert [tuple(r) for r in await pool.fetch(INDEXES, tables)] == before
    assert await pool.fetchval("SELECT count(*) FROM competency_learners") == 4
    # and the storage parameters: a state is kept in its row up to a page,
    # with room in the page for its next version, never compressed again
    options = "SELECT reloptions FROM pg_class WHERE oid = 'public.competency_learners'::regclass"
    assert await pool.fetchval(options) == ["toast_tuple_target=8160", "fillfactor=70"]
    assert await pool.fetchval(STATE_STORAGE) == "e"


STATE_STORAGE = """
SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'public.competency_learners'::regclass AND attname = 'state'
"""


async def test_a_learner_state_is_stored_compressed_by_the_codec_in_its_row_and_not_again_by_postgres(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    await write(writer, *(course_statement(0, module, verb, n) for n, (module, verb) in enumerate(MODULES)))
    await replay(pool, CompetencyProjection(CATALOG))  # a fresh table, as replays swap in
    assert await pool.fetchval(STATE_STORAGE) == "e"
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await write(writer, *(course_statement(0, module, verb, 100 + n) for n, (module, verb) in enumerate(MODULES[:4])))
    await runner.catch_up()  # the live upsert
    state, stored = await pool.fetchrow(
        "SELECT state, pg_column_size(state) FROM competency_learners WHERE learner = $1", learner_key(0)
    )
    assert state[:4] == MAGIC  # the codec's zstd frame
    assert len(open_state(state)) > 2100  # its layout is past the default TOAST threshold
    assert len(state) < 2000  # the frame is not
    assert stored >= len(state)  # PostgreSQL did not compress it (nor point to a TOAST copy)
    assert await learner_state(pool, learner_key(0)) is not None


async def test_updating_learner_states_is_hot_when_their_pages_are_full(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """Each batch that concerns a learner rewrites its state.  With the state
    compressed and room left in each page (fillfactor), the new version goes
    in the same page and no index changes: a HOT update, pruned in the page
    instead of left to autovacuum.  (Stored whole, uncompressed, two or three
    states filled a page and hardly any update was HOT.)  Each transaction
    rewrites three of the 24 learners: one that rewrote all of them gave each
    page more new versions than its free space holds whatever the states'
    size (with format 3's smaller states, four to a page, half of a round's
    updates were HOT)."""
    learners = range(24)
    await write(writer, *(course_statement(n, module, verb, i) for n in learners
                          for i, (module, verb) in enumerate(MODULES)))
    # one connection, so that its statistics are the ones flushed below
    single = await asyncpg.create_pool(dsn=pool._connect_args[0], min_size=1, max_size=1)  # type: ignore[attr-defined]
    try:
        runner = ProjectionRunner(single, CompetencyProjection(CATALOG))
        await runner.catch_up()  # the learners' rows: inserts
        assert await single.fetchval("SELECT pg_relation_size('competency_learners')") >= 3 * 8192
        for round_ in range(3):
            # as in live apply, a transaction rewrites a few of the learners
            # (a batch of 1,000 events, 5 % of 20,000), not every row of a page
            for group in range(0, len(learners), 3):
                await write(writer, *(course_statement(n, "searching", PASSED, 200 + 10 * round_ + n)
                                      for n in learners[group:group + 3]))
                await runner.catch_up()
        async with single.acquire() as conn:
            await conn.execute("SELECT pg_stat_force_next_flush()")
            await conn.execute("SELECT 1")  # a transaction's end flushes what was forced
        stats = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'competency_learners'::regclass"
        for _ in range(100):
            updated, hot = await pool.fetchrow(stats)
            if updated >= 3 * len(learners):
                break
            await asyncio.sleep(0.02)
    finally:
        await single.close()
    assert updated >= 3 * len(learners)
    assert hot >= 0.8 * updated, (hot, updated)


@pytest.mark.slow
@pytest.mark.parametrize("interval", [0.0, 0.4])
async def test_a_runner_that_keeps_up_pauses_between_batches(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, interval: float
) -> None:
    # Statements trickle in one by one; without a pause every few events would
    # be a transaction of their own.  With one, a batch takes what arrived
    # during the pause: the batches are at most one per interval (and one
    # more for the first statement), and every statement still gets applied.
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    batches: list[int] = []

    def seen(outcome: Any) -> None:
        batches.append(outcome.checkpoint)
        if outcome.checkpoint >= 31:
            stop.set()

    consuming = asyncio.ensure_future(
        runner.run(nats_control.url, stop, batch_size=1000, fetch_timeout=0.2, on_batch=seen, batch_interval=interval)
    )
    try:
        await write(writer, course_statement(0, *MODULES[0], 0))  # the runner is consuming once this is applied
        relay.notify()
        for _ in range(200):
            if batches:
                break
            await asyncio.sleep(0.05)
        batches.clear()
        started = asyncio.get_running_loop().time()
        for n in range(1, 31):
            await write(writer, course_statement(n % 5, *MODULES[n % len(MODULES)], n))
            relay.notify()
            await asyncio.sleep(0.04)
        await asyncio.wait_for(consuming, 30)
        took = asyncio.get_running_loop().time() - started
    finally:
        stop.set()
        await relay.stop()
    assert await runner.checkpoint() == 31
    paused_bound = took / 0.4 + 2  # at most one batch per pause, and one more
    if interval:
        assert len(batches) <= paused_bound, batches
    else:  # without a pause the trickle itself makes more batches than a pause allows
        assert len(batches) > paused_bound, batches


async def test_a_runner_behind_fetches_ever_larger_batches_up_to_its_largest(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    # A backlog waits in the stream before the runner starts: each full fetch
    # is followed by one twice as large (10, 20, 40), then 40 at most.
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    applied: list[int] = []
    try:
        rng = random.Random(11)
        await write(writer, *(course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000)) for _ in range(110)))
        relay.notify()
        total = await last_position(pool)
        for _ in range(400):
            if await get_checkpoint(pool, relay.name) >= total:
                break
            await asyncio.sleep(0.02)

        def seen(outcome: Any) -> None:
            applied.append(outcome.applied)
            if outcome.checkpoint >= total:
                stop.set()

        await asyncio.wait_for(
            runner.run(nats_control.url, stop, batch_size=10, max_batch_size=40, fetch_timeout=1.0, on_batch=seen), 60
        )
    finally:
        stop.set()
        await relay.stop()
    assert applied == [10, 20, 40, 40], applied
    assert await runner.checkpoint() == total == 110


def test_the_next_fetch_doubles_after_a_full_one_and_starts_over_after_one_that_is_not() -> None:
    assert next_batch_size(1000, 1000, 1000, 5000) == 2000
    assert next_batch_size(4000, 4000, 1000, 5000) == 5000
    assert next_batch_size(5000, 5000, 1000, 5000) == 5000
    assert next_batch_size(4000, 3999, 1000, 5000) == 1000
    assert next_batch_size(1000, 1000, 1000, 1000) == 1000


@pytest.mark.slow
async def test_a_runner_whose_consumer_is_deleted_makes_it_again_and_carries_on(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    target = [5]

    def seen(outcome: Any) -> None:
        if outcome.checkpoint >= target[0]:
            stop.set()

    nc = await nats.connect(nats_control.url)
    try:
        await write(writer, *(course_statement(n, *MODULES[n], n) for n in range(5)))
        relay.notify()
        await asyncio.wait_for(runner.run(nats_control.url, stop, fetch_timeout=0.2, retry_delay=0.2, on_batch=seen), 30)
        await nc.jetstream().delete_consumer(STREAM_NAME, "projection-competency")
        stop.clear()
        target[0] = 10
        consuming = asyncio.ensure_future(
            runner.run(nats_control.url, stop, fetch_timeout=0.2, retry_delay=0.2, on_batch=seen)
        )
        # Once the running runner made it again (a fixed sleep here could end first on a loaded machine):
        await asyncio.wait_for(_consumer_made(nc, "projection-competency"), 30)
        await nc.jetstream().delete_consumer(STREAM_NAME, "projection-competency")  # and while it runs
        await write(writer, *(course_statement(n, *MODULES[n], 100 + n) for n in range(5)))
        relay.notify()
        await asyncio.wait_for(consuming, 30)
    finally:
        stop.set()
        await nc.close()
        await relay.stop()
    assert await runner.checkpoint() == 10


async def test_a_nats_client_that_stopped_reconnecting_is_replaced(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    clients: list[Any] = []
    connect = projections.runner.nats.connect

    async def remembered(*args: Any, **kwargs: Any) -> Any:
        clients.append(await connect(*args, **kwargs))
        return clients[-1]

    monkeypatch.setattr(projections.runner.nats, "connect", remembered)
    stop = asyncio.Event()
    checkpoints: list[int] = []
    running = asyncio.create_task(
        runner.run(nats_control.url, stop, fetch_timeout=0.2, retry_delay=0.2, on_batch=lambda o: checkpoints.append(o.checkpoint),
                   stalled_after=2.0)
    )
    try:
        await write(writer, course_statement(1, "searching", PASSED, 10))
        relay.notify()
        while not checkpoints or checkpoints[-1] < 1:
            await asyncio.sleep(0.05)
        nats_control.kill()
        while clients[0]._reconnection_task is None:
            await asyncio.sleep(0.05)
        # nats-py's reconnect loop ends for good on an error it does not expect
        # (seen: uvloop's RuntimeError on a transport closed under it); end it.
        clients[0]._reconnection_task.cancel()
        await nats_control.start()
        await write(writer, course_statement(2, "searching", PASSED, 20))
        relay.notify()
        # The log gives position 2 even without NATS (read on the relay's
        # checkpoint while nothing can be fetched); the stalled client is replaced.
        await asyncio.wait_for(_until(lambda: checkpoints[-1] >= 2 and len(clients) == 2), 30)
        assert not clients[0].is_connected

        async def acknowledged_through_the_new_client() -> None:
            while True:
                info = await clients[1].jetstream().consumer_info(STREAM_NAME, "projection-competency")
                if info.ack_floor.stream_seq >= 2:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(acknowledged_through_the_new_client(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await relay.stop()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def _consumer_made(nc: Any, durable: str) -> None:
    while True:
        try:
            await nc.jetstream().consumer_info(STREAM_NAME, durable)
            return
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.02)


async def test_a_state_built_under_another_rule_version_asks_for_a_replay_which_applies_the_rules(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    # a quiz answer naming the module as parent, and a platform whose masteryScore is not the table's
    answer = course_statement(1, "searching", PASSED, 0)
    answer["verb"]["id"] = "http://adlnet.gov/expapi/verbs/answered"
    answer["object"] = {"id": f"{COURSE}/modules/searching/q1"}
    answer["context"] = {"contextActivities": {"parent": [{"id": f"{COURSE}/modules/searching"}]}}
    lenient = course_statement(2, "searching", PASSED, 1, score=0.65)
    lenient["context"] = {"platform": "MobiEdu", "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/masteryscore": 0.6}}
    await write(writer, answer, lenient, *(course_statement(3, m, v, i) for i, (m, v) in enumerate(MODULES)))
    live = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await live.catch_up()
    live_digest = await digest(pool)
    mismatches = await pool.fetch("SELECT statement_id::text, platform, mastery_score, statement_mastery, passed FROM competency_mastery_mismatches")
    assert [tuple(r) for r in mismatches] == [(lenient["id"], "MobiEdu", 0.7, 0.6, False)]
    assert await learner_state(pool, learner_key(1)) is None  # the answer is no evidence

    # as a projection built by the rules before this version had left it
    await pool.execute("UPDATE projection_checkpoints SET rule_version = rule_version - 1 WHERE name = 'competency'")
    with pytest.raises(ProjectionOutdated, match="lrs replay competency"):
        await ProjectionRunner(pool, CompetencyProjection(CATALOG)).checkpoint()
    await pool.execute("DELETE FROM competency_mastery_mismatches")
    await replay(pool, CompetencyProjection(CATALOG))
    assert await pool.fetchval("SELECT rule_version FROM projection_checkpoints WHERE name = 'competency'") == CompetencyProjection.rule_version
    assert await digest(pool) == live_digest
    again = await pool.fetch("SELECT statement_id::text, platform, mastery_score, statement_mastery, passed FROM competency_mastery_mismatches")
    assert [tuple(r) for r in again] == [tuple(r) for r in mismatches]
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).checkpoint()  # up to date again


async def test_a_gap_is_filled_a_bounded_stretch_per_batch(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """A message far beyond the checkpoint (the stream keeps 30 days; the
    consumer was further behind) fills the gap from the log a bounded
    stretch per batch, not every event in between in one transaction."""
    await write(writer, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)))
    events = await log_events(pool)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    runner.applier.max_gap_fill = 4
    outcomes = [await runner.apply_batch([events[-1]]) for _ in range(3)]
    assert [(o.checkpoint, o.applied) for o in outcomes] == [(4, 4), (8, 4), (10, 2)]
    state = await learner_state(pool, learner_key(1))
    assert state is not None and state.certifications[f"{PROGRAM[0]}|{PROGRAM[1]}"].earned


class FailureTimes(FailsAt):
    """:class:`FailsAt` that notes when each failure pinned on an event happened."""

    def __init__(self, positions: set[int]) -> None:
        super().__init__(positions)
        self.failed_at: list[float] = []

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        try:
            await super().apply(conn, event)
        except ValueError:
            self.failed_at.append(asyncio.get_running_loop().time())
            raise


async def test_a_failing_event_is_tried_once_per_retry_delay_until_parked(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    """The retry budget (projections/runner.py, docs/competency.md): an event
    the rules fail on is tried again ``retry_delay`` later, and parked at its
    ``max_attempts``-th failure, ``(max_attempts - 1) * retry_delay`` after
    its first.  The redelivered message and the look at the log for what the
    stream holds no more each tried it: about twice as often."""
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    projection = FailureTimes({2})
    runner = ProjectionRunner(pool, projection, max_attempts=4)
    stop = asyncio.Event()

    def seen(outcome: Any) -> None:
        if outcome.checkpoint >= 3:
            stop.set()

    retry_delay = 0.6
    try:
        await asyncio.wait_for(runner.run(nats_control.url, stop, fetch_timeout=0.1, retry_delay=retry_delay,
                                          batch_interval=0.0, on_batch=seen), 30)
    finally:
        await relay.stop()
    assert [p.position for p in await parked_events(pool, "competency", "default")] == [2]
    assert len(projection.failed_at) == 4
    gaps = [later - earlier for earlier, later in zip(projection.failed_at, projection.failed_at[1:])]
    assert min(gaps) >= retry_delay * 0.9, gaps


async def test_following_the_log_waits_out_a_failed_events_retry_delay_whatever_the_commits(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """Without NATS the runner catches up on every commit (``wake``): while
    the event it failed on waits its retry_delay, nothing after it can be
    applied, so a commit is no reason to read the log again (every commit
    read a batch of the log and opened a transaction for nothing, hundreds
    of times a second under load)."""
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    projection = FailureTimes({2})
    runner = ProjectionRunner(pool, projection, max_attempts=3)
    batches = 0
    apply_batch = runner.applier.apply_batch

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        return await apply_batch(*args, **kwargs)

    runner.applier.apply_batch = counted  # type: ignore[method-assign]
    stop, wake = asyncio.Event(), asyncio.Event()

    def seen(outcome: Any) -> None:
        if outcome.checkpoint >= 3:
            stop.set()

    async def committing() -> None:  # a busy writer's commit hook
        while not stop.is_set():
            wake.set()
            await asyncio.sleep(0.005)

    retry_delay = 0.4
    commits = asyncio.ensure_future(committing())
    try:
        await asyncio.wait_for(runner.follow(stop, wake, poll_interval=0.25, retry_delay=retry_delay,
                                             on_batch=seen), 30)
    finally:
        stop.set()
        await commits
    assert [p.position for p in await parked_events(pool, "competency", "default")] == [2]
    assert len(projection.failed_at) == 3
    gaps = [later - earlier for earlier, later in zip(projection.failed_at, projection.failed_at[1:])]
    assert min(gaps) >= retry_delay * 0.9, gaps
    assert max(gaps) < retry_delay + 0.25, gaps  # tried again when due, not a poll later
    assert batches <= 3 + 2, batches  # one per try, and a look or two at the log once all is applied


async def test_a_batch_while_the_next_event_waits_its_retry_delay_reads_nothing_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later messages (or a look at the log for what the stream no longer
    holds) while the event after the checkpoint waits its retry_delay: they
    cannot be applied before it, so the gap up to them is not read from
    the log for nothing."""
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    events = await log_events(pool)
    projection = FailureTimes({2})
    runner = ProjectionRunner(pool, projection, max_attempts=3)
    runner.applier.retry_delay = 60.0
    first = await runner.apply_batch(events[:1])
    assert (first.checkpoint, first.failed_at) == (1, None)
    failed = await runner.apply_batch(events[1:2])
    assert (failed.checkpoint, failed.failed_at) == (1, 2)
    reads = 0

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read_events_after(*args, **kwargs)

    monkeypatch.setattr(projections.applying, "read_events_after", counted)
    later = await runner.apply_batch(events[2:])  # position 3 only: position 2 would come from the log
    assert (later.checkpoint, later.applied, later.failed_at) == (1, 0, 2)
    filled = await runner.applier.apply_batch([], fill_to=3)
    assert (filled.checkpoint, filled.applied, filled.failed_at) == (1, 0, 2)
    assert reads == 0 and len(projection.failed_at) == 1


class SeesCommitSetting(CompetencyProjection):
    """Notes the transaction's synchronous_commit as each batch applies."""

    def __init__(self) -> None:
        super().__init__(CATALOG)
        self.seen: list[str] = []

    async def apply_many(self, conn: asyncpg.Connection, events: Any) -> None:
        self.seen.append(await conn.fetchval("SELECT current_setting('synchronous_commit')"))
        await super().apply_many(conn, events)


async def test_a_batch_commits_without_waiting_for_its_wal_and_leaves_the_connection_as_it_was(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A projection is derived from the log: its batch commits without
    waiting for the WAL flush (a commit lost in a crash is lost with its
    checkpoint and applied again), and only that transaction does."""
    await write(writer, *(course_statement(1, m, v, 10 * i) for i, (m, v) in enumerate(MODULES[:4])))
    projection = SeesCommitSetting()
    runner = ProjectionRunner(pool, projection)
    await runner.apply_batch((await log_events(pool))[:2])
    await runner.catch_up()
    assert projection.seen and set(projection.seen) == {"off"}
    assert await runner.checkpoint() == 4
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "on"


async def test_states_stored_in_format_2_carry_across_the_upgrade_without_a_replay(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """States written before format 3 (each competency's fields stored) are
    read by live apply, digested as the same states, and rewritten in format 3
    when their learner next changes; a replay gives the same projection."""
    from projections.competency.codec import digest_bytes
    from tests.unit.test_competency_codec import format_2

    await write(writer, *(course_statement(n, m, v, 10 * i) for n in (1, 2) for i, (m, v) in enumerate(MODULES[:6])))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    live = await digest(pool)
    for row in await pool.fetch("SELECT tenant, learner, state FROM competency_learners"):
        await pool.execute("UPDATE competency_learners SET state = $3 WHERE tenant = $1 AND learner = $2",
                           row["tenant"], row["learner"], format_2(decode_state(row["state"])))
    assert await digest(pool) == live  # the same states, whichever format holds them

    await write(writer, course_statement(1, "device-security", PASSED, 500), course_statement(1, "personal-data", PASSED, 510))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()  # a new runner: nothing cached
    stored = {r["learner"]: r["state"] for r in await pool.fetch("SELECT learner, state FROM competency_learners")}
    assert open_state(stored[learner_key(1)])[:1] == b"\x97"  # rewritten in format 3
    assert open_state(stored[learner_key(2)])[:1] == b"\x98"  # not changed: still format 2
    state = decode_state(stored[learner_key(1)])
    assert len(state.evidence) > 6 and any(c.attainments for c in state.competencies.values())
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live
    assert digest_bytes(stored[learner_key(2)]) == open_state(
        await pool.fetchval("SELECT state FROM competency_learners WHERE learner = $1", learner_key(2)))
