"""The competency projection's supervisor says why it is not current with a
reason code and its values beside the English sentence it has always given
(projections/freshness_reasons.py): each state it reports, through the
supervisor's own loop with an in-memory runner, replay and pool."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from projections.contract import ProjectionOutdated
from projections.freshness_reasons import REASON_CODES, Reason
from projections.replay import ReplayRunning
from projections.log_chain import ChainBroken
from projections.supervisor import (
    LOG_CHAIN_BROKEN_PAUSE_S,
    SELECT_BUILT_WITH,
    Supervisor,
    checked_freshness,
    positional_freshness,
)

BUILT, RUNS = "b" * 64, "c" * 64
OUTDATED = {"projection": "competency", "built_rules": 3, "built_digest": BUILT, "rules": 4, "digest": RUNS}
FOUND = "projection 'competency' was built with rule version 3 and frameworks bbbbbbbbbbbb; these are 4 and cccccccccccc"


class Pool:
    """What the supervisor reads of PostgreSQL: the checkpoint, the log head and the age (and what it was built with)."""

    def __init__(self, position: int = 10, head: int = 10, age_s: float = 0.0, built: Any = None) -> None:
        self.row = {"position": position, "head": head, "age_s": age_s}
        self.built = built

    async def fetchrow(self, sql: str) -> Any:
        return self.built if sql == SELECT_BUILT_WITH else self.row


class Runner:
    """projections.runner.ProjectionRunner as the test scripts it: what reading
    the checkpoint and following the log raise (None: returns; following then
    waits until stopped)."""

    checkpoint_raises: list[BaseException | None] = []
    follow_raises: BaseException | None = None

    def __init__(self, pool: Any, projection: Any) -> None:
        pass

    async def checkpoint(self) -> int:
        await asyncio.sleep(0)  # as reading PostgreSQL does: the supervisor's loop lets the others run
        found = self.checkpoint_raises.pop(0) if len(self.checkpoint_raises) > 1 else self.checkpoint_raises[0]
        if found is not None:
            raise found
        return 10

    async def follow(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        if self.follow_raises is not None:
            raise self.follow_raises
        await stop.wait()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Runs a supervisor over the scripted runner and replay; yields ``run(checkpoint_raises, ...)``
    which returns the state and reason once it had set ``until`` states, and every (state, English
    reason, code) it logged until closed."""
    replays: list[BaseException | None] = []

    async def replay(pool: Any, projection: Any) -> None:
        await asyncio.sleep(0)
        found = replays.pop(0) if len(replays) > 1 else replays[0]
        if found is not None:
            raise found

    monkeypatch.setattr("projections.runner.ProjectionRunner", Runner)
    monkeypatch.setattr("projections.replay.replay", replay)

    async def run(checkpoint: list[BaseException | None], *, until: int, follow: BaseException | None = None,
                  replay_raises: list[BaseException | None] | None = None, auto_rebuild: bool = True) -> list[Any]:
        Runner.checkpoint_raises, Runner.follow_raises = list(checkpoint), follow
        replays[:] = replay_raises or [None]
        catalog = SimpleNamespace(digest=RUNS)
        supervisor = Supervisor(Pool(), catalog, frameworks_dir=None, nats_url=None, wake=asyncio.Event(),  # type: ignore[arg-type]
                                poll_s=0, auto_rebuild=auto_rebuild, build_projection=lambda c: object())  # type: ignore[arg-type]
        with capture_logs() as logs:
            supervisor.start()
            for _ in range(2000):
                seen = [(e["state"], e["reason"], e["reason_code"]) for e in logs if e["event"] == "projection.state"]
                if len(seen) >= until:
                    break
                await asyncio.sleep(0.001)
            then = (supervisor.state, supervisor.why)
            await supervisor.close(timeout=2)
        seen = [(e["state"], e["reason"], e["reason_code"]) for e in logs if e["event"] == "projection.state"]
        return then, seen

    return run


def _english(why: Reason | None) -> str | None:
    return None if why is None else why.text


