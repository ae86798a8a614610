"""Identity links in Postgres (schemas/postgres/0061_identity_links.sql).

A link or unlink appends an ``identity`` event to the log and writes the
``identity_links`` rows in the same transaction (:func:`change_links`); a
replay rebuilds the rows from the events (:func:`rebuild_links`), and a
replay's catch-up applies an event whose rows are not written yet
(:func:`apply_identity_event`).  With personal data sealed the rows and the
events hold pseudonym keys, never the clear keys (lrs/store/learner_refs.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import asyncpg

from lrs.identities import IDENTITY_EVENT, IdentityConflict, check_link, check_unlink, identity_payload, parse_identity_payload
from lrs.payload_codec import open_payload
from lrs.store.event_append import append_events
from lrs.store.learner_refs import SealedRefs, seal_refs

__all__ = [
    "LinkChange",
    "change_links",
    "linked_owners",
    "lock_links",
    "apply_identity_event",
    "rebuild_links",
    "person_of",
    "identifiers_of",
    "persons_of",
]

# Serialises link changes (and their checks) per database.
LINKS_LOCK_KEY = 5_113_770_402_614_202
LOCK = "SELECT pg_advisory_xact_lock($1)"
SELECT_OWNERS = """
SELECT identifier, person FROM identity_links
WHERE tenant = $1 AND identifier = ANY($2::text[]) AND unlinked_position IS NULL
"""
SELECT_HAVE_LINKS = """
SELECT DISTINCT person FROM identity_links WHERE tenant = $1 AND person = ANY($2::text[]) AND unlinked_position IS NULL
"""
# Keys the roster names as persons (memberships recorded and not superseded).
SELECT_ROSTERED = """
SELECT DISTINCT learner FROM roster_memberships
WHERE tenant = $1 AND learner = ANY($2::text[]) AND superseded_position IS NULL
"""
SELECT_IDENTIFIERS = """
SELECT identifier FROM identity_links WHERE tenant = $1 AND person = $2 AND unlinked_position IS NULL ORDER BY identifier
"""
SELECT_PERSON = "SELECT person FROM identity_links WHERE tenant = $1 AND identifier = $2 AND unlinked_position IS NULL"
SELECT_PERSONS = """
SELECT w.tenant, w.identifier, l.person
FROM unnest($1::text[], $2::text[]) AS w(tenant, identifier)
CROSS JOIN LATERAL (
    SELECT person FROM identity_links
    WHERE tenant = w.tenant AND identifier = w.identifier AND unlinked_position IS NULL LIMIT 1
) AS l
"""
INSERT_LINKS = """
INSERT INTO identity_links (tenant, identifier, person, linked_position, linked_at)
SELECT $1, identifier, $2, $3, $4 FROM unnest($5::text[]) AS identifier
"""
END_LINKS = """
UPDATE identity_links SET unlinked_position = $3, unlinked_at = $4
WHERE tenant = $1 AND person = $2 AND identifier = ANY($5::text[]) AND unlinked_position IS NULL
"""
SELECT_EVENT_WRITTEN = """
SELECT EXISTS (SELECT 1 FROM identity_links WHERE linked_position = $1)
    OR EXISTS (SELECT 1 FROM identity_links WHERE unlinked_position = $1)
"""
SELECT_IDENTITY_EVENTS = """
SELECT position, stored, tenant, payload FROM events WHERE event_type = 'identity' AND position <= $1 ORDER BY position
"""
SELECT_STORED = "SELECT stored FROM events WHERE position = $1"


@dataclass(frozen=True, slots=True)
class LinkChange:
    op: str
    person: str
    identifiers: list[str]  # those changed (empty: nothing to do, no event)
    position: int | None
    refs: SealedRefs | None = None  # the keys as stored, when sealed


async def sealed_keys(learner_keys: Any, tenant: str, keys: Sequence[str]) -> SealedRefs | None:
    """The pseudonym keys of ``keys`` when personal data is sealed (``learner_keys``), else None."""
    return None if learner_keys is None else await seal_refs(learner_keys, tenant, keys)


async def change_links(
    pool: asyncpg.Pool, tenant: str, op: str, person: str, identifiers: Sequence[str], *, now: datetime,
    learner_keys: Any = None,
) -> LinkChange:
    """Link (``op="link"``) or unlink identifiers of ``person``: check against
    the links in force, append the event, write the rows.  Raises
    IdentityConflict (nothing is written then; its message names the keys as
    given).  ``learner_keys``: personal data is sealed, the event and the rows
    name pseudonym keys; the change's ``person`` and ``identifiers`` are those."""
    refs = await sealed_keys(learner_keys, tenant, [person, *identifiers])
    if refs is not None:
        person, identifiers = refs.key(person), [refs.key(i) for i in identifiers]
    try:
        return await _change_links(pool, tenant, op, person, identifiers, now, refs)
    except IdentityConflict as exc:
        raise IdentityConflict(str(exc) if refs is None else refs.reveal(str(exc)), logged=str(exc)) from None


