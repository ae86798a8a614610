"""Group commit: concurrent append requests share one durable transaction.

``append`` enqueues a request and waits.  One writer task takes what is
queued (waiting up to ``wait_ms`` for more, up to ``max_statements``) and
commits it in ONE transaction:

1. fetch the stored statements the group touches (one query per tenant),
   noting the head position first, without any lock;
2. lock the single ``log_head`` row FOR UPDATE.  This serialises writers
   across processes, so positions are gapless and in commit order; then
   fetch the touched statements committed after the noted head, if any
   (:func:`lrs.batching.merge_touched`);
3. decide every request with the pure :func:`lrs.batching.plan_group`;
4. COPY the new events and read-model rows and the new ciphertexts of
   sealed identities they name (:mod:`lrs.store.sealed_identities`), mark newly voided statements,
   merge the Activity Definitions of senders holding ``define`` into the
   canonical ones (:func:`lrs.store.activities.write_definitions`), move the
   head; COMMIT (``synchronous_commit = on``);
5. only then answer each request: its results, or its own error.

When requests are already waiting at COMMIT, the same round trip begins the
next group's transaction and the writer keeps the connection (no BEGIN of its
own and no pool reset for the next group); each transaction plans its
statements per execution (``BEGIN_GROUP`` says why).

A database error fails the requests of that group only; the writer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Callable, Mapping, Sequence

import asyncpg
import msgspec
import structlog

from lrs import metrics
from lrs.batching import (
    AUTHORITY_KEY,
    AppendRequest,
    AppendResult,
    ExistingStatement,
    GroupPlan,
    LogHead,
    filter_keys,
    merge_touched,
    plan_group,
    statement_form,
)
from lrs.documents.activities import DefinitionUpdate, definition_updates, drop_repeated_definitions
from lrs.eventlog import ONE_MICROSECOND, STATEMENT_EVENT
from lrs.ingest.model import PreparedStatement
from lrs.payload_codec import open_payload, store_payloads
from lrs.store.activities import write_definitions
from lrs.store.commit_notifications import LOG_CHANNEL
from lrs.store.ids import TimeOrderedUuids
from lrs.store.ref_keys import add_reached_keys
from lrs.store.sealed_identities import INSERT_CIPHERTEXTS, ciphertext_columns, insert_ciphertexts
from lrs.xapi.errors import XapiError
from lrs.xapi.identity import authority_key

__all__ = ["AppendResult", "KeyErasedMeanwhile", "StatementWriter", "WriterClosedError"]

SELECT_HEAD_FOR_UPDATE = "SELECT position, hash, stored, key_epoch FROM log_head WHERE singleton FOR UPDATE"
SELECT_HEAD = "SELECT position, hash, stored FROM log_head WHERE singleton"
SELECT_HEAD_STORED = "SELECT stored FROM log_head WHERE singleton"
SELECT_HEAD_POSITION = "SELECT position FROM log_head WHERE singleton"
# Two index lookups rather than one "id = ANY OR voids = ANY": with the OR,
# a plan made while the table was small scans every row of the tenant.
# Each wanted id is its own primary-key lookup (a LATERAL subquery with
# LIMIT is run once per id and cannot be turned into a scan): with
# "statement_id = ANY($2)" the planner may find it cheaper to read the whole
# tenant and compare every row with the list, which is what it chose once
# the read model no longer carried the JSON (small rows, cheap to scan) and
# which grows with every statement stored.  Voiding statements are few, and
# their partial index small.  The JSON of a stored statement is its event's
# payload (same position).
SELECT_TOUCHED = """
SELECT s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload,
       s.voids, s.voided, s.stored, s.position
