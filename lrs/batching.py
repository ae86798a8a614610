"""Group commit's pure decision: what one group of append requests writes.

The writer gathers requests, locks the log head, fetches the statements the
group touches, then calls :func:`plan_group`.  Requests are decided one after
another in arrival order, each seeing what the ones before it accepted, and
each on its own: a request that fails (409 for an id stored with different
content, 400 for voiding a voiding statement) writes nothing and changes
nothing for the others.

Accepted statements then get consecutive positions, strictly increasing
``stored`` times (never below ``now``, always above the previous one) and
their place in the hash chain.  No clock, no randomness: ``now`` and
``new_event_id`` come from the caller.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

import msgspec

from lrs.eventlog import (
    ONE_MICROSECOND,
    STATEMENT_EVENT,
    EventRecord,
    finalize_with_text,
    StoredFormatter,
    hash_with_text,
)
from lrs.ingest.model import PreparedStatement
from lrs.xapi.equivalence import statements_equivalent
from lrs.xapi.errors import ConflictError, XapiError
from lrs.xapi.identity import authority_key

Key = tuple[str, uuid.UUID]  # (tenant, statement id)


class StatementForm(msgspec.Struct, frozen=True):
    """What a statement writes that does not depend on its place in the log,
    worked out before the head lock is taken (see :func:`statement_form`)."""

    # The stored JSON split around its ``stored`` text: joining the parts with
    # that text gives finalize_with_text's bytes.  None: encode under the lock.
    payload_parts: tuple[bytes, ...] | None
    filter_keys: Any  # the read model's filter keys, as the writer sends them


class AppendRequest(msgspec.Struct, frozen=True):
    tenant: str
    statements: Sequence[PreparedStatement]
    # One per statement, or empty: then everything is worked out in plan_group.
    forms: Sequence[StatementForm] = ()
    # The sender holds the ``define`` scope: the Activity Definitions in its
    # accepted statements update the canonical ones, in the same transaction.
    defines: bool = False
    # Sealed personal data (docs/privacy.md): the learner-key epoch the
    # sealing process knew and the (pseudonym, generation) keys it sealed
    # under; None for Statements stored in clear.
    key_epoch: int | None = None
    key_refs: frozenset[tuple[str, int]] = frozenset()
    # The v3 ciphertexts, by reference, its sealed Statements name and that
    # are not known to be stored: written in the same group commit
    # (lrs.store.sealed_identities).
    ciphertexts: Mapping[bytes, bytes] = {}
    # The learner keys (generation 1, wrapped, by pseudonym) its sealing
    # process made for identities it had not cached, which its Statements
    # are sealed under: inserted by the group commit, which refuses the
    # request when one of those identities has another live key
    # (lrs.store.group_keys).
    new_keys: Mapping[str, bytes] = {}
    # The keys its Statements are sealed under that are not known to be on
    # disk ((generation, wrapped) by pseudonym) and the earliest moment they
    # were seen committed (time.monotonic()): a group on a connection opened
    # since proposes them again (lrs.store.unconfirmed_keys).
    unconfirmed_keys: Mapping[str, tuple[int, bytes]] = {}
    unconfirmed_since: float = math.inf


@dataclass(frozen=True, slots=True)
class ExistingStatement:
    """A stored statement the group touches (fetched under the head lock)."""

    tenant: str
    statement_id: uuid.UUID
    body: dict[str, Any]
    voids: uuid.UUID | None
    voided: bool
    stored: datetime
    position: int


class LogHead(msgspec.Struct, frozen=True):
    position: int
    hash: bytes
    stored: datetime | None


class AppendResult(msgspec.Struct, frozen=True):
    statement_id: uuid.UUID
    inserted: bool
    stored: datetime
    position: int


class NewStatement(msgspec.Struct, frozen=True):
    """An accepted statement: its event row and its read-model row."""

    event: EventRecord
    statement: PreparedStatement
    voided: bool
    form: StatementForm | None = None


@dataclass(slots=True)
class GroupPlan:
    # Per request, in order: its results, or the error it fails with.
    outcomes: list[list[AppendResult] | XapiError]
    new: list[NewStatement] = field(default_factory=list)
    # Statements already stored that this group voids.
    newly_voided: list[Key] = field(default_factory=list)
    head: LogHead | None = None  # the head after this group (None: unchanged)


@dataclass(slots=True)
class _Known:
    body: dict[str, Any]
    voids: uuid.UUID | None
    voided: bool
    # Stored statements carry their result; accepted ones point at their slot.
    result: AppendResult | None = None
    slot: int | None = None


def merge_touched(
    before: Sequence[ExistingStatement], after: Sequence[ExistingStatement]
) -> list[ExistingStatement]:
    """The touched statements as of the head lock, from a lookup made before
    it (``before``) and the touched statements committed between that lookup's
    head and the locked head (``after``).

    Rows in ``after`` are newer.  A statement can change after it is stored
    only by being voided, which happens in the transaction that stores the
    voiding statement; that statement is in ``after`` when its target is one
    the group looks up, so its target is marked voided here.
    """
    merged: dict[Key, ExistingStatement] = {(r.tenant, r.statement_id): r for r in before}
    for row in after:
        merged[(row.tenant, row.statement_id)] = row
    for row in after:
        if row.voids is None:
            continue
        target = merged.get((row.tenant, row.voids))
        if target is not None and target.voids is None and not target.voided:
            merged[(row.tenant, row.voids)] = replace(target, voided=True)
    return list(merged.values())


def plan_group(
    requests: Sequence[AppendRequest],
    existing: Sequence[ExistingStatement],
    head: LogHead,
    now: datetime,
    new_event_id: Callable[[], uuid.UUID],
) -> GroupPlan:
    """Decide every request of one group and lay out what to write.

    ``existing`` holds the stored statements whose ids are in the group or are
    targets of its voiding statements, plus the stored voiding statements that
    target ids in the group.
    """
    known: dict[Key, _Known] = {}
    voided_targets: set[Key] = set()  # ids some stored or accepted statement voids
    for row in existing:
        key = (row.tenant, row.statement_id)
        result = AppendResult(row.statement_id, False, row.stored, row.position)
        known[key] = _Known(row.body, row.voids, row.voided, result=result)
        if row.voids is not None:
            voided_targets.add((row.tenant, row.voids))

    # tenant, statement, voided, form
    accepted: list[tuple[str, PreparedStatement, bool, StatementForm | None]] = []
    newly_voided: set[Key] = set()
    outcomes: list[list[tuple[Key, bool]] | XapiError] = []

    for request in requests:
        decided = _decide(request, known, voided_targets)
        if isinstance(decided, XapiError):
            outcomes.append(decided)
            continue
        pending, targets, own = decided
        # Commit the request's effects to the group's view.
        forms = request.forms
        for key, statement, index in own:
            slot = len(accepted)
            voided = key in voided_targets and statement.voids is None
            accepted.append((request.tenant, statement, voided, forms[index] if forms else None))
            known[key] = _Known(statement.body, statement.voids, voided, slot=slot)
        for target in targets:
            voided_targets.add(target)
            entry = known.get(target)
            if entry is not None and entry.voids is None and not entry.voided:
                entry.voided = True
                if entry.slot is not None:
                    tenant, statement, _, form = accepted[entry.slot]
                    accepted[entry.slot] = (tenant, statement, True, form)
                else:
                    newly_voided.add(target)
        outcomes.append(pending)

    plan = GroupPlan(outcomes=[])
    plan.newly_voided = sorted(newly_voided, key=lambda k: (k[0], k[1].bytes))
    position, prev_hash, last_stored = head.position, head.hash, head.stored
    slot_results: list[AppendResult] = []
    stored_text_of = StoredFormatter()
    for tenant, statement, voided, form in accepted:
        position += 1
        stored = now if last_stored is None or now > last_stored else last_stored + ONE_MICROSECOND
        stored_text = stored_text_of(stored)
        if form is not None and form.payload_parts is not None:
            payload = stored_text.encode("ascii").join(form.payload_parts)
        else:
            payload = finalize_with_text(statement.body, stored_text)
        event_id = new_event_id()
        digest = hash_with_text(prev_hash, position, event_id, tenant, STATEMENT_EVENT, stored_text, payload)
        record = EventRecord(
            position, event_id, tenant, STATEMENT_EVENT, statement.statement_id,
            stored, payload, prev_hash, digest,
        )
        plan.new.append(NewStatement(record, statement, voided, form))
        slot_results.append(AppendResult(statement.statement_id, True, stored, position))
        prev_hash, last_stored = digest, stored
    if accepted:
        plan.head = LogHead(position, prev_hash, last_stored)

    for outcome in outcomes:
        if isinstance(outcome, XapiError):
            plan.outcomes.append(outcome)
            continue
        results = []
        for key, is_new in outcome:
            entry = known[key]
            if entry.result is not None:  # stored before this group
                results.append(entry.result)
                continue
            assert entry.slot is not None
            result = slot_results[entry.slot]
            if not is_new:  # a no-op duplicate of a statement accepted earlier in the group
                result = AppendResult(result.statement_id, False, result.stored, result.position)
            results.append(result)
        plan.outcomes.append(results)
    return plan


# Prefixes of the read model's filter_keys (statement_keys indexes each one by
# position, schemas/postgres/0091_statement_keys.sql).
AGENT_KEY, RELATED_AGENT_KEY, ACTIVITY_KEY, RELATED_ACTIVITY_KEY = "A:", "a:", "O:", "o:"
# The authority's IFI key, for the statements/read/mine scope.
AUTHORITY_KEY = "U:"


# Stands in for the stored text while the stored form is encoded ahead of the
# lock.  It encodes escaped ("\\u0000stored\\u0000"), so a statement can contain
# the same bytes only in its own strings: the split is used only when the
# sentinel occurs exactly where it was put, and never elsewhere.
_STORED_SENTINEL = "\x00stored\x00"
_sorted_encoder = msgspec.json.Encoder(order="sorted")
_SENTINEL_BYTES = _sorted_encoder.encode(_STORED_SENTINEL)[1:-1]


def payload_parts(body: dict[str, Any]) -> tuple[bytes, ...] | None:
    """The stored JSON of ``body`` split where its ``stored`` text goes (and its
    ``timestamp`` when absent), such that ``text.join(parts)`` equals
    :func:`lrs.eventlog.finalize_with_text` ``(body, text)`` for any stored text
    (which is plain ASCII, never escaped).  None when the split would be
    ambiguous (the statement itself contains the sentinel)."""
    final = dict(body)
    final["stored"] = _STORED_SENTINEL
    expected = 1
    if "timestamp" not in final:
        final["timestamp"] = _STORED_SENTINEL
        expected = 2
    parts = tuple(_sorted_encoder.encode(final).split(_SENTINEL_BYTES))
    return parts if len(parts) == expected + 1 else None


def statement_form(
    statement: PreparedStatement, encode_keys: Callable[[list[str]], Any] = list
) -> StatementForm:
    """Everything of a new statement's rows that does not need the log head."""
    return StatementForm(payload_parts(statement.body), encode_keys(filter_keys(statement)))


