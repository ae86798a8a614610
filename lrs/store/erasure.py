"""Erasing a learner (docs/privacy.md): crypto-shredding, recorded in the log.

One transaction:

1. refuse when Statements, documents, roster memberships or identity links
   stored before personal data was sealed name the learner in clear (the log cannot be rewritten; docs/privacy.md says what
   to do), or when the tenant holds nothing sealed of the learner;
2. wait for any group commit inserting the learner's first key (before the
   log head lock, which that group needs), so that the key is committed
   and destroyed here rather than committed just after; then destroy every
   generation of the learner's data key (``learner_keys``), which makes
   every sealed copy of their identifiers and names, in the log, in
   JetStream and in every backup, unreadable for good, and tell every
   process (``NOTIFY lrs_learner_keys``) to drop its cached copy;
3. delete the learner's State and Agent Profile documents (their clear copy
   in the ``documents`` table) and the attachment data only the learner's
   Statements refer to (found through an index of statement events by
   attachment hash, not by reading the tenant's Statements);
4. append an ``erasure`` event: pseudonym, who, when (its ``stored``), why,
   and what was removed: never the identifier in clear.

The identifiers linked to the learner as a person (lrs/store/identities.py)
are the same human's: their keys, documents and attachments go too, and the
event lists their pseudonyms (``linked``).

Hashes cover the ciphertext, so the chain and the anchors verify as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import asyncpg
import msgspec

from lrs.batching import AGENT_KEY, AUTHORITY_KEY, RELATED_AGENT_KEY
from lrs.ingest.stored_keys import statement_keys
from lrs.payload_codec import open_payload
from lrs.privacy import reason as reason_rules
from lrs.privacy.statement_agents import identifier
from lrs.store.event_append import append_events
from lrs.store.learner_key_sql import CHANGES_CHANNEL
from lrs.store.learner_keys import LearnerKeys
from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX, open_refs
from lrs.xapi.identity import agent_of_key
from lrs.store.statement_identities import identities_in_statements

__all__ = ["ERASURE_EVENT", "Erasure", "ErasureRefused", "erase_learner"]

ERASURE_EVENT = "erasure"
MAX_REASON = reason_rules.MAX_REASON
NAMES_FROM_STATEMENTS = 20  # the latest Statements naming the learner whose names the reason may not contain

# The first statement of an erasure's transaction: takes the log head lock
# (so no Statement is written meanwhile) and counts the erasure.
BUMP_KEY_EPOCH = "UPDATE log_head SET key_epoch = key_epoch + 1 WHERE singleton RETURNING key_epoch"
# Destroys every generation's key of one identity; the caller's transaction
# also appends the erasure event.  $3: the epoch BUMP_KEY_EPOCH returned.
ERASE_KEYS = f"""
WITH erased AS (
    UPDATE learner_keys SET wrapped = NULL, erased_at = now()
    WHERE tenant = $1 AND pseudonym = $2 AND wrapped IS NOT NULL
    RETURNING generation
)
SELECT array_agg(generation ORDER BY generation) AS generations,
       pg_notify('{CHANGES_CHANNEL}', $1 || ' ' || $2 || ' ' || $3::bigint)
FROM erased
"""

# Statements that name the identity in clear (stored before sealing was on).
# statement_keys finds the candidates of each key by its hash, and
# statements.authority_key those of an authority's ('U:', whose related
# agent row the writer leaves out, lrs.store.group_columns.key_literal); the
# Statement's JSON decides (lrs/ingest/stored_keys.py).
SELECT_CLEAR = """
SELECT w.key, e.payload FROM unnest($2::text[]) AS w(key)
JOIN statement_keys k ON k.key = statement_key($1, w.key)
JOIN statements s ON s.tenant = $1 AND s.position = k.position
JOIN events e ON e.position = s.position
UNION ALL
SELECT w.key, e.payload FROM unnest($2::text[]) AS w(key)
JOIN statements s ON s.authority_key = statement_key($1, w.key) AND s.tenant = $1
JOIN events e ON e.position = s.position
WHERE left(w.key, 2) = 'U:'
"""
SELECT_CLEAR_DOCUMENTS = "SELECT 1 FROM documents WHERE tenant = $1 AND agent_key = $2 LIMIT 1"
DELETE_DOCUMENTS = "DELETE FROM documents WHERE tenant = $1 AND agent_key = $2"
# Roster or identity events that name the learner in clear (recorded before
# sealing was on; $2: the identifier as a JSON string): they cannot be
# rewritten either.  The events_roster index holds just those events.
SELECT_CLEAR_ROSTER = """
SELECT 1 FROM events WHERE event_type IN ('roster', 'identity') AND tenant = $1
  AND position(convert_to($2, 'UTF8') IN payload) > 0
