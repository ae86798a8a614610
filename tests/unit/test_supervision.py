"""The restart policy of lrs.runtime.supervision, on a stand-in server (no processes)."""

from __future__ import annotations

import asyncio

from lrs.runtime.supervision import RESTARTING, RUNNING, Supervisor


class FlakyServer:
    """Dies when told; its next ``fail`` starts raise, then it starts."""

    def __init__(self, fail: int = 0) -> None:
        self.pid: int | None = 100
        self.fail = fail
        self.attempts: list[float] = []

    async def start(self) -> str:
        self.attempts.append(asyncio.get_running_loop().time())
        if self.fail:
            self.fail -= 1
            raise RuntimeError("nats-server exited with 1 during start:\nmore lines")
        self.pid = 100 + len(self.attempts)
        return "url"


async def _until(condition, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)


async def test_a_dead_server_is_started_again_and_reported_meanwhile() -> None:
    server = FlakyServer()
    supervisor = Supervisor("nats", server, poll_s=0.01, first_backoff_s=0.05)
    supervisor.start()
    try:
        await asyncio.sleep(0.05)
        assert (supervisor.state, server.attempts) == (RUNNING, [])  # alive: left alone
        server.pid = None
        await _until(lambda: supervisor.state == RESTARTING)
        await _until(lambda: supervisor.state == RUNNING)
        assert (server.pid, supervisor.restarts, len(server.attempts)) == (101, 1, 1)
    finally:
        await supervisor.stop()


async def test_failed_restarts_are_retried_with_a_doubling_backoff() -> None:
    server = FlakyServer(fail=3)
    supervisor = Supervisor("postgres", server, poll_s=0.01, first_backoff_s=0.04, max_backoff_s=0.1)
    supervisor.start()
    try:
        server.pid = None
        await _until(lambda: supervisor.restarts == 1)
        assert len(server.attempts) == 4 and supervisor.state == RUNNING
        gaps = [b - a for a, b in zip(server.attempts, server.attempts[1:])]
        assert gaps[0] >= 0.08 - 0.005 and gaps[1] >= 0.1 - 0.005 and gaps[2] >= 0.1 - 0.005  # 0.08, capped at 0.1
    finally:
        await supervisor.stop()


async def test_stopped_supervision_leaves_a_dead_server_dead() -> None:
    server = FlakyServer()
    supervisor = Supervisor("nats", server, poll_s=0.01, first_backoff_s=0.01)
    supervisor.start()
    await supervisor.stop()
    server.pid = None
    await asyncio.sleep(0.1)
    assert server.attempts == []
