"""What ``lrs forward`` decides, without any I/O (pure).

* :func:`event_from_message` reads one LRS_EVENTS message (headers + stored
  statement JSON) into a :class:`LogStatement`.
* :class:`ForwardFilter` says whether a statement is forwarded.
* :func:`failure_action` says what to do with a statement the target did not
  accept: wait for the target (an outage), try again later (counted), or park
  it in the dead-letter stream.
* :func:`dead_letter_headers` / :func:`dead_letter_from_message` write and read
  a parked statement's record.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import msgspec

from lrs.event_contract import EVENT_TYPE_HEADER, MSG_ID_HEADER, POSITION_HEADER, STORED_HEADER, TENANT_HEADER
from lrs.event_contract import RelayedEvent, from_message

ACTIVITY = "Activity"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_ERROR = 500

# HTTP statuses that mean "the target is not there right now" rather than
# "the target has a problem with this statement": waited out, never counted.
# 429 reaches here only when the target kept throttling past the sink's
# overall deadline for waits it asked for (connectors/framework/retry_after.py).
OUTAGE_STATUSES = frozenset({429, 502, 503, 504})
# Answers about the statement itself (after the sink has narrowed a batch
# down to it): retrying the same statement cannot change them.
PERMANENT_STATUSES = frozenset({400, 409, 413})


def validate_name(name: str) -> str:
    """A forwarder name: the durable consumer's name and a subject token."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"forwarder name {name!r} must be 1-64 ASCII letters, digits, '-' or '_'")
    return name


def dead_letter_subject(name: str) -> str:
    return f"lrs.forward.dlq.{name}"


@dataclass(frozen=True, slots=True)
class LogStatement:
    """A statement event of the LRS event log, as relayed to JetStream: the
    relayed event (lrs/event_contract.py) and its payload decoded, which the
    filter and the target need."""

    event: RelayedEvent
    statement: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def position(self) -> int:
        return self.event.position

    @property
    def tenant(self) -> str:
        return self.event.tenant

    @property
    def event_type(self) -> str:
        return self.event.event_type

    @property
    def stored(self) -> str:
        return self.event.stored

    @property
    def payload(self) -> bytes:
        return self.event.payload

    @property
    def statement_id(self) -> str | None:
        value = self.statement.get("id")
        return value if isinstance(value, str) else None


def event_from_message(headers: Mapping[str, str] | None, data: bytes) -> LogStatement:
    """Raises ValueError when the message is not an LRS statement event."""
    event = from_message(headers, data)
    try:
        statement = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"message data is not JSON: {exc}") from None
    if not isinstance(statement, dict):
        raise ValueError("message data is not a statement object")
    return LogStatement(event, statement)


@dataclass(frozen=True, slots=True)
class ForwardFilter:
    """Which statements are forwarded.  Each non-empty set must match (AND);
    within a set any value matches (OR).  ``activities`` match the statement's
    object when it is an Activity, as the xAPI ``activity`` query parameter
    does.  Empty sets match everything."""

    verbs: frozenset[str] = frozenset()
    activities: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()

    @classmethod
    def of(cls, verbs: Iterable[str] = (), activities: Iterable[str] = (), tenants: Iterable[str] = ()) -> "ForwardFilter":
        return cls(frozenset(verbs), frozenset(activities), frozenset(tenants))

    def matches(self, tenant: str, statement: Mapping[str, Any]) -> bool:
        if self.tenants and tenant not in self.tenants:
            return False
        if self.verbs:
            verb = statement.get("verb")
            if not isinstance(verb, dict) or verb.get("id") not in self.verbs:
                return False
        if self.activities:
            target = statement.get("object")
            if not isinstance(target, dict) or target.get("objectType", ACTIVITY) != ACTIVITY:
                return False
            if target.get("id") not in self.activities:
                return False
        return True

    def describe(self) -> str:
        parts = [f"{label} in {sorted(values)}" for label, values in
                 (("tenant", self.tenants), ("verb", self.verbs), ("activity", self.activities)) if values]
        return " and ".join(parts) or "every statement"


class Action(enum.Enum):
    WAIT = "wait"  # the target is down: hold the statement, retry, count nothing
    RETRY = "retry"  # the target failed on it: let JetStream deliver it again
    PARK = "park"  # give up: dead-letter stream, then ack


