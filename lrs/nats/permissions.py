"""Who may do what on NATS: one user per role, least privilege.

The embedded nats-server is configured from :func:`server_authorization`;
an external cluster is given the equivalent (docs/trust.md shows it in the
server's own configuration syntax).  Roles:

* ``relay`` publishes the event log to ``lrs.events.>`` and manages the
  ``LRS_EVENTS`` stream; it reads the stream's last message to resume.
* ``projection`` only consumes: it creates and reads its durable consumers
  on ``LRS_EVENTS`` and acknowledges their messages.  It cannot publish events.
* ``forward`` consumes like a projection and owns the forwarders' dead-letter
  stream ``LRS_FORWARD_DLQ``.
* ``service`` is ``lrs serve`` in one process: relay and projection together.
* ``admin`` may do anything (operators, tests, ``nats`` CLI).

Every role receives replies on ``_INBOX.>`` (JetStream API answers,
acknowledgements of publishes, pulled messages).
"""

from __future__ import annotations

from typing import Any

EVENTS_STREAM = "LRS_EVENTS"
DEAD_LETTER_STREAM = "LRS_FORWARD_DLQ"
ROLES = ("admin", "service", "relay", "projection", "forward")

_INBOX = ["_INBOX.>"]
_RELAY_PUBLISH = [
    "lrs.events.>",
    "$JS.API.INFO",
    f"$JS.API.STREAM.INFO.{EVENTS_STREAM}",
    f"$JS.API.STREAM.CREATE.{EVENTS_STREAM}",
    f"$JS.API.STREAM.UPDATE.{EVENTS_STREAM}",
    f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}",
    f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
]
_CONSUME_PUBLISH = [
    "$JS.API.INFO",
    f"$JS.API.STREAM.INFO.{EVENTS_STREAM}",
    f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}.>",
    f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS_STREAM}.>",
    f"$JS.API.CONSUMER.INFO.{EVENTS_STREAM}.>",
    f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.>",
    f"$JS.ACK.{EVENTS_STREAM}.>",
]
_DEAD_LETTER_PUBLISH = [
    "lrs.forward.dlq.>",
    f"$JS.API.STREAM.INFO.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.CREATE.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.MSG.GET.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.MSG.DELETE.{DEAD_LETTER_STREAM}",
    f"$JS.API.DIRECT.GET.{DEAD_LETTER_STREAM}",
]


def role_permissions(role: str) -> dict[str, Any] | None:
    """The ``permissions`` block of a user of ``role``; None: everything."""
    if role == "admin":
        return None
    publish = {
        "relay": _RELAY_PUBLISH,
        "projection": _CONSUME_PUBLISH,
        "forward": _CONSUME_PUBLISH + _DEAD_LETTER_PUBLISH,
        "service": _RELAY_PUBLISH + [s for s in _CONSUME_PUBLISH if s not in _RELAY_PUBLISH],
    }.get(role)
    if publish is None:
        raise ValueError(f"unknown NATS role {role!r}; roles are {', '.join(ROLES)}")
    return {"publish": {"allow": list(publish)}, "subscribe": {"allow": list(_INBOX)}}


def server_authorization(passwords: dict[str, str]) -> dict[str, Any]:
    """The server configuration's ``authorization`` block for ``passwords``
    (role -> password); no user means no access."""
    users = []
    for role in ROLES:
        user: dict[str, Any] = {"user": role, "password": passwords[role]}
        permissions = role_permissions(role)
        if permissions is not None:
            user["permissions"] = permissions
        users.append(user)
    return {"users": users}
