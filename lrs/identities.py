"""A person's several agent identifiers: the rules of linking and unlinking.

Pure.  A *person* is named by an actor's IFI key (the key the roster names);
an *identifier* is another IFI key of the same human (an account on another
platform, an mbox...).  Links and unlinks are ``identity`` events of the log::

    {"op": "link" | "unlink", "person": "<key>", "identifiers": ["<key>", ...]}

(canonical JSON, sorted keys, identifiers sorted).  With personal data
sealed (docs/privacy.md) the keys are pseudonym keys and ``"sealed"`` maps
each to its sealed clear key (lrs/store/learner_refs.py), which an erasure
makes unreadable; events written before hold the keys in clear and read as
before.  :func:`check_link` and
:func:`check_unlink` refuse what would make one identifier two persons', or a
person someone else's identifier, with a message naming the identifier.
"""

from __future__ import annotations

from typing import AbstractSet, Any, Mapping

import msgspec

__all__ = [
    "IDENTITY_EVENT",
    "IdentityConflict",
    "identity_payload",
    "parse_identity_payload",
    "check_link",
    "check_unlink",
    "agent_of_key",
]

IDENTITY_EVENT = "identity"
_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode


class IdentityConflict(ValueError):
    """The link or unlink contradicts the links in force.  ``logged``: the
    message as the store names the keys (pseudonym keys when sealed), for
    logs; the message itself may name them in clear for the caller."""

    def __init__(self, message: str, logged: str | None = None) -> None:
        super().__init__(message)
        self.logged = message if logged is None else logged


def identity_payload(op: str, person: str, identifiers: list[str], sealed: Mapping[str, str] | None = None) -> bytes:
    body: dict[str, Any] = {"op": op, "person": person, "identifiers": sorted(set(identifiers))}
    if sealed:
        body["sealed"] = dict(sealed)
    return _encode(body)


def parse_identity_payload(payload: bytes) -> tuple[str, str, list[str]]:
    body = _decode(payload)
    if body.get("op") not in ("link", "unlink"):
        raise ValueError(f"unknown identity event op {body.get('op')!r}")
    return body["op"], body["person"], list(body["identifiers"])


def check_link(
    person: str,
    identifiers: list[str],
    owner_of: Mapping[str, str],
    persons_with_links: set[str],
    rostered: AbstractSet[str] = frozenset(),
) -> list[str]:
    """The identifiers to link to ``person`` (those not linked to it already).

    ``owner_of`` maps the keys involved (the identifiers and the person) to
    the person they are linked to now; ``persons_with_links`` are those of
    the keys that have identifiers of their own; ``rostered`` those the
    roster names as persons (an identifier of one of them belongs to that
    person already).  Raises IdentityConflict."""
    if person in owner_of:
        raise IdentityConflict(
            f"{person} is itself linked to the person {owner_of[person]}: link identifiers to that person"
        )
    new = []
    for identifier in sorted(set(identifiers)):
        if identifier == person:
            raise IdentityConflict(f"{identifier} is the person itself")
        owner = owner_of.get(identifier)
        if owner == person:
            continue
        if owner is not None:
            raise IdentityConflict(f"{identifier} is already linked to the person {owner}; unlink it there first")
        if identifier in persons_with_links:
            raise IdentityConflict(f"{identifier} is a person with identifiers of its own; it cannot be linked")
        if identifier in rostered:
            raise IdentityConflict(
                f"{identifier} is a person the roster names (it has memberships); it cannot be another person's "
                "identifier"
            )
        new.append(identifier)
    return new


def check_unlink(person: str, identifiers: list[str], owner_of: Mapping[str, str]) -> list[str]:
    """The identifiers to unlink from ``person``; each must be linked to it."""
    for identifier in sorted(set(identifiers)):
        owner = owner_of.get(identifier)
        if owner != person:
            where = "to no person" if owner is None else f"to the person {owner}"
            raise IdentityConflict(f"{identifier} is not linked to {person} (it is linked {where})")
    return sorted(set(identifiers))


def agent_of_key(key: str) -> dict[str, Any]:
    """The Agent whose IFI key (:func:`lrs.xapi.identity.ifi_key`) is ``key``."""
    kind, _, rest = key.partition(":")
    if kind == "mbox":
        return {"objectType": "Agent", "mbox": rest}
    if kind == "mbox_sha1sum":
        return {"objectType": "Agent", "mbox_sha1sum": rest}
    if kind == "openid":
        return {"objectType": "Agent", "openid": rest}
    if kind == "account":
        home, _, name = rest.rpartition("|")
        return {"objectType": "Agent", "account": {"homePage": home, "name": name}}
    raise ValueError(f"not an IFI key: {key!r}")
