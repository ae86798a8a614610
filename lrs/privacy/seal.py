"""Sealing the personal data of Statements (pure; docs/privacy.md).

Every Agent and Group in a Statement (actor, an Agent/Group object,
authority, context instructor and team, 2.0 ``contextAgents`` and
``contextGroups``, the same inside a SubStatement, and each Group member)
is one *identity*, named by its canonical identifier
(:func:`identifier`: the IFI key, or for an Anonymous Group ``group:`` and
its members' IFI keys in sorted order).  Each identity of a tenant has a
*pseudonym* (:func:`pseudonym`: HMAC-SHA256 under a key kept outside
PostgreSQL) and a data key of its own.

In the stored Statement an identity's own properties (IFI, ``name``,
``objectType``) are replaced by its *sealed form*::

    {"objectType": "Agent",
     "account": {"homePage": "https://lrs.invalid/pseudonym", "name": "<pseudonym>"},
     "sealed": "v2.<generation>.<base64url AES-GCM-SIV ciphertext>"}

(a Group keeps ``member``, each member sealed on its own).  ``v2``: the
pseudonym is the account's name and the ciphertext holds the IFI and
``name`` (``objectType`` is the form's own); written for every identity
sent with an ``objectType`` that has an account.  ``v1``
(``"v1.<pseudonym>.<generation>.<ciphertext>"``, the ciphertext holding
``objectType`` too) is written for the others (an Anonymous Group, which has
no ``account``; an Agent sent without ``objectType``) and for documents, and
read wherever it was written before.  ``v3`` (``"v3.<generation>.<reference>"``,
written by the Statement writer for what v2 would be) keeps the ciphertext
out of the Statement: the reference is the first 16 bytes of the ciphertext's
SHA-256 (base64url), and the ciphertext is stored once per distinct sealed
identity beside the log (``sealed_identities``, :func:`seal_reference`).
The hash chain covers the reference and the reference commits to the
ciphertext, which :func:`open_agent` checks before decrypting.  A Statement
naming the same identity as many before it then costs 27 characters for it,
not the ~120 of a v2 ciphertext.  ``v4`` (``"v4.<generation>.<tag>"``, what the
Statement writer writes now) is v3 with a 12-character tag for its 22: the
first 9 bytes of the ciphertext's SHA-256, which need tell apart only the
ciphertexts of one identity's generation, since the row is found by the
pseudonym, generation and tag together (:func:`short_row`).  Each character
of a reference is random and costs about a byte once compressed: v4 keeps
about 20 bytes of every sealed Statement (actor and authority) out of the
log, its WAL and the stream.  Stores hold v3 and v4 side by side; both are read.  The sealed form is itself an Agent with an
account, so filters, duplicate checks and projections work on it unchanged
and see only the pseudonym.  Encryption is deterministic (AES-GCM-SIV with a
fixed nonce; the tenant, pseudonym and generation are the associated data):
the same identity sealed twice gives the same bytes, so "same Statement"
still compares stored forms, and the cost of a repeated actor is one cache
look-up.  It reveals only what the pseudonym already does: that two
Statements name the same identity.

Opening replaces each sealed form by the original object; when the data key
is gone (the identity was erased) by the *erased form*
``{"objectType": ..., "account": {"homePage": "https://lrs.invalid/erased", "name": "<pseudonym>"}}``.

The parts: :mod:`lrs.privacy.data_key` (the data keys, :class:`DataKey` and
:class:`SealKey`), :mod:`lrs.privacy.sealed_text` (the sealed texts v1 to v4:
their AES-GCM-SIV encryption, associated data, references and rows),
:mod:`lrs.privacy.statement_agents` (where a Statement names its Agents and
Groups: identifiers, the walks that seal and copy them),
:mod:`lrs.privacy.statement_sealer` (one request's sealing, with its known
forms) and :mod:`lrs.privacy.opening` (opening stored Statements).  This
module holds the sealed form itself (:func:`seal_agent`), the pseudonyms and
the stored Statement's JSON.
"""

