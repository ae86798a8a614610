"""The data keys of sealed identities: the ``learner_keys`` table and an
in-process cache (docs/privacy.md).

:class:`LearnerKeys` seals Statements before they are appended and opens
stored ones for reading.  Data keys are cached (bounded, least recently
used first out) unwrapped; an erasure in any process sends
``NOTIFY lrs_learner_keys, '<tenant> <pseudonym>'`` and every process drops
that identity's keys (:meth:`LearnerKeys.forget`).  While the listening
connection is down the cache is not used (:attr:`LearnerKeys.trust_cache`).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any, Iterable

import asyncpg

from lrs.privacy import seal
from lrs.privacy.master import MasterKey

__all__ = ["CHANGES_CHANNEL", "LearnerKeys"]

CHANGES_CHANNEL = "lrs_learner_keys"

SELECT_CURRENT = """
SELECT pseudonym, max(generation) AS generation,
       (array_agg(wrapped) FILTER (WHERE wrapped IS NOT NULL))[1] AS wrapped
FROM learner_keys WHERE tenant = $1 AND pseudonym = ANY($2::text[])
GROUP BY pseudonym
"""
INSERT_KEYS = """
INSERT INTO learner_keys (tenant, pseudonym, generation, wrapped)
SELECT $1, p, g, w FROM unnest($2::text[], $3::int[], $4::bytea[]) AS u(p, g, w)
ON CONFLICT DO NOTHING
RETURNING pseudonym
"""
SELECT_LIVE = """
SELECT pseudonym, generation, wrapped FROM learner_keys
WHERE tenant = $1 AND pseudonym = ANY($2::text[]) AND wrapped IS NOT NULL
"""
SELECT_GENERATIONS = """
SELECT k.pseudonym, k.generation, k.wrapped
FROM unnest($2::text[], $3::int[]) AS u(p, g)
JOIN learner_keys k ON k.tenant = $1 AND k.pseudonym = u.p AND k.generation = u.g
"""
# Destroys every generation's key of one identity; the caller's transaction
# also appends the erasure event.
ERASE_KEYS = f"""
WITH erased AS (
    UPDATE learner_keys SET wrapped = NULL, erased_at = now()
    WHERE tenant = $1 AND pseudonym = $2 AND wrapped IS NOT NULL
    RETURNING generation
)
SELECT array_agg(generation ORDER BY generation) AS generations,
       pg_notify('{CHANGES_CHANNEL}', $1 || ' ' || $2)