async def test_outdated_and_not_rebuilding_by_itself(scripted) -> None:  # type: ignore[no-untyped-def]
    (state, why), seen = await scripted([ProjectionOutdated(OUTDATED)], until=1, auto_rebuild=False)
    assert (state, why) == ("outdated", Reason("no_auto_rebuild", OUTDATED))
    assert why.text == (f"{FOUND}: run `lrs replay competency` "
                        "(LRS_COMPETENCY_AUTO_REBUILD=false: this service does not rebuild it by itself)")
    assert seen[0] == ("outdated", why.text, "no_auto_rebuild")


async def test_rebuilding_by_itself_then_running_then_stopping(scripted) -> None:  # type: ignore[no-untyped-def]
    _, seen = await scripted([ProjectionOutdated(OUTDATED), None], until=2)
    assert seen == [
        ("rebuilding", f"this service is rebuilding it from the log by itself: {FOUND}", "rebuilding_itself"),
        ("running", None, None),
        ("stopped", "the service is stopping", "stopping"),
    ]


async def test_another_replay_running(scripted) -> None:  # type: ignore[no-untyped-def]
    (state, why), _ = await scripted([ProjectionOutdated(OUTDATED)], until=2, replay_raises=[ReplayRunning("held")])
    assert (state, why) == ("rebuilding", Reason("other_replay", {}))
    assert why.text == "another replay of the projection is running"


async def test_a_failed_rebuild_names_the_error_and_its_kind(scripted) -> None:  # type: ignore[no-untyped-def]
    error = OSError("disk full")
    (state, why), _ = await scripted([ProjectionOutdated(OUTDATED)], until=2, replay_raises=[error])
    assert (state, why) == ("stopped", Reason("rebuild_failed", {"error_kind": "OSError", "error": "OSError('disk full')"}))
    assert why.text == "the rebuild failed: OSError('disk full')"


