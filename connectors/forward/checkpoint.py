"""The durable checkpoint of ``lrs forward`` in the LRS's PostgreSQL
(table ``forward_checkpoints``, schemas/postgres/0080): the highest log
position the forwarder named ``name`` has dealt with.

JetStream delivers a consumer's messages for the first time in stream order,
and the relay publishes the log in position order, so a message delivered
for the first time at a position at or below the checkpoint is a second copy
of an event already forwarded (replayed onto the stream, or republished by a
relay after the stream's duplicate window): the forwarder acknowledges it
without sending it.  A redelivery (the forwarder did not acknowledge the
message: it crashed, or asked for a retry) is sent again, and the target
takes a statement id it already holds as the same statement.
"""

from __future__ import annotations

import asyncpg

SELECT = "SELECT position FROM forward_checkpoints WHERE name = $1"
ADVANCE = """
INSERT INTO forward_checkpoints (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = GREATEST(forward_checkpoints.position, EXCLUDED.position),
                                 updated_at = now()
"""


def is_replay(position: int, deliveries: int, checkpoint: int) -> bool:
    """Pure: a first delivery at or below the checkpoint is a second copy."""
    return deliveries <= 1 and position <= checkpoint


class ForwardCheckpoint:
    def __init__(self, pool: asyncpg.Pool, name: str) -> None:
        self._pool = pool
        self.name = name
        self.position = 0

    async def load(self) -> int:
        self.position = int(await self._pool.fetchval(SELECT, self.name) or 0)
        return self.position

    async def advance(self, position: int) -> None:
        if position > self.position:
            await self._pool.execute(ADVANCE, self.name, position)
            self.position = position
