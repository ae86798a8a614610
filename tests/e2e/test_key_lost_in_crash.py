"""A learner key lost in a PostgreSQL crash (docs/privacy.md "A key lost in a
crash (branch keys-crash)"), through the in-process service on a PostgreSQL
of the test's own that it crashes.

The key statement (LOAD_OR_CREATE) commits without waiting for its WAL
flush.  A request sealed under a key it made -- or under a key another
worker announced -- before a crash, and appended after the restart, must not
commit a Statement whose key the crash lost: the group proposes the key
again.  The loss is made certain, not left to timing: the WAL writer is
stopped (SIGSTOP) before the key is made, so its commit record stays in
PostgreSQL's shared memory, and every PostgreSQL process is killed at once;
each test checks that the key row really is gone after the restart.  An
erased key is never brought back by the proposal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY

from lrs.http import keys
from lrs.runtime.postgres import EmbeddedPostgres
from lrs.service import migrate
from lrs.store.writer import StatementWriter
from tests.e2e.conftest import app_client, xapi_headers
from tests.e2e.statements import new_id, statement
from tests.e2e.test_erasure_api import add_eraser, as_eraser

# No other process writes the WAL out meanwhile: no autovacuum, the
# background writer writes no dirty page (which flushes the WAL up to it
# first), and the services run no projection (its commits would flush it).
_SETTINGS = {"shared_buffers": "32MB", "max_connections": "60", "autovacuum": "off", "bgwriter_lru_maxpages": "0"}


@pytest.fixture
async def crashable() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own (a short path: its socket, and so its URL, survives a restart)."""
    root = Path(tempfile.mkdtemp(prefix="lrs-kc-", dir="/tmp"))
    server = EmbeddedPostgres(root / "pg", settings=_SETTINGS)
    await server.start()
    try:
        await migrate(server.url)
        yield server
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _processes(server: EmbeddedPostgres) -> list[int]:
    """The postmaster and its children."""
    assert server.pid is not None
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == server.pid:
                    children.append(int(entry))
    return [server.pid, *children]


async def _hold_the_wal_writer(url: str) -> None:
    """Stop the WAL writer: an asynchronous commit then stays in shared memory (until a synchronous one)."""
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
        await conn.execute("CHECKPOINT")  # everything before is on disk
    finally:
        await conn.close()
    os.kill(pid, signal.SIGSTOP)


async def _crash_and_restart(server: EmbeddedPostgres) -> None:
    """Every PostgreSQL process stopped at once, then killed (none writes
    anything on its way out), and the server started again: crash recovery."""
    pids = await _processes(server)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    await server.stop()
    await server.start()


async def _crash_losing_keys(server: EmbeddedPostgres, kept: int) -> None:
    """:func:`_crash_and_restart`, and the live key rows are ``kept`` again: the keys made since are lost."""
    await _crash_and_restart(server)
    assert await _key_rows(server.url) == kept, "the crash did not lose the keys: nothing tested"