from __future__ import annotations

import hmac
from typing import Any, Callable, Mapping

import msgspec

from lrs.privacy.data_key import SealKey
from lrs.privacy.sealed_text import COMPACT_MARK, seal_compact_bytes
from lrs.privacy.statement_agents import identifier
from lrs.xapi.identity import ifi_key

__all__ = [
    "ERASED_HOME",
    "PSEUDONYM_HOME",
    "SEALED",
    "decode",
    "encode",
    "pseudonym",
    "pseudonym_key",
    "pseudonymous",
    "seal_agent",
]

PSEUDONYM_HOME = "https://lrs.invalid/pseudonym"
ERASED_HOME = "https://lrs.invalid/erased"
SEALED = "sealed"
_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode


def pseudonym(key: bytes, tenant: str, ident: str) -> str:
    """32 hex digits of HMAC-SHA256(key, tenant NUL identifier)."""
    return hmac.digest(key, tenant.encode() + b"\x00" + ident.encode(), "sha256").hex()[:32]


def pseudonym_key(key: bytes, tenant: str, ident: str) -> str:
    """The IFI key (:func:`lrs.xapi.identity.ifi_key`) of the identity's sealed form."""
    return f"account:{PSEUDONYM_HOME}|{pseudonym(key, tenant, ident)}"


def seal_agent(
    agent: dict[str, Any],
    keys: Mapping[str, SealKey],
    seal_text: Callable[[SealKey, bytes], str],
    tenant: str | None = None,
) -> dict[str, Any]:
    """The sealed form of one Agent or Group (``keys``: by identifier;
    ``seal_text``: :func:`seal_bytes` for the tenant, which also seals the
    compact form unless ``tenant`` is given)."""

    def seal_compact(key: SealKey, own: dict[str, Any]) -> str:
        if tenant is None:
            return seal_text(key, COMPACT_MARK + _encode(own))
        return seal_compact_bytes(key, tenant, _encode(own))

    own = {k: v for k, v in agent.items() if k != "member"}
    object_type = agent.get("objectType", "Agent")
    ident = identifier(agent)
    anonymous_group = object_type == "Group" and ifi_key(agent) is None  # type: ignore[arg-type]
    sealed: dict[str, Any] = {"objectType": object_type}
    if ident is not None and (not anonymous_group or "name" in own):
        key = keys[ident]
        if anonymous_group:
            sealed[SEALED] = seal_text(key, _encode(own))
        else:
            sealed["account"] = {"homePage": PSEUDONYM_HOME, "name": key.pseudonym}
            if "objectType" in own:
                del own["objectType"]  # the form's own
                sealed[SEALED] = seal_compact(key, own)
            else:
                sealed[SEALED] = seal_text(key, _encode(own))
    members = agent.get("member")
    if members is not None:
        sealed["member"] = [seal_agent(m, keys, seal_text) for m in members]
    return sealed


def pseudonymous(agent: dict[str, Any], pseudonym_of: Callable[[str], str]) -> dict[str, Any]:
    """The sealed form of ``agent`` without its ciphertext: what filters see
    (``authority_key`` of it is the sealed authority's)."""
    form: dict[str, Any] = {"objectType": agent.get("objectType", "Agent")}
    key = ifi_key(agent)  # type: ignore[arg-type]
    if key is not None:
        form["account"] = {"homePage": PSEUDONYM_HOME, "name": pseudonym_of(key)}
    members = agent.get("member")
    if members is not None:
        form["member"] = [pseudonymous(m, pseudonym_of) for m in members]
    return form


def decode(payload: bytes) -> dict[str, Any]:
    return _decode(payload)


def encode(statement: dict[str, Any]) -> bytes:
    """Stored-Statement JSON (sorted keys, as :mod:`lrs.eventlog` writes it)."""
    return _encode(statement)
