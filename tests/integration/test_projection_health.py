"""lrs.projection_health: each state from what PostgreSQL and this process's runners say."""

from __future__ import annotations

import asyncpg

from lrs import projection_health
from lrs.store import StatementWriter
from tests.integration.test_anchors import write


async def states(pool: asyncpg.Pool, **kwargs: float) -> dict[str, tuple[str, int, int]]:
    return {h.name: (h.state, h.lag, h.parked) for h in await projection_health.read_health(pool, **kwargs)}


async def test_running_stopped_outdated_stalled_and_elsewhere(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    projection_health.forget_runners()
    await write(writer, 4)
    for name, position in (("up", 4), ("down", 4), ("old", 4), ("slow", 1), ("other", 4)):
        await pool.execute(
            "INSERT INTO projection_checkpoints (name, position, rule_version, catalog_digest) VALUES ($1, $2, 1, 'x')",
            name, position,
        )
    await pool.execute("UPDATE projection_checkpoints SET updated_at = now() - interval '1 hour' WHERE name = 'slow'")
    await pool.execute(
        "INSERT INTO projection_parked (name, position, tenant, attempts, error) VALUES ('up', 2, 'default', 5, 'e')"
    )
    projection_health.runner_started("up")
    projection_health.runner_started("down")
    projection_health.runner_stopped("down", "RuntimeError('gone')")
    projection_health.runner_started("old")
    projection_health.runner_outdated("old", "run `lrs replay old`")
    projection_health.runner_started("slow")
    projection_health.note_refused("up", "hash_mismatch")
    assert await states(pool) == {
        "up": ("running", 0, 1), "down": ("stopped", 0, 0), "old": ("outdated", 0, 0),
        "slow": ("stalled", 3, 0), "other": ("elsewhere", 0, 0),
    }
    [up] = [h for h in await projection_health.read_health(pool) if h.name == "up"]
    assert up.refused == 1 and up.ok
    [down] = [h for h in await projection_health.read_health(pool) if h.name == "down"]
    assert down.last_error == "RuntimeError('gone')" and not down.ok
    # A projection a little behind is not stalled until its checkpoint has stood still long enough.
    assert (await states(pool, stall_after_s=7200))["slow"] == ("running", 3, 0)
    projection_health.forget_runners()