async def _change_links(
    pool: asyncpg.Pool, tenant: str, op: str, person: str, identifiers: Sequence[str], now: datetime,
    refs: SealedRefs | None,
) -> LinkChange:
    keys = sorted({person, *identifiers})
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK, LINKS_LOCK_KEY)
        owner_of = {r["identifier"]: r["person"] for r in await conn.fetch(SELECT_OWNERS, tenant, keys)}
        if op == "link":
            have = {r["person"] for r in await conn.fetch(SELECT_HAVE_LINKS, tenant, keys)}
            rostered = {r["learner"] for r in await conn.fetch(SELECT_ROSTERED, tenant, keys)}
            changed = check_link(person, list(identifiers), owner_of, have, rostered)
        else:
            changed = check_unlink(person, list(identifiers), owner_of)
        if not changed:
            return LinkChange(op, person, [], None, refs)
        sealed = None if refs is None else refs.subset([person, *changed])
        ((position, stored),) = await append_events(
            conn, tenant, IDENTITY_EVENT, [identity_payload(op, person, changed, sealed)], clock=lambda: now
        )
        await _write(conn, tenant, op, person, changed, position, stored)
    return LinkChange(op, person, changed, position, refs)


async def lock_links(conn: asyncpg.Connection) -> None:
    """Hold the link changes of every tenant until the caller's transaction
    ends (a roster load, which checks its learners against the links)."""
    await conn.execute(LOCK, LINKS_LOCK_KEY)


async def linked_owners(conn: asyncpg.Connection, tenant: str, keys: Sequence[str]) -> dict[str, str]:
    """Identifier -> person, for those of ``keys`` linked to a person now."""
    return {r["identifier"]: r["person"] for r in await conn.fetch(SELECT_OWNERS, tenant, list(keys))}


async def _write(
    conn: asyncpg.Connection, tenant: str, op: str, person: str, identifiers: list[str], position: int, stored: datetime
) -> None:
    if op == "link":
        await conn.execute(INSERT_LINKS, tenant, person, position, stored, identifiers)
    else:
        await conn.execute(END_LINKS, tenant, person, position, stored, identifiers)


async def apply_identity_event(conn: asyncpg.Connection, tenant: str, position: int, payload: bytes) -> tuple[str, str, list[str]]:
    """Write an identity event's rows unless written already (every event
    changes at least one row, so "a row names it" is the test); its meaning."""
    op, person, identifiers = parse_identity_payload(payload)
    if not await conn.fetchval(SELECT_EVENT_WRITTEN, position):
        await _write(conn, tenant, op, person, identifiers, position, await conn.fetchval(SELECT_STORED, position))
    return op, person, identifiers


async def rebuild_links(conn: asyncpg.Connection, through: int) -> dict[tuple[str, str], str]:
    """Fill the (empty) identity_links table from the identity events up to
    ``through``; the links in force then, (tenant, identifier) -> person."""
    rows: dict[tuple[str, str], list[Any]] = {}  # current row per (tenant, identifier)
    ended: list[list[Any]] = []
    for r in await conn.fetch(SELECT_IDENTITY_EVENTS, through):
        op, person, identifiers = parse_identity_payload(open_payload(r["payload"]))
        for identifier in identifiers:
            key = (r["tenant"], identifier)
            if op == "link":
                rows[key] = [r["tenant"], identifier, person, r["position"], r["stored"], None, None]
            elif key in rows:
                row = rows.pop(key)
                row[5], row[6] = r["position"], r["stored"]
                ended.append(row)
    await conn.copy_records_to_table(
        "identity_links", records=[tuple(row) for row in [*ended, *rows.values()]],
        columns=["tenant", "identifier", "person", "linked_position", "linked_at", "unlinked_position", "unlinked_at"],
    )
    return {key: row[2] for key, row in rows.items()}


async def person_of(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, key: str) -> str | None:
    """The person ``key`` is linked to, or None."""
    return await conn.fetchval(SELECT_PERSON, tenant, key)  # type: ignore[no-any-return]


async def identifiers_of(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, person: str) -> list[str]:
    """The identifiers linked to ``person`` now."""
    return [r["identifier"] for r in await conn.fetch(SELECT_IDENTIFIERS, tenant, person)]


async def persons_of(conn: asyncpg.Connection, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(tenant, identifier) -> person, for those of ``pairs`` that are linked."""
    if not pairs:
        return {}
    rows = await conn.fetch(SELECT_PERSONS, [t for t, _ in pairs], [i for _, i in pairs])
    return {(r["tenant"], r["identifier"]): r["person"] for r in rows}
