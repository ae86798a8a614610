"""The group-commit writer's tests run on their own migrated pool of at most
four connections, and the writer on it gathers for 1 ms."""

from __future__ import annotations

from typing import AsyncIterator

import asyncpg
import pytest

from lrs.store import StatementWriter, create_pool
from lrs.service import migrate


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await migrate(database_url)
    return database_url


@pytest.fixture
async def pool(migrated_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(migrated_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def writer(pool: asyncpg.Pool) -> AsyncIterator[StatementWriter]:
    writer = StatementWriter(pool, wait_ms=1.0)
    await writer.start()
    yield writer
    await writer.close()
