"""Who may do what on NATS: one user per role, least privilege.

The embedded nats-server is configured from :func:`server_authorization`;
an external cluster is given the equivalent (docs/trust.md shows it in the
server's own configuration syntax).  Roles:

* ``relay`` publishes the event log to ``lrs.events.>``; on the ``LRS_EVENTS``
  stream it may read its state and last message, and create it when it is
  missing (a create cannot change an existing stream).  It cannot update,
  purge or delete the stream: changing the stream's definition is the
  ``admin`` user's, which ``lrs serve`` uses once at start-up on the embedded
  server (lrs.runtime.embedded) and an operator uses on an external one.
* ``projection`` only consumes, and only through its own durable consumers
  (``projection-<name>``, :data:`PROJECTION_CONSUMERS`): create, read,
  pull and acknowledge.  It cannot publish events nor touch another consumer.
* ``forward`` consumes like a projection through forwarders' consumers (each
  named by ``lrs forward --name``) and owns the dead-letter stream
  ``LRS_FORWARD_DLQ``.  Given the forwarders' names it may use only those;
  without them (the embedded server, which cannot know them) it may use any
  consumer but the projections'.
* ``service`` is ``lrs serve`` in one process: relay and projection together.
* ``admin`` may do anything (operators, tests, ``lrs relay --apply-stream``,
  ``lrs forward remove``).

No other role may delete a consumer.  Each user receives replies (JetStream API
answers, publish acknowledgements, pulled messages) on its own inbox prefix,
``_INBOX.<user>`` (:func:`inbox_prefix`), and may subscribe to nothing else,
so no user can read another's replies.
"""

from __future__ import annotations

from typing import Any, Sequence

EVENTS_STREAM = "LRS_EVENTS"
DEAD_LETTER_STREAM = "LRS_FORWARD_DLQ"
ROLES = ("admin", "service", "relay", "projection", "forward")


def projection_consumer(name: str) -> str:
    """The durable consumer a projection called ``name`` pulls from."""
    return f"projection-{name}"


# The durable consumer of every projection the LRS runs;
# tests/unit/nats/test_permissions.py checks this list against the
# projections the composition root registers.
PROJECTION_CONSUMERS = (projection_consumer("competency"),)

_RELAY_PUBLISH = [
    "lrs.events.>",
    "$JS.API.INFO",
    f"$JS.API.STREAM.INFO.{EVENTS_STREAM}",
    f"$JS.API.STREAM.CREATE.{EVENTS_STREAM}",
    f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}",
    f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
]
_STREAM_READ = ["$JS.API.INFO", f"$JS.API.STREAM.INFO.{EVENTS_STREAM}"]
_DEAD_LETTER_PUBLISH = [
    "lrs.forward.dlq.>",
    f"$JS.API.STREAM.INFO.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.CREATE.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.MSG.GET.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.MSG.DELETE.{DEAD_LETTER_STREAM}",
    f"$JS.API.DIRECT.GET.{DEAD_LETTER_STREAM}",
]


def inbox_prefix(user: str) -> str:
    """The inbox prefix of ``user``'s connections (nats-py ``inbox_prefix``)."""
    return f"_INBOX.{user}"


def consumer_subjects(consumer: str, stream: str = EVENTS_STREAM) -> list[str]:
    """What using durable ``consumer`` of ``stream`` takes: create it (the
    legacy durable form, the named form and the named form with a filter
    subject that nats-server 2.10+ clients send), read its info, pull from
    it and acknowledge its messages (the acknowledgement subject's short and
    long forms, the long one with domain and account hash)."""
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
        f"$JS.ACK.*.*.{stream}.{consumer}.>",
    ]


def role_permissions(
    role: str,
    *,
    user: str | None = None,
    projections: Sequence[str] = PROJECTION_CONSUMERS,
    forwarders: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The ``permissions`` block of ``user`` (default: named as the role) of
    ``role``; None: everything.  ``projections`` are the projections' durable
    consumers; ``forwarders`` the forwarders' (None: any consumer but the
    projections')."""
    if role == "admin":
        return None
    if role not in ROLES:
        raise ValueError(f"unknown NATS role {role!r}; roles are {', '.join(ROLES)}")
    projection_use = [s for consumer in projections for s in consumer_subjects(consumer)]
    deny: list[str] = []
    if role == "relay":
        publish = list(_RELAY_PUBLISH)
    elif role == "projection":
        publish = _STREAM_READ + projection_use
    elif role == "service":
        publish = _RELAY_PUBLISH + projection_use
    elif forwarders is not None:
        publish = _STREAM_READ + [s for consumer in forwarders for s in consumer_subjects(consumer)]
        publish += _DEAD_LETTER_PUBLISH
    else:
        publish = _STREAM_READ + consumer_subjects("*") + _DEAD_LETTER_PUBLISH
        deny = projection_use
    permissions: dict[str, Any] = {
        "publish": {"allow": publish},
        "subscribe": {"allow": [inbox_prefix(user or role) + ".>"]},
    }
    if deny:
        permissions["publish"]["deny"] = deny
    return permissions


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
