"""What a group reads before it is planned: the stored statements its
requests touch, and the learner keys an erasure destroyed meanwhile."""

from __future__ import annotations

import uuid
from collections import defaultdict

import asyncpg
import msgspec

from lrs.batching import AppendRequest, ExistingStatement
from lrs.payload_codec import open_payload
from lrs.store.group_commit_sql import SELECT_ERASED_REFS, SELECT_TOUCHED, SELECT_TOUCHED_BETWEEN
from lrs.xapi.errors import XapiError

_decode_json = msgspec.json.Decoder().decode


class KeyErasedMeanwhile(XapiError):
    """The request was sealed under a learner key that an erasure destroyed
    before the request could be written (the sealing process had not heard
    of it yet); nothing of it was stored.  Sealed again, it gets the new key."""

    default_status = 503


async def erased_meanwhile(
    conn: asyncpg.Connection, requests: list[AppendRequest], key_epoch: int
) -> dict[int, KeyErasedMeanwhile]:
    """Under the head lock: the requests sealed before an erasure their
    process had not heard of, under a key it destroyed (by index)."""
    stale = [
        (index, r) for index, r in enumerate(requests) if r.key_epoch is not None and r.key_epoch < key_epoch and r.key_refs
    ]
    if not stale:
        return {}
    refs = {(r.tenant, p, g) for _, r in stale for p, g in r.key_refs}
    tenants, pseudonyms, generations = (list(column) for column in zip(*refs))
    erased = {
        (row["tenant"], row["pseudonym"], row["generation"])
        for row in await conn.fetch(SELECT_ERASED_REFS, tenants, pseudonyms, generations)
    }
    return {
        index: KeyErasedMeanwhile(
            f"a learner named in the request was erased while it was being stored (key epoch {key_epoch}); "
            "nothing was stored, send it again"
        )
        for index, r in stale
        if any((r.tenant, p, g) in erased for p, g in r.key_refs)
    }



Lookups = dict[str, tuple[list[uuid.UUID], list[uuid.UUID]]]


def touched_lookups(requests: list[AppendRequest]) -> Lookups:
    """Per tenant: the group's ids and voiding targets, and the group's ids."""
    ids: dict[str, set[uuid.UUID]] = defaultdict(set)
    lookups: dict[str, set[uuid.UUID]] = defaultdict(set)
    for request in requests:
        for statement in request.statements:
            ids[request.tenant].add(statement.statement_id)
            lookups[request.tenant].add(statement.statement_id)
            if statement.voids is not None:
                lookups[request.tenant].add(statement.voids)
    return {tenant: (list(lookups[tenant]), list(tenant_ids)) for tenant, tenant_ids in ids.items()}


async def fetch_touched(
    conn: asyncpg.Connection, lookups: Lookups, between: tuple[int, int] | None = None
) -> list[ExistingStatement]:
    """Stored statements with the group's ids or its voiding targets, and
    stored voiding statements aimed at the group's ids; with ``between``,
    only those at positions in (after, upto] (and voiding statements aimed
    at any of the looked-up ids)."""
    found: list[ExistingStatement] = []
    for tenant, (wanted, tenant_ids) in lookups.items():
        if between is None:
            rows = await conn.fetch(SELECT_TOUCHED, tenant, wanted, tenant_ids)
        else:
            rows = await conn.fetch(SELECT_TOUCHED_BETWEEN, tenant, wanted, *between)
        found.extend(existing_statement(tenant, r) for r in rows)
    return found



def existing_statement(tenant: str, row: asyncpg.Record) -> ExistingStatement:
    return ExistingStatement(
        tenant, row["statement_id"], _decode_json(open_payload(row["payload"])), row["voids"],
        row["voided"], row["stored"], row["position"],
    )


def lookup_pairs(lookups: Lookups) -> tuple[list[str], list[uuid.UUID], list[str], list[uuid.UUID]]:
    """The arguments of SELECT_HEAD_WITH_TOUCHED: (tenant, id) pairs to look
    up, and (tenant, id) pairs of the group's own ids (voiding statements aimed at them)."""
    wanted_tenants: list[str] = []
    wanted: list[uuid.UUID] = []
    own_tenants: list[str] = []
    own: list[uuid.UUID] = []
    for tenant, (wanted_ids, tenant_ids) in lookups.items():
        wanted_tenants.extend([tenant] * len(wanted_ids))
        wanted.extend(wanted_ids)
        own_tenants.extend([tenant] * len(tenant_ids))
        own.extend(tenant_ids)
    return wanted_tenants, wanted, own_tenants, own

