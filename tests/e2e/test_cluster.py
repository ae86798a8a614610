"""The deployment's topology on one machine: a three-node NATS JetStream
cluster, one PostgreSQL and two ``lrs serve`` replicas sharing them.

Statements are POSTed to both replicas (a request that cannot reach one goes
to the other, as the reverse proxy does).  Meanwhile the NATS member leading
the event stream is killed, then the replica that leads the relay and the
projection (SIGKILL: its PostgreSQL sessions, and with them its advisory
locks, end with it).  A history checker then holds the run to the design:

* every acknowledged statement is in the log exactly once and on the stream
  exactly once; positions are gapless and the hash chain verifies;
* the surviving replica took over the relay and the projection, and the
  projection's digest equals a replay's from the log;
* ingest never stopped longer than the failover budget (FAILOVER_BUDGET_S,
  docs/scaling.md): the longest gap between two successful POSTs, and the
  relay's takeover.  Both are wall times: each is allowed, beyond the budget,
  the time the machine stalled two references in the same window (a process
  committing to the same PostgreSQL, a ticker in the load generator's loop:
  tests/e2e/machine_stall.py; a stall of both at once counted once, and at
  most the budget itself), so that a machine loaded beyond the test's own
  work does not fail it, and a failover slow by itself still does.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from lrs.nats.bus import Bus, load_stream_config
from lrs.eventlog import verify_chain
from lrs.relay import DEFAULT_NAME as RELAY_NAME
from lrs.store import leader_lock
from tests.conftest import keep_every_message
from tests.e2e.conftest import xapi_headers
from tests.e2e.jetstream import STREAM, wait_for_stream
from tests.e2e.machine_stall import MachineStall, within_budget
from tests.e2e.nats_cluster import NatsCluster
from tests.e2e.test_competency_audit import digest_of, lrs
from tests.e2e.test_durability import _assert_exactly_once, _log_rows
from tests.integration.competency_statements import COMPLETED, FAILED, MODULES, PASSED, course_statement, voiding

pytestmark = pytest.mark.slow

FAILOVER_BUDGET_S = 5.0
# A JetStream API request a loaded cluster dropped (its group electing) is asked again for this long.
STREAM_PATIENCE_S = 60.0
RELAY_LOCK = leader_lock.lock_key(f"relay:{RELAY_NAME}")
PROJECTION_LOCK = leader_lock.lock_key("projection:competency")


class Load:
    """Writers POSTing batches round-robin to the replicas; a batch whose
    replica cannot be reached is sent to the next one (the same statement
    ids: a repeat of a committed statement changes nothing)."""

    def __init__(self, bases: list[str], seed: int = 12) -> None:
        self.bases = bases
        self.rng = random.Random(seed)
        self.acked: list[str] = []
        self.course_ids: list[str] = []  # acknowledged, not voided: targets for voidings
        self.ok_times: list[float] = []
        self.refusals: list[str] = []
        self.stop = asyncio.Event()
        self._turn = 0

    def batch(self) -> list[dict[str, Any]]:
        body = []
        for _ in range(10):
            module, verb = self.rng.choice(MODULES + [("troubleshooting", FAILED), ("searching", COMPLETED)])
            score = self.rng.choice([0.55, 0.8, 0.95]) if verb in (PASSED, FAILED) else 0.9
            body.append(course_statement(self.rng.randrange(300), module, verb, self.rng.randrange(20_000), score))
        if self.course_ids and self.rng.random() < 0.1:
            body.append(voiding(self.course_ids.pop(self.rng.randrange(len(self.course_ids)))))
        return body

    async def writer(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while not self.stop.is_set():
                body = self.batch()
                self._turn += 1
                # Well past the budget: the gap check below judges, this only ends a hopeless run.
                give_up = time.monotonic() + 4 * FAILOVER_BUDGET_S
                attempt = 0
                while True:
                    base = self.bases[(self._turn + attempt) % len(self.bases)]
                    attempt += 1
                    try:
                        async with session.post(f"{base}/xapi/statements", json=body, headers=xapi_headers()) as r:
                            if r.status == 200:
                                assert await r.json() == [s["id"] for s in body]
                                break
                            self.refusals.append(f"{r.status}: {(await r.text())[:200]}")
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        self.refusals.append(type(exc).__name__)
                    if time.monotonic() > give_up:
                        raise AssertionError(f"no replica took a batch; last refusals {self.refusals[-3:]}")
                    await asyncio.sleep(0.02)
                self.ok_times.append(time.monotonic())
                self.acked.extend(s["id"] for s in body)
                self.course_ids.extend(s["id"] for s in body if s["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided")

    def longest_gap(self) -> tuple[float, float]:
        """The (start, end) of the longest gap between two successful POSTs."""
        return max(zip(self.ok_times, self.ok_times[1:]), key=lambda pair: pair[1] - pair[0])


async def lock_holders(database_url: str) -> dict[int, int]:
    """Advisory lock key -> backend pid holding it."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT classid::bigint AS hi, objid::bigint AS lo, pid FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    held = {}
    for row in rows:
        unsigned = (row["hi"] << 32) | row["lo"]
        held[unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned] = row["pid"]
    return held


