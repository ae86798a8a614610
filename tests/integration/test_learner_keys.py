"""Learner keys (lrs.store.learner_keys) against a real PostgreSQL: keys made
once however many processes ask, and an erasure that commits before a
process hears of it (its NOTIFY is not delivered yet) is never written under
nor read with (docs/privacy.md)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import uuid

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.privacy import opening, seal, sealed_text, statement_agents
from lrs.privacy.master import MasterKey, PrivacyKeyError
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.reader import get_statement
from lrs.store.writer import KeyErasedMeanwhile, WriterClosedError
from tests.statements import new_id, statement

TENANT = "default"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "client"}}
LEARNER = {"objectType": "Agent", "mbox": "mailto:ana@example.com", "name": "Ana"}


def body() -> dict:
    return {**statement(statement_id=new_id(), activity="http://example.com/a"), "actor": dict(LEARNER)}


async def append(writer: StatementWriter, keyring: LearnerKeys, statements: list[dict]) -> list:
    sealed = await keyring.seal_statements(TENANT, statements, AUTHORITY)
    prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority, new_id=uuid.uuid4)
    results = await writer.append(TENANT, prepared, key_epoch=sealed.epoch, key_refs=sealed.refs,
                                  ciphertexts=sealed.ciphertexts)
    keyring.stored(sealed)
    return results


async def test_processes_asking_at_once_share_one_key_per_learner(pool: asyncpg.Pool) -> None:
    master = MasterKey(os.urandom(32))
    first, second = LearnerKeys(pool, master), LearnerKeys(pool, master)
    idents = [f"mbox:mailto:l{n}@example.com" for n in range(40)]
    found = await asyncio.gather(
        *(keyring.keys_for_writing(TENANT, idents[n::3]) for n in range(3) for keyring in (first, second))
    )
    by_ident: dict[str, set[int]] = {}
    for keys in found:
        for ident, key in keys.items():
            by_ident.setdefault(ident, set()).add(key.generation)
    assert sorted(by_ident) == sorted(idents) and all(g == {1} for g in by_ident.values())
    rows = await pool.fetch("SELECT pseudonym, count(*) AS n FROM learner_keys WHERE tenant = $1 GROUP BY 1", TENANT)
    assert len(rows) == 40 and {row["n"] for row in rows} == {1}
    # Both processes' keys open what the other sealed.
    plaintext = b'{"name":"x"}'
    for ident in idents:
        a = first.cached(TENANT, first.pseudonym(TENANT, ident))
        b = second.cached(TENANT, second.pseudonym(TENANT, ident))
        assert a is not None and b is not None
        text = sealed_text.seal_bytes(a, TENANT, plaintext)
        assert sealed_text.open_text(text, {(b.pseudonym, b.generation): b.cipher}, TENANT) == plaintext


async def test_a_process_that_has_not_heard_of_an_erasure_does_not_write_under_the_destroyed_key(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    late = LearnerKeys(pool, master)  # hears nothing: the NOTIFY has not reached it
    eraser = LearnerKeys(pool, master)
    await late.load_epoch()
    await append(writer, late, [body()])  # the learner's key is now in late's cache
    erasure = await erase_learner(pool, eraser, TENANT, LEARNER, reason="request 7", by="test")
    assert erasure.generations == [1]

    statements = [body()]
    with pytest.raises(KeyErasedMeanwhile):
        await append(writer, late, statements)
    assert await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False) is None

    # Sealed again once the process caught up: a new key, and readable.
    late.catch_up(writer.key_epoch)
    [result] = await append(writer, late, statements)
    assert result.inserted
    generations = await pool.fetch(
        "SELECT generation, wrapped IS NULL AS erased FROM learner_keys WHERE tenant = $1 AND pseudonym = $2"
        " ORDER BY generation", TENANT, erasure.pseudonym)
    assert [(r["generation"], r["erased"]) for r in generations] == [(1, True), (2, False)]
    [opened] = await late.open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False)])
    assert b"ana@example.com" in opened


async def test_a_process_that_has_not_heard_of_an_erasure_does_not_open_with_the_destroyed_key(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    late, eraser = LearnerKeys(pool, master), LearnerKeys(pool, master)
    await late.load_epoch()
    statements = [body()]
    await append(writer, late, statements)
    stored = await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False)
    [opened] = await late.open_payloads(TENANT, [stored])
    assert b"ana@example.com" in opened  # its key is cached now

    await erase_learner(pool, eraser, TENANT, LEARNER, reason="request 8", by="test")
    [opened] = await late.open_payloads(TENANT, [stored])
    assert b"ana@example.com" not in opened and b"Ana" not in opened
    assert seal.ERASED_HOME.encode() in opened


async def test_a_process_started_with_another_privacy_key_refuses_to_start(pool: asyncpg.Pool) -> None:
    first = LearnerKeys(pool, MasterKey(os.urandom(32)))
    await first.check_master_key()
    await first.check_master_key()  # the same key again: fine
    other = LearnerKeys(pool, MasterKey(os.urandom(32)))
    with pytest.raises(PrivacyKeyError, match="LRS_PRIVACY_KEY_FILE"):
        await other.check_master_key()
    # A database whose keys predate the recorded id: the stored keys decide.
    await pool.execute("DELETE FROM privacy_key_id")
    await first.keys_for_writing(TENANT, ["mbox:mailto:x@example.com"])
    with pytest.raises(PrivacyKeyError):
        await other.check_master_key()
    assert await pool.fetchval("SELECT count(*) FROM privacy_key_id") == 0


async def test_a_document_sealed_before_an_erasure_is_not_stored_after_it(pool: asyncpg.Pool) -> None:
    """The erasure deleted the learner's documents; a write sealed under the
    key it destroyed (its process had not heard of it) must not put the
    content back in clear in the documents table."""
    from lrs.documents.model import DocumentKey, DocumentSet, NewVersion, Resource
    from lrs.store.documents import DocumentStore

    master = MasterKey(os.urandom(32))
    late, eraser = LearnerKeys(pool, master), LearnerKeys(pool, master)
    await late.load_epoch()
    ident = statement_agents.identifier(LEARNER)
    stored_key = late.pseudonym_key(TENANT, ident)
    key = (await late.keys_for_writing(TENANT, [ident]))[ident]  # sealed by the late process
    await erase_learner(pool, eraser, TENANT, LEARNER, reason="request 9", by="test")

    document = DocumentKey(DocumentSet(Resource.STATE, "http://example.com/a", stored_key, None), "progress")
    store = DocumentStore(pool, seal_content=lambda content: sealed_text.seal_bytes(key, TENANT, content),
                          key_refs=frozenset({(key.pseudonym, key.generation)}))
    with pytest.raises(KeyErasedMeanwhile):
        await store.put(TENANT, document, "put", lambda current: NewVersion(b'{"score": 7}', "application/json", '"e"'))
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant = $1 AND agent_key = $2",
                               TENANT, stored_key) == 0


async def test_statements_carry_a_reference_and_each_ciphertext_is_stored_once_beside_them(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """The v4 stored form: the Statements name the learner by a short tag
    that, with the pseudonym, finds one ciphertext in sealed_identities,
    which another process (nothing cached) opens; v3 and v2 Statements
    written before still open; after an erasure none opens."""
    master = MasterKey(os.urandom(32))
    keyring, reader = LearnerKeys(pool, master), LearnerKeys(pool, master)
    await keyring.load_epoch()
    statements = [body() for _ in range(3)]
    await append(writer, keyring, statements[:2])
    await append(writer, keyring, statements[2:])  # its forms are cached now: no ciphertext written again
    v3_writer = LearnerKeys(pool, master)
    v3_writer._reference_form = "v3"  # as builds before v4 wrote
    v3 = [body()]
    await append(writer, v3_writer, v3)
    older = LearnerKeys(pool, master, references=False)  # as builds before v3 wrote
    v2 = [body()]
    await append(writer, older, v2)

    stored = [await get_statement(pool, TENANT, uuid.UUID(s["id"]), voided=False) for s in statements + v3 + v2]
    for payload in stored[:3]:
        assert b'"sealed":"v4.1.' in payload and b'"sealed":"v3.' not in payload and b'"sealed":"v2.' not in payload
    assert b'"sealed":"v3.1.' in stored[3] and b'"sealed":"v2.1.' in stored[4]
    assert len(stored[3]) - len(stored[0]) == 2 * 10  # two 22-character references became two 12-character tags
    assert len(stored[4]) - len(stored[3]) > 100  # two v2 ciphertexts left the Statement for two references
    # One ciphertext for the learner and one for the authority per form, whatever the number of Statements.
    rows = {bytes(r["ref"]): bytes(r["ciphertext"]) for r in await pool.fetch("SELECT ref, ciphertext FROM sealed_identities")}
    assert len(rows) == 4
    assert sum(sealed_text.reference_of(ciphertext) == ref for ref, ciphertext in rows.items()) == 2  # v3's
    assert opening.stored_references(seal.decode(stored[0])) | opening.stored_references(seal.decode(stored[3])) == set(rows)
    for payload in stored:
        assert b"ana@example.com" not in payload and b"Ana" not in payload
    opened = await reader.open_payloads(TENANT, stored)
    for payload in opened:
        assert b'"mbox":"mailto:ana@example.com"' in payload and b'"name":"Ana"' in payload
        assert b'"name":"client"' in payload  # the authority
    # Read again, the forms opened before (v4, v3, v2 alike) give the same bytes as a process that opens them anew.
    assert reader._opened
    # Kept as the sealing caches are: nothing in it for the garbage collector to visit.
    gc.collect()
    assert not gc.is_tracked(reader._opened) and not any(gc.is_tracked(v) for v in reader._opened.values())
    assert await reader.open_payloads(TENANT, stored) == opened == await LearnerKeys(pool, master).open_payloads(
        TENANT, stored)
    [one, three] = await reader.open_statements(TENANT, [seal.decode(stored[0]), seal.decode(stored[3])])
    assert one["actor"] == three["actor"] == LEARNER

    await erase_learner(pool, keyring, TENANT, LEARNER, reason="request 10", by="test")
    for keys_of in (LearnerKeys(pool, master), reader):  # reader: opened them before, has not heard of the erasure
        for payload in await keys_of.open_payloads(TENANT, stored):
            assert b"ana@example.com" not in payload and seal.ERASED_HOME.encode() in payload


async def test_a_group_opened_before_shows_its_live_members_after_another_member_is_erased(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A Group's opened form kept by a process that has not heard of the
    erasure of one of its members (here: its listener lost, so every key is
    read from the database, and the key epoch is not asked): the erased
    member in the erased form, the others as they are, the bytes of a
    process that opens them anew."""
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    reader = LearnerKeys(pool, master)
    reader.trust_cache = False  # as its listener's loss leaves it (app.py _learner_keys)
    await keyring.load_epoch()
    ben = {"objectType": "Agent", "mbox": "mailto:ben@example.com", "name": "Ben"}
    team = {"objectType": "Group", "member": [dict(LEARNER), ben]}
    statements = [{**statement(statement_id=new_id(), activity="http://example.com/a"), "actor": team}]
    await append(writer, keyring, statements)
    stored = [await get_statement(pool, TENANT, uuid.UUID(statements[0]["id"]), voided=False)]
    [opened] = await reader.open_payloads(TENANT, stored)
    assert b"ana@example.com" in opened and b"ben@example.com" in opened
    assert reader._opened  # the Group's form is kept

    await erase_learner(pool, keyring, TENANT, LEARNER, reason="request 11", by="test")
    [opened] = await reader.open_payloads(TENANT, stored)
    assert b"ana@example.com" not in opened and seal.ERASED_HOME.encode() in opened
    assert b'"mbox":"mailto:ben@example.com"' in opened and b'"name":"Ben"' in opened
    assert [opened] == await LearnerKeys(pool, master).open_payloads(TENANT, stored)


