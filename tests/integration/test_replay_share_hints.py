"""A replay read in shares sends the share of a statement's learner what the
judge of its page found in it (share_judging.EvidenceHint), not the
statement: over a log of the statements whose evidence reads the most of
them, in pages of three events (a learner's statements straddle pages and
shares), a replay in 2 and 3 processes rebuilds the tables, parked events
and digest of a replay in one process, and the live projection's digest.

The log holds statements in 1.0.3 and 2.0.0, sealed ones (one learner
erased after), in two tenants naming the same learners and voiding each
other's ids; an identified Group as actor; learners named only as an
instructor or a team; SubStatements; objectives with a definition type
and without; context platforms, registrations in capitals, the cmi5
masteryScore extension in every form (fraction, out of range, text, null)
on an activity whose alignment has no masteryScore of its own; no
platform (the authority's); timestamps with offsets, lowercase z, seven
decimals, the basic format, a leap second, none at all, and forms the rules
refuse (a week date among them; parked by the learner's share), which the LRS
stored before branch timestamps; voidings before and after their target, twice, from the
other tenant, and of an id unknown."""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.pool import connect
from projections.competency import read_shares
from projections.competency.store import CompetencyProjection, digest
from projections.replay import LogPages, replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import (
    AUTHORITY, CATALOG, COMPLETED, COURSE, FAILED, MODULES, PASSED, VN, voiding,
)
from tests.integration.test_replay_read_chunks import parked
from tests.integration.test_replay_shares import tables

MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
OBJECTIVE_TYPE = "http://adlnet.gov/expapi/activities/objective"
OBJECTIVES = sorted(o for o in CATALOG.objectives if o.startswith(VN))[:6]
TIMES = ["2025-03-01T10:{m:02d}:00Z", "2025-03-01T17:{m:02d}:00+07:00", "2025-03-01T10:{m:02d}:00.5z",
         "2025-03-01T10:{m:02d}:00.1234567Z", "2025-03-01T03:{m:02d}:00.25-07:00", "2025-03-01T10:{m:02d}:00+0700",
         "20250301T10{m:02d}00,5Z", "2016-12-31T23:59:60Z"]
# Refused by the rules (lrs.xapi.timestamps), as by ingest since branch timestamps:
# written here past the validator, as an older log may hold them, and parked.
REFUSED = ["2025-03-01T24:00:00Z", "2025-060T10:00:00Z", "9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00Z",
           "2025-03-01 10:00:00,5Z", "2025-W09-6T10:00:00Z"]


@pytest.fixture(autouse=True)
def shares_for_any_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_shares, "MIN_SHARED_EVENTS", 1)


def _agent(n: int, kind: str = "hint") -> dict[str, Any]:
    return {"mbox": f"mailto:{kind}{n}@example.gov.vn"}


def _statement(rng: random.Random, learners: int, version: str, kind: str) -> dict[str, Any]:
    """A statement about ``kind`` learners (those sealed are never named in clear)."""
    n = rng.randrange(learners)
    actor: dict[str, Any] = _agent(n, kind)
    team = {"objectType": "Group", "mbox": f"mailto:{kind}-team{n % 3}@example.gov.vn"}
    if rng.random() < 0.08:  # an identified Group, its members others
        actor = {**team, "member": [_agent(n, kind), _agent((n + 1) % learners, kind)]}
    if rng.random() < 0.25:
        obj: dict[str, Any] = {"id": rng.choice(OBJECTIVES)}
        if rng.random() < 0.5:
            obj["definition"] = {"type": rng.choice([OBJECTIVE_TYPE, "http://adlnet.gov/expapi/activities/course"])}
    else:
        obj = {"id": f"{COURSE}/modules/{rng.choice(MODULES)[0]}"}
    if rng.random() < 0.05:  # about a statement, never evidence
        obj = {"objectType": "SubStatement", "actor": _agent(n, kind), "verb": {"id": PASSED}, "object": dict(obj)}
    verb = rng.choice([PASSED, COMPLETED, FAILED, "http://adlnet.gov/expapi/verbs/launched"])
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": verb}, "object": obj}
    result: dict[str, Any] = {}
    if rng.random() < 0.7:
        result["score"] = {"scaled": rng.choice([0, 1, 0.5, 0.75, 0.95])}
    if rng.random() < 0.3:
        result["success"] = rng.random() < 0.5
    if rng.random() < 0.2:
        result["completion"] = True
    if result:
        body["result"] = result
    if rng.random() < 0.7:
        context: dict[str, Any] = {}
        if rng.random() < 0.5:
            context["platform"] = rng.choice(["cmi5 player", "LMS", ""])
        if rng.random() < 0.5:
            context["registration"] = str(uuid.uuid4()).upper()
        if rng.random() < 0.5:
            context["extensions"] = {MASTERY: rng.choice([0.6, 0.9, 2, "0.5", None]), "https://e.example/x": {"a": [1]}}
        if rng.random() < 0.2:  # other learners named beside the actor
            context["instructor"] = _agent((n + 2) % learners, kind)
            context["team"] = team
        body["context"] = context
    draw = rng.random()
    if draw < 0.85:
        body["timestamp"] = rng.choice(TIMES).format(m=rng.randrange(60))
    elif draw < 0.9 and version == "1.0.3":
        body["timestamp"] = f"2025-03-01T10:{rng.randrange(60):02d}:00"  # no offset: UTC
    elif draw < 0.94:
        body["timestamp"] = rng.choice(REFUSED)
    return body  # else no timestamp: stored is the statement's time


