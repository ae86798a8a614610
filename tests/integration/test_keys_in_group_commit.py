"""Learner keys made in the group commit (lrs.store.group_keys) against a
real PostgreSQL: a first sight's key row commits in the transaction of the
Statements sealed under it; two processes making a key for the same new
learner at once end with one key, both Statements readable and erased
together; a group that does not commit leaves no key (docs/privacy.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
import uuid

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.privacy import seal
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.credential_changes import credential_changes
from lrs.store.erasure import erase_learner
from lrs.store.learner_key_sealing import MAKE_KEYS_UP_TO, Sealed
from lrs.store.learner_key_sql import CHANGES_CHANNEL
from lrs.store.learner_keys import LearnerKeys
from lrs.store.pool import create_pool
from lrs.store.reader import get_statement
from lrs.store.writer import KeyTakenMeanwhile
from tests.statements import new_id, statement

TENANT = "default"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "client"}}


def naming(mbox: str) -> dict:
    return {**statement(statement_id=new_id(), activity="http://example.com/a"),
            "actor": {"objectType": "Agent", "mbox": mbox, "name": "Lan"}}


async def seal_made(keyring: LearnerKeys, statements: list[dict]) -> Sealed:
    return await keyring.seal_statements(TENANT, statements, AUTHORITY, make_keys=True)


async def append_sealed(writer: StatementWriter, keyring: LearnerKeys, sealed: Sealed) -> list:
    prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority, new_id=uuid.uuid4)
    results = await writer.append(TENANT, prepared, key_epoch=sealed.epoch, key_refs=sealed.refs,
                                  ciphertexts=sealed.ciphertexts, new_keys=sealed.new_keys)
    keyring.stored(sealed)
    return results


async def append_as_the_service_does(writer: StatementWriter, keyring: LearnerKeys, sealed: Sealed,
                                     statements: list[dict]) -> tuple[list, bool]:
    """As lrs.http.statements: refused for a key taken meanwhile, sealed again with the live one.
    Also whether it was refused so."""
    try:
        return await append_sealed(writer, keyring, sealed), False
    except KeyTakenMeanwhile as taken:
        keyring.taken(sealed, taken.keys)
    again = await keyring.seal_statements(TENANT, statements, AUTHORITY)
    assert not again.new_keys
    return await append_sealed(writer, keyring, again), True


async def one_at_a_time(writer: StatementWriter, keyring: LearnerKeys, mboxes: list[str]) -> list[tuple[bool, bool]]:
    """A request of one Statement for each learner in turn, as the service
    sends it: whether the worker made a key for it, and whether it was refused."""
    sent = []
    for mbox in mboxes:
        statements = [naming(mbox)]
        sealed = await seal_made(keyring, statements)
        sent.append((bool(sealed.new_keys), (await append_as_the_service_does(writer, keyring, sealed, statements))[1]))
    return sent


async def xmins(pool: asyncpg.Pool, statement_ids: list[str]) -> set[str]:
    rows = await pool.fetch("SELECT xmin::text AS x FROM events WHERE statement_id = ANY($1::uuid[])",
                            [uuid.UUID(s) for s in statement_ids])
    return {row["x"] for row in rows}


async def test_a_first_sight_commits_its_key_with_the_statements_sealed_under_it(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    statements = [naming(f"mailto:new{n}@example.com") for n in range(3)]
    sealed = await seal_made(keyring, statements)
    assert len(sealed.new_keys) == 4 and not await pool.fetchval("SELECT count(*) FROM learner_keys")  # and the authority's
    await append_sealed(writer, keyring, sealed)
    keys = await pool.fetch("SELECT pseudonym, generation, xmin::text AS x FROM learner_keys")
    assert sorted(r["pseudonym"] for r in keys) == sorted(sealed.new_keys)
    assert {r["generation"] for r in keys} == {1}
    # One transaction: the keys' and the Statements'.
    assert {r["x"] for r in keys} == await xmins(pool, [s["id"] for s in statements])
    # Cached once committed: the next Statement naming them makes no key.
    again = await seal_made(keyring, [naming("mailto:new0@example.com")])
    assert not again.new_keys


async def test_two_processes_first_sighting_one_learner_at_once_keep_one_key_and_both_statements(
    pool: asyncpg.Pool
) -> None:
    master = MasterKey(os.urandom(32))
    first, second = LearnerKeys(pool, master), LearnerKeys(pool, master)
    writers = [StatementWriter(pool, wait_ms=1.0, shared_log=True) for _ in range(2)]
    for w in writers:
        await w.start()
    try:
        mbox = "mailto:lan@example.com"
        mine, theirs = [naming(mbox)], [naming(mbox)]
        # Each process made its own key before either was stored.
        sealed_first, sealed_second = await seal_made(first, mine), await seal_made(second, theirs)
        assert sealed_first.new_keys.keys() == sealed_second.new_keys.keys()
        assert sealed_first.new_keys != sealed_second.new_keys
        outcomes = await asyncio.gather(
            append_as_the_service_does(writers[0], first, sealed_first, mine),
            append_as_the_service_does(writers[1], second, sealed_second, theirs),
        )
        assert sorted(refused for _, refused in outcomes) == [False, True]  # one was sealed again
        assert all(results[0].inserted for results, _ in outcomes)
    finally:
        for w in writers:
            await w.close()
    # One key each for her and for the authority, the winner's, committed with its Statement.
    keys = await pool.fetch("SELECT pseudonym, generation, wrapped, xmin::text AS x FROM learner_keys")
    assert len(keys) == 2 and {k["generation"] for k in keys} == {1}
    assert first.pseudonym(TENANT, f"mbox:{mbox}") in {k["pseudonym"] for k in keys}
    winner = sealed_first if not outcomes[0][1] else sealed_second
    assert all(k["wrapped"] == winner.new_keys[k["pseudonym"]] for k in keys)
    assert {k["x"] for k in keys} == await xmins(pool, [(mine if winner is sealed_first else theirs)[0]["id"]])

    reader = LearnerKeys(pool, master)
    stored = [await get_statement(pool, TENANT, uuid.UUID(s[0]["id"]), voided=False) for s in (mine, theirs)]
    for payload in await reader.open_payloads(TENANT, stored):
        assert b"lan@example.com" in payload
    await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": mbox}, reason="request 21", by="test")
    for payload in await LearnerKeys(pool, master).open_payloads(TENANT, stored):
        assert b"lan@example.com" not in payload and seal.ERASED_HOME.encode() in payload


async def test_requests_of_one_process_naming_a_new_learner_share_the_key_made_for_it(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    one, two = [naming("mailto:binh@example.com")], [naming("mailto:binh@example.com")]
    sealed_one, sealed_two = await seal_made(keyring, one), await seal_made(keyring, two)
    assert sealed_one.new_keys == sealed_two.new_keys  # neither committed yet: the same key
    await append_sealed(writer, keyring, sealed_one)
    # Committed by the earlier group: the later request's key is the live one, not refused.
    [result] = await append_sealed(writer, keyring, sealed_two)
    assert result.inserted
    assert await pool.fetchval("SELECT count(*) FROM learner_keys") == 2  # hers and the authority's


async def test_a_learner_erased_before_a_process_made_it_a_key_gets_a_new_generation(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    keyring, late = LearnerKeys(pool, master), LearnerKeys(pool, master)
    mbox = "mailto:chi@example.com"
    await append_sealed(writer, keyring, await seal_made(keyring, [naming(mbox)]))
    await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": mbox}, reason="request 22", by="test")
    statements = [naming(mbox)]
    # A process that never cached her makes generation 1, which is erased: refused, no live key to take.
    sealed = await seal_made(late, statements)
    with pytest.raises(KeyTakenMeanwhile) as refused:
        await append_sealed(writer, late, sealed)
    assert set(refused.value.keys) == set(sealed.new_keys) - {late.pseudonym(TENANT, f"mbox:{mbox}")}
    # The refusal keeps no future it came through (which holds it: a cycle that left the whole
    # request to the garbage collector), so the request is freed as soon as it is answered.
    assert not [value for frame, _ in traceback.walk_tb(refused.value.__traceback__)
                for value in frame.f_locals.values() if isinstance(value, asyncio.Future)]
    assert await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False) is None
    late.taken(sealed, refused.value.keys)
    [result] = await append_sealed(writer, late, await late.seal_statements(TENANT, statements, AUTHORITY))
    assert result.inserted
    rows = await pool.fetch("SELECT generation, wrapped IS NULL AS erased FROM learner_keys WHERE pseudonym = $1"
                            " ORDER BY generation", late.pseudonym(TENANT, f"mbox:{mbox}"))
    assert [(r["generation"], r["erased"]) for r in rows] == [(1, True), (2, False)]
    [opened] = await late.open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False)])
    assert b"chi@example.com" in opened


async def test_a_group_that_does_not_commit_leaves_no_key_and_the_retry_stores_one(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    statements = [naming("mailto:dung@example.com")]
    sealed = await seal_made(keyring, statements)
    prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority, new_id=uuid.uuid4)
    # The group's transaction fails after the key was inserted (its ciphertext
    # insert: a reference with no ciphertext breaks the NOT NULL).
    with pytest.raises(asyncpg.PostgresError):
        await writer.append(TENANT, prepared, key_epoch=sealed.epoch, key_refs=sealed.refs,
                            ciphertexts={**sealed.ciphertexts, b"x" * 16: None}, new_keys=sealed.new_keys)
    assert await pool.fetchval("SELECT count(*) FROM learner_keys") == 0
    assert await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False) is None
    [result] = await append_sealed(writer, keyring, sealed)  # sent again, as a client would
    assert result.inserted
    assert await pool.fetchval("SELECT count(*) FROM learner_keys") == 2  # hers and the authority's
    [opened] = await LearnerKeys(pool, keyring._master).open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False)])
    assert b"dung@example.com" in opened


async def test_a_request_missing_many_keys_has_them_read_or_made_before_it_is_sealed(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    many = [naming(f"mailto:many{n}@example.com") for n in range(MAKE_KEYS_UP_TO)]  # and the authority
    sealed = await seal_made(keyring, many)
    assert not sealed.new_keys  # a refusal would seal them all again: one key statement instead
    assert await pool.fetchval("SELECT count(*) FROM learner_keys") == MAKE_KEYS_UP_TO + 1
    await append_sealed(writer, keyring, sealed)
    few = await seal_made(keyring, [naming("mailto:few@example.com")])
    assert len(few.new_keys) == 1  # the authority's is cached


async def test_a_key_announced_before_an_erasure_but_heard_after_the_process_caught_up_is_not_cached(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A process that learned of an erasure from the key epoch (catch_up after
    one of its own groups) before its listener delivered an earlier key
    announcement must not cache that key: it is destroyed, reading at the new
    epoch trusts cached ciphers, and a request sealed under it at the new
    epoch is not checked again by the writer."""
    master = MasterKey(os.urandom(32))
    maker, hearer = LearnerKeys(pool, master), LearnerKeys(pool, master)
    mbox = "mailto:giang@example.com"
    pseudonym = maker.pseudonym(TENANT, f"mbox:{mbox}")
    heard: list[str] = []
    async with pool.acquire() as listening:
        def hear(*args: object) -> None:
            heard.append(str(args[3]))

        await listening.add_listener(CHANGES_CHANNEL, hear)
        before = [naming(mbox)]
        await append_sealed(writer, maker, await seal_made(maker, before))
        for _ in range(200):
            if any(f" {pseudonym} " in p for p in heard):
                break
            await asyncio.sleep(0.01)
        await listening.remove_listener(CHANGES_CHANNEL, hear)
    [announced] = [p for p in heard if f" {pseudonym} " in p]
    await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": mbox}, reason="request 23", by="test")
    hearer.catch_up(await pool.fetchval("SELECT key_epoch FROM log_head"))  # as after a group of its own
    hearer.heard(announced)  # the announcement, delivered late
    # Her Statement from before stays erased to this process: the destroyed key opens nothing.
    [erased] = await hearer.open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(before[0]["id"]), voided=False)])
    assert b"giang@example.com" not in erased and seal.ERASED_HOME.encode() in erased
    statements = [naming(mbox)]
    await append_as_the_service_does(writer, hearer, await seal_made(hearer, statements), statements)
    # Sent after the erasure: stored under a live key (generation 2), readable.
    [opened] = await LearnerKeys(pool, master).open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False)])
    assert b"giang@example.com" in opened


