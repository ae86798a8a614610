"""Credentials, server secrets and checkpoints in PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lrs.store.checkpoints import get_checkpoint, set_checkpoint
from lrs.store.credentials import (
    ensure_credential,
    fetch_credential,
    insert_credential,
    list_credentials,
    revoke_credential,
)
from lrs.store.secrets import get_or_create


async def test_credentials_round_trip(pool: asyncpg.Pool) -> None:
    created = await insert_credential(pool, key="k1", secret_hash="h1", tenant="t", scopes=["all"], name="n")
    assert created.active and created.scopes == ("all",)
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_credential(pool, key="k1", secret_hash="h2", tenant="t", scopes=["all"])
    fetched = await fetch_credential(pool, "k1")
    assert fetched == created
    assert fetched.credential().allows("statements/write")
    assert await fetch_credential(pool, "nope") is None
    assert await revoke_credential(pool, "k1")
    assert not await revoke_credential(pool, "k1")
    assert not (await fetch_credential(pool, "k1")).active  # type: ignore[union-attr]
    # Bootstrap makes the configured credential exist, active, as given.
    ensured = await ensure_credential(pool, key="k1", secret_hash="h9", tenant="default",
                                      scopes=["statements/read"])
    assert ensured.active and ensured.secret_hash == "h9" and ensured.tenant == "default"
    assert [c.key for c in await list_credentials(pool, "default")] == ["k1"]
    assert await list_credentials(pool, "t") == []


async def test_secret_is_created_once_even_under_a_race(pool: asyncpg.Pool) -> None:
    values = await asyncio.gather(*(get_or_create(pool, "cursor-key", 32) for _ in range(8)))
    assert len(set(values)) == 1 and len(values[0]) == 32
    assert await get_or_create(pool, "cursor-key", 32) == values[0]
    assert await get_or_create(pool, "other", 16) != values[0]


async def test_checkpoints(pool: asyncpg.Pool) -> None:
    assert await get_checkpoint(pool, "relay") == 0
    await set_checkpoint(pool, "relay", 42)
    await set_checkpoint(pool, "relay", 43)
    assert await get_checkpoint(pool, "relay") == 43
    assert await get_checkpoint(pool, "other") == 0