async def test_a_statement_commits_in_the_group_that_stores_its_ciphertexts(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """Sealing writes nothing: the new ciphertexts travel with the request
    and the group commit that appends its Statements stores them.  A request
    that was not committed leaves its sealed forms unused, so the next
    request naming the learner the same way carries the ciphertexts again:
    no Statement is ever committed naming a ciphertext that is not stored."""
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    await keyring.load_epoch()
    failed = await keyring.seal_statements(TENANT, [body()], AUTHORITY)
    assert len(failed.ciphertexts) == 2  # the learner and the authority
    prepared = prepare_statements(failed.statements, version="1.0.3", authority=failed.authority, new_id=uuid.uuid4)
    with pytest.raises(WriterClosedError):  # e.g. the process shutting down
        await StatementWriter(pool).append(TENANT, prepared, key_epoch=failed.epoch, key_refs=failed.refs,
                                           ciphertexts=failed.ciphertexts)
    assert await pool.fetchval("SELECT count(*) FROM sealed_identities") == 0  # nothing stored outside a group

    second = body()
    [result] = await append(writer, keyring, [second])
    assert result.inserted
    payload = await get_statement(pool, TENANT, uuid.UUID(second["id"]), voided=False)
    named = opening.stored_references(seal.decode(payload))
    assert len(named) == 2
    assert named <= {bytes(r["ref"]) for r in await pool.fetch("SELECT ref FROM sealed_identities")}
    # Committed now: the next request names the learner as this one did and carries nothing.
    third = await keyring.seal_statements(TENANT, [body()], AUTHORITY)
    assert third.ciphertexts == {}
    assert opening.stored_references({**third.statements[0], "authority": third.authority}) == named


async def test_requests_sealing_at_once_store_every_ciphertext_they_reference(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """Concurrent requests share the ciphertext insert; each one's Statements
    are written only after their ciphertexts, and all of them open."""
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    await keyring.load_epoch()
    batches = [[{**body(), "actor": {"objectType": "Agent", "mbox": f"mailto:l{n}-{i}@example.com", "name": f"L {n}"}}
                for i in range(3)] for n in range(8)]
    await asyncio.gather(*(append(writer, keyring, batch) for batch in batches))
    ids = [uuid.UUID(s["id"]) for batch in batches for s in batch]
    stored = [await get_statement(pool, TENANT, statement_id, voided=False) for statement_id in ids]
    assert await pool.fetchval("SELECT count(*) FROM sealed_identities") == 8 * 3 + 1  # and the authority
    opened = await LearnerKeys(pool, master).open_statements(TENANT, [seal.decode(p) for p in stored])
    assert [s["actor"] for s in opened] == [s["actor"] for batch in batches for s in batch]


class _RecordingPool:
    """The pool, recording the pseudonym arrays each query is given."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.pseudonym_arrays: list[list[str]] = []

    def __getattr__(self, name: str):
        return getattr(self._pool, name)

    async def fetch(self, query: str, *args):
        if "learner_keys" in query and len(args) > 1 and isinstance(args[1], list):
            self.pseudonym_arrays.append(list(args[1]))
        return await self._pool.fetch(query, *args)


async def test_keys_are_made_in_one_order_whatever_order_they_are_asked_in(pool: asyncpg.Pool) -> None:
    # Two processes making the same learners' keys insert them in the same
    # (sorted) order, so their unique-index waits cannot form a cycle.
    recording = _RecordingPool(pool)
    keyring = LearnerKeys(recording, MasterKey(os.urandom(32)))  # type: ignore[arg-type]
    idents = [f"mbox:mailto:order{n}@example.com" for n in range(60)]
    await keyring.keys_for_writing(TENANT, list(reversed(idents)))
    assert recording.pseudonym_arrays, "no key query was recorded"
    for array in recording.pseudonym_arrays:
        assert array == sorted(array)


def _scans_of(plan: dict, table: str) -> list[dict]:
    """The plan's nodes that read ``table`` (its heap or one of its indexes)."""
    found = []
    if plan.get("Relation Name") == table and plan["Node Type"] != "ModifyTable" or str(
        plan.get("Index Name", "")
    ).startswith(table):
        found.append(plan)
    for child in plan.get("Plans", []):
        found += _scans_of(child, table)
    return found


async def test_key_statements_look_each_learner_up_by_index_before_any_statistics(pool: asyncpg.Pool) -> None:
    """A new database has no statistics on learner_keys until autovacuum
    gets to it, and a planner then guesses a tenant holds 0.5% of the rows:
    the key statements once read every key of the tenant for each request
    that named a learner the process had not cached (docs/privacy.md
    "Cost").  Each statement must find each wanted learner through the
    primary key, whatever the statistics."""
    from lrs.store import learner_key_sql as lk
    from lrs.store.group_commit_sql import SELECT_ERASED_REFS

    await pool.execute(
        "INSERT INTO learner_keys (tenant, pseudonym, generation, wrapped)"
        " SELECT $1, md5(g::text), 1, '\\x00' FROM generate_series(1, 4000) AS g", TENANT)
    assert await pool.fetchval("SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables"
                               " WHERE relname = 'learner_keys'")
    wanted = sorted(await pool.fetchval("SELECT array_agg(md5(g::text)) FROM generate_series(1, 20) AS g"))
    statements = {
        "LOAD_OR_CREATE": (lk.LOAD_OR_CREATE, TENANT, wanted, [b"\x01"] * len(wanted)),
        "SELECT_LIVE": (lk.SELECT_LIVE, TENANT, wanted),
        "SELECT_CURRENT": (lk.SELECT_CURRENT, TENANT, wanted),
        "SELECT_GENERATIONS": (lk.SELECT_GENERATIONS, TENANT, wanted, [1] * len(wanted)),
        "SELECT_ERASED_REFS": (SELECT_ERASED_REFS, [TENANT] * len(wanted), wanted, [1] * len(wanted)),
    }
    async with pool.acquire() as conn:
        for name, (query, *args) in statements.items():
            # (every wanted learner has a key: LOAD_OR_CREATE makes none)
            [plan] = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args))
            scans = _scans_of(plan["Plan"], "learner_keys")
            assert scans, name
            for scan in scans:
                assert scan["Node Type"] != "Seq Scan", (name, scan["Node Type"])
                conditions = scan.get("Index Cond", "") + scan.get("Recheck Cond", "")
                assert "pseudonym" in conditions, (name, scan["Node Type"], conditions)
                # never more rows read than learners wanted
                assert scan["Actual Rows"] * scan["Actual Loops"] <= len(wanted), (name, scan["Node Type"])


