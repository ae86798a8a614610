"""What a projection is: the hooks the runner (projections/runner.py) and the
replay (projections/replay.py) call, every one declared here with its default.

A projection subclasses :class:`Projection`, names itself, lists its tables
and implements :meth:`Projection.apply`; everything else is optional and
overridden only to do better than the default.  A projection that overrides
nothing else is still run, replayed and checked by the contract test
(tests/integration/test_projection_contract.py) like any other.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, ClassVar, Sequence

import asyncpg

from projections.freshness_reasons import OUTDATED_FOUND

if TYPE_CHECKING:
    from projections.events import LogEvent

__all__ = ["Connect", "LogPage", "Projection", "ProjectionOutdated"]

Connect = Callable[[], Awaitable[asyncpg.Connection]]
# A page of the log as a replay reads it: (position, tenant, event type, payload).
LogPage = Sequence[tuple[int, str, str, bytes]]


class ProjectionOutdated(RuntimeError):
    """The stored state was built with other rules or frameworks: replay it.
    ``values`` are the projection's name and what it was built with and what
    this process runs (``projection``, ``built_rules``, ``built_digest``,
    ``rules``, ``digest``); ``found`` says in English what differs and nothing
    of what to do: whoever catches it knows whether a replay is the user's to
    run or already under way (projections/freshness_reasons.py)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)
        self.found = OUTDATED_FOUND.format(**self.values)
        super().__init__(f"{self.found}: run `lrs replay {self.values['projection']}`")


class Projection(abc.ABC):
    """A fold of the event log into tables of its own.

    The runner calls, around each transaction it opens: :meth:`begin` (the
    stored checkpoint, locked), then :meth:`apply_many` for a run of
    consecutive events (or :meth:`apply` one by one, to pin a failure on its
    event), then :meth:`committed` or, when the transaction or a savepoint in
    it rolled back, :meth:`rolled_back`.  A replay builds fresh tables with
    :meth:`rebuild` when :attr:`bulk_rebuild` is set (else through the
    runner's own apply, batch by batch), calls :meth:`finish_rebuild` on
    them, and swaps them in, in one transaction."""

    name: ClassVar[str]
    # The checkpoint records both; a state built under others asks for a replay.
    rule_version: ClassVar[int]
    catalog_digest: str = ""
    # The tables the projection owns, in the ``public`` schema: a replay builds
    # each afresh (same columns, indexes and keys) and swaps it in.  Every
    # table that apply or finish_rebuild writes is one of them.
    tables: ClassVar[tuple[str, ...]]
    # True: :meth:`rebuild` builds the whole state at once, into tables
    # without indexes (the replay adds them after); False: a replay applies
    # the log batch by batch.
    bulk_rebuild: ClassVar[bool] = False
    # The pages a bulk rebuild gets carry each payload opened (its canonical
    # JSON), by the process that read the page: it hashes them to check the
    # chain (projections/log_chain.py).

    @abc.abstractmethod
    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        """Fold one event into the state, inside the caller's transaction."""

    async def apply_many(self, conn: asyncpg.Connection, events: Sequence[LogEvent]) -> None:
        """Fold consecutive ``events``, inside the caller's transaction (a
        savepoint: when it raises, the runner applies them one by one)."""
        for event in events:
            await self.apply(conn, event)

    async def rebuild(
        self, conn: asyncpg.Connection, pages: AsyncIterator[LogPage], *, connect: Connect | None = None
    ) -> tuple[int, list[tuple[int, str, str]]]:
        """Build the whole state in the empty (unindexed) tables from ``pages``
        of the log; returns the last position read and the events the rules
        failed on (position, tenant, error).  ``connect`` opens another
        connection to the same database, or is None.  Called only when
        :attr:`bulk_rebuild` is set."""
        raise NotImplementedError(f"projection {self.name!r} does not rebuild in bulk (bulk_rebuild is False)")

    async def reset(self, conn: asyncpg.Connection) -> None:
        """Empty the projection's tables."""
        await conn.execute(f"TRUNCATE {', '.join(self.tables)}")

    async def finish_rebuild(self, conn: asyncpg.Connection) -> None:
        """Runs in a replay's swap transaction on the fresh tables, before
        they replace the live ones: ``search_path`` puts the scratch schema
        first, which holds every table of :attr:`tables` (so what this writes
        without a schema name lands there, never in a live table, which stays
        unlocked meanwhile).  ``--compare`` finishes its rebuild so too."""

    async def digest(self, conn: asyncpg.Connection | asyncpg.Pool) -> str:
        """A digest of the whole state: equal states, equal digests.  By
        default every row of every table, as text, in a fixed order; a
        projection overrides it to leave out what is not state (a timestamp
        of when a row was written, for example)."""
        h = hashlib.sha256()
        for table in self.tables:
            rows = await conn.fetchval(f"SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM {table} t")
            h.update(f"{table}\n{rows or ''}\n".encode())
        return h.hexdigest()

    def begin(self, checkpoint: int, rebuilds: int) -> None:
        """A transaction starts; the stored checkpoint (locked) is ``checkpoint``,
        and ``rebuilds`` replays have replaced the state so far: what is kept
        in memory from before another rebuild no longer holds, even at the
        same checkpoint."""

    def committed(self, checkpoint: int) -> None:
        """The transaction committed with the checkpoint at ``checkpoint``."""

    def rolled_back(self) -> None:
        """The transaction failed (or its outcome is unknown), or a savepoint in
        it rolled back: forget what is kept in memory about it."""
