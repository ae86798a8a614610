"""Failed authentications counted in PostgreSQL for every process."""

from __future__ import annotations

import asyncio

import asyncpg

from lrs.store.auth_failures import admit, name_digest, prune, withdraw

KEY = name_digest("key", "k")
ADDRESS = name_digest("address", "192.0.2.1")


async def test_concurrent_attempts_never_pass_the_limit(pool: asyncpg.Pool) -> None:
    admissions = await asyncio.gather(*(admit(pool, {KEY: 5}, window_s=60) for _ in range(20)))
    assert sum(KEY in a.counted for a in admissions) == 5
    refused = [a.refused[KEY] for a in admissions if KEY in a.refused]
    assert len(refused) == 15 and all(0 < wait <= 60 for wait in refused)
    assert (await admit(pool, {name_digest("key", "other"): 5}, window_s=60)).counted  # names are separate


async def test_key_and_address_are_counted_in_one_statement_each_with_its_limit(pool: asyncpg.Pool) -> None:
    for _ in range(2):
        admission = await admit(pool, {KEY: 2, ADDRESS: 10}, window_s=60)
        assert set(admission.counted) == {KEY, ADDRESS} and not admission.refused
    admission = await admit(pool, {KEY: 2, ADDRESS: 10}, window_s=60)
    assert set(admission.refused) == {KEY} and set(admission.counted) == {ADDRESS}
    count = await pool.fetchval("SELECT failures FROM auth_failures WHERE name = $1", ADDRESS)
    assert count == 3


async def test_a_withdrawn_attempt_frees_its_place(pool: asyncpg.Pool) -> None:
    first = await admit(pool, {KEY: 1}, window_s=60)
    assert (await admit(pool, {KEY: 1}, window_s=60)).refused
    await withdraw(pool, first.counted)
    assert KEY in (await admit(pool, {KEY: 1}, window_s=60)).counted


async def test_a_new_window_starts_after_the_old_one_ends_and_ended_ones_are_pruned(pool: asyncpg.Pool) -> None:
    assert (await admit(pool, {KEY: 1}, window_s=0.2)).counted
    # Within its window (asked with a long one, so a slow round trip cannot end it first): refused.
    assert (await admit(pool, {KEY: 1}, window_s=60)).refused
    await asyncio.sleep(0.25)
    assert (await admit(pool, {KEY: 1}, window_s=0.2)).counted
    await asyncio.sleep(0.25)
    assert await prune(pool, window_s=0.2) == 1
    assert await pool.fetchval("SELECT count(*) FROM auth_failures") == 0


async def test_any_key_text_is_a_name(pool: asyncpg.Pool) -> None:
    # Names are digests: a key of any length or with a NUL byte is counted, never stored in clear.
    for text in ("x" * 100_000, "a\0b"):
        assert (await admit(pool, {name_digest("key", text): 3}, window_s=60)).counted
    stored = await pool.fetch("SELECT name FROM auth_failures")
    assert all(len(row["name"]) == 32 for row in stored)
