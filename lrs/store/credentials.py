"""The credentials table: keys, secret hashes (never secrets), tenant and scopes.

Every change to a credential (revocation, bootstrap overwrite) also sends
``NOTIFY lrs_credentials, '<key>'`` in the same statement: PostgreSQL
delivers it when the change commits, and every process of the service drops
the key from its cache of verified secrets (:mod:`lrs.store.credential_changes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import asyncpg

from lrs.auth import Credential

COLUMNS = "key, secret_hash, tenant, scopes, name, created_at, revoked_at"
INSERT_CREDENTIAL = f"""
INSERT INTO credentials (key, secret_hash, tenant, scopes, name)
VALUES ($1, $2, $3, $4, $5)
RETURNING {COLUMNS}
"""
CHANGES_CHANNEL = "lrs_credentials"
# Bootstrap: make sure the credential exists as configured (and is not revoked).
UPSERT_CREDENTIAL = f"""
WITH upserted AS (
    INSERT INTO credentials (key, secret_hash, tenant, scopes, name)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (key) DO UPDATE SET
        secret_hash = EXCLUDED.secret_hash,
        tenant = EXCLUDED.tenant,
        scopes = EXCLUDED.scopes,
        name = EXCLUDED.name,
        revoked_at = NULL
    RETURNING {COLUMNS}
)
SELECT upserted.*, pg_notify('{CHANGES_CHANNEL}', upserted.key) FROM upserted
"""
SELECT_CREDENTIAL = f"SELECT {COLUMNS} FROM credentials WHERE key = $1"
SELECT_CREDENTIALS = f"SELECT {COLUMNS} FROM credentials ORDER BY created_at, key"
SELECT_TENANT_CREDENTIALS = f"SELECT {COLUMNS} FROM credentials WHERE tenant = $1 ORDER BY created_at, key"
REVOKE_CREDENTIAL = f"""
WITH revoked AS (
    UPDATE credentials SET revoked_at = now() WHERE key = $1 AND revoked_at IS NULL RETURNING key
)
SELECT pg_notify('{CHANGES_CHANNEL}', key) FROM revoked
"""

Pool = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    key: str
    secret_hash: str
    tenant: str
    scopes: tuple[str, ...]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def credential(self) -> Credential:
        return Credential(key=self.key, tenant=self.tenant, scopes=frozenset(self.scopes), name=self.name)


def _record(row: asyncpg.Record) -> CredentialRecord:
    return CredentialRecord(
        row["key"], row["secret_hash"], row["tenant"], tuple(row["scopes"]),
        row["name"], row["created_at"], row["revoked_at"],
    )


async def insert_credential(
    pool: Pool, *, key: str, secret_hash: str, tenant: str,
    scopes: Sequence[str], name: str | None = None,
) -> CredentialRecord:
    """Add a new credential; a key that exists raises asyncpg.UniqueViolationError."""
    row = await pool.fetchrow(INSERT_CREDENTIAL, key, secret_hash, tenant, list(scopes), name)
    return _record(row)


async def ensure_credential(
    pool: Pool, *, key: str, secret_hash: str, tenant: str,
    scopes: Sequence[str], name: str | None = None,
) -> CredentialRecord:
    """Create or overwrite ``key`` with these values (and un-revoke it)."""
    row = await pool.fetchrow(UPSERT_CREDENTIAL, key, secret_hash, tenant, list(scopes), name)
    return _record(row)


async def fetch_credential(pool: Pool, key: str) -> CredentialRecord | None:
    """The credential with ``key``, revoked or not; None if there is none."""
    row = await pool.fetchrow(SELECT_CREDENTIAL, key)
    return None if row is None else _record(row)


async def list_credentials(pool: Pool, tenant: str | None = None) -> list[CredentialRecord]:
    if tenant is None:
        rows = await pool.fetch(SELECT_CREDENTIALS)
    else:
        rows = await pool.fetch(SELECT_TENANT_CREDENTIALS, tenant)
    return [_record(row) for row in rows]


async def revoke_credential(pool: Pool, key: str) -> bool:
    """Mark ``key`` revoked; False if it does not exist or already was."""
    rows = await pool.fetch(REVOKE_CREDENTIAL, key)
    return len(rows) == 1
