"""Check each relayed message against the LRS's event log before forwarding.

NATS is a transport, not an authority (docs/trust.md): a message is
forwarded only when it is the log's event.  For each fetched message the
forwarder reads the event at the message's ``Lrs-Position`` from the LRS's
PostgreSQL and compares: event id, tenant, event type, ``Lrs-Hash`` and
``Lrs-Prev-Hash`` must be the row's, and the payload the row's payload (a
message by reference, ``Lrs-Payload-Size``, carries none: the row's is used).
Equal payload and fields mean an equal hash, so this is at least the check of
recomputing the hash, without a second copy of the hash function.

A message that does not match is refused: never forwarded, neither as it
is nor the log's row in its place (the row is sent once, with its own
message or read from the log: connectors.forward.logfill), and the refusal
is counted and reported as an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import asyncpg

from lrs.event_contract import (
    EVENT_TYPE_HEADER, HASH_HEADER, LAST_POSITION, MSG_ID_HEADER, PAYLOAD_REFERENCE_HEADER, POSITION_HEADER,
    PREV_HASH_HEADER, TENANT_HEADER, EventRecord, from_record, parse_position, to_message,
)
from lrs.event_contract import format_stored as stored_text  # the Lrs-Stored text
from lrs.payload_codec import open_payload

SELECT_EVENTS = """
SELECT position, event_id, tenant, event_type, stored, payload, prev_hash, hash
FROM events WHERE position = ANY($1::bigint[])
"""


@dataclass(frozen=True, slots=True)
class Checked:
    headers: Mapping[str, str] | None  # the log's (None: nothing in the log at that position)
    payload: bytes | None
    refusal: str | None  # why the message was refused, or None when it is the log's


def _position(headers: Mapping[str, str]) -> int | None:
    """The position a message names, or None unless it is the decimal the
    relay writes within 1..2^63 - 1: a larger number is in no log, and asking
    PostgreSQL for it raised (out of bigint range), stopping the forwarder."""
    text = headers.get(POSITION_HEADER)
    if text is None:
        return None
    try:
        return parse_position(text)
    except ValueError:
        return None


def compare(headers: Mapping[str, str], data: bytes, row: Mapping[str, Any] | None) -> Checked:
    """Pure: the message (``headers``, ``data``) against the log's ``row``."""
    if row is None:
        return Checked(None, None, "not_in_log")
    # The message the relay writes for the row, its payload always inline.
    record = EventRecord(**{"statement_id": None, **row, "payload": open_payload(row["payload"])})
    logged = to_message(from_record(record, stored_text), LAST_POSITION)
    log_headers, payload = logged.headers, logged.data
    for key in (MSG_ID_HEADER, TENANT_HEADER, EVENT_TYPE_HEADER, HASH_HEADER):
        if headers.get(key) != log_headers[key]:
            return Checked(log_headers, payload, f"{key.lower()}_mismatch")
    if PREV_HASH_HEADER in headers and headers[PREV_HASH_HEADER] != log_headers[PREV_HASH_HEADER]:
        return Checked(log_headers, payload, "lrs-prev-hash_mismatch")
    if PAYLOAD_REFERENCE_HEADER in headers:
        if headers[PAYLOAD_REFERENCE_HEADER] != str(len(payload)) or data:
            return Checked(log_headers, payload, "reference_mismatch")
    elif data != payload:
        return Checked(log_headers, payload, "payload_mismatch")
    return Checked(log_headers, payload, None)


class LogCheck:
    """The LRS's event log in PostgreSQL, read for :func:`compare`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> "LogCheck":
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=1, max_size=2, server_settings={"application_name": "lrs-forward"}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None
        return self._pool

    async def check(self, messages: Sequence[tuple[Mapping[str, str], bytes]]) -> list[Checked]:
        assert self._pool is not None
        positions = sorted({p for p in (_position(h) for h, _ in messages) if p is not None})
        rows = {row["position"]: row for row in await self._pool.fetch(SELECT_EVENTS, positions)} if positions else {}
        results = []
        for headers, data in messages:
            position = _position(headers)
            results.append(compare(headers, data, rows.get(position) if position is not None else None))
        return results