async def test_a_known_learner_costs_no_key_statement_and_no_key_or_ciphertext_row(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """Once a process has a learner's key and has committed the sealed form
    naming it, a request naming the learner the same way asks PostgreSQL
    nothing about keys and its group commit writes no key and no ciphertext."""
    recording = _RecordingPool(pool)
    keyring = LearnerKeys(recording, MasterKey(os.urandom(32)))  # type: ignore[arg-type]
    await keyring.load_epoch()
    await append(writer, keyring, [body()])
    queries, keys, ciphertexts = (len(recording.pseudonym_arrays),
                                  await pool.fetchval("SELECT count(*) FROM learner_keys"),
                                  await pool.fetchval("SELECT count(*) FROM sealed_identities"))
    assert queries >= 1 and keys == 2 and ciphertexts == 2  # the learner and the authority
    again = [body() for _ in range(5)]
    sealed = await keyring.seal_statements(TENANT, again, AUTHORITY)
    assert sealed.ciphertexts == {}
    await append(writer, keyring, again)
    assert len(recording.pseudonym_arrays) == queries
    assert await pool.fetchval("SELECT count(*) FROM learner_keys") == keys
    assert await pool.fetchval("SELECT count(*) FROM sealed_identities") == ciphertexts


async def test_first_sights_of_concurrent_requests_in_one_process_share_one_key_statement(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    """Requests of one process that each name a learner it has never seen
    and arrive together make all their keys in one statement, on the key
    connection (not the shared pool, whose every use is followed by a reset:
    docs/privacy.md "Cost"); each Statement reads back as sent."""
    from lrs.store.pool import create_statement_pool

    key_pool = await create_statement_pool(database_url, application_name="lrs-test-keys")
    try:
        shared, own = _RecordingPool(pool), _RecordingPool(key_pool)
        keyring = LearnerKeys(shared, MasterKey(os.urandom(32)), key_pool=own)  # type: ignore[arg-type]
        await keyring.load_epoch()
        requests = [
            [{**statement(statement_id=new_id(), activity="http://example.com/a"),
              "actor": {"objectType": "Agent", "mbox": f"mailto:first{n}@example.com", "name": f"First {n}"}}]
            for n in range(12)
        ]
        await asyncio.gather(*(append(writer, keyring, r) for r in requests))
        assert len(own.pseudonym_arrays) == 1 and len(own.pseudonym_arrays[0]) == 13  # and the authority
        assert shared.pseudonym_arrays == []
        assert await pool.fetchval("SELECT count(*) FROM learner_keys") == 13
        for [sent] in requests:
            stored = await get_statement(pool, TENANT, uuid.UUID(sent["id"]), voided=False)
            [opened] = await keyring.open_statements(TENANT, [seal.decode(stored)])
            assert opened["actor"] == sent["actor"]
    finally:
        await key_pool.close()


async def test_the_key_connection_is_not_reset_between_uses_but_never_left_in_a_transaction(
    database_url: str,
) -> None:
    """asyncpg's ``reset`` argument (public since 0.30) keeps the statement
    pool's session as it is on release: no RESET ALL (a setting survives),
    yet a transaction left open is rolled back, as on any release."""
    from lrs.store.pool import create_statement_pool

    key_pool = await create_statement_pool(database_url, application_name="lrs-test-keys")
    try:
        async with key_pool.acquire() as conn:
            pid = conn.get_server_pid()
            await conn.execute("SET work_mem = '7MB'")
        async with key_pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert await conn.fetchval("SHOW work_mem") == "7MB"
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int)")
        async with key_pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await key_pool.close()


async def test_first_sights_arriving_within_the_wait_share_one_key_statement(pool: asyncpg.Pool) -> None:
    """With a gathering wait (the service gives LRS_GROUP_COMMIT_WAIT_MS), a
    request that needs keys a moment after another joins its statement;
    one that comes after the statement was sent makes another."""
    recording = _RecordingPool(pool)
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)), key_pool=recording, wait_ms=200)  # type: ignore[arg-type]
    first = asyncio.create_task(keyring.keys_for_writing(TENANT, ["mbox:mailto:early@example.com"]))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(keyring.keys_for_writing(TENANT, ["mbox:mailto:later@example.com"]))
    await asyncio.gather(first, second)
    assert len(recording.pseudonym_arrays) == 1 and len(recording.pseudonym_arrays[0]) == 2
    await keyring.keys_for_writing(TENANT, ["mbox:mailto:last@example.com"])
    assert len(recording.pseudonym_arrays) == 2


