"""Rebuild a projection from the Postgres log into fresh tables, then swap them in.

The new tables are built in a scratch schema, analysed, brought up to what the
live runner committed meanwhile, finished there, and replace the live ones in
one transaction that locks them for the rename alone.  A
projection that builds its whole state at once (``bulk_rebuild``) gets the log
in pages and fills unindexed tables, indexed afterwards; others get it batch
by batch through the runner's own apply (projections/applying.py).  Every
event read is checked against the hash chain as ``lrs audit verify`` checks
it (projections/log_chain.py): a replay of a broken log swaps nothing in.
:func:`rebuilt` is the rebuild alone, which projections/replay_compare.py
compares with the live state instead of swapping it in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import structlog

from lrs.store import leader_lock
from lrs.store.log_reader import head, read_events_after
from projections.applying import BatchApplier
from projections.checkpoints import CheckpointStore
from projections.contract import Projection
from projections.events import log_events
from projections.log_chain import ChainWalk, Page, PageChain, checked_page
from projections.swap_lock import lock_live_tables

__all__ = ["LogPages", "Rebuilt", "ReplayRunning", "index_early", "rebuilt", "replay", "usable_cores"]

log = structlog.get_logger("lrs.projections")
MAX_INDEX_BUILDERS = 4  # connections building a replay's indexes at once


class ReplayRunning(RuntimeError):
    """Another replay of the same projection holds its lock."""

# The indexes of a live table, to give a rebuilt one the same (pg_get_indexdef names the table schema-qualified).
SELECT_INDEXES = """
SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition,
       c.conname AS constraint_name, c.contype::text AS constraint_type
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
WHERE x.indrelid = $1::regclass ORDER BY i.relname
"""
SELECT_BUILT_INDEXES = "SELECT indexname FROM pg_indexes WHERE schemaname = $1"
SELECT_STORAGE_PARAMETERS = "SELECT reloptions FROM pg_class WHERE oid = $1::regclass"
SELECT_TABLE_BYTES = "SELECT pg_table_size($1::regclass)"
# Replay reads the log a page at a time: what a projection folds, and what checking the chain needs.
SELECT_LOG_PAGE = """
SELECT position, event_id, tenant, event_type, timestamptz_send(stored), payload, prev_hash, hash FROM events
WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3
"""


async def replay(
    pool: asyncpg.Pool,
    projection: Projection,
    *,
    batch_size: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
) -> int:
    """Rebuild ``projection`` from the Postgres log into fresh tables, then
    swap them in; returns the position the new state reflects.  ``connect``
    opens another connection to the same database: a bulk rebuild may use
    it to write from several processes.

    The new tables are built in a scratch schema (the projection's SQL is
    unqualified, so ``search_path`` points it there).  The swap takes the
    checkpoint row's lock, applies what the live runner committed meanwhile,
    finishes the new tables where they are (``finish_rebuild``), and
    replaces the live tables in one transaction, holding their exclusive
    locks for the rename alone (projections/swap_lock.py).  ``progress(done, total)``
    is called after every batch.  Events the rules fail on are parked at once
    (they fail the same way every time); a rebuild replaces the parked events
    up to its position with its own, so replaying after fixing what made an
    event fail applies it and unparks it.

    Every event read is checked as ``lrs audit verify`` checks the log
    (projections/log_chain.py): where the hash chain breaks, ChainBroken is
    raised before anything is swapped in, and the scratch tables are dropped."""
    name = projection.name
    async with rebuilt(pool, projection, batch_size=batch_size, progress=progress, connect=connect) as built:
        conn, checkpoints, position = built.conn, built.checkpoints, built.position
        async with conn.transaction():
            await checkpoints.replace(conn, position)  # and hold its lock: the live runner waits
            if built.failed is not None:
                # The events parked up to here are exactly those the rebuild
                # failed on: one parked before and applied now (its cause
                # fixed: frameworks, rules) is parked no more.
                await checkpoints.replace_parked(conn, position, built.failed)
                for failed_at, tenant, error in built.failed:
                    log.error("projection.event_parked", projection=name, position=failed_at,
                              tenant=tenant, attempts=1, error=error, alert=True)
            position = await built.catch_up(batch_size)  # what was committed while we rebuilt
            # Finished where they are: nothing live is locked for as long as that takes.
            await projection.finish_rebuild(conn)
            # The live tables are locked for the rename alone (an erasure
            # holding the log head lock may wait for them: ingest with it).
            await conn.execute(f'CREATE SCHEMA "{built.retired}"')
            await lock_live_tables(conn, projection.tables)
            for table in projection.tables:
                # Moved aside, not dropped here: the commit then unlinks no
                # file (a large table's take a while) with the locks held.
                await conn.execute(f'ALTER TABLE public.{table} SET SCHEMA "{built.retired}"')
                await conn.execute(f'ALTER TABLE "{built.scratch}".{table} SET SCHEMA public')
            await checkpoints.advance(conn, position)
            await conn.execute(f'DROP SCHEMA "{built.scratch}"')
            await conn.execute("RESET search_path")
    log.info("projection.replayed", projection=name, position=position)
    return position


@dataclass
class Rebuilt:
    """A projection rebuilt into the ``scratch`` schema on ``conn`` (whose
    search_path points there) from the log up to ``position``, its chain
    checked up to there (``walk``); ``failed``: the events a bulk rebuild
    failed on (None: a rebuild batch by batch parked them itself)."""

    conn: asyncpg.Connection
    scratch: str
    position: int
    failed: list[tuple[int, str, str]] | None
    walk: ChainWalk
    applier: BatchApplier
    checkpoints: CheckpointStore

    @property
    def retired(self) -> str:
        """The schema a swap moves the live tables it replaces into, dropped after its commit."""
        return retired_schema(self.scratch)

    async def catch_up(self, batch_size: int, upto: int | None = None) -> int:
        """Apply to the rebuilt tables the events after ``position`` (up to
        ``upto``; default: the log's end), each checked to go on from the
        chain walked so far; returns the last position applied."""
        while True:
            limit = batch_size if upto is None else min(batch_size, upto - self.position)
            if limit <= 0:
                return self.position
            records = await read_events_after(self.conn, self.position, limit)
            if not records:
                return self.position
            self.walk.records(records)
            await self.applier.apply_run(self.conn, log_events(records), self.position)
            self.position = records[-1].position


@contextlib.asynccontextmanager
async def rebuilt(
    pool: asyncpg.Pool,
    projection: Projection,
    *,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None,
) -> AsyncIterator[Rebuilt]:
    """``projection`` rebuilt into a scratch schema from the log up to its
    end when it starts, indexed and analysed, with the log's hash chain
    checked up to there (ChainBroken: where it breaks); the scratch schema
    is dropped when the block ends (a swap moved its tables out of it)."""
    name = projection.name
    scratch = f"replay_{name}"
    checkpoints = CheckpointStore(projection)
    applier = BatchApplier(pool, projection, checkpoints, max_attempts=1)
    async with pool.acquire() as conn:
        # One replay of a projection at a time: another would drop this one's
        # scratch schema, and unqualified names would then reach the live
        # tables.  (The pool's reset releases the lock with the connection.)
        if not await leader_lock.try_lock(conn, leader_lock.lock_key(f"replay:{name}")):
            raise ReplayRunning(f"another replay of {name!r} is running")
        total, head_hash = await head(conn)  # one row: the position and the hash the chain must end with
        bulk = projection.bulk_rebuild
        # One transaction: one commit to wait for, not one per table.
        async with conn.transaction():
            await conn.execute(f'DROP SCHEMA IF EXISTS "{scratch}" CASCADE')
            await conn.execute(f'DROP SCHEMA IF EXISTS "{retired_schema(scratch)}" CASCADE')
            await conn.execute(f'CREATE SCHEMA "{scratch}"')
            # A bulk rebuild fills the tables first and indexes them after (faster than index by index).
            indexes = "EXCLUDING INDEXES" if bulk else ""
            for table in projection.tables:
                await conn.execute(f'CREATE TABLE "{scratch}".{table} (LIKE public.{table} INCLUDING ALL {indexes})')
                # LIKE copies no storage parameters (toast_tuple_target, fillfactor...)
                options = await conn.fetchval(SELECT_STORAGE_PARAMETERS, f"public.{table}")
                if options:
                    await conn.execute(f'ALTER TABLE "{scratch}".{table} SET ({", ".join(options)})')
        # The scratch schema shadows the live tables for this connection only.
        await conn.execute(f"SET search_path TO \"{scratch}\", public")
        try:
            failed: list[tuple[int, str, str]] | None = None
            if bulk:
                # Not in a transaction: the scratch tables are this replay's
                # alone, and other connections write to them and index them.
                pages = LogPages(conn, total, batch_size, progress, connect=connect, head_hash=head_hash)
                walk = pages.walk
                position, failed = await projection.rebuild(conn, pages, connect=connect)
                walk.end()  # whichever way the rebuild read the pages, the chain reaches the log's end
                if position != walk.position:
                    raise RuntimeError(f"the rebuild read up to position {position}; the chain was checked to {walk.position}")
                await _index_and_analyse(conn, projection.tables, scratch, connect)
            else:
                walk = ChainWalk(total, head_hash)
                position = await _replay_in_batches(conn, applier, walk, batch_size, progress)
                for table in projection.tables:
                    await conn.execute(_analyse(scratch, table))
            yield Rebuilt(conn, scratch, position, failed, walk, applier, checkpoints)
        finally:
            # What is left of the scratch schema (all of it unless swapped in):
            # a refused or failed replay leaves no tables behind.  (Not in the
            # way of what failed: the pool's reset releases the connection's
            # settings in any case.)
            with contextlib.suppress(Exception):
                await conn.execute("RESET search_path")
                await conn.execute(f'DROP SCHEMA IF EXISTS "{scratch}" CASCADE')
                await _drop_retired(conn, projection.tables, retired_schema(scratch))


def retired_schema(scratch: str) -> str:
    return f"{scratch}_retired"


async def _drop_retired(conn: asyncpg.Connection, tables: Sequence[str], retired: str) -> None:
    """Drop the tables a swap replaced, one a transaction: a session whose
    prepared statement still names one (by its old id) locks it before it
    finds the new one, and so waits for that table's drop alone."""
    for table in tables:
        await conn.execute(f'DROP TABLE IF EXISTS "{retired}".{table}')
    await conn.execute(f'DROP SCHEMA IF EXISTS "{retired}" CASCADE')


async def _index_and_analyse(
    conn: asyncpg.Connection,
    tables: Sequence[str],
    scratch: str,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None,
) -> None:
    """The replay's pass after the rebuild: :func:`_index_tables`.  A
    function of its own so that the pass after the rebuild can be timed
    apart from :func:`index_early`'s builds during it (bench/replay_phases.py
    wraps this name)."""
    await _index_tables(conn, tables, scratch, connect)


async def _index_tables(
    conn: asyncpg.Connection,
    tables: Sequence[str],
    scratch: str,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None,
) -> None:
    """Give each ``scratch``.``table`` the indexes and key constraints of
    public.``table``, by the same names, and analyse it.  With ``connect``,
    up to one connection per core works at once (each index build sorts on
    its own), largest table first; a table's keys (which lock it) and its
    ANALYZE follow on whichever connection is free once all its indexes are
    built, while the other connections build the other tables' indexes."""
    # A table the rebuild indexed already (index_early) has all its indexes here.
    built = {row[0] for row in await conn.fetch(SELECT_BUILT_INDEXES, scratch)}
    if built:
        tables = [table for table in tables if not _indexed(await conn.fetch(SELECT_INDEXES, f"public.{table}"), built)]
    sizes = {table: await conn.fetchval(SELECT_TABLE_BYTES, f'"{scratch}".{table}') for table in tables}
    builds: deque[tuple[str, str]] = deque()
    after: dict[str, list[str]] = {}  # table -> what runs once its indexes are built
    for table in sorted(tables, key=lambda t: -sizes[t]):  # the longest builds first
        keys = []
        for row in await conn.fetch(SELECT_INDEXES, f"public.{table}"):
            build, *key = _index_statements(table, scratch, row)
            builds.append((table, build))
            keys.extend(key)
        # Statistics before the tables go live: a table swapped in
        # without any is planned on guesses until autovacuum gets to it,
        # and the runner's lookups then took an index that filtered every
        # learner of a competency (projections/competency/store.py).
        after[table] = [*keys, _analyse(scratch, table)]
    unbuilt = {table: sum(1 for t, _ in builds if t == table) for table in tables}
    ready = deque(table for table in sorted(tables, key=lambda t: -sizes[t]) if not unbuilt[table])
    builders = [conn]
    try:
        if connect is not None:
            for _ in range(min(len(builds) + len(ready), usable_cores(), MAX_INDEX_BUILDERS) - 1):
                builder = await connect()
                builders.append(builder)
                await builder.execute(f'SET search_path TO "{scratch}", public')  # as ``conn``'s, for the keys

        async def work(builder: asyncpg.Connection) -> None:
            while ready or builds:
                if ready:
                    for statement in after[ready.popleft()]:
                        await builder.execute(statement)
                    continue
                table, statement = builds.popleft()
                await builder.execute(statement)
                unbuilt[table] -= 1
                if not unbuilt[table]:
                    ready.append(table)

        tasks = [asyncio.ensure_future(work(builder)) for builder in builders]
        try:
            await asyncio.gather(*tasks)
        finally:  # one failed: the others stop too
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for extra in builders[1:]:
            await extra.close()


async def index_early(connect: Callable[[], Awaitable[asyncpg.Connection]], scratch: str, tables: Sequence[str]) -> None:
    """Give the rebuilt ``tables`` of the ``scratch`` schema, filled for
    good, their indexes, keys and statistics now, on a connection of their
    own, while the rebuild goes on (the replay's own pass then skips them).
    An index build mostly waits on the disk: done beside the fold, that
    wait is not the replay's."""
    builder = await connect()
    try:
        await builder.execute(f'SET search_path TO "{scratch}", public')
        await _index_tables(builder, tables, scratch, None)
    finally:
        await builder.close()


def _indexed(indexes: Sequence[asyncpg.Record], built: set[str]) -> bool:
    return bool(indexes) and all(row["name"] in built for row in indexes)


def _analyse(scratch: str, table: str) -> str:
    return f'ANALYZE "{scratch}".{table}'


def _index_statements(table: str, scratch: str, row: asyncpg.Record) -> list[str]:
    """Build the index; then, for a key, make it the table's constraint."""
    definition = row["definition"].replace(f" ON public.{table} ", f' ON "{scratch}".{table} ', 1)
    if f' ON "{scratch}".{table} ' not in definition:
        raise RuntimeError(f"cannot place index {row['name']} on the rebuilt {table}: {row['definition']}")
    kind = {"p": "PRIMARY KEY", "u": "UNIQUE"}.get(row["constraint_type"])
    if kind is None:
        return [definition]
    return [
        definition,
        f'ALTER TABLE "{scratch}".{table} ADD CONSTRAINT "{row["constraint_name"]}" {kind} USING INDEX "{row["name"]}"',
    ]


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


async def _replay_in_batches(
    conn: asyncpg.Connection,
    applier: BatchApplier,
    walk: ChainWalk,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """The log up to ``walk.total`` applied batch by batch, its chain checked first."""
    position = 0
    while position < walk.total:
        records = await read_events_after(conn, position, min(batch_size, walk.total - position))
        if not records:
            break
        walk.records(records)
        async with conn.transaction():  # a failure is parked and logged
            await applier.apply_run(conn, log_events(records), position)
        position = records[-1].position
        if progress is not None:
            progress(position, max(walk.total, position))
    walk.end()
    return position


class LogPages:
    """The log up to ``total`` for a bulk rebuild, in pages of (position,
    tenant, event type, payload: its canonical JSON), each checked where it
    is read (projections/log_chain.py) and walked in log order by ``walk``.
    Iterated, it is every page, read on the replay's connection and walked
    as it goes; :meth:`fetch` reads a range of positions, on the replay's
    connection or another, with its chain for the caller to walk: with
    ``connect`` (another connection to the same database), a rebuild may
    hand ranges to processes that read them themselves
    (projections/competency/parallel_replay.py, read_shares.py), and the
    process that puts their pages in log order walks their chains."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        total: int,
        page_size: int,
        progress: Callable[[int, int], None] | None = None,
        *,
        connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
        head_hash: bytes | None = None,
    ) -> None:
        self.conn = conn
        self.total = total
        self.page_size = page_size
        self.progress = progress
        self.connect = connect
        self.walk = ChainWalk(total, head_hash)  # head_hash: log_head's, at total

    def __aiter__(self) -> AsyncIterator[Page]:
        return _log_pages(self.conn, self.total, self.page_size, self.progress, self.walk)

    async def fetch(self, after: int, upto: int, conn: asyncpg.Connection | None = None) -> tuple[Page, PageChain]:
        """The events of positions ``after`` < position <= ``upto``, at most a
        page of them, read on ``conn`` (default: the replay's), and their
        chain (the page cut before the first event that breaks it)."""
        return await _fetch_page(conn or self.conn, after, upto, self.page_size)

    def reached(self, position: int) -> None:
        """Report progress up to ``position`` (read elsewhere)."""
        if self.progress is not None:
            self.progress(position, max(self.total, position))


async def _fetch_page(conn: asyncpg.Connection, after: int, upto: int, page_size: int) -> tuple[Page, PageChain]:
    return checked_page(await conn.fetch(SELECT_LOG_PAGE, after, upto, page_size))


async def _log_pages(
    conn: asyncpg.Connection,
    upto: int,
    page_size: int,
    progress: Callable[[int, int], None] | None,
    walk: ChainWalk,
) -> AsyncIterator[Page]:
    """The log up to ``upto`` in pages of (position, tenant, event type,
    payload: its canonical JSON), each walked by ``walk`` before it is
    given (ChainBroken where the chain breaks, or ends short of ``upto``);
    the next page is read while the caller folds this one.  ``progress``
    gets (position, ``upto``)."""

    def fetch(after: int) -> Awaitable[tuple[Page, PageChain]]:
        return _fetch_page(conn, after, upto, page_size)

    upcoming: asyncio.Future[tuple[Page, PageChain]] | None = asyncio.ensure_future(fetch(0))
    try:
        while upcoming is not None:
            page, chain = await upcoming
            upcoming = None
            walk.page(chain)
            if not page:
                break
            position = chain.last
            if chain.count == page_size and position < upto:
                upcoming = asyncio.ensure_future(fetch(position))
            yield page
            if progress is not None:
                progress(position, max(upto, position))
        walk.end()
    finally:
        if upcoming is not None:
            upcoming.cancel()
            with contextlib.suppress(BaseException):
                await upcoming