FROM unnest($2::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (
    SELECT statement_id, voids, voided, stored, position FROM statements
    WHERE tenant = $1 AND statement_id = wanted.id LIMIT 1
) AS s
UNION ALL
SELECT s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload,
       s.voids, s.voided, s.stored, s.position
FROM statements s WHERE s.tenant = $1 AND s.voids = ANY($3::uuid[]) AND s.voids IS NOT NULL
"""
# The touched statements committed in (after, upto]: the group looks its
# statements up before it takes the head lock, then only this range under it.
# Both bounds: a range a generic plan takes for narrow (the position index),
# and IN (SELECT unnest ...) is hashed once, not searched per row.
SELECT_TOUCHED_BETWEEN = """
SELECT s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload,
       s.voids, s.voided, s.stored, s.position
FROM statements s
WHERE s.tenant = $1 AND s.position > $3 AND s.position <= $4
  AND (s.statement_id IN (SELECT unnest($2::uuid[])) OR s.voids IN (SELECT unnest($2::uuid[])))
"""
# Small groups: the head lock and, seen from after it was granted, the
# touched statements, in one round trip (schemas/postgres/0099_lock_head_with_touched.sql):
# the first row is the head, the others the statements.
SELECT_HEAD_WITH_TOUCHED = "SELECT * FROM log_head_locked_with_touched($1, $2, $3, $4)"
# Of the requests' (tenant, pseudonym, generation) keys, the destroyed ones:
# each looked up on its own by the primary key (a LATERAL subquery with
# LIMIT), not an anti-join a planner may run over every key
# (lrs.store.learner_keys).
SELECT_ERASED_REFS = """
SELECT u.t AS tenant, u.p AS pseudonym, u.g AS generation
FROM unnest($1::text[], $2::text[], $3::int[]) AS u(t, p, g)
LEFT JOIN LATERAL (
    SELECT wrapped FROM learner_keys k
    WHERE k.tenant = u.t AND k.pseudonym = u.p AND k.generation = u.g LIMIT 1
) AS k ON true
WHERE k.wrapped IS NULL
"""
UPDATE_VOIDED = """
UPDATE statements SET voided = true
WHERE tenant = $1 AND statement_id = ANY($2::uuid[]) AND voids IS NULL
"""
# Whether a Statement stored before this group refers to one of the group's
# (its target came after it): it then takes the new Statement's keys
# (lrs/store/ref_keys.py).  One lookup per new Statement in the small partial
# index of referring Statements (OFFSET 0: never a join over all of them).
REFERRED = """EXISTS (
    SELECT 1 FROM unnest($3::text[], $5::uuid[]) AS u(tenant, id), LATERAL (
        SELECT 1 FROM statements r WHERE r.tenant = u.tenant AND r.statement_ref = u.id
          AND r.statement_ref IS NOT NULL OFFSET 0
    ) AS r
)"""
# The whole write of a group in one statement (one round trip): the events,
# the read-model rows (whose JSON is the event's payload) and the new head.  Filter keys travel as one array literal per row ('{"A:...","O:..."}')
# because unnest cannot take a ragged two-dimensional array; PostgreSQL's array
# input is much cheaper than expanding a JSON array per row.
# What follows from the group's place in the log is not sent per row
# (plan_group lays it out; _group_columns checks it): the n-th new event
# (n from 1) has position $1 + n - 1 and stored $6 + (n - 1) microseconds, its
# prev_hash is the hash of the event before it ($8, the old head's hash, for
# the first), and every event is a statement ($4).  asyncpg encodes each
# element of an array parameter on its own (a timestamptz costs most), so four
# arrays fewer are about 1.5 microseconds of the worker's CPU a statement
# (bench/group_insert_encoding.py).
INSERT_GROUP = """
WITH new_events AS (
    INSERT INTO events (position, event_id, tenant, event_type, statement_id,
                        stored, payload, prev_hash, hash)
    SELECT $1::bigint + e.n - 1, e.event_id, e.tenant, $4::text, e.statement_id,
           $6::timestamptz + (e.n - 1) * interval '1 microsecond', e.payload, e.prev_hash, e.hash
    FROM unnest($2::uuid[], $3::text[], $5::uuid[], $7::bytea[],
                array_prepend($8::bytea, trim_array($9::bytea[], 1)), $9::bytea[])
         WITH ORDINALITY AS e(event_id, tenant, statement_id, payload, prev_hash, hash, n)
), new_statements AS (
    -- the keys' text stays in the statement's JSON; the row holds hashes
    -- (schemas/postgres/0092_lean_statements.sql)
    INSERT INTO statements (tenant, statement_id, position, stored, verb_key,
                            authority_key, registration, voided, voids, statement_ref)
    SELECT u.tenant, u.statement_id, $1::bigint + u.n - 1, $6::timestamptz + (u.n - 1) * interval '1 microsecond',
           statement_key(u.tenant, 'V:' || u.verb_id), statement_key(u.tenant, u.authority),
           u.registration, u.voided, u.voids, u.statement_ref
    FROM unnest($3::text[], $5::uuid[],
                $10::text[], $21::text[], $12::uuid[], $13::bool[], $14::uuid[], $15::uuid[])
         WITH ORDINALITY AS u(tenant, statement_id, verb_id, authority,
                              registration, voided, voids, statement_ref, n)
), new_keys AS (
    -- the ordered index of the filter keys (schemas/postgres/0091_statement_keys.sql)
    INSERT INTO statement_keys (key, position)
    SELECT DISTINCT statement_key(u.tenant, k), $1::bigint + u.n - 1
    FROM unnest($3::text[], $11::text[]) WITH ORDINALITY AS u(tenant, keys, n),
         unnest(u.keys::text[]) AS k
    WHERE left(k, 2) <> 'U:'
), new_head AS (
    UPDATE log_head SET position = $16, hash = $17, stored = $18 WHERE singleton
), new_ciphertexts AS (
    -- the ciphertexts the group's sealed Statements name, new to their
    -- senders, in reference order (lrs.store.sealed_identities)
    %s
), definitions_checkpoint AS (
    UPDATE activity_definitions_checkpoint SET position = GREATEST(position, $16)
    WHERE singleton AND $19::bool
)
SELECT CASE WHEN $20::bool THEN pg_notify('%s', $16::text) END, %s AS referred
""" % (insert_ciphertexts("$22", "$23"), LOG_CHANNEL, REFERRED)
# $19: the group carries Activity Definitions of a defining sender, so the
# definitions' checkpoint moves to the new head in this statement, before
# write_definitions locks and merges the rows (lrs.store.activities explains
# the order).  $20: other processes append to the log too, so the commit is
# announced (lrs.store.commit_notifications; delivered at COMMIT).  Each was
# a round trip of its own per group.  $21: each statement's 'U:' authority key.
# $22, $23: the references and ciphertexts of sealed identities the group's
# requests carry (AppendRequest.ciphertexts), so a Statement never commits
# without the ciphertext it names: same statement, same transaction.

# A group's transaction begins with custom plans for its statements.  Once a
# connection has run a prepared statement five times PostgreSQL may switch to
# its generic plan, and for the group's statements that cost PostgreSQL about
# twice the CPU a statement (bench/writer_plans.py: 190-220 against about
# 105 microseconds a statement at batch 1); while every group went through
# the pool's reset, the plans stayed custom (which is why keeping the
# connection seemed to raise PostgreSQL's CPU).  SET LOCAL ends with the
# transaction, and travels in the BEGIN's round trip.
BEGIN_GROUP = "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan"

# Groups of at least this many statements look up what they touch before
# taking the head lock (see _write).
LOOKUP_AHEAD_MIN_STATEMENTS = 64

log = structlog.get_logger(__name__)
_decode_json = msgspec.json.Decoder().decode


class WriterClosedError(RuntimeError):
    """The writer is shutting down and accepts no new requests."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class _Queued:
    request: AppendRequest
    future: asyncio.Future[list[AppendResult]]


class StatementWriter:
    """Appends statements through group commit.  ``await start()`` before use,
    ``await close()`` to drain: everything accepted gets committed or an error."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        wait_ms: float = 2.0,
        max_statements: int = 5000,
        clock: Callable[[], datetime] = utc_now,
        new_event_id: Callable[[], uuid.UUID] | None = None,
        shared_log: bool = False,
        head_refresh_s: float = 0.1,
    ) -> None:
        self._pool = pool
        # Other processes append to the same log: this process cannot see their
        # in-flight transactions, so consistent-through is the committed head.
        self._shared_log = shared_log
        self._head_refresh_s = head_refresh_s
        self._refresher: asyncio.Task[None] | None = None
        self._wait = max(wait_ms, 0.0) / 1000.0
        self._max = max(max_statements, 1)
        self._clock = clock
        self._new_event_id = new_event_id or TimeOrderedUuids()
        self._queue: deque[_Queued] = deque()
        self._queued_statements = 0
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The connection of the last group, kept while more groups wait (_write).
        self._held: asyncpg.pool.PoolConnectionProxy | None = None
        self._closing = False
        self._committing = 0  # requests in the transaction being committed
        self._committing_statements = 0
        self._committing_min_stored: datetime | None = None
        self._floor: datetime | None = None  # highest consistent-through handed out
        self._last_position = 0
        self._last_stored: datetime | None = None
        # When (event loop time) _last_stored was last learned from the
        # database: a commit of this writer or a re-read by _refresh_head.
        self._head_seen_at = float("-inf")
        # Called with the new last position after every commit that wrote events.
        self.committed: list[Callable[[int], None]] = []
        # Counters for metrics: transactions that wrote events, statements written.
        self.groups_committed = 0
        # Of them, those whose COMMIT began the next group's transaction.
        self.groups_chained = 0
        # log_head.key_epoch as the last transaction read it (docs/privacy.md).
        self.key_epoch = 0
        self.statements_committed = 0
        # Time the log head lock was held by this writer (FOR UPDATE to
        # COMMIT), in total and, with keep_head_lock_holds, per transaction:
        # the serial part of ingest across every process appending to the log
        # (docs/scaling.md; bench/log_head_lock.py).
        self.head_lock_seconds = 0.0
        self.head_lock_holds: list[float] = []
        self.keep_head_lock_holds = False

    # -- state ---------------------------------------------------------------

    @property
    def last_position(self) -> int:
        """The highest position this writer has seen committed."""
        return self._last_position

    @property
    def in_flight(self) -> int:
        """Requests accepted and not answered yet."""
        return len(self._queue) + self._committing

    @property
    def pending_statements(self) -> int:
        """Statements accepted and not committed yet (waiting or being committed)."""
        return self._queued_statements + self._committing_statements

    @property
    def in_flight_min_stored(self) -> datetime | None:
        """The lowest ``stored`` assigned to statements not yet committed."""
        return self._committing_min_stored

    def consistent_through(self) -> datetime:
        """A time T such that every statement this process stores with
        ``stored <= T`` is already committed (X-Experience-API-Consistent-Through).

        Statements assigned later always get ``stored`` above every T handed
        out, so the answer never goes stale.

        With a shared log (several processes appending), T is the ``stored`` of
        the last committed head this process has seen (its own commits, and a
        re-read every ``head_refresh_s``): ``stored`` rises with commit order,
        so everything at or below a committed head is visible.
        """
        if self._shared_log:
            return self._last_stored or datetime(1970, 1, 1, tzinfo=timezone.utc)
        if self._committing_min_stored is not None:
            return self._committing_min_stored - ONE_MICROSECOND
        moment = self._clock()
        if self._last_stored is not None and self._last_stored > moment:
            moment = self._last_stored
        if self._floor is None or moment > self._floor:
            self._floor = moment
        return self._floor

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(SELECT_HEAD)
        self._last_position = row["position"]
        self._last_stored = row["stored"]
        self._head_seen_at = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name="lrs-statement-writer")
        if self._shared_log:
            self._refresher = asyncio.create_task(self._refresh_head(), name="lrs-writer-head")

    async def _refresh_head(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # This writer's own commits tell the committed head as well: the
            # head is re-read only when none did for head_refresh_s (a pooled
            # query and the pool's reset, ten times a second, cost a busy
            # worker about 5 % of its time).
            wait = self._head_seen_at + self._head_refresh_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._head_seen_at = loop.time()
            try:
                stored = await self._pool.fetchval(SELECT_HEAD_STORED)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                continue  # the writer's own errors are reported by append()
            if stored is not None and (self._last_stored is None or stored > self._last_stored):
                self._last_stored = stored

    async def close(self) -> None:
        """Stop accepting; commit (or fail) everything already accepted."""
        self._closing = True
        self._wakeup.set()
        self._full.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._held is not None:
            held, self._held = self._held, None
            await self._release(held)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def append(
        self,
        tenant: str,
        statements: Sequence[PreparedStatement],
        *,
        defines: bool = False,
        key_epoch: int | None = None,
        key_refs: frozenset[tuple[str, int]] = frozenset(),
        ciphertexts: Mapping[bytes, bytes] = {},
    ) -> list[AppendResult]:
        """Append one request's statements; returns one result per statement,
        in order, after COMMIT.  Raises ConflictError (409) or XapiError (400)
        for this request alone; database errors propagate.  ``defines``: the
        sender holds the ``define`` scope, so the Activity Definitions of its
        accepted statements update the canonical ones in the same transaction.
        ``key_epoch``, ``key_refs``: sealed Statements (:class:`lrs.batching.AppendRequest`);
        raises :class:`KeyErasedMeanwhile` when one of those keys was destroyed
        by an erasure after ``key_epoch``.  ``ciphertexts``: the v3
        ciphertexts by reference the sealed Statements name, committed with
        them (:mod:`lrs.store.sealed_identities`)."""
        if self._closing or self._task is None:
            raise WriterClosedError("the statement writer is not running")
        if not statements:
            return []
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        # The stored JSON and the filter keys do not depend on the log head:
        # encode them now, so the group's transaction holds the head lock
        # only for what does (positions, stored, hash chain).
        forms = tuple(statement_form(statement, _array_literal) for statement in statements)
        self._queue.append(
            _Queued(AppendRequest(tenant, tuple(statements), forms, defines, key_epoch, key_refs, ciphertexts), future)
        )
        self._queued_statements += len(statements)
        self._wakeup.set()
        if self._queued_statements >= self._max:
            self._full.set()
        return await future

    # -- the writer task -----------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._wait and not self._closing and self._queued_statements < self._max:
                # Until the queue is full or the wait is over, whichever comes
                # first.  A timer that sets the event, not asyncio.wait_for,
                # which made and cancelled a task for every group.
                self._full.clear()
                timer = asyncio.get_running_loop().call_later(self._wait, self._full.set)
                try:
                    await self._full.wait()
                finally:
                    timer.cancel()
            group = self._take_group()
            if group:
                await self._commit_group(group)
            elif self._held is not None:
                # Every waiting caller went away: no group follows the
                # transaction the last COMMIT began.
                held, self._held = self._held, None
                await self._release(held)

    def _take_group(self) -> list[_Queued]:
        group: list[_Queued] = []
        count = 0
        while self._queue:
            size = len(self._queue[0].request.statements)
            if group and count + size > self._max:
                break
            item = self._queue.popleft()
            self._queued_statements -= size
            if item.future.done():  # the caller went away before we started
                continue
            group.append(item)
            count += size
        return group

    async def _commit_group(self, group: list[_Queued]) -> None:
        self._committing = len(group)
        self._committing_statements = sum(len(item.request.statements) for item in group)
        started = time.perf_counter()
        try:
            plan = await self._write([item.request for item in group])
        except Exception as exc:  # noqa: BLE001 - every caller of this group gets it
            log.error("group commit failed", requests=len(group), error=repr(exc))
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._committing = 0
            self._committing_statements = 0
            self._committing_min_stored = None
        metrics.GROUP_COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.GROUP_COMMIT_REQUESTS.observe(len(group))
        metrics.GROUP_COMMIT_STATEMENTS.observe(len(plan.new))
        if plan.head is not None:
            self._last_position = plan.head.position
            self._last_stored = plan.head.stored
            self._head_seen_at = asyncio.get_running_loop().time()
            self.groups_committed += 1
            self.statements_committed += len(plan.new)
        for item, outcome in zip(group, plan.outcomes):
            if item.future.done():
                continue
            if isinstance(outcome, Exception):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        if plan.head is not None:
            for callback in list(self.committed):
                try:
                    callback(plan.head.position)
                except Exception as exc:  # noqa: BLE001 - a listener must not stop the writer
                    log.error("commit listener failed", error=repr(exc))

    @contextlib.asynccontextmanager
    async def _head_lock_hold(self) -> AsyncIterator[_Hold]:
        hold = _Hold()
        try:
            yield hold
        finally:
            if hold.since is not None:
                held = time.perf_counter() - hold.since
                metrics.LOG_HEAD_LOCK_SECONDS.observe(held)
                self.head_lock_seconds += held
                if self.keep_head_lock_holds:
                    self.head_lock_holds.append(held)

    async def _write(self, requests: list[AppendRequest]) -> GroupPlan:
        """One group's transaction, on the connection the previous group left
        when more requests were already waiting, else on one from the pool."""
        conn, self._held = self._held, None
        if conn is not None and not _alive(conn):
            # Its backend died while the group was gathered: asyncpg gave it
            # back to the pool already (nothing of the group was sent on it).
            await self._release(conn)
            conn = None
        if conn is None:
            conn = await self._pool.acquire()
        try:
            plan = await self._write_on(conn, requests)
        except BaseException:
            await self._release(conn)
            raise
        if conn.is_in_transaction():
            # The COMMIT began the next group's transaction (_write_on): more
            # requests were already waiting.  Keeping the connection skips the
            # pool's reset too (a round trip of four statements).  A group's
            # transaction leaves nothing behind it in the session: its row
            # locks end at COMMIT and it takes no advisory lock, LISTENs to
            # nothing, sets nothing and opens no cursor.
            self._held = conn
        else:
            await self._release(conn)  # committed: a failure to reset the connection is not the group's
        return plan

    async def _release(self, conn: asyncpg.pool.PoolConnectionProxy) -> None:
        """Back to the pool, out of any transaction this writer began (the
        pool's reset, or its termination of a broken connection, does the rest).

        Never raises: it runs in the writer's task loop and after a group's
        own error or COMMIT, where a broken connection must cost neither the
        task nor the group's answers.  asyncpg reports some broken connections
        as InternalClientError, neither PostgresError nor InterfaceError, and
        the pool closes a connection whose reset failed before it re-raises."""
        try:
            try:
                if _alive(conn) and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
            except Exception as exc:  # noqa: BLE001 - see above
                log.warning("statement writer rollback failed", error=repr(exc))
        finally:
            try:
                await self._pool.release(conn)
            except Exception as exc:  # noqa: BLE001 - the pool has closed it
                log.warning("statement writer connection closed", error=repr(exc))

    @contextlib.asynccontextmanager
    async def _transaction(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        """A group's transaction: begun by the previous group's COMMIT when
        the connection was kept, else here; committed at the end, and when
        requests are already waiting for the next group, the same round trip
        begins its transaction (``COMMIT; BEGIN ...``: one round trip a group
        fewer).  A failed COMMIT runs no BEGIN: the error is the group's, and
        the connection goes back to the pool.  An error inside rolls back."""
        if not conn.is_in_transaction():
            await conn.execute(BEGIN_GROUP)
        try:
            yield
        except BaseException:
            # the group's error is what its requests get; a broken connection's own is logged by _release
            with contextlib.suppress(Exception):
                if _alive(conn) and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
            raise
        if self._queue and not self._closing:
            await conn.execute("COMMIT; " + BEGIN_GROUP)
            self.groups_chained += 1
        else:
            await conn.execute("COMMIT")

    async def _write_on(self, conn: asyncpg.Connection, requests: list[AppendRequest]) -> GroupPlan:
        # Look the group's ids up before taking the lock (the other
        # writers' commits go on meanwhile); under it, read only what was
        # committed since the head seen first.
        # Small groups look up in the call that takes the lock, as seen once
        # it is granted (SELECT_HEAD_WITH_TOUCHED): one round trip instead of
        # up to three, and their lookups are short.
        lookups = _lookups(requests)
        ahead = sum(len(r.statements) for r in requests) >= LOOKUP_AHEAD_MIN_STATEMENTS
        seen: int | None = None
        existing: list[ExistingStatement] = []
        if ahead:
            seen = await conn.fetchval(SELECT_HEAD_POSITION)
            existing = await _fetch_touched(conn, lookups)
        # The hold is timed until the COMMIT (or ROLLBACK) returns: the
        # transaction is left before the timer.
        async with self._head_lock_hold() as hold, self._transaction(conn):
            if seen is None:
                rows = await conn.fetch(SELECT_HEAD_WITH_TOUCHED, *_pairs(lookups))
                hold.locked()
                row = rows[0]
                head = LogHead(row["head_position"], row["head_hash"], row["head_stored"])
                existing = [_existing(r["tenant"], r) for r in rows[1:]]
            else:
                row = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
                hold.locked()
                head = LogHead(row["position"], row["hash"], row["stored"])
            self.key_epoch = row["key_epoch"]
            refused = await _erased_meanwhile(conn, requests, row["key_epoch"])
            if seen is not None and head.position != seen:
                later = await _fetch_touched(conn, lookups, (seen, head.position))
                existing = merge_touched(existing, later)
            now = self._clock()
            if self._floor is not None and now <= self._floor:
                now = self._floor + ONE_MICROSECOND
            kept = [r for index, r in enumerate(requests) if index not in refused] if refused else requests
            plan = plan_group(kept, existing, head, now, self._new_event_id)
            if refused:
                outcomes = iter(plan.outcomes)
                plan.outcomes = [
                    refused[index] if index in refused else next(outcomes) for index in range(len(requests))
                ]
            refs, ciphertexts = ciphertext_columns(r.ciphertexts for r in kept if r.ciphertexts)
            if plan.head is None:
                # Nothing new (only duplicates and errors); the senders
                # may still reuse the sealed forms naming these.
                if refs:
                    await conn.execute(INSERT_CIPHERTEXTS, refs, ciphertexts)
                return plan
            self._committing_min_stored = plan.new[0].event.stored
            updates = _definition_updates(requests, plan)
            # The relay of a shared log runs in another process: the statement wakes it at commit.
            written = await conn.fetchrow(
                INSERT_GROUP, *_group_columns(plan), bool(updates), self._shared_log, _authority_keys(plan),
                refs, ciphertexts,
            )
            if written["referred"] or any(n.statement.statement_ref is not None for n in plan.new):
                # the keys of StatementRef chains through the group (lrs/store/ref_keys.py)
                await add_reached_keys(conn, [n.event.tenant for n in plan.new],
                                       [n.event.statement_id for n in plan.new])
            by_tenant: dict[str, list[uuid.UUID]] = defaultdict(list)
            for tenant, statement_id in plan.newly_voided:
                by_tenant[tenant].append(statement_id)
            for tenant, ids in by_tenant.items():
                await conn.execute(UPDATE_VOIDED, tenant, ids)
            await write_definitions(conn, updates, plan.head.position, checkpoint_moved=True)
        return plan


class KeyErasedMeanwhile(XapiError):
    """The request was sealed under a learner key that an erasure destroyed
    before the request could be written (the sealing process had not heard
    of it yet); nothing of it was stored.  Sealed again, it gets the new key."""

    default_status = 503


async def _erased_meanwhile(
    conn: asyncpg.Connection, requests: list[AppendRequest], key_epoch: int
) -> dict[int, KeyErasedMeanwhile]:
    """Under the head lock: the requests sealed before an erasure their
    process had not heard of, under a key it destroyed (by index)."""
    stale = [
        (index, r) for index, r in enumerate(requests) if r.key_epoch is not None and r.key_epoch < key_epoch and r.key_refs
    ]
    if not stale:
        return {}
    refs = {(r.tenant, p, g) for _, r in stale for p, g in r.key_refs}
    tenants, pseudonyms, generations = (list(column) for column in zip(*refs))
    erased = {
        (row["tenant"], row["pseudonym"], row["generation"])
        for row in await conn.fetch(SELECT_ERASED_REFS, tenants, pseudonyms, generations)
    }
    return {
        index: KeyErasedMeanwhile(
            f"a learner named in the request was erased while it was being stored (key epoch {key_epoch}); "
            "nothing was stored, send it again"
        )
        for index, r in stale
        if any((r.tenant, p, g) in erased for p, g in r.key_refs)
    }


class _Hold:
    """When the log head lock was taken (perf_counter), if it was."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None

    def locked(self) -> None:
        self.since = time.perf_counter()


def _definition_updates(requests: list[AppendRequest], plan: GroupPlan) -> list[DefinitionUpdate]:
    """The Activity Definitions in the accepted statements of defining requests."""
    defining = {id(s) for request in requests if request.defines for s in request.statements}
    if not defining:
        return []
    updates = definition_updates(
        (new.event.tenant, new.statement.body, new.event.position)
        for new in plan.new
        if id(new.statement) in defining
    )
    return drop_repeated_definitions(updates)


_Lookups = dict[str, tuple[list[uuid.UUID], list[uuid.UUID]]]


def _lookups(requests: list[AppendRequest]) -> _Lookups:
    """Per tenant: the group's ids and voiding targets, and the group's ids."""
    ids: dict[str, set[uuid.UUID]] = defaultdict(set)
    lookups: dict[str, set[uuid.UUID]] = defaultdict(set)
    for request in requests:
        for statement in request.statements:
            ids[request.tenant].add(statement.statement_id)
            lookups[request.tenant].add(statement.statement_id)
            if statement.voids is not None:
                lookups[request.tenant].add(statement.voids)
    return {tenant: (list(lookups[tenant]), list(tenant_ids)) for tenant, tenant_ids in ids.items()}


async def _fetch_touched(
    conn: asyncpg.Connection, lookups: _Lookups, between: tuple[int, int] | None = None
) -> list[ExistingStatement]:
    """Stored statements with the group's ids or its voiding targets, and
    stored voiding statements aimed at the group's ids; with ``between``,
    only those at positions in (after, upto] (and voiding statements aimed
    at any of the looked-up ids)."""
    found: list[ExistingStatement] = []
    for tenant, (wanted, tenant_ids) in lookups.items():
        if between is None:
            rows = await conn.fetch(SELECT_TOUCHED, tenant, wanted, tenant_ids)
        else:
            rows = await conn.fetch(SELECT_TOUCHED_BETWEEN, tenant, wanted, *between)
        found.extend(_existing(tenant, r) for r in rows)
    return found


def _alive(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    """Whether the pooled connection is still open.  When its backend goes
    away asyncpg hands it back to the pool at once, and its proxy then
    answers only InterfaceError ("released back to the pool")."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _existing(tenant: str, row: asyncpg.Record) -> ExistingStatement:
    return ExistingStatement(
        tenant, row["statement_id"], _decode_json(open_payload(row["payload"])), row["voids"],
        row["voided"], row["stored"], row["position"],
    )


def _pairs(lookups: _Lookups) -> tuple[list[str], list[uuid.UUID], list[str], list[uuid.UUID]]:
    """The arguments of SELECT_HEAD_WITH_TOUCHED: (tenant, id) pairs to look
    up, and (tenant, id) pairs of the group's own ids (voiding statements aimed at them)."""
    wanted_tenants: list[str] = []
    wanted: list[uuid.UUID] = []
    own_tenants: list[str] = []
    own: list[uuid.UUID] = []
    for tenant, (wanted_ids, tenant_ids) in lookups.items():
        wanted_tenants.extend([tenant] * len(wanted_ids))
        wanted.extend(wanted_ids)
        own_tenants.extend([tenant] * len(tenant_ids))
        own.extend(tenant_ids)
    return wanted_tenants, wanted, own_tenants, own


def _group_columns(plan: GroupPlan) -> tuple[object, ...]:
    """The parameters of INSERT_GROUP: one array per column, and one value
    for what the events' place in the log gives (see INSERT_GROUP)."""
    events = [n.event for n in plan.new]
    statements = [n.statement for n in plan.new]
    assert plan.head is not None
    first, last = events[0], events[-1]
    # plan_group's layout, which INSERT_GROUP rebuilds: consecutive positions,
    # stored one microsecond apart, each prev_hash the hash before it.
    # Positions and stored rise strictly, so the ends decide them.
    count = len(events)
    hashes = [e.hash for e in events]
    if (
        last.position - first.position != count - 1
        or last.stored - first.stored != (count - 1) * ONE_MICROSECOND
        or [e.prev_hash for e in events[1:]] != hashes[:-1]
        or [e.event_type for e in events].count(STATEMENT_EVENT) != count
    ):
        raise RuntimeError("the group's events are not laid out as INSERT_GROUP writes them")
    return (
        first.position,
        [e.event_id for e in events],
        [e.tenant for e in events],
        STATEMENT_EVENT,
        [e.statement_id for e in events],
        first.stored,
        store_payloads([e.payload for e in events]),
        first.prev_hash,
        hashes,
        [s.verb_id for s in statements],
        [n.form.filter_keys if n.form is not None else _array_literal(filter_keys(n.statement))
         for n in plan.new],
        [s.registration for s in statements],
        [n.voided for n in plan.new],
        [s.voids for s in statements],
        [s.statement_ref for s in statements],
        plan.head.position,
        plan.head.hash,
        plan.head.stored,
    )


def _authority_keys(plan: GroupPlan) -> list[str | None]:
    """Each new statement's 'U:' key (statements.authority_key is its hash)."""
    keys = []
    for new in plan.new:
        authority = authority_key(new.statement.body["authority"])
        keys.append(None if authority is None else AUTHORITY_KEY + authority)
    return keys


def _array_literal(values: list[str]) -> str:
    """A text[] literal: every element double-quoted, backslash and quote escaped."""
    if not values:
        return "{}"
    text = '","'.join(values)
    if '"' in text or "\\" in text:
        text = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + text + '"}'
