"""The durable checkpoint of ``lrs forward`` in the LRS's PostgreSQL (table
``forward_checkpoints``, schemas/postgres/0080 and 0081): the positions the
forwarder named ``name`` has dealt with, as a low-water mark
(:mod:`connectors.forward.lowwater`).

A message delivered for the first time at a position already dealt with is
a second copy of an event already forwarded (replayed onto the stream, or
republished by a relay after the stream's duplicate window): the forwarder
acknowledges it without sending it.  A position not dealt with is sent,
however far behind the others it comes (a message overtaken while it awaited
its redelivery, delivered again by a recreated consumer).  A redelivery (the
forwarder did not acknowledge the message: it crashed, or asked for a retry)
is sent again, and the target takes a statement id it already holds as the
same statement.

The consumer selects statement events only, so the positions of the log's
other events never come: the holes of the mark are looked up in the log and
those positions filled in.
"""

from __future__ import annotations

import asyncpg

from connectors.forward.lowwater import LowWaterMark

MAX_RUNS = 10_000  # runs kept above the mark: a row of at most 160 kB
SELECT = "SELECT position, done_above FROM forward_checkpoints WHERE name = $1"
SAVE = """
INSERT INTO forward_checkpoints (name, position, done_above) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, done_above = EXCLUDED.done_above,
                                 updated_at = now()
"""
# The runs of events other than statements within the holes ($1 firsts, $2 lasts).
OTHER_EVENTS_IN = """
SELECT min(position) AS first, max(position) AS last FROM (
    SELECT e.position, e.position - row_number() OVER (ORDER BY e.position) AS run
    FROM events e JOIN unnest($1::bigint[], $2::bigint[]) AS hole(first, last)
      ON e.position BETWEEN hole.first AND hole.last
    WHERE e.event_type <> 'statement'
) AS others GROUP BY run
"""


async def drop_checkpoint(connection: asyncpg.Connection, name: str) -> bool:
    """Forget forwarder ``name``'s checkpoint (``lrs forward remove``): a new
    forwarder given the name later starts afresh.  Whether there was one."""
    return await connection.execute("DELETE FROM forward_checkpoints WHERE name = $1", name) == "DELETE 1"


def is_replay(position: int, deliveries: int, mark: LowWaterMark) -> bool:
    """Pure: a first delivery of a position already dealt with is a second copy."""
    return deliveries <= 1 and mark.is_done(position)


class ForwardCheckpoint:
    def __init__(self, pool: asyncpg.Pool, name: str) -> None:
        self._pool = pool
        self.name = name
        self.mark = LowWaterMark()
        self.fresh = True  # no row yet: nothing was forwarded under this name
        self._saved = self.mark.serialise()
        self._looked_up_to = 0  # the holes at or below it were looked up in the log
        self.forgotten = 0  # runs forgotten to keep the row bounded (MAX_RUNS)

    @property
    def position(self) -> int:
        """The low-water mark: every position at or below it was dealt with."""
        return self.mark.low_water

    async def load(self) -> LowWaterMark:
        row = await self._pool.fetchrow(SELECT, self.name)
        if row is not None:
            self.mark = LowWaterMark.deserialise(int(row["position"]), list(row["done_above"]))
            self.fresh = False
        self._saved = self.mark.serialise()
        return self.mark

    def start_at(self, position: int) -> None:
        """The first position a new forwarder on a new consumer is delivered:
        the consumer starts there (``--deliver new``, or a stream that no
        longer holds the first events) and delivers first deliveries in stream
        order, so no position below it will come.  The forwarder clears
        ``fresh`` instead when its consumer delivered before."""
        if self.fresh:
            self.fresh = False
            self.mark = LowWaterMark(max(position - 1, 0))

    async def save(self) -> None:
        """Fill the holes that are events other than statements in from the
        log, then write the mark when it moved."""
        holes = self.mark.gaps(after=self._looked_up_to)
        if holes:
            for run in await self._pool.fetch(OTHER_EVENTS_IN, [h[0] for h in holes], [h[1] for h in holes]):
                self.mark.record_range(run["first"], run["last"])
            self._looked_up_to = self.mark.highest
        self.forgotten += self.mark.forget_lowest(MAX_RUNS)
        state = self.mark.serialise()
        if state != self._saved:
            await self._pool.execute(SAVE, self.name, *state)
            self._saved = state
