"""Console sessions in PostgreSQL (``console_sessions``, 0040): all of their SQL.

A session is a random token in the browser's cookie; the table keeps its
SHA-256, the credential it signed in with and the CSRF token of its forms.
Being in PostgreSQL, a session works in every HTTP worker process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

INSERT_SESSION = """
INSERT INTO console_sessions (token_hash, credential_key, csrf_token, expires_at)
VALUES ($1, $2, $3, $4)
"""
SELECT_SESSION = """
SELECT credential_key, csrf_token, expires_at FROM console_sessions WHERE token_hash = $1 AND expires_at > $2
"""
DELETE_SESSION = "DELETE FROM console_sessions WHERE token_hash = $1"
DELETE_EXPIRED = "DELETE FROM console_sessions WHERE expires_at <= $1"


@dataclass(frozen=True, slots=True)
class Session:
    credential_key: str
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def open_session(pool: asyncpg.Pool, credential_key: str, *, now: datetime, ttl_s: float) -> tuple[str, Session]:
    """A new session for ``credential_key``: (the cookie's token, the session)."""
    token = secrets.token_urlsafe(32)
    session = Session(credential_key, secrets.token_urlsafe(32), now + timedelta(seconds=ttl_s))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(DELETE_EXPIRED, now)
        await conn.execute(INSERT_SESSION, _digest(token), credential_key, session.csrf_token, session.expires_at)
    return token, session


async def find_session(pool: asyncpg.Pool, token: str, *, now: datetime) -> Session | None:
    row = await pool.fetchrow(SELECT_SESSION, _digest(token), now)
    return None if row is None else Session(row["credential_key"], row["csrf_token"], row["expires_at"])


async def close_session(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute(DELETE_SESSION, _digest(token))