def _log(rng: random.Random, learners: int = 20, statements: int = 260) -> list[tuple[str, str, bool, dict[str, Any]]]:
    """(tenant, version, sealed, statement) in the order written."""
    log: list[tuple[str, str, bool, dict[str, Any]]] = []
    ahead: list[str] = []  # ids voided before they are written
    for _ in range(statements):
        tenant = rng.choice(["default", "default", "other"])
        version = rng.choice(["1.0.3", "2.0.0"])
        sealed = rng.random() < 0.3
        body = _statement(rng, learners // 2 if sealed else learners, version, "sealed" if sealed else "hint")
        if ahead and rng.random() < 0.3:
            body["id"] = ahead.pop()
        log.append((tenant, version, sealed, body))
        draw = rng.random()
        if draw < 0.12:
            target = rng.choice([entry for entry in log if not entry[3]["verb"]["id"].endswith("voided")])
            log.append((rng.choice([target[0], target[0], "other"]), "1.0.3", False, voiding(target[3]["id"])))
        elif draw < 0.15:
            ahead.append(str(uuid.uuid4()))
            log.append((tenant, "1.0.3", False, voiding(ahead[-1])))
        elif draw < 0.17:
            log.append((tenant, "2.0.0", False, voiding(str(uuid.uuid4()))))  # an id never written
    return log


async def _write(writer: StatementWriter, keys: LearnerKeys, log: list[tuple[str, str, bool, dict[str, Any]]]) -> None:
    for tenant, version, sealed, body in log:
        if sealed:
            held = await keys.seal_statements(tenant, [body], AUTHORITY)
            prepared = prepare_statements(held.statements, version=version, authority=held.authority, new_id=uuid.uuid4)
            await writer.append(tenant, prepared, key_epoch=held.epoch, key_refs=held.refs, ciphertexts=held.ciphertexts)
            keys.stored(held)
        else:
            prepared = prepare_statements([body], version=version, authority=AUTHORITY, new_id=uuid.uuid4)
            await writer.append(tenant, prepared)


def pages_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    init = LogPages.__init__

    def small(self: LogPages, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.page_size = 3

    monkeypatch.setattr(LogPages, "__init__", small)


@pytest.mark.parametrize("seed", [3, 11])
async def test_a_replay_in_shares_of_statements_that_use_every_hinted_field_rebuilds_what_one_process_does(
    seed: int, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = LearnerKeys(pool, MasterKey(os.urandom(32)))
    await keys.load_epoch()
    log = _log(random.Random(seed))
    await _write(writer, keys, log)
    await erase_learner(pool, keys, "default", _agent(0, "sealed"), reason="request 1", by="test")
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG), max_attempts=1)  # parks at once
    assert await runner.catch_up() == await pool.fetchval("SELECT position FROM log_head")
    live, parked_live = await digest(pool), await parked(pool)

    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    in_one, parked_in_one = await tables(pool), await parked(pool)
    assert await digest(pool) == live and parked_in_one == parked_live
    assert len(parked_in_one) >= 3
    learners = {learner for _, learner, *_ in in_one["competency_learners"]}
    assert len(learners) > 10 and in_one["competency_voids"]
    assert any(learner.startswith("account:") for learner in learners)  # sealed learners, by their pseudonyms
    assert any(learner.startswith("mbox:mailto:hint-team") for learner in learners)  # a Group's evidence

    pages_of_three(monkeypatch)
    for processes in (2, 3):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=2),
                     connect=lambda: connect(database_url))
        assert await tables(pool) == in_one and await parked(pool) == parked_in_one
        assert await digest(pool) == live