# The last authority object and its key: a request's statements share one
# authority object (lrs.ingest.prepare.prepare_statements sets it by
# reference, and nothing changes it after), so its key is worked out once a
# request instead of twice a statement (the filter keys, the group's
# authority column).  One tuple, read and replaced whole.
_last_authority: tuple[object, str | None] = (None, None)


def authority_key_of(authority: dict[str, Any]) -> str | None:
    """:func:`lrs.xapi.identity.authority_key`, remembered for the last object."""
    global _last_authority
    last = _last_authority
    if last[0] is authority:
        return last[1]
    key = authority_key(authority)
    _last_authority = (authority, key)
    return key


_FEW = 8  # up to this many, a tuple is searched faster than a set is made


def filter_keys(statement: PreparedStatement) -> list[str]:
    """The read model's filter keys: each agent key and activity id once, marked
    as matching the plain filter (upper case) or only its related_* form."""
    # Plain loops and tuple membership: a statement names a handful of
    # agents and activities, for which a set and four comprehensions cost
    # more than the keys themselves (a large Group's members use a set).
    keys: list[str] = []
    append = keys.append
    direct: tuple[str, ...] | set[str] = statement.actor_keys
    for key in direct:
        append(AGENT_KEY + key)
    if len(direct) > _FEW:
        direct = set(direct)
    for key in statement.related_agent_keys:
        if key not in direct:
            append(RELATED_AGENT_KEY + key)
    direct = statement.activity_ids
    for activity in direct:
        append(ACTIVITY_KEY + activity)
    if len(direct) > _FEW:
        direct = set(direct)
    for activity in statement.related_activity_ids:
        if activity not in direct:
            append(RELATED_ACTIVITY_KEY + activity)
    authority = authority_key_of(statement.body["authority"])
    if authority is not None:
        keys.append(AUTHORITY_KEY + authority)
    return keys