async def test_a_broken_log_chain_stops_the_rebuild_and_waits_long(scripted, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pauses: list[float] = []
    pause = Supervisor._pause

    async def recorded(self: Supervisor, seconds: float) -> None:
        pauses.append(seconds)
        await pause(self, seconds)

    monkeypatch.setattr(Supervisor, "_pause", recorded)
    (state, why), seen = await scripted([ProjectionOutdated(OUTDATED)], until=2, replay_raises=[ChainBroken(4711)])
    assert (state, why) == ("stopped", Reason("log_chain_broken", {"position": 4711}))
    assert why.text == ("the log's hash chain is broken at position 4711: the projection is not rebuilt "
                        "from an altered log; run `lrs audit verify`")
    assert seen[1] == ("stopped", why.text, "log_chain_broken")
    # Not read again at every poll: the next try waits ten minutes (close() ends the wait).
    assert pauses == [LOG_CHAIN_BROKEN_PAUSE_S] and LOG_CHAIN_BROKEN_PAUSE_S >= 600


async def test_an_unreadable_checkpoint(scripted) -> None:  # type: ignore[no-untyped-def]
    (state, why), _ = await scripted([ConnectionResetError("gone")], until=1)
    assert (state, why) == ("stopped", Reason("checkpoint_unreadable",
                                              {"error_kind": "ConnectionResetError", "error": "ConnectionResetError('gone')"}))
    assert why.text == "cannot read the checkpoint: ConnectionResetError('gone')"


async def test_a_failed_runner(scripted) -> None:  # type: ignore[no-untyped-def]
    (state, why), seen = await scripted([None], until=2, follow=ValueError("bad row"))
    assert (state, why) == ("stopped", Reason("runner_failed", {"error_kind": "ValueError", "error": "ValueError('bad row')"}))
    assert seen[:2] == [("running", None, None), ("stopped", "the runner failed: ValueError('bad row')", "runner_failed")]


async def test_outdated_while_running_and_rebuilding_by_itself(scripted) -> None:  # type: ignore[no-untyped-def]
    _, seen = await scripted([None, ProjectionOutdated(OUTDATED)], until=2, follow=ProjectionOutdated(OUTDATED))
    assert seen[1] == ("outdated", f"{FOUND}: this service rebuilds it from the log by itself", "rebuilds_itself")


def _supervisor(pool: Pool, state: str, why: Reason | None, serving_digest: str | None = RUNS) -> Supervisor:
    supervisor = Supervisor(pool, SimpleNamespace(digest=RUNS), frameworks_dir=None, nats_url=None,  # type: ignore[arg-type]
                            wake=asyncio.Event(), build_projection=lambda c: object())  # type: ignore[arg-type]
    supervisor.state, supervisor.why = state, why
    supervisor.serving = None if serving_digest is None else SimpleNamespace(digest=serving_digest)  # type: ignore[assignment]
    return supervisor


async def test_freshness_carries_the_code_and_values_beside_the_english_reason() -> None:
    fresh = await _supervisor(Pool(), "running", None, serving_digest=BUILT).freshness()
    assert (fresh.state, fresh.serve, fresh.reason) == ("rebuilding", True, "the frameworks changed: rebuilding the projection from the log")
    assert fresh.json() == {"state": "rebuilding", "reason": fresh.reason, "reason_code": "frameworks_changed",
                            "reason_values": {}, "position": 10, "log_head": 10, "age_s": 0.0}

    starting = await _supervisor(Pool(position=4, head=10), "starting", None, serving_digest=None).freshness()
    assert (starting.state, starting.reason, starting.json()["reason_code"]) == ("starting", "starting", "starting")

    current = await _supervisor(Pool(), "running", None).freshness()
    assert current.json()["reason"] is None and current.json()["reason_code"] is None
    assert current.json()["reason_values"] == {}

    failed = Reason.of("runner_failed", error_kind="ValueError", error="ValueError('x')")
    supervisor = _supervisor(Pool(), "stopped", failed)
    stopped = await supervisor.freshness()
    assert stopped.json()["reason_values"] == {"error_kind": "ValueError", "error": "ValueError('x')"}
    # what the console's Operations page shows of the runner in this process
    assert supervisor.reason_json() == {"reason": "the runner failed: ValueError('x')", "reason_code": "runner_failed",
                                        "reason_values": {"error_kind": "ValueError", "error": "ValueError('x')"}}


def test_behind_gives_the_events_and_the_age_in_seconds() -> None:
    behind = positional_freshness(None, 40, 52, 95.4, 30.0)  # type: ignore[arg-type]
    assert behind.state == "behind" and behind.why == Reason("behind", {"events": 12, "age_s": 95})
    assert behind.reason == "the projection is 12 events behind the log, the oldest stored 95 s ago"
    assert positional_freshness(None, 40, 52, 20.0, 30.0).why is None  # type: ignore[arg-type]


async def test_built_with_other_rules_seen_from_a_process_that_does_not_run_it() -> None:
    pool = Pool(built={"rule_version": 3, "catalog_digest": BUILT})
    fresh = await checked_freshness(pool, SimpleNamespace(digest=RUNS), 30.0)  # type: ignore[arg-type]
    from projections.competency.store import CompetencyProjection

    rules = CompetencyProjection.rule_version
    assert fresh.state == "outdated" and fresh.why == Reason("built_with_other", {**OUTDATED, "rules": rules})
    assert fresh.reason == (f"it was built with rule version 3 and frameworks bbbbbbbbbbbb; these are {rules} and "
                            "cccccccccccc: run `lrs replay competency`")


def test_the_outdated_error_keeps_its_sentence_and_carries_its_values() -> None:
    exc = ProjectionOutdated(OUTDATED)
    assert str(exc) == f"{FOUND}: run `lrs replay competency`" and exc.found == FOUND
    assert exc.values == OUTDATED


def test_a_reason_refuses_an_unknown_code_or_missing_values() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Reason.of("later")
    with pytest.raises(KeyError):
        Reason.of("behind", events=1)
    assert Reason.of("frameworks_unreadable", error="no such file").text == (
        "the competency frameworks cannot be read: no such file")
    assert len(REASON_CODES) == len(set(REASON_CODES)) == 14


def test_the_openapi_document_lists_every_code_and_value() -> None:
    import json
    from pathlib import Path

    document = json.loads((Path(__file__).parents[2] / "schemas" / "openapi.json").read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    assert schemas["ProjectionReasonCode"]["enum"] == [*REASON_CODES, None]
    from tests.unit.test_console_projection_reasons import VALUES

    documented = set(schemas["ProjectionReasonValues"]["properties"])
    assert {name for values in VALUES.values() for name in values} == documented
