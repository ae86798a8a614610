"""Opening stored Statements: the ciphers of the keys they are sealed under
(cached ones only once the key epoch shows no erasure the cache has not heard
of), the v3 ciphertexts they name, and the sealed forms opened before."""

from __future__ import annotations

from typing import Any, Iterable

import msgspec

from lrs.privacy import opening, seal, statement_agents
from lrs.privacy.data_key import DataKey
from lrs.store.learner_key_cache import LearnerKeyCache, OpenedForm, cipher_id, drop_oldest_half, opened_id
from lrs.store.learner_key_sql import SELECT_GENERATIONS, SELECT_KEY_EPOCH

__all__ = ["KeyOpening"]


class KeyOpening(LearnerKeyCache):
    """Opens Statements of any tenant with the keys of the identities they name."""

    async def ciphers_for_reading(self, tenant: str, refs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        """(pseudonym, generation) -> cipher, or None for an erased key.
        Cached ciphers are used only after the database's key epoch shows
        no erasure the cache has not heard of."""
        found: dict[tuple[str, int], Any] = {}
        missing: list[tuple[str, int]] = []
        for pseudonym, generation in refs:
            cached, cipher = self._ciphers.get(cipher_id(tenant, pseudonym, generation)) if self.trust_cache \
                else (False, None)
            if cached:
                found[(pseudonym, generation)] = cipher
            else:
                missing.append((pseudonym, generation))
        if found:
            epoch = self.epoch
            latest = await self._pool.fetchval(SELECT_KEY_EPOCH)
            if latest != epoch:
                self.catch_up(latest)
                missing += list(found)
                found = {}
        if missing:
            version = self._version
            rows = await self._pool.fetch(
                SELECT_GENERATIONS, tenant, [p for p, _ in missing], [g for _, g in missing]
            )
            for row in rows:
                pseudonym, generation, wrapped = row["pseudonym"], row["generation"], row["wrapped"]
                cipher = None if wrapped is None else self._cipher(wrapped, tenant, pseudonym, generation)
                if version == self._version:
                    self._keep_cipher(cipher_id(tenant, pseudonym, generation), cipher)
                found[(pseudonym, generation)] = cipher
        # One cipher object per identity for the whole read (a cached key
        # keeps only its bytes: DataKey).
        return {ref: None if c is None else c.cipher() if isinstance(c, DataKey) else c
                for ref, c in found.items()}

    async def _ciphertexts_of(self, references: set[bytes]) -> dict[bytes, bytes]:
        """The stored ciphertexts of v3 sealed identities, by reference."""
        return await self._ciphertexts.read(references)

    async def open_payloads(self, tenant: str, payloads: list[bytes]) -> list[bytes]:
        """Stored Statements with their identities opened (erased ones in
        the erased form); payloads without sealed identities unchanged.

        A sealed form opened before is taken from :attr:`_opened` (by its
        sorted JSON) when every key it is sealed under is live for this read
        (:meth:`ciphers_for_reading`, which checks the key epoch): a page of
        100 Statements of known learners is not decrypted, decoded and
        parsed again (about 1.5 ms of a page's 2.3).  The cache is emptied
        by every erasure heard of, as the sealing forms are (:meth:`forget`)."""
        decoded: dict[int, dict[str, Any]] = {}
        for index, payload in enumerate(payloads):
            if opening.is_sealed_payload(payload):
                decoded[index] = seal.decode(payload)
        if not decoded:
            return payloads
        version = self._version
        before = self._opened
        # each distinct sealed form of the page: (its refs, its v3/v4 rows, its opened JSON or None)
        forms: dict[bytes, tuple[tuple[tuple[str, int], ...], tuple[bytes, ...], bytes | None]] = {}
        own_of: dict[int, bytes] = {}  # id of each Agent of the decoded Statements -> its form's JSON
        refs: set[tuple[str, int]] = set()
        references: set[bytes] = set()
        for statement in decoded.values():
            for agent in statement_agents.stored_agents(statement):
                own = own_of[id(agent)] = seal.encode(agent)
                if own in forms:
                    continue
                kept = before.get(opened_id(tenant, own))
                known = forms[own] = (kept.refs, (), kept.opened) if kept is not None else self._form_refs(agent)
                refs.update(known[0])
                if known[2] is None:
                    references.update(known[1])
        ciphers = await self.ciphers_for_reading(tenant, refs)
        erased_in_part = [own for own, (agent_refs, _, opened) in forms.items()
                          if opened is not None and not all(ciphers.get(ref) is not None for ref in agent_refs)]
        if erased_in_part:
            # A kept form (a Group) one of whose keys is gone, by an erasure
            # not heard of (the key read from the database): its live
            # members need the ciphertexts its kept entry did not read.
            for own in erased_in_part:
                self._opened.pop(opened_id(tenant, own), None)
            return await self._open_anew(tenant, payloads, decoded)
        ciphertexts = await self._ciphertexts_of(references) if references else {}
        if self._version != version:
            # An erasure was heard meanwhile: nothing opened before is used.
            return await self._open_anew(tenant, payloads, decoded)
        cache = self._opened

        def open_(agent: dict[str, Any]) -> Any:
            own = own_of[id(agent)]
            agent_refs, rows, opened = forms[own]
            if not all(ciphers.get(ref) is not None for ref in agent_refs):
                return opening.open_agent(agent, ciphers, tenant, ciphertexts)  # erased (in part)
            if opened is None:
                # its JSON as the Statement's encoding writes it (sorted), spliced in as it is
                opened = seal.encode(opening.open_agent(agent, ciphers, tenant, ciphertexts))
                forms[own] = (agent_refs, rows, opened)
                if all(row in ciphertexts for row in rows):  # opened whole: kept for the next reads
                    if len(cache) >= max(self._capacity // 4, 1):
                        drop_oldest_half(cache)
                    cache[opened_id(tenant, own)] = OpenedForm(agent_refs, opened)
            return msgspec.Raw(opened)

        opened_payloads = list(payloads)
        for index, statement in decoded.items():
            opened_payloads[index] = seal.encode(opening.open_statement_by(statement, open_))
        return opened_payloads

    @staticmethod
    def _form_refs(
        agent: dict[str, Any],
    ) -> tuple[tuple[tuple[str, int], ...], tuple[bytes, ...], bytes | None]:
        one = {"actor": agent}
        return tuple(opening.sealed_refs(one)), tuple(opening.stored_references(one)), None

    async def _open_anew(self, tenant: str, payloads: list[bytes], decoded: dict[int, dict[str, Any]]) -> list[bytes]:
        """:meth:`open_payloads` without the forms opened before."""
        refs: set[tuple[str, int]] = set()
        references: set[bytes] = set()
        for statement in decoded.values():
            refs |= opening.sealed_refs(statement)
            references |= opening.stored_references(statement)
        ciphers = await self.ciphers_for_reading(tenant, refs)
        ciphertexts = await self._ciphertexts_of(references) if references else {}
        opened = list(payloads)
        for index, statement in decoded.items():
            opened[index] = seal.encode(opening.open_statement(statement, ciphers, tenant, ciphertexts))
        return opened

    async def open_statements(self, tenant: str, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`open_payloads` for decoded Statements."""
        refs: set[tuple[str, int]] = set()
        references: set[bytes] = set()
        for statement in statements:
            refs |= opening.sealed_refs(statement)
            references |= opening.stored_references(statement)
        if not refs:
            return statements
        ciphers = await self.ciphers_for_reading(tenant, refs)
        ciphertexts = await self._ciphertexts_of(references) if references else {}
        return [opening.open_statement(s, ciphers, tenant, ciphertexts) for s in statements]