class _Process:
    """One service process of its own: its pool, key cache, listener and writer (nothing shared but PostgreSQL)."""

    def __init__(self, database_url: str, master: MasterKey) -> None:
        self.database_url, self.master = database_url, master
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> "_Process":
        self.pool = await create_pool(self.database_url, min_size=1, max_size=4)
        self._stack.push_async_callback(self.pool.close)
        self.keys = LearnerKeys(self.pool, self.master)

        def lost() -> None:
            self.keys.trust_cache = False
            self.keys.forget_all()

        def listening() -> None:
            self.keys.forget_all()
            self.keys.trust_cache = True

        await self._stack.enter_async_context(credential_changes(
            self.database_url, on_change=self.keys.heard, on_lost=lost, on_listening=listening,
            channel=CHANGES_CHANNEL, application_name="test-learner-keys"))
        self.writer = StatementWriter(self.pool, wait_ms=1.0, shared_log=True)
        await self.writer.start()
        self._stack.push_async_callback(self.writer.close)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def send(self, statements: list[dict]) -> bool:
        """Sealed and appended as lrs.http.statements does; whether it was refused once."""
        return (await append_as_the_service_does(self.writer, self.keys, await seal_made(self.keys, statements),
                                                 statements))[1]

    async def heard_of(self, mbox: str) -> bool:
        pseudonym = self.keys.pseudonym(TENANT, f"mbox:{mbox}")
        for _ in range(300):
            if self.keys.cached(TENANT, pseudonym) is not None:
                return True
            await asyncio.sleep(0.01)
        return False


