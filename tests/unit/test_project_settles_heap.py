"""``lrs project`` settles its heap before it applies, as the HTTP workers and
the relay do: its start-up objects (some 57,000) are frozen, so the
collector stops walking them at every full collection (docs/scaling.md,
"branch proj-gc", and "branch lag3": in a running `lrs project` the
reading made them walk it often)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import pytest

import lrs.commands.common
import lrs.runtime.embedded
import lrs.store.migrations
import lrs.store.pool
import projections.runner
from projections.cli import _run_projection
from projections.competency.catalog import load_catalog


async def test_lrs_project_settles_its_heap_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    settled: list[bool] = []
    settled_when_running: list[list[bool]] = []

    @contextlib.asynccontextmanager
    async def services(settings: object) -> AsyncIterator[tuple[str, str]]:
        yield "postgresql://unused", "nats://unused"

    class Pool:
        async def close(self) -> None:
            pass

    async def create_pool(*args: object, **kwargs: object) -> Pool:
        return Pool()

    async def apply_migrations(*args: object, **kwargs: object) -> None:
        pass

    class Runner:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        async def run(self, *args: object, **kwargs: object) -> None:
            settled_when_running.append(list(settled))

    # settle_heap itself (freeze, thresholds) is tested in test_settle_heap.py;
    # here it is only counted, so this test process's heap is left alone
    monkeypatch.setattr(lrs.commands.common, "settle_heap", lambda: settled.append(True))
    monkeypatch.setattr(lrs.runtime.embedded, "embedded_services", services)
    monkeypatch.setattr(lrs.store.pool, "create_pool", create_pool)
    monkeypatch.setattr(lrs.store.migrations, "apply_migrations", apply_migrations)
    monkeypatch.setattr(projections.runner, "ProjectionRunner", Runner)
    args = argparse.Namespace(migrations=(), max_attempts=1, batch_size=100, batch_interval=0.0, max_batch_size=1000)

    settings = argparse.Namespace(competency_state_cache_size=10)
    assert await _run_projection(settings, load_catalog(), args) == 0
    assert settled_when_running == [[True]]

