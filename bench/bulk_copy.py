"""The ``--copy`` mode of bench/bulk_store.py: the same store, written by COPY.

The writer appends about 600 statements/s on a busy 2-core machine, too slow
for a 10-million-statement bench store.  This mode builds the rows the
writer builds, from the same generated statements and with the project's own
functions:

- each statement is prepared as the HTTP handler prepares it
  (:func:`lrs.ingest.prepare.prepare_statements`), its stored JSON is
  :func:`lrs.eventlog.finalize_with_text` and its hash
  :func:`lrs.eventlog.hash_with_text` chained from the log head, its
  read-model row and its ``statement_keys`` rows are made by the writer's
  own SQL from :func:`lrs.batching.filter_keys` (``statement_key(tenant,
  key)``, the hashes of the keys, and of the Activity Object's pair with the
  verb, migration 0141, so the whole store is above its low-water); the payloads are stored as the writer
  stores them (:func:`lrs.payload_codec.store_payloads`);
- ``voided`` is set on the statements a loaded voiding statement targets
  (the writer's UPDATE, for targets loaded earlier);
- each referring statement (a StatementRef or voiding one) gets the keys of
  the statements its chain reaches, as the writer gives them
  (lrs/store/ref_keys.py), by the function migration 0097 fills a store
  with (``add_statement_ref_keys()``), after the indexes are built.

Worker processes prepare chunks of statements in parallel; the hash chain
passes from each chunk to the next through a queue (hashing is the cheap
part), and each worker COPYs its own chunks.  The indexes of the three tables
are dropped first and built again after the load, then the tables are
VACUUMed and ANALYZEd, as autovacuum would leave them soon after: their
statistics fresh and their visibility maps set, so that index-only walks of
``statement_keys`` do not visit the table (a walked entry cost a heap page
before, about an eighth of an activity page's buffers), and so that no
autovacuum of the load runs through a later measurement.  The log head moves
last, so `lrs audit verify` checks the result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bulk_store as gen  # noqa: E402
from lrs.batching import AUTHORITY_KEY, filter_keys  # noqa: E402
from lrs.eventlog import STATEMENT_EVENT, finalize_with_text, format_stored, hash_with_text  # noqa: E402
from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.payload_codec import store_payloads  # noqa: E402
from lrs.store.group_columns import key_literal  # noqa: E402
from lrs.store.ids import RandomUuids  # noqa: E402

TABLES = ("events", "statements", "statement_keys")
CHUNK = 20_000
EVENT_COLUMNS = ("position", "event_id", "tenant", "event_type", "statement_id", "stored", "payload",
                 "prev_hash", "hash")
# The writer's own read-model rows: the verb and the authority as their key
# hashes (lrs/store/group_commit_sql.py INSERT_GROUP, schemas/postgres/0092_lean_statements.sql).
INSERT_STATEMENTS = """
INSERT INTO statements (tenant, statement_id, position, stored, verb_key, authority_key, registration, voided,
                        voids, statement_ref)
SELECT u.tenant, u.statement_id, u.position, u.stored, statement_key(u.tenant, 'V:' || u.verb_id),
       statement_key(u.tenant, u.authority), u.registration, u.voided, u.voids, u.statement_ref
FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[], $7::uuid[],
            $8::bool[], $9::uuid[], $10::uuid[])
     AS u(tenant, statement_id, position, stored, verb_id, authority, registration, voided, voids, statement_ref)
"""
# The writer's own statement_keys rows (lrs/store/group_commit_sql.py INSERT_GROUP):
# the filter keys as the writer sends them (lrs.store.group_columns.key_literal),
# and the Activity Object's ('O:') pair with the verb
# (schemas/postgres/0141_activity_verb_pair_keys.sql).
INSERT_KEYS = """
INSERT INTO statement_keys (key, position)
SELECT DISTINCT statement_key(u.tenant, x.key), u.position
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS u(tenant, position, keys, verb_id),
     unnest(u.keys::text[]) AS k,
     LATERAL (VALUES (k), (CASE WHEN left(k, 2) = 'O:' THEN 'P:' || substr(k, 3) || chr(31) || u.verb_id END)) AS x(key)
WHERE left(k, 2) <> 'U:' AND x.key IS NOT NULL
"""
# The writer's UPDATE_VOIDED, for targets stored before this load.
MARK_VOIDED = """
UPDATE statements t SET voided = true
FROM statements v
WHERE v.position > $1 AND v.voids IS NOT NULL AND v.tenant = t.tenant
  AND t.statement_id = v.voids AND t.voids IS NULL AND NOT t.voided
"""


def stored_at(n: int):  # type: ignore[no-untyped-def]
    """Statement ``n``'s stored time: strictly rising with n."""
    return gen.START + timedelta(seconds=3 * n, milliseconds=500)


def event_id(n: int) -> uuid.UUID:
    return uuid.uuid5(gen.NAMESPACE, f"event {n}")


def voided_by_later(n: int, total: int) -> bool:
    """Whether a statement below ``total`` voids statement ``n``."""
    m = n + gen.VOID_DISTANCE
    if m >= total or m % gen.VOID_EVERY != gen.VOID_EVERY - 1:
        return False
    body = gen.statement(m)
    return body["verb"]["id"] == gen.VERB + "voided" and body["object"]["id"] == gen.statement_id(n)