async def test_a_key_made_before_sealing_is_announced_so_another_process_makes_none_for_that_learner(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """A request naming more new learners than MAKE_KEYS_UP_TO has their keys
    made by the key statement (LOAD_OR_CREATE), not the group commit.  Those
    keys were not announced: the other worker, never having cached them, made
    keys of its own for its next request naming one of them, which the group
    commit refused, and sealed that request again (half the requests at batch
    100 in a running programme)."""
    master = MasterKey(os.urandom(32))
    async with _Process(database_url, master) as first, _Process(database_url, master) as second:
        many = [naming(f"mailto:class{n}@example.com") for n in range(MAKE_KEYS_UP_TO + 1)]
        sealed = await seal_made(first.keys, many)
        assert not sealed.new_keys  # read or made before sealing
        await append_sealed(first.writer, first.keys, sealed)
        assert await second.heard_of("mailto:class0@example.com")
        again = [naming("mailto:class0@example.com")]
        sealed_again = await seal_made(second.keys, again)
        assert not sealed_again.new_keys  # hers and the authority's were heard of
        [result] = await append_sealed(second.writer, second.keys, sealed_again)
        assert result.inserted
    [opened] = await LearnerKeys(pool, master).open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(again[0]["id"]), voided=False)])
    assert b"class0@example.com" in opened