FROM erased
"""
SELECT_ANY_KEY = "SELECT 1 FROM learner_keys WHERE tenant = $1 AND pseudonym = $2 LIMIT 1"

Pool = asyncpg.Pool | asyncpg.Connection


class _Entry:
    __slots__ = ("current", "by_generation")

    def __init__(self) -> None:
        self.current: seal.SealKey | None = None
        self.by_generation: dict[int, Any] = {}  # generation -> cipher, or None once erased


class _CachedKeys(dict):
    """Identifier -> cached live key; a KeyError for one not cached."""

    def __init__(self, owner: "LearnerKeys", tenant: str) -> None:
        super().__init__()
        self._owner = owner
        self._tenant = tenant

    def __missing__(self, ident: str) -> seal.SealKey:
        entry = self._owner._entries.get((self._tenant, self._owner.pseudonym(self._tenant, ident)))
        if entry is None or entry.current is None:
            raise KeyError(ident)
        self[ident] = entry.current
        return entry.current


class LearnerKeys:
    """Seals and opens Statements of any tenant with the keys of the
    identities they name."""

    def __init__(self, pool: Pool, master: MasterKey, *, capacity: int = 100_000) -> None:
        self._pool = pool
        self._master = master
        self._capacity = max(capacity, 1)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._pseudonyms: dict[tuple[str, str], str] = {}
        self._sealed: dict[tuple[str, str, int, bytes], str] = {}
        self.trust_cache = True

    # -- pseudonyms ---------------------------------------------------------

    def pseudonym(self, tenant: str, ident: str) -> str:
        cache_key = (tenant, ident)
        found = self._pseudonyms.get(cache_key)
        if found is None:
            found = seal.pseudonym(self._master.pseudonym_key, tenant, ident)
            if len(self._pseudonyms) >= self._capacity:
                self._pseudonyms.clear()
            self._pseudonyms[cache_key] = found
        return found

    def pseudonym_key(self, tenant: str, ident: str) -> str:
        """The IFI key filters and projections know this identity by."""
        return f"account:{seal.PSEUDONYM_HOME}|{self.pseudonym(tenant, ident)}"

    def pseudonymous(self, tenant: str, agent: dict[str, Any]) -> dict[str, Any]:
        """``agent`` as filters see it once sealed (:func:`lrs.privacy.seal.pseudonymous`)."""
        return seal.pseudonymous(agent, lambda ident: self.pseudonym(tenant, ident))

    # -- cache --------------------------------------------------------------

    def forget(self, tenant: str, pseudonym: str) -> None:
        """Drop one identity's keys (it was erased somewhere)."""
        entry = self._entries.pop((tenant, pseudonym), None)
        if entry is not None:
            self._sealed = {k: v for k, v in self._sealed.items() if not (k[0] == tenant and k[1] == pseudonym)}

    def forget_all(self) -> None:
        self._entries.clear()
        self._sealed.clear()

    def heard(self, payload: str) -> None:
        """A change notification: ``'<tenant> <pseudonym>'``."""
        tenant, _, pseudonym = payload.rpartition(" ")
        self.forget(tenant, pseudonym)

    def _entry(self, tenant: str, pseudonym: str) -> _Entry:
        cache_key = (tenant, pseudonym)
        entry = self._entries.get(cache_key)
        if entry is None:
            entry = self._entries[cache_key] = _Entry()
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(cache_key)
        return entry

    def _cipher(self, wrapped: bytes, tenant: str, pseudonym: str, generation: int) -> Any:
        return seal.new_data_key_cipher(self._master.unwrap(wrapped, tenant, pseudonym, generation))

    # -- keys ---------------------------------------------------------------

    async def keys_for_writing(self, tenant: str, idents: Iterable[str]) -> dict[str, seal.SealKey]:
        """The live key of each identity, made when it has none."""
        found: dict[str, seal.SealKey] = {}
        missing: dict[str, str] = {}  # pseudonym -> identifier
        for ident in idents:
            pseudonym = self.pseudonym(tenant, ident)
            entry = self._entries.get((tenant, pseudonym)) if self.trust_cache else None
            if entry is not None and entry.current is not None:
                found[ident] = entry.current
            else:
                missing[pseudonym] = ident
        if missing:
            for key in await self._load_or_create(tenant, list(missing)):
                found[missing[key.pseudonym]] = key
        return found

    async def _load_or_create(self, tenant: str, pseudonyms: list[str]) -> list[seal.SealKey]:
        rows = await self._pool.fetch(SELECT_CURRENT, tenant, pseudonyms)
        keys: list[seal.SealKey] = []
        known = {}
        for row in rows:
            known[row["pseudonym"]] = row["generation"]
            if row["wrapped"] is not None:
                keys.append(self._remember(tenant, row["pseudonym"], row["generation"], row["wrapped"]))
        absent = [p for p in pseudonyms if p not in known or all(k.pseudonym != p for k in keys)]
        if absent:
            generations = [known.get(p, 0) + 1 for p in absent]
            wrapped = [
                self._master.wrap(secrets.token_bytes(32), tenant, p, g) for p, g in zip(absent, generations)
            ]
            await self._pool.fetch(INSERT_KEYS, tenant, absent, generations, wrapped)
            # Ours, or the one a concurrent writer made first.
            for row in await self._pool.fetch(SELECT_LIVE, tenant, absent):
                keys.append(self._remember(tenant, row["pseudonym"], row["generation"], row["wrapped"]))
        return keys

    def _remember(self, tenant: str, pseudonym: str, generation: int, wrapped: bytes) -> seal.SealKey:
        cipher = self._cipher(wrapped, tenant, pseudonym, generation)
        key = seal.SealKey(pseudonym, generation, cipher)
        entry = self._entry(tenant, pseudonym)
        entry.current = key
        entry.by_generation[generation] = cipher
        return key

    async def ciphers_for_reading(self, tenant: str, refs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        """(pseudonym, generation) -> cipher, or None for an erased key."""
        found: dict[tuple[str, int], Any] = {}
        missing: list[tuple[str, int]] = []
        for pseudonym, generation in refs:
            entry = self._entries.get((tenant, pseudonym)) if self.trust_cache else None
            if entry is not None and generation in entry.by_generation:
                found[(pseudonym, generation)] = entry.by_generation[generation]
            else:
                missing.append((pseudonym, generation))
        if missing:
            rows = await self._pool.fetch(
                SELECT_GENERATIONS, tenant, [p for p, _ in missing], [g for _, g in missing]
            )
            for row in rows:
                pseudonym, generation, wrapped = row["pseudonym"], row["generation"], row["wrapped"]
                cipher = None if wrapped is None else self._cipher(wrapped, tenant, pseudonym, generation)
                self._entry(tenant, pseudonym).by_generation[generation] = cipher
                found[(pseudonym, generation)] = cipher
        return found

    # -- statements ---------------------------------------------------------

    def _seal_text(self, tenant: str, key: seal.SealKey, plaintext: bytes) -> str:
        cache_key = (tenant, key.pseudonym, key.generation, plaintext)
        text = self._sealed.get(cache_key)
        if text is None:
            text = seal.seal_bytes(key, tenant, plaintext)
            if len(self._sealed) >= self._capacity:
                self._sealed.clear()
            self._sealed[cache_key] = text
        return text

    async def seal_statements(
        self, tenant: str, statements: list[dict[str, Any]], authority: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The Statements and the authority with every identity sealed."""

        def seal_text(key: seal.SealKey, plaintext: bytes) -> str:
            return self._seal_text(tenant, key, plaintext)

        def sealed_with(keys: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            def sealer(agent: dict[str, Any]) -> dict[str, Any]:
                return seal.seal_agent(agent, keys, seal_text)

            return [seal.seal_statement(s, sealer) for s in statements], sealer(authority)

        if self.trust_cache:
            # The common case: every identity's key is cached; one pass.
            try:
                return sealed_with(_CachedKeys(self, tenant))
            except KeyError:
                pass
        idents = seal.identities({"actor": authority})
        for statement in statements:
            idents |= seal.identities(statement)
        return sealed_with(await self.keys_for_writing(tenant, idents))

    async def open_payloads(self, tenant: str, payloads: list[bytes]) -> list[bytes]:
        """Stored Statements with their identities opened (erased ones in
        the erased form); payloads without sealed identities unchanged."""
        decoded: dict[int, dict[str, Any]] = {}
        refs: set[tuple[str, int]] = set()
        for index, payload in enumerate(payloads):
            if seal.is_sealed_payload(payload):
                statement = decoded[index] = seal.decode(payload)
                refs |= seal.sealed_refs(statement)
        if not decoded:
            return payloads
        ciphers = await self.ciphers_for_reading(tenant, refs)
        opened = list(payloads)
        for index, statement in decoded.items():
            opened[index] = seal.encode(seal.open_statement(statement, ciphers, tenant))
        return opened

    async def open_statements(self, tenant: str, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`open_payloads` for decoded Statements."""
        refs: set[tuple[str, int]] = set()
        for statement in statements:
            refs |= seal.sealed_refs(statement)
        if not refs:
            return statements
        ciphers = await self.ciphers_for_reading(tenant, refs)
        return [seal.open_statement(s, ciphers, tenant) for s in statements]
