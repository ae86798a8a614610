"""The in-memory rebuild (replay) gives the states the live projection gives
event by event: voidings before and after their targets, several tenants and
learners, events that are not evidence, and events the rules fail on."""

from __future__ import annotations

import random
import uuid
from typing import Any

import msgspec
import pytest

from projections.competency.catalog import load_catalog
from projections.competency.model import LearnerState, StatementEvidence, StatementVoided
from projections.competency.policy import VERB_COMPLETED, VERB_FAILED, VERB_PASSED, VERB_VOIDED, evolve, interpret
from projections.competency.rebuild import LogRebuild

CATALOG = load_catalog()
COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills/modules/"
MODULES = ["searching", "evaluating-sources", "online-communication", "device-security", "personal-data", "troubleshooting"]
VERBS = [VERB_PASSED, VERB_COMPLETED, VERB_FAILED, "http://adlnet.gov/expapi/verbs/launched"]


def _statement(rng: random.Random, learner: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "actor": {"mbox": f"mailto:l{learner}@example.gov.vn"},
        "verb": {"id": rng.choice(VERBS)},
        "object": {"id": COURSE + rng.choice(MODULES + ["not-aligned"])},
        "result": {"score": {"scaled": rng.choice([0.4, 0.7, 0.9])}} if rng.random() < 0.6 else {},
        "timestamp": f"2025-03-{rng.randrange(1, 28):02d}T{rng.randrange(24):02d}:00:00Z",
        "stored": "2025-04-01T00:00:00Z",
    }


def _log(seed: int, size: int) -> list[tuple[int, str, str, bytes]]:
    rng = random.Random(seed)
    bodies: list[tuple[str, dict[str, Any]]] = []
    for _ in range(size):
        tenant = rng.choice(["default", "other"])
        if bodies and rng.random() < 0.15:  # a voiding, of an earlier statement or of one to come
            target = rng.choice(bodies)[1]["id"] if rng.random() < 0.7 else str(uuid.UUID(int=rng.getrandbits(128)))
            bodies.append((tenant, {
                "id": str(uuid.UUID(int=rng.getrandbits(128))), "actor": {"mbox": "mailto:admin@example.gov.vn"},
                "verb": {"id": VERB_VOIDED}, "object": {"objectType": "StatementRef", "id": target},
                "timestamp": "2025-04-01T00:00:00Z", "stored": "2025-04-01T00:00:00Z",
            }))
        else:
            bodies.append((tenant, _statement(rng, rng.randrange(5))))
    rng.shuffle(bodies)  # voidings land before and after their targets
    log = [(i + 1, t, "statement", msgspec.json.encode(b)) for i, (t, b) in enumerate(bodies)]
    log.insert(rng.randrange(len(log)), (0, "default", "document", b"{}"))
    broken = dict(_statement(rng, 0), verb={"id": VERB_PASSED}, object={"id": COURSE + "searching"},
                  timestamp="not a time")  # evidence the rules cannot place in time
    log.insert(rng.randrange(len(log)), (0, "default", "statement", msgspec.json.encode(broken)))
    return [(i + 1, t, kind, payload) for i, (_, t, kind, payload) in enumerate(log)]


def _live(log: list[tuple[int, str, str, bytes]]) -> dict[tuple[str, str], LearnerState]:
    """The routing of projections/competency/store.py, one event at a time."""
    owners: dict[tuple[str, str], str] = {}
    voids: dict[tuple[str, str], str] = {}
    states: dict[tuple[str, str], LearnerState] = {}

    def apply(tenant: str, learner: str, item: StatementEvidence | StatementVoided) -> None:
        key = (tenant, learner)
        states[key] = evolve(states.get(key) or LearnerState(learner=learner), item, CATALOG)

    for _, tenant, kind, payload in log:
        if kind != "statement":
            continue
        try:
            meaning = interpret(msgspec.json.decode(payload), CATALOG)
        except ValueError:
            continue  # parked
        if isinstance(meaning, StatementVoided):
            voids.setdefault((tenant, meaning.target_id), meaning.statement_id)
            owner = owners.get((tenant, meaning.target_id))
            if owner is not None:
                apply(tenant, owner, meaning)
        elif meaning is not None:
            owners.setdefault((tenant, meaning.statement_id), meaning.learner)
            apply(tenant, meaning.learner, meaning)
            voider = voids.get((tenant, meaning.statement_id))
            if voider is not None:
                apply(tenant, meaning.learner, StatementVoided(statement_id=voider, target_id=meaning.statement_id))
    return states


@pytest.mark.parametrize("seed", range(8))
def test_rebuild_equals_the_live_fold_event_by_event(seed: int) -> None:
    log = _log(seed, 120)
    rebuild = LogRebuild(CATALOG)
    for event in log:
        rebuild.add(*event)
    learners, failed = [rebuild.fold(key) for key in rebuild.prepare()], rebuild.failed
    live = _live(log)
    assert {(r.tenant, r.state.learner): r.state for r in learners} == live
    assert [(r.tenant, r.state.learner) for r in learners] == sorted(live)
    assert len(failed) == 1 and "not a time" in failed[0][2]
    assert any(state.voided for state in live.values())


