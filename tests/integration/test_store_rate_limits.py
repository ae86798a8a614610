"""The shared token buckets in PostgreSQL, and credential change notifications."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from lrs.store.credential_changes import credential_changes
from lrs.store.credentials import ensure_credential, insert_credential, revoke_credential
from lrs.store.rate_limits import take_lease


async def test_a_new_bucket_starts_full_and_leases_never_exceed_it(pool: asyncpg.Pool) -> None:
    first = await take_lease(pool, "k", rate=0.001, burst=10, want=4)
    assert first.granted == 4 and first.tokens_left == 6
    # Many concurrent leases (as from many processes) share the 6 left, no more.
    leases = await asyncio.gather(*(take_lease(pool, "k", rate=0.001, burst=10, want=1) for _ in range(20)))
    assert sum(lease.granted for lease in leases) == 6
    empty = await take_lease(pool, "k", rate=0.001, burst=10, want=1)
    assert empty.granted == 0 and empty.tokens_left < 1
    assert (await take_lease(pool, "other", rate=0.001, burst=10, want=1)).granted == 1


async def test_buckets_refill_at_the_rate_up_to_the_burst(pool: asyncpg.Pool) -> None:
    assert (await take_lease(pool, "k", rate=50, burst=5, want=5)).granted == 5
    started = time.monotonic()
    await asyncio.sleep(0.1)
    refilled = await take_lease(pool, "k", rate=50, burst=5, want=5)
    elapsed = time.monotonic() - started
    assert 4 <= refilled.granted <= 5 and refilled.granted <= 50 * elapsed + 1
    await asyncio.sleep(1.0)  # 50 tokens' worth of time, capped at the burst
    assert (await take_lease(pool, "k", rate=50, burst=5, want=100)).granted == 5


async def test_changes_and_revocations_are_heard_by_listeners(pool: asyncpg.Pool, database_url: str) -> None:
    heard: list[str] = []
    events: list[str] = []
    async with credential_changes(
        database_url, on_change=heard.append, on_lost=lambda: events.append("lost"),
        on_listening=lambda: events.append("listening"),
    ):
        assert events == ["lost", "listening"]
        await insert_credential(pool, key="k1", secret_hash="h", tenant="t", scopes=["all"])
        await ensure_credential(pool, key="k2", secret_hash="h", tenant="t", scopes=["all"])
        assert await revoke_credential(pool, "k1")
        assert not await revoke_credential(pool, "k1")  # already revoked: no second notice
        await _until(lambda: len(heard) >= 2)
        await asyncio.sleep(0.05)  # room for a wrong third notice to arrive
        assert heard == ["k2", "k1"]
        # The listener's connection is cut: the caller hears it is lost, then listening again.
        await pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lrs-credentials'"
        )
        await _until(lambda: events[-1] == "listening" and len(events) > 2)
        assert events[2:] == ["lost", "listening"]


async def _until(condition, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    """Poll ``condition`` every 10 ms; the bound only ends a failing test (a
    notice or a reconnect takes milliseconds, a loaded machine more than 1 s)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)
