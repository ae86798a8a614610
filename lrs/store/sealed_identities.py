"""The ciphertexts of v4 and v3 sealed identities: the ``sealed_identities``
table (migration 0073, docs/privacy.md "The sealed form").

A v3 sealed Statement names an identity by a reference, the first 16 bytes
of the SHA-256 of its ciphertext (:func:`lrs.privacy.sealed_text.seal_reference`);
a v4 one by a short tag that, with the form's pseudonym and generation,
names the row (:func:`lrs.privacy.sealed_text.short_row`).  The ciphertext is kept
once here, by that reference or row.  New ciphertexts travel
with the append request that names them (:class:`lrs.batching.AppendRequest`)
and the Statement writer inserts them in the statement of the group commit
that appends those Statements (:mod:`lrs.store.writer`): no Statement is
committed without its ciphertexts.  A ciphertext whose Statements were then
refused stays, harmless: it opens nothing without its key, and an erasure
destroys that.

Rows are immutable (named by their content, or by the identity and the
content's tag), so a process keeps those it read.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import asyncpg

__all__ = ["INSERT_CIPHERTEXTS", "SELECT_CIPHERTEXTS", "StoredCiphertexts", "ciphertext_columns", "insert_ciphertexts"]


def insert_ciphertexts(refs: str = "$1", ciphertexts: str = "$2") -> str:
    """The insert of new ciphertexts, given as two parameters (references,
    ciphertexts) in reference order (:func:`ciphertext_columns`): concurrent
    inserts of the same rows then wait for each other instead of
    deadlocking.  The Statement writer runs it as a part of its group's
    statement with its own parameter numbers (lrs.store.group_commit_sql.INSERT_GROUP)."""
    return (
        "INSERT INTO sealed_identities (ref, ciphertext)\n"
        f"SELECT r, c FROM unnest({refs}::bytea[], {ciphertexts}::bytea[]) AS u(r, c)\n"
        "ON CONFLICT DO NOTHING"
    )


# Alone: for a group that appends nothing new.
INSERT_CIPHERTEXTS = insert_ciphertexts()
SELECT_CIPHERTEXTS = "SELECT ref, ciphertext FROM sealed_identities WHERE ref = ANY($1::bytea[])"


def ciphertext_columns(batches: Iterable[Mapping[bytes, bytes]]) -> tuple[list[bytes], list[bytes]]:
    """The references and ciphertexts of ``batches`` as two arrays, each
    reference once, in reference order."""
    merged: dict[bytes, bytes] = {}
    for batch in batches:
        merged.update(batch)
    refs = sorted(merged)
    return refs, [merged[ref] for ref in refs]


class StoredCiphertexts:
    """Ciphertexts read from ``sealed_identities``, kept (bounded) by reference."""

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection, *, capacity: int = 100_000) -> None:
        self._pool = pool
        self._capacity = max(capacity, 1)
        self._known: dict[bytes, bytes] = {}

    async def read(self, references: Iterable[bytes]) -> dict[bytes, bytes]:
        """The stored ciphertext of each reference found."""
        found: dict[bytes, bytes] = {}
        missing: list[bytes] = []
        for ref in references:
            known = self._known.get(ref)
            if known is None:
                missing.append(ref)
            else:
                found[ref] = known
        if missing:
            if len(self._known) + len(missing) > self._capacity:
                self._known.clear()
            for row in await self._pool.fetch(SELECT_CIPHERTEXTS, missing):
                found[row["ref"]] = self._known[row["ref"]] = row["ciphertext"]
        return found