def test_voidings_and_owners_are_all_kept_for_the_tables() -> None:
    log = _log(3, 60)
    rebuild = LogRebuild(CATALOG)
    for event in log:
        rebuild.add(*event)
    rebuild.prepare()
    voidings = [m for _, t, k, p in log if k == "statement"
                for m in [_meaning(p)] if isinstance(m, StatementVoided)]
    assert len(rebuild.voiding_rows()) == len({m.target_id for m in voidings})
    assert all(str(uuid.UUID(row[1])) == row[1] for row in rebuild.owner_rows())


def _meaning(payload: bytes) -> Any:
    try:
        return interpret(msgspec.json.decode(payload), CATALOG)
    except ValueError:
        return None


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shares_cut_the_learners_in_order_into_runs_of_about_equal_evidence(count: int) -> None:
    from projections.competency.fold_shares import shares

    rebuild = LogRebuild(CATALOG)
    for event in _log(3, 400):
        rebuild.add(*event)
    keys = rebuild.prepare()
    cut = shares(rebuild, keys, count)
    assert len(cut) == count
    assert [key for share in cut for key in share] == keys
    weights = [sum(len(rebuild.events[key]) + 1 for key in share) for share in cut]
    heaviest = max(len(items) + 1 for items in rebuild.events.values())
    assert max(weights) - min(weights) <= 2 * heaviest  # a cut is off by at most a learner either side


def test_shares_of_fewer_learners_than_shares_leave_the_last_ones_empty() -> None:
    from projections.competency.fold_shares import shares

    rebuild = LogRebuild(CATALOG)
    for event in _log(0, 12):
        rebuild.add(*event)
    keys = rebuild.prepare()
    cut = shares(rebuild, keys, len(keys) + 2)
    assert [key for share in cut for key in share] == keys
    assert len(cut) == len(keys) + 2 and not cut[-1]


@pytest.mark.parametrize("seed", range(3))
async def test_a_log_read_by_forked_workers_is_routed_as_read_in_process(seed: int) -> None:
    from projections.competency.parallel_replay import read_log

    log = _log(seed, 300)

    async def pages() -> Any:
        for start in range(0, len(log), 7):
            yield log[start:start + 7]

    here, forked = LogRebuild(CATALOG), LogRebuild(CATALOG)
    assert await read_log(here, pages(), processes=1) == len(log)
    assert await read_log(forked, pages(), processes=2, min_parallel=20) == len(log)
    assert forked.events == here.events and forked.positions == here.positions
    assert forked.owners == here.owners and forked.voids == here.voids
    assert forked.failed == here.failed and len(here.failed) == 1
    assert any(isinstance(m, StatementVoided) for items in here.events.values() for m in items) or here.voids


async def test_pages_of_stored_payloads_are_opened_where_they_are_read() -> None:
    # A replay hands the competency rebuild the payloads as stored (zstd
    # frames, opened by the read workers): the same log, compressed, is
    # routed as the log of canonical JSON, in process and forked.
    from lrs.payload_codec import store_payload
    from projections.competency.parallel_replay import read_log

    log = _log(7, 300)
    stored = [(p, t, kind, store_payload(payload)) for p, t, kind, payload in log]
    assert sum(s[3] != j[3] for s, j in zip(stored, log)) > 200  # most of them compressed

    async def pages(events: list[tuple[int, str, str, bytes]]) -> Any:
        for start in range(0, len(events), 7):
            yield events[start:start + 7]

    plain, here, forked = LogRebuild(CATALOG), LogRebuild(CATALOG), LogRebuild(CATALOG)
    await read_log(plain, pages(log), processes=1)
    await read_log(here, pages(stored), processes=1)
    await read_log(forked, pages(stored), processes=2, min_parallel=20)
    for rebuilt in (here, forked):
        assert rebuilt.events == plain.events and rebuilt.positions == plain.positions
        assert rebuilt.owners == plain.owners and rebuilt.voids == plain.voids and rebuilt.failed == plain.failed


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_stored_payload_that_does_not_open_stops_the_read_instead_of_being_parked(processes: int) -> None:
    from lrs.payload_codec import DamagedPayload, store_payload
    from projections.competency.parallel_replay import read_log

    log = [(p, t, kind, store_payload(payload)) for p, t, kind, payload in _log(8, 60)]
    at = next(i for i, e in enumerate(log) if i >= 40 and e[2] == "statement" and e[3][:4] == b"\x28\xb5\x2f\xfd")
    position, tenant, kind, frame = log[at]
    log[at] = (position, tenant, kind, frame + b"altered")  # read by a worker, with min_parallel=20

    async def pages() -> Any:
        for start in range(0, len(log), 7):
            yield log[start:start + 7]

    with pytest.raises(DamagedPayload):
        await read_log(LogRebuild(CATALOG), pages(), processes=processes, min_parallel=20)


def test_preparing_twice_routes_each_voiding_once() -> None:
    rebuild = LogRebuild(CATALOG)
    for event in _log(4, 150):
        rebuild.add(*event)
    keys = rebuild.prepare()
    routed = {key: list(items) for key, items in rebuild.events.items()}
    assert rebuild.prepare() == keys and rebuild.events == routed
    assert any(isinstance(m, StatementVoided) for items in routed.values() for m in items)