async def eventually(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"{what} after {timeout}s"
        await asyncio.sleep(0.1)


async def ready(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/ready") as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def projection_position(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'competency'") or 0
    finally:
        await conn.close()


async def test_two_replicas_on_a_nats_cluster_survive_losing_a_nats_member_and_the_leader(
    database_url: str, service_factory: Any, tmp_path: Path
) -> None:
    async with NatsCluster(tmp_path / "nats") as cluster:
        replicas = [
            service_factory(cluster.service_url, LRS_NATS_STREAM_REPLICAS="3", LRS_PROJECTIONS_ENABLED="true",
                            LRS_DATA_DIR=str(tmp_path / f"replica-{n}"),
                            # One privacy key for both, as a deployment mounts one secret.
                            LRS_PRIVACY_KEY_FILE=str(tmp_path / "privacy-key"))
            for n in range(2)
        ]
        leader, follower = replicas
        await leader.start()
        await keep_every_message(",".join(cluster.urls), replicas=3)  # as admin; for the exactly-once check
        # The first replica takes both leaderships before the second one starts.
        await eventually(lambda: _holds_both(database_url), "the first replica did not take the relay and projection locks")
        await follower.start()
        async with aiohttp.ClientSession() as session:
            assert (await ready(session, leader.base_url))["checks"]["relay"]["leader"] is True
            assert (await ready(session, follower.base_url))["checks"]["relay"]["leader"] is False

            load = Load([leader.base_url, follower.base_url])
            async with MachineStall(database_url, tmp_path / "stall") as stall:
                writers = [asyncio.create_task(load.writer()) for _ in range(6)]
                await eventually(lambda: _at_least(load, 1500), "too few statements acknowledged before the faults")

                assert await cluster.stream_replicas(STREAM) == 3
                stream_leader = await cluster.stream_leader(STREAM)
                cluster.kill(stream_leader)
                nats_killed_at = time.monotonic()
                await eventually(lambda: _stream_led_by_another(cluster, stream_leader), "no new stream leader", 30)
                stream_takeover_s = time.monotonic() - nats_killed_at
                acked_before_kill = len(load.acked)
                await eventually(lambda: _at_least(load, acked_before_kill + 1000), "ingest stalled after the NATS kill")

                holders_before = await lock_holders(database_url)
                leader.kill()
                killed_at = time.monotonic()
                await leader.wait()

                async def follower_leads() -> bool:
                    return (await ready(session, follower.base_url))["checks"]["relay"]["leader"] is True

                await eventually(follower_leads, "the surviving replica did not take over the relay", 30)
                relay_takeover_s = time.monotonic() - killed_at
                await eventually(lambda: _holds_both(database_url, other_than=holders_before),
                                 "the projection lock was not taken over", 30)
                acked_at_kill = len(load.acked)
                await eventually(lambda: _at_least(load, acked_at_kill + 1000), "ingest stalled after the replica kill")
                load.stop.set()
                await asyncio.gather(*writers)

        rows = await _log_rows(database_url)
        assert [row.position for row in rows] == list(range(1, len(rows) + 1))  # gapless
        assert verify_chain(rows) is None
        streamed = await wait_for_stream(cluster.urls, len(rows))
        _assert_exactly_once(load.acked, rows, streamed)
        await eventually(lambda: _projected_through(database_url, len(rows)), "the projection did not catch up")
        await follower.stop()

    live, position = await digest_of(database_url)
    assert position == len(rows)
    code, output = await lrs(database_url, "replay", "competency")
    assert code == 0, output
    assert output.strip().splitlines()[-1] == f"replayed competency through position {position}; digest {live}"

    gap_from, gap_to = load.longest_gap()
    gap = gap_to - gap_from
    gap_stall = stall.within(gap_from, gap_to)
    takeover_stall = stall.within(killed_at, killed_at + relay_takeover_s)
    print(f"\ncluster run: {len(load.acked)} statements acknowledged, {len(rows)} events; longest gap between "
          f"successful POSTs {gap:.2f}s (machine stalled {gap_stall:.2f}s within it); stream leader re-elected "
          f"{stream_takeover_s:.2f}s after the NATS kill; relay taken over {relay_takeover_s:.2f}s after the kill "
          f"(machine stalled {takeover_stall:.2f}s); "
          f"{len(load.refusals)} attempts refused or failed ({sorted(set(load.refusals))[:5]})")
    assert within_budget(gap, FAILOVER_BUDGET_S, gap_stall)
    assert within_budget(relay_takeover_s, FAILOVER_BUDGET_S, takeover_stall)


async def _holds_both(database_url: str, other_than: dict[int, int] | None = None) -> bool:
    """Both leaderships are held (by other sessions than in ``other_than``)."""
    held = await lock_holders(database_url)
    before = other_than or {}
    return all(key in held and held[key] != before.get(key) for key in (RELAY_LOCK, PROJECTION_LOCK))


async def _at_least(load: Load, count: int) -> bool:
    return len(load.acked) >= count


async def _stream_led_by_another(cluster: NatsCluster, old: str) -> bool:
    try:
        return await cluster.stream_leader(STREAM, patience_s=0) != old  # polled: no waiting inside
    except Exception:  # noqa: BLE001 - no leader yet
        return False


async def _projected_through(database_url: str, head: int) -> bool:
    return await projection_position(database_url) >= head


async def test_the_stream_is_scaled_to_the_configured_replicas(tmp_path: Path) -> None:
    """A stream made on one member's worth of replicas (an upgrade from a
    single nats-server) is updated to LRS_NATS_STREAM_REPLICAS copies."""
    async with NatsCluster(tmp_path / "nats") as cluster:
        single = Bus(cluster.service_url, stream_config=load_stream_config(replicas=1))
        await single.connect()
        try:
            info = await single.ensure_stream(patience_s=STREAM_PATIENCE_S)
            assert info.config.num_replicas == 1 and not (info.cluster and info.cluster.replicas)
        finally:
            await single.close()
        # Changing the stream is the admin's (lrs relay --apply-stream); the service user may only create it.
        clustered = Bus(",".join(cluster.urls), stream_config=load_stream_config(replicas=3))
        await clustered.connect()
        try:
            info = await clustered.ensure_stream(patience_s=STREAM_PATIENCE_S)
            assert info.config.num_replicas == 3
            assert await cluster.stream_replicas(STREAM) == 3
            assert (await clustered.ensure_stream(patience_s=STREAM_PATIENCE_S)).config.num_replicas == 3  # and left alone after
        finally:
            await clustered.close()


async def test_a_cluster_that_cannot_elect_a_meta_leader_fails_its_start_and_says_why(tmp_path: Path) -> None:
    """One member of three: no quorum, never a meta leader; the start fails at
    its bound (plus what the machine stalled it) and names what it saw."""
    cluster = NatsCluster(tmp_path / "nats")
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(TimeoutError, match=r"nats-1 not ready after .*nats-1: routes to none, meta leader none of 3"):
            await cluster.start(timeout=3.0, only={"nats-1"})
        failed_after = asyncio.get_running_loop().time() - started
    finally:
        await cluster.stop()
    assert failed_after < 30, "the bound is 3 s plus at most 3 s of stall"