def _decide(
    request: AppendRequest,
    known: dict[Key, _Known],
    voided_targets: set[Key],
) -> XapiError | tuple[list[tuple[Key, bool]], list[Key], list[tuple[Key, PreparedStatement, int]]]:
    """One request against the group's view; no side effects.

    Returns the error, or ((key, is new) per statement in order, voiding
    targets, new statements with their index in the request).
    """
    tenant = request.tenant
    keys: list[tuple[Key, bool]] = []
    targets: list[Key] = []
    own: list[tuple[Key, PreparedStatement, int]] = []
    own_by_key: dict[Key, PreparedStatement] = {}
    for index, statement in enumerate(request.statements):
        key = (tenant, statement.statement_id)
        earlier = own_by_key.get(key)
        previous_body = earlier.body if earlier is not None else None
        if previous_body is None and key in known:
            previous_body = known[key].body
        if previous_body is not None:
            if not statements_equivalent(previous_body, statement.body):
                return ConflictError(
                    409,
                    f"statement {statement.statement_id} already exists with different content",
                    f"$[{index}].id",
                )
            keys.append((key, False))
            continue
        if statement.voids is not None:
            target = (tenant, statement.voids)
            target_voids = _voids_of(target, known, own_by_key)
            if target_voids is not None:
                return XapiError(
                    400,
                    f"statement {statement.voids} is itself a voiding statement and cannot be voided",
                    f"$[{index}].object.id",
                )
            targets.append(target)
        keys.append((key, True))
        own.append((key, statement, index))
        own_by_key[key] = statement
    return keys, targets, own


def _voids_of(
    key: Key, known: dict[Key, _Known], own_by_key: dict[Key, PreparedStatement]
) -> uuid.UUID | None:
    if key in own_by_key:
        return own_by_key[key].voids
    entry = known.get(key)
    return entry.voids if entry is not None else None