LIMIT 1
"""
# The learner's own Statements (as actor or Agent object) that may carry
# attachments; their payloads are decoded here, not as jsonb, which refuses a
# string holding U+0000 (``\u0000``) that a Statement may hold.  A payload
# holding "attachments" is never kept compressed (lrs/payload_codec.py), so
# these searches of the stored bytes find every Statement with attachments.
SELECT_ATTACHMENT_PAYLOADS = """
SELECT DISTINCT ON (s.position) e.payload
FROM unnest($2::text[]) AS w(key)
JOIN statement_keys k ON k.key = statement_key($1, w.key)
JOIN statements s ON s.tenant = $1 AND s.position = k.position
JOIN events e ON e.position = s.position
WHERE position('"attachments"'::bytea IN e.payload) > 0
ORDER BY s.position
"""
# The Statements carrying the same data, of which one not naming the learner
# keeps it: through the events_attachment_hashes index (schemas/postgres/0063),
# whose expression and predicate the first three conditions repeat.
SELECT_SHARING = """
SELECT e.payload FROM events e
WHERE statement_attachment_hashes(e.payload) @> ARRAY[$2::text]
  AND e.event_type = 'statement' AND position('"attachments"'::bytea IN e.payload) > 0
  AND e.tenant = $1
"""
DELETE_ATTACHMENT = "DELETE FROM attachments WHERE tenant = $1 AND sha2 = $2"
# The identifiers linked to the learner (lrs/store/identities.py), by pseudonym key.
# The identity events that last linked each identifier: their "sealed" texts hold the clear identifiers.
SELECT_LINK_PAYLOADS = """
SELECT payload FROM events
WHERE event_type = 'identity' AND position IN (
    SELECT max(linked_position) FROM identity_links WHERE tenant = $1 AND identifier = ANY($2::text[]) GROUP BY identifier
)
"""

# Before the erasure takes the log head lock: waits for every group commit
# that is inserting the learner's first key (generation 1; lrs.store.
# group_keys inserts it before the group takes the head lock and commits it
# with the Statements sealed under it) and for a LOAD_OR_CREATE doing so,
# so that such a key is committed, and destroyed below, rather than
# invisible to this transaction and committed after it.  A learner with no
# key row gets an erased one here, which holds any first key back until
# this transaction ends (it is refused then: rolled back).  Returns the
# pseudonym when the learner had no key row.  (Identifiers linked to the
# learner have a key: the identity event that linked them sealed them.)
HOLD_FIRST_KEY = """
INSERT INTO learner_keys (tenant, pseudonym, generation, wrapped, erased_at) VALUES ($1, $2, 1, NULL, now())
ON CONFLICT DO NOTHING
RETURNING pseudonym
"""

SELECT_LINKED = """
SELECT identifier FROM identity_links WHERE tenant = $1 AND person = $2 AND unlinked_position IS NULL ORDER BY identifier
"""

_encode = msgspec.json.Encoder(order="sorted").encode


class _Attachment(msgspec.Struct):
    sha2: str | None = None


class _WithAttachments(msgspec.Struct):
    attachments: list[_Attachment] | None = None


_decode_attachments = msgspec.json.Decoder(_WithAttachments).decode


def attachment_hashes(payloads: list[bytes]) -> list[str]:
    """The distinct ``sha2`` of the attachments ``payloads`` (Statements) carry, in order."""
    found: dict[str, None] = {}
    for payload in payloads:
        for attachment in _decode_attachments(payload).attachments or ():
            if attachment.sha2:
                found[attachment.sha2] = None
    return list(found)


_decode = msgspec.json.Decoder().decode


async def names_in_clear(conn: asyncpg.Connection, tenant: str, identifier: str) -> bool:
    """Whether a Statement names the clear IFI key ``identifier`` (as an agent,
    a related agent or its authority; inside a transaction: a cursor)."""
    keys = [AGENT_KEY + identifier, RELATED_AGENT_KEY + identifier, AUTHORITY_KEY + identifier]
    async for row in conn.cursor(SELECT_CLEAR, tenant, keys):
        if row["key"] in statement_keys(_decode(open_payload(row["payload"]))):
            return True
    return False


async def shared_without(conn: asyncpg.Connection, tenant: str, keys: list[str], sha2: str) -> bool:
    """Whether a Statement holding none of ``keys`` (the learner's 'A:' keys)
    carries the attachment ``sha2`` (inside a transaction: a cursor)."""
    async for row in conn.cursor(SELECT_SHARING, tenant, sha2):
        if statement_keys(_decode(open_payload(row["payload"]))).isdisjoint(keys):
            return True
    return False


class ErasureRefused(ValueError):
    """Nothing was erased; the message says why.  ``kind``: ``invalid`` (the
    request), ``absent`` (nothing of the learner) or ``conflict`` (the
    learner's data cannot be erased by key, or already was)."""

    def __init__(self, message: str, kind: str = "conflict") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Erasure:
    pseudonym: str
    position: int  # of the erasure event
    generations: list[int]
    documents: int
    attachments: int
    linked: list[str] = field(default_factory=list)  # pseudonyms of the linked identifiers erased with it


def check_reason(reason: str, agent: dict[str, Any], names: Iterable[str] = (), *, whose: str = "their") -> str:
    """:func:`lrs.privacy.reason.check_reason`, refused as an invalid request."""
    try:
        return reason_rules.check_reason(reason, agent, names, whose=whose)
    except reason_rules.ReasonRefused as exc:
        raise ErasureRefused(str(exc), "invalid") from None


class _Sealed(msgspec.Struct):
    sealed: dict[str, str] = {}


async def _linked_identifiers(pool: Any, learner_keys: LearnerKeys, tenant: str, keys: list[str]) -> dict[str, str | None]:
    """Pseudonym key -> clear identifier of each linked key, from the identity event that linked it."""
    if not keys:
        return {}
    wanted = set(keys)
    sealed: dict[str, str] = {}
    for row in await pool.fetch(SELECT_LINK_PAYLOADS, tenant, keys):
        for key, text in msgspec.json.decode(open_payload(row["payload"]), type=_Sealed).sealed.items():
            if key in wanted:
                sealed[key] = text
    return await open_refs(learner_keys, tenant, sealed) if sealed else {}


async def erase_learner(
    pool: asyncpg.Pool, learner_keys: LearnerKeys, tenant: str, agent: dict[str, Any], *, reason: str, by: str
) -> Erasure:
    """Erase the identity of ``agent`` (an Agent as the ``agent`` parameter
    gives it) in ``tenant``; raises :class:`ErasureRefused`."""
    ident = identifier(agent)
    if ident is None:
        raise ErasureRefused("the agent has no identifier (mbox, mbox_sha1sum, openid or account)", "invalid")
    reason = check_reason(reason, agent)
    pseudonym = learner_keys.pseudonym(tenant, ident)
    stored_key = learner_keys.pseudonym_key(tenant, ident)
    # The names the learner's latest Statements give them, which the request need not repeat, and the
    # identifiers linked to them (erased with them below) with the names their own Statements give.
    linked_keys = [r["identifier"] for r in await pool.fetch(SELECT_LINKED, tenant, stored_key)
                   if r["identifier"].startswith(PSEUDONYM_KEY_PREFIX)]
    seen = await identities_in_statements(
        pool, learner_keys, tenant, [stored_key, *linked_keys], statements=NAMES_FROM_STATEMENTS
    )
    reason = check_reason(reason, agent, seen[stored_key].names)
    linked_clear = await _linked_identifiers(pool, learner_keys, tenant, linked_keys)
    for key in linked_keys:
        linked_agent = seen[key].agent or agent_of_key(linked_clear.get(key) or "") or {}
        reason = check_reason(reason, linked_agent, seen[key].names, whose="a linked identifier's")
    async with pool.acquire() as conn, conn.transaction():
        # A first key of the learner that a group commit is inserting now is
        # waited for, before the head lock (which that group needs to commit).
        unkeyed = await conn.fetchval(HOLD_FIRST_KEY, tenant, pseudonym) is not None
        # Then the log head lock: no Statement is written until this commits,
        # and one sealed by a process that has not heard of this erasure yet
        # is checked against the keys by the writer (lrs.store.learner_keys).
        epoch = await conn.fetchval(BUMP_KEY_EPOCH)
        if await names_in_clear(conn, tenant, ident) or await conn.fetchval(
            SELECT_CLEAR_DOCUMENTS, tenant, ident
        ):
            raise ErasureRefused(
                "statements or documents stored in clear, before personal data was sealed, name this learner;"
                " the log cannot be rewritten, so their identity there cannot be erased by key"
                " (docs/privacy.md, \"Data stored before sealing\")"
            )
        if await conn.fetchval(SELECT_CLEAR_ROSTER, tenant, _encode(ident).decode()):
            raise ErasureRefused(
                "roster memberships or identity links recorded in clear, before personal data was sealed, name"
                " this learner; the log cannot be rewritten (docs/privacy.md, \"Data stored before sealing\")"
            )
        row = await conn.fetchrow(ERASE_KEYS, tenant, pseudonym, epoch)
        generations = list(row["generations"] or [])
        if not generations:
            if not unkeyed:  # a key row before this erasure: all erased
                raise ErasureRefused(f"this learner was already erased in tenant {tenant!r}")
            raise ErasureRefused(f"tenant {tenant!r} holds no personal data of this learner", "absent")
        # The learner's other identifiers (linked to them as a person) go with them.
        linked = [
            r["identifier"].removeprefix(PSEUDONYM_KEY_PREFIX)
            for r in await conn.fetch(SELECT_LINKED, tenant, stored_key)
            if r["identifier"].startswith(PSEUDONYM_KEY_PREFIX)
        ]
        for other in linked:
            await conn.fetchrow(ERASE_KEYS, tenant, other, epoch)
        stored_keys = [stored_key, *(PSEUDONYM_KEY_PREFIX + other for other in linked)]
        documents = 0
        for key in stored_keys:
            documents += int((await conn.execute(DELETE_DOCUMENTS, tenant, key)).split()[-1])
        attachments = 0
        filter_keys = ["A:" + key for key in stored_keys]
        rows = await conn.fetch(SELECT_ATTACHMENT_PAYLOADS, tenant, filter_keys)
        payloads = [open_payload(found["payload"]) for found in rows]
        payloads = [p for p in payloads if not statement_keys(_decode(p)).isdisjoint(filter_keys)]
        for sha2 in attachment_hashes(payloads):
            if not await shared_without(conn, tenant, filter_keys, sha2):
                attachments += int((await conn.execute(DELETE_ATTACHMENT, tenant, sha2)).split()[-1])
        payload = _encode({
            "pseudonym": pseudonym,
            "generations": generations,
            "reason": reason,
            "by": by,
            "documents": documents,
            "attachments": attachments,
            **({"linked": linked} if linked else {}),
        })
        [(position, _stored)] = await append_events(conn, tenant, ERASURE_EVENT, [payload])
    for erased in (pseudonym, *linked):
        learner_keys.forget(tenant, erased)
    return Erasure(pseudonym, position, generations, documents, attachments, linked)
