"""Statements the stream no longer holds for a forwarder, read from the log.

``LRS_EVENTS`` keeps a message only until every consumer that selects it
acknowledged it, and at most ``max_age`` (schemas/nats/LRS_EVENTS.json):
PostgreSQL is the record.  A forwarder created after statements were
relayed (``--deliver all``, the default, means all of the log), one whose
consumer was recreated, or one stopped longer than ``max_age`` would miss
what the stream no longer has.  The forwarder's low-water mark
(connectors.forward.checkpoint) names every position not dealt with; those
the stream will not deliver any more are read here, a bounded number at a
time, and forwarded like messages (:class:`LogDelivery`).

Which positions the stream will not deliver any more: JetStream delivers a
consumer's messages for the first time in stream order, which is position
order.  When the consumer has no message awaiting its acknowledgement, every
position below the highest one dealt with that is still not done was never
delivered, and never will be (:func:`holes_up_to` with ``mark.highest``);
when it has nothing pending either, the same holds up to the relay's
checkpoint, read before the consumer was asked (every position there was
acknowledged by the stream before).  The rows come from the log itself, so
no check against the log is needed; a statement that failed stays not done
and is read again by a later fill, not before ``retry_delay`` (as JetStream
redelivers a message negatively acknowledged with that delay).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Iterable, Mapping

import asyncpg

from connectors.forward.lowwater import LowWaterMark
from lrs.event_contract import LAST_POSITION, EventRecord, from_record, to_message
from lrs.event_contract import format_stored as stored_text
from lrs.payload_codec import open_payload

RELAYED = "SELECT max(position) FROM relay_checkpoints"
# The events at the positions of a batch, in position order; payloads of
# statements only.  One index lookup a position: a join of the holes' ranges
# ordered and limited walked the index from position 1 up to the first hole.
SELECT_AT = """
SELECT position, event_id, tenant, event_type, stored,
       CASE WHEN event_type = 'statement' THEN payload END AS payload, prev_hash, hash
FROM events WHERE position = ANY($1::bigint[]) ORDER BY position
"""


def first_positions(holes: list[tuple[int, int]], limit: int) -> list[int]:
    """Pure: the first ``limit`` positions of ``holes`` (ascending, apart).
    Log positions are gapless (docs/contracts.md), so these are the first
    ``limit`` events in the holes, bar positions beyond the log's head."""
    positions: list[int] = []
    for first, last in holes:
        room = limit - len(positions)
        if room <= 0:
            break
        positions.extend(range(first, min(last, first + room - 1) + 1))
    return positions


def holes_up_to(mark: LowWaterMark, limit: int) -> list[tuple[int, int]]:
    """Pure: the runs of positions not done, from the low-water mark up to
    ``limit``."""
    holes = [(first, min(last, limit)) for first, last in mark.gaps() if first <= limit]
    if limit > mark.highest:
        holes.append((mark.highest + 1, limit))
    return holes


def holes_without(holes: list[tuple[int, int]], waiting: Iterable[int]) -> list[tuple[int, int]]:
    """Pure: ``holes`` less the ``waiting`` positions (statements the target
    failed on, not to be read again before their retry delay ran out)."""
    out: list[tuple[int, int]] = []
    skip = sorted(set(waiting))
    for first, last in holes:
        for position in skip:
            if first <= position <= last:
                if first < position:
                    out.append((first, position - 1))
                first = position + 1
        if first <= last:
            out.append((first, last))
    return out


def log_message(row: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
    """The headers and data the relay publishes for the log's ``row``, its
    payload inline."""
    record = EventRecord(**{"statement_id": None, **row, "payload": open_payload(row["payload"])})
    message = to_message(from_record(record, stored_text), LAST_POSITION)
    return dict(message.headers), message.data


class LogDelivery:
    """A statement read from the log, handled where a JetStream message is:
    the forwarder records its position as done when it acknowledges it;
    ``nak`` leaves it not done, so that a later fill reads it again, once
    its ``delay`` (``retry_delay`` after a failure) ran out: ``retry_after``."""

    __slots__ = ("headers", "data", "metadata", "retry_after")

    def __init__(self, headers: dict[str, str], data: bytes, deliveries: int) -> None:
        self.headers, self.data = headers, data
        self.metadata = SimpleNamespace(num_delivered=deliveries, sequence=SimpleNamespace(stream=0))
        self.retry_after: float | None = None  # seconds, when negatively acknowledged with a delay

    async def ack(self) -> None:
        return None

    async def nak(self, delay: float | None = None) -> None:
        self.retry_after = delay

    async def term(self) -> None:
        return None

    async def in_progress(self) -> None:
        return None


async def relayed_position(pool: asyncpg.Pool) -> int:
    """The relay's checkpoint: every position at or below it is on the stream,
    or was and is gone."""
    return int(await pool.fetchval(RELAYED) or 0)


def holes_query(holes: list[tuple[int, int]], limit: int) -> tuple[str, list[Any]]:
    """The query (and its arguments) reading the first ``limit`` events in ``holes``."""
    return SELECT_AT, [first_positions(holes, limit)]


async def read_holes(pool: asyncpg.Pool, holes: list[tuple[int, int]], limit: int) -> list[asyncpg.Record]:
    query, args = holes_query(holes, limit)
    return await pool.fetch(query, *args) if args[0] else []
