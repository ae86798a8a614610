"""Keys heard of: the change notifications on
:data:`lrs.store.learner_key_sql.CHANGES_CHANNEL` (an erasure in any process,
or a key made in one, :data:`lrs.store.learner_key_sql.ANNOUNCE_KEY`), and
the state of the connection that listens for them (docs/privacy.md)."""

from __future__ import annotations

import time

from lrs.store.learner_key_cache import LearnerKeyCache
from lrs.store.unconfirmed_keys import identity_key as _id

__all__ = ["KeyAnnouncements"]


class KeyAnnouncements(LearnerKeyCache):
    """The cache kept by what the listening connection hears."""

    def not_listening(self) -> None:
        """The listening connection is lost (or not open yet): the cache is
        not trusted until the next one listens (then :meth:`forget_all` and
        ``trust_cache``), and the keys that one hears are stamped from now."""
        self.trust_cache = False
        self.forget_all()
        self._listening_since = time.monotonic()

    def listener_alive(self, sent: float) -> None:
        """The listening connection answered a probe sent at ``sent``: its
        session, which was listening before every key it delivered was
        committed, was alive after those delivered before ``sent`` were, so
        no crash came between their commits and ``sent``: that is their
        stamp now (a writer's session opened before it proves the rest),
        not the listening connection's opening, which the writer's sessions
        (opened later) would never prove."""
        while self._heard:
            ident, (heard_at, generation) = next(iter(self._heard.items()))
            if heard_at >= sent:
                break
            del self._heard[ident]
            tenant, _, pseudonym = ident.partition("\x00")
            self._unconfirmed.restamp(tenant, pseudonym, generation, sent)

    def heard(self, payload: str) -> None:
        """A change notification: an erasure, ``'<tenant> <pseudonym> <epoch>'``,
        or a key a group commit made, ``'<tenant> <pseudonym> <generation>:<wrapped, hex>:<epoch>'``
        (:mod:`lrs.store.group_keys`)."""
        rest, _, epoch = payload.rpartition(" ")
        tenant, _, pseudonym = rest.rpartition(" ")
        if ":" in epoch:
            self._heard_made(tenant, pseudonym, epoch)
            return
        self.forget(tenant, pseudonym)
        # Notifications come in commit order, and erasures commit one at a time.
        self.epoch = max(self.epoch, int(epoch))

    def _heard_made(self, tenant: str, pseudonym: str, key: str) -> None:
        """A key committed by a group commit, live then: cached, so that this
        process seals under it.  Heard in commit order with the erasures, so
        an erasure of it after comes after (and a request sealed under it is
        checked against the key epoch as any) -- unless the cache already
        caught up with a later key epoch (:meth:`catch_up`) than the one the
        key was made at: an erasure counted then may have destroyed it, and
        a request sealed at that epoch is not checked again.  Not cached then."""
        parts = key.split(":")
        if len(parts) != 3:  # without the epoch (a process of the build before): not known safe to cache
            return
        generation, wrapped, made_at = int(parts[0]), bytes.fromhex(parts[1]), int(parts[2])
        if made_at < self.epoch:
            made = self._made.get((tenant, pseudonym))
            if made is not None and made[0] == wrapped:
                del self._made[(tenant, pseudonym)]  # committed: no longer this process's to propose
            return
        cached = self._current.get(_id(tenant, pseudonym))
        if cached is not None and cached.generation == generation:
            return
        made = self._made.get((tenant, pseudonym))
        # Announced by a key statement, which commits without waiting for its
        # flush, or by a group: not known to be on disk -- unless it is the
        # key made here, which only a group commits (synchronously).
        stamp: float | None = self._listening_since
        if made is not None and made[0] == wrapped:
            cipher, stamp = made[1].cipher, None
        else:
            cipher = self._cipher(wrapped, tenant, pseudonym, generation)
        self._made.pop((tenant, pseudonym), None)
        self._remember(tenant, pseudonym, generation, cipher, self._version, wrapped, stamp)
        if stamp is not None:
            ident = _id(tenant, pseudonym)
            self._heard.pop(ident, None)
            self._heard[ident] = (time.monotonic(), generation)