class _Gate:
    """Holds the next request that reaches the writer (armed) until opened:
    a request sealed before the crash and queued across it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed, self.reached, self.opened = False, asyncio.Event(), asyncio.Event()
        original = StatementWriter.append

        async def append(writer: StatementWriter, *args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.armed = False
                self.reached.set()
                await self.opened.wait()
            return await original(writer, *args, **kwargs)

        monkeypatch.setattr(StatementWriter, "append", append)

    async def hold(self, client: Any, body: Any) -> "asyncio.Task[Any]":
        """POST ``body``; returns once the request is held at the writer (the task: its response)."""
        self.armed = True
        task = asyncio.create_task(client.post("/xapi/statements", json=body, headers=xapi_headers()))
        await asyncio.wait_for(self.reached.wait(), 30)
        return task


def _proposed_again() -> float:
    return REGISTRY.get_sample_value("lrs_learner_keys_proposed_again_total") or 0.0


def _service(server: EmbeddedPostgres, tmp_path: Path) -> Any:
    return app_client(server.url, tmp_path, projections_enabled=False)


async def _stored_then_wal_held(client: Any, server: EmbeddedPostgres) -> int:
    """A first Statement stored (its keys, the authority's and a learner's,
    committed with it, on disk), then the WAL writer stopped; the live key rows."""
    first = await client.post("/xapi/statements", json=statement(statement_id=new_id(), learner="before@example.org"),
                              headers=xapi_headers())
    assert first.status == 200, await first.text()
    kept = await _key_rows(server.url)
    await _hold_the_wal_writer(server.url)
    return kept


async def _key_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM learner_keys WHERE wrapped IS NOT NULL")
    finally:
        await conn.close()


async def _statement(client: Any, statement_id: str) -> str:
    response = await client.get("/xapi/statements", params={"statementId": statement_id}, headers=xapi_headers())
    assert response.status == 200, await response.text()
    return await response.text()


async def _until_heard(client: Any, learner: str) -> None:
    keyring = client.server.app[keys.LEARNER_KEYS]
    pseudonym = keyring.pseudonym("default", f"mbox:mailto:{learner}")
    for _ in range(300):
        if keyring.cached("default", pseudonym) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second worker never heard of the key")


async def _ready(client: Any) -> None:
    """The service answers again after the restart (its listener reopened)."""
    for _ in range(200):
        if (await client.get("/ready")).status == 200:
            return
        await asyncio.sleep(0.05)


async def test_a_request_sealed_under_a_key_lost_in_a_crash_is_stored_readable(
    crashable: EmbeddedPostgres, tmp_path: Path, light_secret_hashing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(monkeypatch)
    async with _service(crashable, tmp_path) as client:
        kept = await _stored_then_wal_held(client, crashable)
        # More new learners than a worker makes keys for itself: the key statement makes them.
        learners = [f"lost{n}@example.org" for n in range(6)]
        bodies = [statement(statement_id=new_id(), learner=learner) for learner in learners]
        post = await gate.hold(client, bodies)
        assert await _key_rows(crashable.url) == kept + len(learners)  # committed, not flushed
        await _crash_losing_keys(crashable, kept)
        proposed_before = _proposed_again()
        gate.opened.set()
        response = await asyncio.wait_for(post, 60)
        assert response.status == 200, await response.text()
        assert _proposed_again() >= proposed_before + len(learners)
        await _ready(client)
        for body, learner in zip(bodies, learners):
            # Before the fix: stored under a key no row holds, its actor unreadable.
            assert learner in await _statement(client, body["id"])
        assert await _key_rows(crashable.url) == kept + len(learners)


async def test_a_key_heard_from_another_worker_and_lost_in_a_crash_is_proposed_again(
    crashable: EmbeddedPostgres, tmp_path: Path, light_secret_hashing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(monkeypatch)
    async with _service(crashable, tmp_path) as one, _service(crashable, tmp_path) as two:
        kept = await _stored_then_wal_held(one, crashable)
        learners = [f"heard{n}@example.org" for n in range(6)]
        # The first worker's key statement makes their keys (and announces them); its request is held.
        held = await gate.hold(one, [statement(statement_id=new_id(), learner=x) for x in learners])
        # The second worker hears of the keys and seals a request under one without asking PostgreSQL.
        body = statement(statement_id=new_id(), learner=learners[0])
        await _until_heard(two, learners[0])
        second_gate = _Gate(monkeypatch)
        post = await second_gate.hold(two, body)
        await _crash_losing_keys(crashable, kept)
        second_gate.opened.set()
        response = await asyncio.wait_for(post, 60)
        assert response.status == 200, await response.text()
        await _ready(two)
        # Before the fix: stored under the key the crash lost, its actor unreadable.
        assert learners[0] in await _statement(two, body["id"])
        gate.opened.set()
        assert (await asyncio.wait_for(held, 60)).status == 200


async def test_a_key_erased_before_the_crash_is_not_brought_back(
    crashable: EmbeddedPostgres, tmp_path: Path, light_secret_hashing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(monkeypatch)
    await add_eraser(crashable.url, ["erase"])
    async with _service(crashable, tmp_path) as client:
        learners = [f"gone{n}@example.org" for n in range(6)]
        bodies = [statement(statement_id=new_id(), learner=learner) for learner in learners]
        post = await gate.hold(client, bodies)
        # Her key erased (the erasure commits synchronously: on disk, with the keys made before it)
        # while the request sealed under it waits; then the crash, and the group on a new connection.
        erased = await client.post("/admin/erasures", json={"agent": {"mbox": "mailto:gone0@example.org"},
                                                            "reason": "request 2026-200"}, headers=as_eraser())
        assert erased.status == 200, await erased.text()
        await _crash_and_restart(crashable)
        gate.opened.set()
        response = await asyncio.wait_for(post, 60)
        # Refused in its group and sealed again, as after any erasure the process had not heard of:
        # stored under her next generation.
        assert response.status == 200, await response.text()
        keyring = client.server.app[keys.LEARNER_KEYS]
        pseudonym = keyring.pseudonym("default", "mbox:mailto:gone0@example.org")
        conn = await asyncpg.connect(crashable.url)
        try:
            rows = await conn.fetch("SELECT generation, wrapped IS NULL AS erased FROM learner_keys"
                                    " WHERE pseudonym = $1 ORDER BY generation", pseudonym)
        finally:
            await conn.close()
        assert [(r["generation"], r["erased"]) for r in rows] == [(1, True), (2, False)]
        await _ready(client)
        assert "gone0@example.org" in await _statement(client, bodies[0]["id"])


async def test_a_request_under_a_lost_key_whose_learner_got_another_is_sealed_again(
    crashable: EmbeddedPostgres, tmp_path: Path, light_secret_hashing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(monkeypatch)
    async with _service(crashable, tmp_path) as one, _service(crashable, tmp_path) as two:
        kept = await _stored_then_wal_held(one, crashable)
        learners = [f"again{n}@example.org" for n in range(6)]
        bodies = [statement(statement_id=new_id(), learner=learner) for learner in learners]
        held = await gate.hold(one, bodies)
        await _crash_losing_keys(crashable, kept)
        # After the restart the other worker names her first: her key now is another one.
        await _ready(two)
        later = statement(statement_id=new_id(), learner=learners[0])
        response = await two.post("/xapi/statements", json=later, headers=xapi_headers())
        assert response.status == 200, await response.text()
        gate.opened.set()
        # The held request's key for her is refused (another is live), and it is sealed again under that one.
        response = await asyncio.wait_for(held, 60)
        assert response.status == 200, await response.text()
        await _ready(one)
        for body, learner in zip([*bodies, later], [*learners, learners[0]]):
            assert learner in await _statement(one, body["id"])
        assert await _key_rows(crashable.url) == kept + len(learners)
