"""One group's transaction (:mod:`lrs.store.writer`, steps 1-4): on the
connection the previous group left or one from the pool, the touched
statements looked up, the keys proposed, the log head locked (the hold
timed), the group planned and written, and whether its COMMIT begins the
next group's transaction."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import AsyncIterator

import asyncpg

from lrs import metrics
from lrs.batching import AppendRequest, ExistingStatement, GroupPlan, LogHead, merge_touched, plan_group
from lrs.eventlog import ONE_MICROSECOND
from lrs.store.activities import LockedDefinitions, definition_slots, write_definitions
from lrs.store.group_columns import authority_keys, defined_activities, group_columns, group_definition_updates
from lrs.store.group_commit_sql import (
    COUNT_STATEMENTS_EVERY,
    COUNT_STATEMENTS_UPTO,
    GENERIC_PLANS_FROM,
    INSERT_GROUP,
    SELECT_HEAD_FOR_UPDATE,
    SELECT_HEAD_POSITION,
    SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS,
    UPDATE_VOIDED,
    begin_group,
)
from lrs.store.group_keys import keys_taken
from lrs.store.group_reads import erased_meanwhile, existing_statement, fetch_touched, lookup_pairs, touched_lookups
from lrs.store.kept_connection import connection_for_group, group_transaction, release
from lrs.store.ref_keys import add_reached_keys
from lrs.store.sealed_identities import INSERT_CIPHERTEXTS, ciphertext_columns
from lrs.store.unconfirmed_keys import session_known_since, unconfirmed_before_session
from lrs.store.writer_state import WriterState

__all__ = ["LOOKUP_AHEAD_MIN_STATEMENTS", "GroupWrite"]


# Groups of at least this many statements look up what they touch before
# taking the head lock (see _write).
LOOKUP_AHEAD_MIN_STATEMENTS = 64


class GroupWrite(WriterState):
    """A group's transaction, and the connection it leaves for the next."""

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
        held, self._held = self._held, None
        conn = await connection_for_group(self._group_pool, held)
        try:
            plan = await self._write_on(conn, requests)
        except BaseException:
            await release(self._group_pool, conn)
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
            await release(self._group_pool, conn)  # committed: a failure to reset the connection is not the group's
        return plan
    def _more_waiting(self) -> bool:
        """Whether the next group's transaction begins at this COMMIT: a group
        follows at once (requests are waiting), or a client of this group
        will likely be back with another request (it announced itself and
        keeps its connection: the lock-step of single-statement POSTs, where
        a group holds nearly every client of its worker and nobody waits at
        its COMMIT).  A transaction begun for clients that do not come back
        within ``begun_hold_s`` is rolled back (:meth:`_idle`)."""
        now = asyncio.get_running_loop().time()
        # PostgreSQL reports a backend's statistics (the rows it wrote, which
        # autovacuum and autoanalyze go by) only when it is idle outside a
        # transaction: under a steady stream of groups a connection always
        # in one would never report them, so at least every stats_every_s a
        # COMMIT begins nothing.
        begin = not self._closing and now - self._left_transaction_at < self._stats_every_s and (
            bool(self._queue) or self._gathering.coming_back(item.client for item in self._group)
        )
        if not begin:
            self._left_transaction_at = now
        return begin

    def _chained(self) -> None:
        self.groups_chained += 1

    def _begin_group(self) -> str:
        return begin_group(self._log_position if self._enough_statements else None)

    async def _count_statements(self, conn: asyncpg.Connection) -> None:
        """Whether the store holds enough statements for generic plans,
        asked only once the log is long enough, and again only after it
        grew (COUNT_STATEMENTS_UPTO says why)."""
        position, counted = self._log_position, self._statements_counted_at
        if self._enough_statements or position is None or position < GENERIC_PLANS_FROM:
            return
        if counted is not None and position < counted + COUNT_STATEMENTS_EVERY:
            return
        self._statements_counted_at = position
        count = await conn.fetchval(COUNT_STATEMENTS_UPTO, GENERIC_PLANS_FROM)
        self._enough_statements = count >= GENERIC_PLANS_FROM

    async def _write_on(self, conn: asyncpg.Connection, requests: list[AppendRequest]) -> GroupPlan:
        # Look the group's ids up before taking the lock (the other
        # writers' commits go on meanwhile); under it, read only what was
        # committed since the head seen first.
        # Small groups look up in the call that takes the lock, as seen once
        # it is granted (SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS): one round
        # trip instead of up to four, and their lookups are short.
        await self._count_statements(conn)
        lookups = touched_lookups(requests)
        defined = defined_activities(requests)  # walked once, outside the lock
        ahead = sum(len(r.statements) for r in requests) >= LOOKUP_AHEAD_MIN_STATEMENTS
        seen: int | None = None
        existing: list[ExistingStatement] = []
        if ahead:
            seen = await conn.fetchval(SELECT_HEAD_POSITION)
            existing = await fetch_touched(conn, lookups)
        # The hold is timed until the COMMIT (or ROLLBACK) returns: the
        # transaction is left before the timer.
        async with self._head_lock_hold() as hold, group_transaction(
            conn, self._more_waiting, self._chained, self._begin_group
        ):
            # Keys made for the requests, before the head lock (a group
            # waiting here on another's key holds no lock of the log); and
            # the keys of requests sealed before this connection's session
            # began that are not known to be on disk: a crash may have come
            # between (lrs.store.unconfirmed_keys).
            since = session_known_since(conn)
            taken = await keys_taken(conn, requests, since) if any(
                r.new_keys or unconfirmed_before_session(r, since) for r in requests) else {}
            locked: LockedDefinitions | None = None
            if seen is None:
                # The definitions the group may merge are read and locked in the
                # same call (after the checkpoint, the catch-up's lock order),
                # not in a round trip of their own under the head lock.
                slots = definition_slots((r.tenant, defined[id(s)]) for r in requests if r.defines for s in r.statements)
                rows = await conn.fetch(
                    SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS, *lookup_pairs(lookups),
                    [tenant for tenant, _ in slots], [activity_id for _, activity_id in slots],
                )
                hold.locked()
                row = rows[0]
                head = LogHead(row["head_position"], row["head_hash"], row["head_stored"])
                existing = [existing_statement(r["tenant"], r) for r in rows[1:] if r["activity_id"] is None]
                if slots:
                    locked = LockedDefinitions(frozenset(slots), {
                        (r["def_tenant"], r["activity_id"]): r["definition"]
                        for r in rows[1:] if r["activity_id"] is not None
                    })
            else:
                row = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
                hold.locked()
                head = LogHead(row["position"], row["hash"], row["stored"])
            self.key_epoch = row["key_epoch"]
            self._log_position = head.position
            refused = await erased_meanwhile(conn, requests, row["key_epoch"])
            if taken:
                refused = {**refused, **taken}
            if seen is not None and head.position != seen:
                later = await fetch_touched(conn, lookups, (seen, head.position))
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
            self._log_position = plan.head.position
            updates = group_definition_updates(requests, plan, defined)
            # The relay of a shared log runs in another process: the statement
            # wakes it at commit, if this group carries the announcement.
            self._group_announced = self._announcer is not None and self._announcer.with_group()
            written = await conn.fetchrow(
                INSERT_GROUP, *group_columns(plan), bool(updates), self._group_announced, authority_keys(plan),
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
            await write_definitions(conn, updates, plan.head.position, checkpoint_moved=True, locked=locked)
        return plan


class _Hold:
    """When the log head lock was taken (perf_counter), if it was."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None

    def locked(self) -> None:
        self.since = time.perf_counter()
