"""Canonical keys for Agent and Group identity.

xAPI identifies an Agent or an Identified Group by exactly one Inverse
Functional Identifier (IFI): ``mbox``, ``mbox_sha1sum``, ``openid`` or
``account``. Two actors are the same when the same IFI property has equal
values (xAPI-Data 2.4.2.3; GET /statements ``agent`` filter). ``ifi_key``
turns that rule into one string, so the read model can index and compare
actors with plain equality.

Encodings (one per IFI):

- ``mbox:<mailto IRI>`` as given, e.g. ``mbox:mailto:a@example.com``
- ``mbox_sha1sum:<hex>`` lowercased (hex digits are case-insensitive)
- ``openid:<uri>`` as given
- ``account:<homePage>|<name>``

An Anonymous Group has no IFI and gets ``None``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["authority_key", "ifi_key"]


def ifi_key(actor: dict[str, Any]) -> str | None:
    """The canonical identity key of an Agent or Identified Group, else ``None``.

    ``actor`` is an already validated Agent/Group object, so it carries at
    most one IFI; the checks run in the order mbox, mbox_sha1sum, openid,
    account.
    """
    mbox = actor.get("mbox")
    if mbox is not None:
        return "mbox:" + mbox
    sha1 = actor.get("mbox_sha1sum")
    if sha1 is not None:
        return "mbox_sha1sum:" + sha1.lower()
    openid = actor.get("openid")
    if openid is not None:
        return "openid:" + openid
    account = actor.get("account")
    if account is not None:
        return "account:" + account["homePage"] + "|" + account["name"]
    return None


def agent_of_key(key: str) -> dict[str, Any] | None:
    """The Agent an IFI key (:func:`ifi_key`) names, or None for another text."""
    kind, _, value = key.partition(":")
    if not value:
        return None
    if kind in ("mbox", "mbox_sha1sum", "openid"):
        return {kind: value}
    if kind == "account" and "|" in value:
        home, _, name = value.partition("|")  # an IRI holds no "|"; a name may
        return {"account": {"homePage": home, "name": name}}
    return None


def authority_key(authority: dict[str, Any]) -> str | None:
    """The key that tells one sender's ``authority`` from another's: the IFI key
    of an Agent, or, for the anonymous Group of an OAuth client and a user
    (Data 2.4.9.s3.b1), ``group:`` and its members' IFI keys in sorted order."""
    key = ifi_key(authority)
    if key is not None or authority.get("objectType") != "Group":
        return key
    members = [ifi_key(member) for member in authority.get("member", ())]
    if not members or None in members:
        return None
    return "group:" + "&".join(sorted(members))  # type: ignore[arg-type]
