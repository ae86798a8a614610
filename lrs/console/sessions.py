"""Console sessions in PostgreSQL (``console_sessions``, 0040): all of their SQL.

A session is a random token in the browser's cookie; the table keeps its
SHA-256, the credential it signed in with and the CSRF token of its forms.
Being in PostgreSQL, a session works in every HTTP worker process.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

INSERT_SESSION = """
INSERT INTO console_sessions (token_hash, credential_key, csrf_token, expires_at, oidc_claims)
VALUES ($1, $2, $3, $4, $5::jsonb)
"""
SELECT_SESSION = """
SELECT credential_key, csrf_token, expires_at, oidc_claims::text AS oidc_claims FROM console_sessions
WHERE token_hash = $1 AND expires_at > $2
"""
DELETE_SESSION = "DELETE FROM console_sessions WHERE token_hash = $1"
DELETE_EXPIRED = "DELETE FROM console_sessions WHERE expires_at <= $1"


@dataclass(frozen=True, slots=True)
class Session:
    credential_key: str
    csrf_token: str
    expires_at: datetime
    # Signed in through the OIDC issuer: the ID token's verified claims, mapped
    # to a credential on every request as a bearer token's are (None: an LRS credential).
    oidc_claims: dict[str, Any] | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def open_session(
    pool: asyncpg.Pool, credential_key: str, *, now: datetime, ttl_s: float,
    oidc_claims: dict[str, Any] | None = None,
) -> tuple[str, Session]:
    """A new session for ``credential_key``: (the cookie's token, the session)."""
    token = secrets.token_urlsafe(32)
    session = Session(credential_key, secrets.token_urlsafe(32), now + timedelta(seconds=ttl_s), oidc_claims)
    claims = None if oidc_claims is None else json.dumps(oidc_claims)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(DELETE_EXPIRED, now)
        await conn.execute(
            INSERT_SESSION, _digest(token), credential_key, session.csrf_token, session.expires_at, claims
        )
    return token, session


async def find_session(pool: asyncpg.Pool, token: str, *, now: datetime) -> Session | None:
    row = await pool.fetchrow(SELECT_SESSION, _digest(token), now)
    if row is None:
        return None
    claims = None if row["oidc_claims"] is None else json.loads(row["oidc_claims"])
    return Session(row["credential_key"], row["csrf_token"], row["expires_at"], claims)


async def close_session(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute(DELETE_SESSION, _digest(token))


# -- sign-in attempts through the OIDC issuer (lrs.console.oidc_signin) ----------------

INSERT_ATTEMPT = """
INSERT INTO console_oidc_attempts (state_hash, nonce, code_verifier, next_path, expires_at) VALUES ($1, $2, $3, $4, $5)
"""
DELETE_EXPIRED_ATTEMPTS = "DELETE FROM console_oidc_attempts WHERE expires_at <= $1"
TAKE_ATTEMPT = """
DELETE FROM console_oidc_attempts WHERE state_hash = $1 RETURNING nonce, code_verifier, next_path, expires_at
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    nonce: str
    code_verifier: str
    next_path: str


async def open_attempt(
    pool: asyncpg.Pool, state: str, *, nonce: str, code_verifier: str, next_path: str, now: datetime, ttl_s: float
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(DELETE_EXPIRED_ATTEMPTS, now)
        await conn.execute(INSERT_ATTEMPT, _digest(state), nonce, code_verifier, next_path, now + timedelta(seconds=ttl_s))


async def take_attempt(pool: asyncpg.Pool, state: str, *, now: datetime) -> Attempt | None:
    """The attempt of ``state``, removed (a state is used once); None when unknown or expired."""
    row = await pool.fetchrow(TAKE_ATTEMPT, _digest(state))
    if row is None or row["expires_at"] <= now:
        return None
    return Attempt(row["nonce"], row["code_verifier"], row["next_path"])
