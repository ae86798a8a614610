"""An erasure heard by two workers leaves nothing of the erased learner in
either one's learner caches (lrs/store/learner_key_cache.py): no live
key, no cipher but the erased marker once read again, no sealed form; the
other learners' keys stay, and both seal the learner under a new key."""

from __future__ import annotations

import os
import uuid

import asyncpg

from lrs.privacy import seal
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.reader import get_statement
from tests.integration.test_learner_keys import TENANT, LEARNER, append, body

# Identifiers whose cache keys share prefixes, and non-ASCII names.
OTHERS = [{"objectType": "Agent", "mbox": "mailto:ana@example.com.vn", "name": "Ana B\u00f9i"},
          {"objectType": "Agent", "account": {"homePage": "https://lms.example.vn", "name": "h\u1ecdc vi\u00ean 7"}}]


def _others(worker: LearnerKeys) -> list[tuple[int, bytes] | None]:
    """The other learners' cached keys (generation, key bytes), None for one not cached."""
    keys = [worker.cached(TENANT, worker.pseudonym(TENANT, i)) for i in
            ("mbox:mailto:ana@example.com.vn", "account:https://lms.example.vn|h\u1ecdc vi\u00ean 7")]
    return [None if k is None else (k.generation, k.cipher._key()) for k in keys]


async def test_an_erasure_heard_by_two_workers_leaves_nothing_of_the_learner_in_their_tables(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    workers = [LearnerKeys(pool, master, capacity=64) for _ in range(2)]
    ids = []
    for worker in workers:
        await worker.load_epoch()
        for actor in [LEARNER, *OTHERS]:
            statements = [{**body(), "actor": dict(actor)}]
            await append(writer, worker, statements)
            ids.append(uuid.UUID(statements[0]["id"]))
        await append(writer, worker, [body()])  # Ana's form is known now: reused
    stored = [await get_statement(pool, TENANT, i, voided=False) for i in ids]
    ana_pseudonym = workers[0].pseudonym(TENANT, "mbox:" + LEARNER["mbox"])
    for worker in workers:
        opened = await worker.open_payloads(TENANT, stored)
        assert sum(b"mailto:ana@example.com\"" in o for o in opened) == 2
        assert worker.cached(TENANT, ana_pseudonym) is not None and worker.cached_generations(TENANT, ana_pseudonym)
        assert any(f.pseudonym == ana_pseudonym for f in worker._sealed[TENANT].values())

    erasure = await erase_learner(pool, LearnerKeys(pool, master), TENANT, LEARNER, reason="request 30", by="test")
    epoch = await pool.fetchval("SELECT key_epoch FROM log_head WHERE singleton")
    for worker in workers:
        others_before = _others(worker)
        worker.heard(f"{TENANT} {erasure.pseudonym} {epoch}")  # the erasure's notification
        assert worker.cached(TENANT, ana_pseudonym) is None
        assert worker.cached_generations(TENANT, ana_pseudonym) == []
        assert not any(f.pseudonym == ana_pseudonym for forms in worker._sealed.values() for f in forms.values())
        assert not any(k.pseudonym == ana_pseudonym for k in worker._current.values())
        assert _others(worker) == others_before and all(others_before)
        for _ in range(2):  # read from PostgreSQL, then from the erased marker the cipher table keeps
            opened = await worker.open_payloads(TENANT, stored)
            assert sum(b"mailto:ana@example.com\"" in o for o in opened) == 0
            assert sum(seal.ERASED_HOME.encode() in o for o in opened) == 2
            erased = f"{TENANT}\x00{ana_pseudonym}\x001"
            assert erased in worker._ciphers and worker._ciphers[erased] is None  # cached as erased
    generations = []
    for worker in workers:
        [result] = await append(writer, worker, [body()])
        key = worker.cached(TENANT, ana_pseudonym)
        assert result.inserted and key is not None
        generations.append(key.generation)
    assert generations == [2, 2]
