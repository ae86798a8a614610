"""The key statement: the live keys of the identities a process has not
cached, read, and for new ones made, in one statement shared by the
requests that need keys within a short wait, as the group commit gathers
Statements (:data:`lrs.store.learner_key_sql.LOAD_OR_CREATE`), on a
connection that is not reset after each
(:func:`lrs.store.pool.create_statement_pool`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Iterable

from lrs.privacy.data_key import SealKey, new_data_key_cipher
from lrs.store.learner_key_cache import LearnerKeyCache
from lrs.store.learner_key_sql import INSERT_KEYS, LOAD_OR_CREATE, SELECT_CURRENT, SELECT_LIVE
from lrs.store.unconfirmed_keys import identity_key as _id

__all__ = ["KeyStatement"]


class KeyStatement(LearnerKeyCache):
    """The keys for writing: the cached ones, and the others read or made."""

    async def keys_for_writing(self, tenant: str, idents: Iterable[str]) -> dict[str, SealKey]:
        """The live key of each identity, made when it has none."""
        return (await self._keys_noted(tenant, idents))[0]

    async def _keys_noted(
        self, tenant: str, idents: Iterable[str]
    ) -> tuple[dict[str, SealKey], dict[str, tuple[int, bytes]], float]:
        """:meth:`keys_for_writing`, with those of the keys not known to be
        on disk ((generation, wrapped) by pseudonym) and their earliest
        stamp, as :meth:`UnconfirmedKeys.of` answers: taken from the notes
        before any wait, and from the key statement's answer for the keys
        it read or made -- while a request waits for that answer, their
        notes may be dropped to make room or all forgotten (the listening
        connection lost, as when PostgreSQL crashes)."""
        found: dict[str, SealKey] = {}
        missing: dict[str, str] = {}  # pseudonym -> identifier
        for ident in idents:
            pseudonym = self.pseudonym(tenant, ident)
            key = self._current.get(_id(tenant, pseudonym)) if self.trust_cache else None
            if key is not None:
                found[ident] = key
            else:
                missing[pseudonym] = ident
        unconfirmed, since = self._unconfirmed.of(tenant, [(key.pseudonym, key.generation) for key in found.values()])
        if missing:
            keys, loaded, loaded_since = await self._load(tenant, list(missing))
            for key in keys:
                found[missing[key.pseudonym]] = key
            unconfirmed.update(loaded)
            since = min(since, loaded_since)
        return found, unconfirmed, since

    async def _load(
        self, tenant: str, pseudonyms: list[str]
    ) -> tuple[list[SealKey], dict[str, tuple[int, bytes]], float]:
        """:meth:`_load_or_create` shared by the requests that wait at the
        same moment: one statement for all of them, as group commit does.
        With the keys: those of them not known to be on disk (all), and their stamp."""
        futures = []
        rest = pseudonyms
        loading = self._loading.get(tenant)
        # Only a statement sent since the cache last forgot anything: one sent
        # before may answer with a key erased since, and a request that began
        # after the erasure was heard is sealed at the new key epoch, which
        # the writer does not check again.
        if loading is not None and loading[2] == self._version:
            rest = [p for p in pseudonyms if p not in loading[0]]
            if len(rest) < len(pseudonyms):
                futures.append(loading[1])
        if rest:
            waiting = self._next.get(tenant)
            if waiting is None:
                waiting = self._next[tenant] = (set(), asyncio.get_running_loop().create_future())
            waiting[0].update(rest)
            futures.append(waiting[1])
            if tenant not in self._loaders:
                self._loaders[tenant] = asyncio.create_task(self._load_waiting(tenant))
        # A caller that goes away does not cancel what others wait for.
        await asyncio.wait(futures)
        keys, noted, stamp = futures[0].result()
        if len(futures) == 2:
            more, more_noted, more_stamp = futures[1].result()
            keys, noted, stamp = {**keys, **more}, {**noted, **more_noted}, min(stamp, more_stamp)
        try:
            return [keys[p] for p in pseudonyms], {p: noted[p] for p in pseudonyms}, stamp
        except KeyError as exc:
            raise LookupError(f"no key was read or made for {exc}") from None

    async def _load_waiting(self, tenant: str) -> None:
        try:
            if self._wait:
                await asyncio.sleep(self._wait)
            while tenant in self._next:
                batch = self._next.pop(tenant)
                self._loading[tenant] = (*batch, self._version)
                try:
                    keys, noted, stamp = await self._load_or_create(tenant, list(batch[0]))
                except BaseException as exc:
                    batch[1].set_exception(exc)
                    batch[1].exception()  # retrieved: a waiter that went away leaves no warning
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                else:
                    batch[1].set_result(({key.pseudonym: key for key in keys}, noted, stamp))
                finally:
                    del self._loading[tenant]
        finally:
            del self._loaders[tenant]
            waiting = self._next.pop(tenant, None)  # left only when cancelled while gathering
            if waiting is not None:
                waiting[1].cancel()

    async def _load_or_create(
        self, tenant: str, pseudonyms: list[str]
    ) -> tuple[list[SealKey], dict[str, tuple[int, bytes]], float]:
        """The live keys of ``pseudonyms``, made for those without one; with
        each one's (generation, wrapped) and the stamp they are noted with
        (none is known to be on disk: :mod:`lrs.store.unconfirmed_keys`)."""
        # One order for every process: two that make the same learners' keys
        # at once insert the rows in the same order, so neither waits on a
        # row the other inserted after one it waits for (no deadlock).
        pseudonyms = sorted(pseudonyms)
        version = self._version
        data_keys = [secrets.token_bytes(32) for _ in pseudonyms]
        wrapped = [self._master.wrap(k, tenant, p, 1) for k, p in zip(data_keys, pseudonyms)]
        mine = {p: (w, k) for p, w, k in zip(pseudonyms, wrapped, data_keys)}
        keys: dict[str, SealKey] = {}
        noted: dict[str, tuple[int, bytes]] = {}
        made = 0
        stamp = time.monotonic()  # before: the keys it makes or reads are committed after
        for row in await self._key_pool.fetch(LOAD_OR_CREATE, tenant, pseudonyms, wrapped):
            pseudonym, generation, stored = row["pseudonym"], row["generation"], row["wrapped"]
            own = mine[pseudonym]
            if generation == 1 and stored == own[0]:  # made now: no need to unwrap
                cipher = new_data_key_cipher(own[1])
                made += 1
            else:
                cipher = self._cipher(stored, tenant, pseudonym, generation)
            keys[pseudonym] = self._remember(tenant, pseudonym, generation, cipher, version, stored, stamp)
            noted[pseudonym] = (generation, stored)
        self._learned(len(pseudonyms) - made, made)
        absent = [p for p in pseudonyms if p not in keys]
        if absent:  # erased before, or made by another process meanwhile
            for key in await self._load_or_create_after_erasure(tenant, absent, version, noted):
                keys[key.pseudonym] = key
        return list(keys.values()), noted, stamp

    async def _load_or_create_after_erasure(
        self, tenant: str, pseudonyms: list[str], version: int, noted: dict[str, tuple[int, bytes]]
    ) -> list[SealKey]:
        stamp = time.monotonic()
        rows = await self._key_pool.fetch(SELECT_CURRENT, tenant, pseudonyms)
        keys: list[SealKey] = []
        known = {}
        for row in rows:
            known[row["pseudonym"]] = row["generation"]
            if row["wrapped"] is not None:
                cipher = self._cipher(row["wrapped"], tenant, row["pseudonym"], row["generation"])
                keys.append(self._remember(tenant, row["pseudonym"], row["generation"], cipher, version,
                                           row["wrapped"], stamp))
                noted[row["pseudonym"]] = (row["generation"], row["wrapped"])
        absent = [p for p in pseudonyms if p not in known or all(k.pseudonym != p for k in keys)]
        if absent:
            generations = [known.get(p, 0) + 1 for p in absent]
            wrapped = [
                self._master.wrap(secrets.token_bytes(32), tenant, p, g) for p, g in zip(absent, generations)
            ]
            await self._key_pool.fetch(INSERT_KEYS, tenant, absent, generations, wrapped)
            # Ours, or the one a concurrent writer made first.
            for row in await self._key_pool.fetch(SELECT_LIVE, tenant, absent):
                cipher = self._cipher(row["wrapped"], tenant, row["pseudonym"], row["generation"])
                keys.append(self._remember(tenant, row["pseudonym"], row["generation"], cipher, version,
                                           row["wrapped"], stamp))
                noted[row["pseudonym"]] = (row["generation"], row["wrapped"])
        return keys