def prepare_chunk(first: int, count: int, total: int) -> list[tuple]:
    """(n, prepared statement, stored, stored text, payload) of statements first .. first + count - 1."""
    new_id = RandomUuids()
    out = []
    for start in range(first, first + count, 500):
        numbers = range(start, min(first + count, start + 500))
        prepared = prepare_statements([gen.statement(n) for n in numbers], version="1.0.3",
                                      authority=gen.AUTHORITY, new_id=new_id)
        for n, statement in zip(numbers, prepared):
            stored = stored_at(n)
            text = format_stored(stored)
            out.append((n, statement, stored, text, finalize_with_text(statement.body, text)))
    return out


def chain_chunk(rows: list[tuple], prev_hash: bytes, total: int) -> tuple[bytes, list, list, list]:
    """The chunk's events (hashed from ``prev_hash``), read-model rows and filter keys."""
    events, statements, keys = [], [], []
    for n, s, stored, text, payload in rows:
        position = n + 1
        eid = event_id(n)
        digest = hash_with_text(prev_hash, position, eid, gen.TENANT, STATEMENT_EVENT, text, payload)
        events.append((position, eid, gen.TENANT, STATEMENT_EVENT, s.statement_id, stored, payload, prev_hash, digest))
        statement_keys = filter_keys(s)
        authority = next((k for k in statement_keys if k.startswith(AUTHORITY_KEY)), None)
        statements.append((gen.TENANT, s.statement_id, position, stored, s.verb_id, authority, s.registration,
                           voided_by_later(n, total), s.voids, s.statement_ref))
        keys.append(key_literal(statement_keys))
        prev_hash = digest
    # stored as the writer stores them (the hash covers the JSON, not its stored form)
    stored = store_payloads([e[6] for e in events])
    events = [e[:6] + (p,) + e[7:] for e, p in zip(events, stored)]
    return prev_hash, events, statements, keys


def worker(url: str, part: int, parts: int, first: int, total: int, queues: list, done: Any) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute("SET synchronous_commit = off")
        try:
            for c, start in enumerate(range(first, total, CHUNK)):
                if c % parts != part:
                    continue
                rows = prepare_chunk(start, min(CHUNK, total - start), total)
                chunk, prev_hash = queues[part].get()
                assert chunk == c, (chunk, c)
                last, events, statements, keys = chain_chunk(rows, prev_hash, total)
                queues[(part + 1) % parts].put((c + 1, last))
                if start + CHUNK >= total:
                    done.put(last)
                async with conn.transaction():
                    await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
                    await conn.execute(INSERT_STATEMENTS, *(list(column) for column in zip(*statements)))
                    await conn.execute(INSERT_KEYS, [gen.TENANT] * len(keys), [e[0] for e in events], keys,
                                       [s[4] for s in statements])
        finally:
            await conn.close()

    asyncio.run(run())


async def _indexes(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """(table, drop statement, create statement) of each index and key constraint of TABLES."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS tbl, i.relname AS idx, pg_get_indexdef(i.oid) AS def, con.conname, con.contype,
               pg_get_constraintdef(con.oid) AS condef
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.contype IN ('p', 'u')
        WHERE c.relname = ANY($1::text[])
        """, list(TABLES))
    out = []
    for r in rows:
        if r["conname"]:
            out.append((r["tbl"], f'ALTER TABLE {r["tbl"]} DROP CONSTRAINT {r["conname"]}',
                        f'ALTER TABLE {r["tbl"]} ADD CONSTRAINT {r["conname"]} {r["condef"]}'))
        else:
            out.append((r["tbl"], f'DROP INDEX {r["idx"]}', r["def"]))
    return out


async def load(url: str, total: int, processes: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    timings: dict[str, float] = {}
    try:
        head = await conn.fetchrow("SELECT position, hash FROM log_head WHERE singleton")
        have = int(head["position"])
        if have >= total:
            return {"statements_before": have, "statements_after": have}
        indexes = await _indexes(conn)
        t0 = time.perf_counter()
        for _, drop, _ in indexes:
            await conn.execute(drop)
        ctx = multiprocessing.get_context("fork")
        queues = [ctx.Queue() for _ in range(processes)]
        done = ctx.Queue()
        queues[0].put((0, bytes(head["hash"])))
        procs = [ctx.Process(target=worker, args=(url, p, processes, have, total, queues, done))
                 for p in range(processes)]
        for p in procs:
            p.start()
        last_hash = done.get()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"a loader process failed (exit status {p.exitcode})")
        timings["copy_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for _, _, create in indexes:
            await conn.execute(create)
        timings["indexes_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        marked = await conn.execute(MARK_VOIDED, have)
        timings["mark_voided_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        reached = await conn.fetchval("SELECT add_statement_ref_keys()")
        timings["ref_keys_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        last = stored_at(total - 1)
        await conn.execute("UPDATE log_head SET position = $1, hash = $2, stored = $3 WHERE singleton",
                           total, last_hash, last)
        timings["log_head_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for table in TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum_analyze_s"] = time.perf_counter() - t0
    finally:
        await conn.close()
    return {"statements_before": have, "statements_after": total, "voided_earlier": marked, "ref_keys_added": reached,
            **{k: round(v, 1) for k, v in timings.items()}}