def failure_action(status: int | None, deliveries: int, max_deliveries: int) -> Action:
    """``status`` is the target's last HTTP status (None: unreachable);
    ``deliveries`` counts JetStream deliveries of the message so far."""
    if status is None or status in OUTAGE_STATUSES:
        return Action.WAIT
    if status in PERMANENT_STATUSES:
        return Action.PARK
    return Action.PARK if deliveries >= max_deliveries else Action.RETRY


# The homePage of an erased identity as GET /xapi/statements returns it
# (docs/privacy.md, lrs.privacy.seal.ERASED_HOME; tests/unit/test_connectors_forward.py
# checks they agree).
ERASED_HOME = "https://lrs.invalid/erased"


def refusal_hint(status: int | None, statement: Any) -> str | None:
    """Pure: what the operator should know about the target's refusal of
    ``statement`` (as it was sent) beyond the target's own message, or None.
    A 409 means the target holds another statement under the same id; when
    the statement carries an erased identity, the other is the form the
    target got before the learner was erased here."""
    if status != 409:
        return None
    if _has_erased_identity(statement):
        return ("a learner in it was erased here after the target got it: the target keeps the earlier form "
                "under this id (erase the learner there too)")
    return "the target holds another statement under this id"


def _has_erased_identity(value: Any) -> bool:
    if isinstance(value, dict):
        account = value.get("account")
        if isinstance(account, dict) and account.get("homePage") == ERASED_HOME:
            return True
        return any(_has_erased_identity(inner) for inner in value.values())
    if isinstance(value, list):
        return any(_has_erased_identity(inner) for inner in value)
    return False


def one_line(text: str, limit: int = MAX_ERROR) -> str:
    """Header-safe text: no line breaks, at most ``limit`` characters."""
    return " ".join(text.split())[:limit]


def dead_letter_headers(
    event: LogStatement, *, name: str, status: int | None, error: str, deliveries: int, target: str,
    parked_at: str,
) -> dict[str, str]:
    return {
        # A park repeated after a crash (before the ack) is dropped as a duplicate.
        MSG_ID_HEADER: f"{name}:{event.event_id}",
        "Lrs-Forward-Error": one_line(error),
        "Lrs-Forward-Status": str(status or 0),
        "Lrs-Forward-Deliveries": str(deliveries),
        "Lrs-Forward-Target": target,
        "Lrs-Forward-Parked": parked_at,
        "Lrs-Event-Id": event.event_id,
        POSITION_HEADER: str(event.position),
        TENANT_HEADER: event.tenant,
        EVENT_TYPE_HEADER: event.event_type,
        STORED_HEADER: event.stored,
    }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    sequence: int  # in the dead-letter stream
    forwarder: str
    statement_id: str | None
    position: int | None
    tenant: str
    status: int
    error: str
    deliveries: int
    target: str
    parked_at: str
    payload: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence, "forwarder": self.forwarder, "statement_id": self.statement_id,
            "position": self.position, "tenant": self.tenant, "status": self.status, "error": self.error,
            "deliveries": self.deliveries, "target": self.target, "parked_at": self.parked_at,
        }


def dead_letter_from_message(sequence: int, subject: str, headers: Mapping[str, str] | None, data: bytes) -> DeadLetter:
    headers = headers or {}
    try:
        statement = msgspec.json.decode(data)
        statement_id = statement.get("id") if isinstance(statement, dict) else None
    except msgspec.DecodeError:
        statement_id = None

    def number(key: str) -> int | None:
        try:
            return int(headers[key])
        except (KeyError, ValueError):
            return None

    return DeadLetter(
        sequence=sequence,
        forwarder=subject.rsplit(".", 1)[-1],
        statement_id=statement_id if isinstance(statement_id, str) else None,
        position=number(POSITION_HEADER),
        tenant=headers.get(TENANT_HEADER, ""),
        status=number("Lrs-Forward-Status") or 0,
        error=headers.get("Lrs-Forward-Error", ""),
        deliveries=number("Lrs-Forward-Deliveries") or 0,
        target=headers.get("Lrs-Forward-Target", ""),
        parked_at=headers.get("Lrs-Forward-Parked", ""),
        payload=data,
    )


def outgoing_statement(statement: Mapping[str, Any]) -> dict[str, Any]:
    """The statement as POSTed to the target: as stored, minus ``stored``
    (the target sets its own; ``authority`` is sent and the target may
    overwrite it, as ``lrs pull`` does)."""
    return {key: value for key, value in statement.items() if key != "stored"}
