"""lrs.store.unconfirmed_keys.session_known_since of a pooled connection whose
backend went away: asyncpg hands such a connection back to its pool at once
and its lease then has no session under it.  The writer asks this of the
group's connection after its BEGIN (or none, on a kept connection), so a
PostgreSQL crash in between must end in what the next statement on it
raises (InterfaceError: the storage unavailable, a 503), not a TypeError
(a 500)."""

from __future__ import annotations

import asyncio
import math

import asyncpg

from lrs.store.availability import storage_unavailable
from lrs.store.kept_connection import alive
from lrs.store.unconfirmed_keys import session_known_since


async def test_a_lease_whose_session_ended_is_known_since_no_moment(pool: asyncpg.Pool) -> None:
    conn = await pool.acquire()
    try:
        assert session_known_since(conn) < math.inf
        pid = conn.get_server_pid()
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(500):
            if not alive(conn):
                break
            await asyncio.sleep(0.01)
        assert not alive(conn), "the terminated session's lease was not released: nothing tested"
        # Unknown: every key not known to be on disk is proposed again (and that statement fails as unavailable).
        assert session_known_since(conn) == math.inf
        try:
            await conn.fetch("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - which one is what is checked
            assert storage_unavailable(exc), repr(exc)
        else:
            raise AssertionError("a released lease answered")
    finally:
        await pool.release(conn)
