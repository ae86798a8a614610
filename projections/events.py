"""A log event as the projections receive it: from a JetStream message
(with the relayed event it came as, to be checked against the log) or from
the PostgreSQL log itself."""

from __future__ import annotations

from typing import Sequence

import msgspec
from nats.aio.msg import Msg

from lrs.event_contract import RelayedEvent, from_message
from lrs.eventlog import EventRecord

__all__ = ["LogEvent", "event_from_message", "log_events"]


class LogEvent(msgspec.Struct, frozen=True, gc=False):
    """One event of the log, from a JetStream message or from Postgres.

    What a projection folds: the same whichever way it came.  An event read
    from a message also carries the message (``claim``, the relayed event of
    lrs/event_contract.py with what its hash covers), so the runner can check
    it against the log before applying it; an event read from Postgres has
    none (it is the log).

    A msgspec Struct the collector does not track (it holds only text,
    bytes, a number and a ``RelayedEvent``, itself untracked): built for
    every event a runner reads, it cost 1-3 µs as a frozen dataclass (each
    field set through ``object.__setattr__``) against 0.1-0.6, and a batch's
    thousands of them no longer count towards the collector's next young
    collection (bench/runner_read.py)."""

    position: int
    tenant: str
    event_type: str
    payload: bytes
    claim: RelayedEvent | None = None


def event_from_message(msg: Msg) -> LogEvent:
    """Raises ValueError when the message lacks the LRS headers."""
    relayed = from_message(msg.headers, msg.data)
    return LogEvent(relayed.position, relayed.tenant, relayed.event_type, relayed.payload, claim=relayed)


def log_events(records: Sequence[EventRecord]) -> list[LogEvent]:
    """Events read from the PostgreSQL log (they are the log: nothing to check)."""
    return [LogEvent(r.position, r.tenant, r.event_type, bytes(r.payload)) for r in records]