async def test_two_processes_racing_on_new_learners_by_both_ways_of_making_keys_keep_one_key_each(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Two processes that share nothing but PostgreSQL name the same new
    learners at once, one in requests too large to make keys itself (the key
    statement makes them before sealing), the other in requests of one
    (keys made in the worker, inserted by the group commit), each hearing the
    other's announcements: every learner ends with one live key, every
    Statement is stored and opens with it."""
    master = MasterKey(os.urandom(32))
    sent: list[tuple[str, dict]] = []
    async with _Process(database_url, master) as first, _Process(database_url, master) as second:
        for round_ in range(6):
            mboxes = [f"mailto:r{round_}n{n}@example.com" for n in range(MAKE_KEYS_UP_TO + 2)]
            large = [naming(m) for m in mboxes]
            singles = [[naming(m)] for m in mboxes[:3]]
            for m, s in [*zip(mboxes, large), *((s[0]["actor"]["mbox"], s[0]) for s in singles)]:
                sent.append((m, s))
            await asyncio.gather(first.send(large), *(second.send(s) for s in singles))
        for mbox, _ in sent:
            pseudonym = first.keys.pseudonym(TENANT, f"mbox:{mbox}")
            rows = await pool.fetch("SELECT generation, wrapped FROM learner_keys WHERE tenant = $1 AND pseudonym = $2",
                                    TENANT, pseudonym)
            assert [r["generation"] for r in rows] == [1] and rows[0]["wrapped"] is not None
            # Each process has her one live key cached (its own, or heard of).
            for process in (first, second):
                cached = process.keys.cached(TENANT, pseudonym)
                assert cached is None or cached.generation == 1
    reader = LearnerKeys(pool, master)  # reads the live keys from PostgreSQL
    stored = [await get_statement(pool, TENANT, uuid.UUID(s["id"]), voided=False) for _, s in sent]
    assert all(payload is not None for payload in stored)
    for (mbox, _), payload, opened in zip(sent, stored, await reader.open_payloads(TENANT, stored)):
        assert b"v4.1." in payload and mbox.removeprefix("mailto:").encode() not in payload
        assert mbox.removeprefix("mailto:").encode() in opened


async def test_a_process_that_finds_the_learners_it_has_not_cached_known_reads_their_keys_first(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A process started after its learners' keys were made (a restart: its
    cache is empty, and it heard no announcement of them) made keys for the
    few learners of a request it had not cached, each refused by the group
    commit and the request sealed twice.  Once the key statements and the
    group commit show it that such learners are mostly known, it reads
    their keys first; once they are mostly new again, it makes them again."""
    master = MasterKey(os.urandom(32))
    before = LearnerKeys(pool, master)
    known = [f"mailto:known{n}@example.com" for n in range(40)]
    await append_sealed(writer, before, await seal_made(before, [naming(m) for m in known]))
    restarted = LearnerKeys(pool, master)
    # A request of many it has not cached: read (all known), one key statement.
    await append_sealed(writer, restarted, await seal_made(restarted, [naming(m) for m in known[:20]]))
    # read before sealing, not made, and so not refused
    assert await one_at_a_time(writer, restarted, known[20:]) == [(False, False)] * 20
    # New learners one at a time: read (and made) first while the share says known, then made in the worker.
    sent = await one_at_a_time(writer, restarted, [f"mailto:new{n}@example.com" for n in range(40)])
    made = [m for m, _ in sent]
    assert not any(r for _, r in sent) and not made[0] and all(made[-10:])
    rows = await pool.fetch("SELECT pseudonym, count(*) AS n FROM learner_keys GROUP BY pseudonym")
    assert len(rows) == 81 and all(r["n"] == 1 for r in rows)  # 80 learners and the authority, one key each


async def test_a_process_started_on_a_store_that_holds_keys_reads_them_first_for_single_statements(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A process (re)started on a store that holds learner keys has cached
    none of them.  Sending one Statement at a time of learners known before,
    it made a key for each, which the group commit refused, and sealed each
    request twice: ten of sixteen, until the moving share of known learners
    passed READ_FIRST_ABOVE.  Started so (check_master_key finds a key), it
    reads first; a new learner then still gets one key, and the process turns
    back to making keys once new learners are most of those it has not cached."""
    master = MasterKey(os.urandom(32))
    before = LearnerKeys(pool, master)
    known = [f"mailto:known{n}@example.com" for n in range(16)]
    await append_sealed(writer, before, await seal_made(before, [naming(m) for m in known]))
    restarted = LearnerKeys(pool, master)
    await restarted.check_master_key()  # as the service starts
    refused = [r for _, r in await one_at_a_time(writer, restarted, known)]
    assert refused.count(True) == 0, f"{refused.count(True)} of {len(refused)} requests refused and sealed twice"
    sent = await one_at_a_time(writer, restarted, [f"mailto:fresh{n}@example.com" for n in range(30)])
    made = [m for m, _ in sent]
    assert not any(r for _, r in sent) and not made[0] and all(made[-10:])


async def test_each_request_refused_for_a_key_taken_meanwhile_is_counted_by_the_process_that_made_it(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """lrs_learner_keys_refused counts the requests the group commit refused
    for a key this process made (sealed twice); lrs_process_id tells the
    scraped worker apart (bench/ingest.py adds the workers' counts up by it)."""
    from prometheus_client import REGISTRY

    def refusals() -> float:
        return REGISTRY.get_sample_value("lrs_learner_keys_refused_total") or 0.0

    master = MasterKey(os.urandom(32))
    first, other = LearnerKeys(pool, master), LearnerKeys(pool, master)
    assert await one_at_a_time(writer, first, ["mailto:hoa@example.com"]) == [(True, False)]
    counted = refusals()
    # The other process never heard of her key (no listener here): it makes one, refused.
    assert await one_at_a_time(writer, other, ["mailto:hoa@example.com"]) == [(True, True)]
    assert refusals() == counted + 1
    assert await one_at_a_time(writer, other, ["mailto:hoa@example.com"]) == [(False, False)]  # cached now
    assert refusals() == counted + 1
    assert REGISTRY.get_sample_value("lrs_process_id") == os.getpid()


async def test_a_key_made_again_after_an_erasure_is_announced_and_the_other_process_seals_under_it(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """A learner erased and named again gets a new generation from the key
    statements (INSERT_KEYS); the other process hears of it, once it has
    dropped the erased one, and seals under it rather than making a key the
    group commit would refuse."""
    master = MasterKey(os.urandom(32))
    async with _Process(database_url, master) as first, _Process(database_url, master) as second:
        mbox = "mailto:an@example.com"
        pseudonym = first.keys.pseudonym(TENANT, f"mbox:{mbox}")
        assert not await first.send([naming(mbox)])
        assert await second.heard_of(mbox)
        await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": mbox}, reason="request 33", by="test")
        for _ in range(300):
            if first.keys.cached(TENANT, pseudonym) is None and second.keys.cached(TENANT, pseudonym) is None:
                break
            await asyncio.sleep(0.01)
        assert second.keys.cached(TENANT, pseudonym) is None  # the erasure was heard
        [key] = (await first.keys.keys_for_writing(TENANT, [f"mbox:{mbox}"])).values()
        assert key.generation == 2
        assert await second.heard_of(mbox)
        assert second.keys.cached(TENANT, pseudonym).generation == 2
        assert not await second.send([naming(mbox)])  # sealed under the heard key: not refused
