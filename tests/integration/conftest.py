"""Fixtures shared by the integration tests: a migrated pool and a running writer."""

from __future__ import annotations

from typing import AsyncIterator

import asyncpg
import pytest

from lrs.store import StatementWriter, create_pool
from lrs.service import migrate


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's fresh database, with every migration applied."""
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def writer(pool: asyncpg.Pool) -> AsyncIterator[StatementWriter]:
    """The group-commit writer on ``pool`` (1 ms gathering wait)."""
    writer = StatementWriter(pool, wait_ms=1.0)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()