class _HeldAnswerPool(_RecordingPool):
    """The pool, its first key statement's answer held back until ``go`` is set."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.answered = asyncio.Event()
        self.go = asyncio.Event()

    async def fetch(self, query: str, *args):
        rows = await super().fetch(query, *args)
        if not self.answered.is_set():
            self.answered.set()
            await self.go.wait()
        return rows


async def test_a_request_after_an_erasure_was_heard_does_not_take_a_key_read_before_it(pool: asyncpg.Pool) -> None:
    """A request that starts once the process heard of an erasure is sealed
    at the new epoch, so the writer does not check its keys again: it must
    not share a key statement sent before the erasure committed, whose
    answer is the destroyed key."""
    master = MasterKey(os.urandom(32))
    held = _HeldAnswerPool(pool)
    keyring = LearnerKeys(pool, master, key_pool=held)  # type: ignore[arg-type]
    ident = "mbox:" + LEARNER["mbox"]
    await keyring.load_epoch()
    before = asyncio.create_task(keyring.keys_for_writing(TENANT, [ident]))
    await asyncio.wait_for(held.answered.wait(), 10)  # the key (generation 1) is read, its answer on the way
    await erase_learner(pool, LearnerKeys(pool, master), TENANT, LEARNER, reason="request 11", by="test")
    epoch = await pool.fetchval("SELECT key_epoch FROM log_head WHERE singleton")
    keyring.heard(f"{TENANT} {keyring.pseudonym(TENANT, ident)} {epoch}")
    after = asyncio.create_task(keyring.keys_for_writing(TENANT, [ident]))
    await asyncio.sleep(0.05)
    held.go.set()
    assert (await before)[ident].generation == 1  # sealed at the old epoch: the writer checks it
    assert (await after)[ident].generation == 2


async def test_a_request_that_goes_away_during_the_wait_leaves_the_others_keys_and_the_loader(pool: asyncpg.Pool) -> None:
    """A client that disconnects while its first sight waits for others
    (its handler cancelled) cancels neither the shared statement nor the
    loader: the others get their keys, and later requests load theirs."""
    recording = _RecordingPool(pool)
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)), key_pool=recording, wait_ms=200)  # type: ignore[arg-type]
    gone = asyncio.create_task(keyring.keys_for_writing(TENANT, ["mbox:mailto:gone@example.com"]))
    stays = asyncio.create_task(keyring.keys_for_writing(TENANT, ["mbox:mailto:stays@example.com"]))
    await asyncio.sleep(0.02)
    gone.cancel()
    keys = await asyncio.wait_for(stays, 10)
    assert keys["mbox:mailto:stays@example.com"].generation == 1
    assert gone.cancelled() and len(recording.pseudonym_arrays) == 1
    later = await asyncio.wait_for(keyring.keys_for_writing(TENANT, ["mbox:mailto:later2@example.com"]), 10)
    assert later["mbox:mailto:later2@example.com"].generation == 1 and len(recording.pseudonym_arrays) == 2


async def test_a_key_connection_whose_backend_died_while_idle_is_replaced(database_url: str, pool: asyncpg.Pool) -> None:
    """The key pool's connection is kept between uses (not reset): when its
    backend goes away while idle (PostgreSQL restarted, an administrator's
    pg_terminate_backend), the next key statement runs on a new one."""
    from lrs.store.pool import create_statement_pool

    key_pool = await create_statement_pool(database_url, application_name="lrs-test-keys-idle")
    try:
        keyring = LearnerKeys(pool, MasterKey(os.urandom(32)), key_pool=key_pool)
        await keyring.keys_for_writing(TENANT, ["mbox:mailto:idle1@example.com"])
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'lrs-test-keys-idle'"
        )
        assert killed == 1
        await asyncio.sleep(0.1)  # the FATAL message and the socket's close reach the client
        keys = await asyncio.wait_for(keyring.keys_for_writing(TENANT, ["mbox:mailto:idle2@example.com"]), 10)
        assert keys["mbox:mailto:idle2@example.com"].generation == 1
    finally:
        await key_pool.close()


async def test_a_full_cache_that_dropped_a_learner_and_read_it_again_never_uses_the_key_after_its_erasure(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A small cache (LRS_LEARNER_CACHE_SIZE) drops its oldest half of keys,
    ciphers, pseudonyms and sealed forms as other learners come: the erased
    learner's entries are dropped, read again, and then must go with the
    erasure like any others, heard or not."""
    master = MasterKey(os.urandom(32))
    late = LearnerKeys(pool, master, capacity=2)  # hears nothing unless told
    await late.load_epoch()
    others = [{"objectType": "Agent", "mbox": f"mailto:other{n}-{uuid.uuid4().hex[:6]}@example.com"} for n in range(6)]
    ana_statements = [body()]
    await append(writer, late, ana_statements)
    for other in others:  # Ana's key, cipher and sealed form are dropped
        await append(writer, late, [{**body(), "actor": other}])
    ana = (TENANT, late.pseudonym(TENANT, "mbox:" + LEARNER["mbox"]))
    assert late.cached(*ana) is None and not late.cached_generations(*ana)
    again = [body()]
    await append(writer, late, again)  # read again from PostgreSQL, cached again (key and sealed form)
    stored = await get_statement(pool, TENANT, uuid.UUID(again[0]["id"]), voided=False)
    [opened] = await late.open_payloads(TENANT, [stored])  # its cipher is cached again
    assert b"ana@example.com" in opened and late.cached(*ana) is not None and late._sealed[TENANT]

    await erase_learner(pool, LearnerKeys(pool, master), TENANT, LEARNER, reason="request 12", by="test")
    with pytest.raises(KeyErasedMeanwhile):  # not heard: the writer refuses the cached key and form
        await append(writer, late, [body()])
    [opened] = await late.open_payloads(TENANT, [stored])  # not heard: the epoch read empties the cache
    assert b"ana@example.com" not in opened and seal.ERASED_HOME.encode() in opened
    # Once caught up: a new key, while other learners fill and drop the cache again.
    late.catch_up(writer.key_epoch)
    for other in others[:3]:
        await append(writer, late, [{**body(), "actor": other}])
    [result] = await append(writer, late, [body()])
    cached = late.cached(*ana)
    assert result.inserted and cached is not None and cached.generation == 2
    [opened] = await late.open_payloads(TENANT, [stored])  # sealed under the destroyed key: erased still
    assert b"ana@example.com" not in opened
