"""What each process of a replay read in shares does with a page and with
the ids it owns (pure; projections/competency/read_shares.py reads the log
with them): judging a page of its own, keeping the events another process
sent from a page it judged, and settling the statement ids that two shares own (the first
position in the log wins, as in one process)."""

from __future__ import annotations

import uuid
from typing import Any, Callable, Sequence, Union

from msgspec import Struct

from lrs.payload_codec import open_payload
from projections.competency.judgement import aligned_to, evidence_fields, evidence_from
from projections.competency.model import StatementVoided
from projections.competency.policy import evidence_of, judge
from projections.competency.rebuild import LogRebuild
from projections.competency.statement_view import decode_view

__all__ = ["EvidenceHint", "Hinted", "Keep", "Page", "Suspect", "VoidingHint", "collisions", "give_up", "judge_page",
           "owned_hashes", "settle", "suspects", "take_hinted"]

Page = Sequence[tuple[int, str, str, bytes]]


class EvidenceHint(Struct, array_like=True, tag=1, gc=False):
    """A statement of another share's learner that may be evidence, as the
    process that judged its page found it: what policy.judge found (its
    targets named by the activity and whether its objective is one) and
    the fields evidence_of reads, as stored (the authority's JSON only where
    the context names no platform).  That share builds the evidence from
    these (judgement.evidence_from) without decoding or judging the
    statement again."""

    position: int
    tenant: str
    statement_id: str
    verb: str
    activity: str
    objective: bool
    learner: str
    judged: bool | None
    completed: bool
    score: float | None
    platform: str | None
    registration: str | None
    mastery: bytes | None
    timestamp: str | None
    stored: str | None
    authority: bytes | None


class VoidingHint(Struct, array_like=True, tag=0, gc=False):
    """A voiding of a page judged elsewhere (every share keeps every voiding)."""

    position: int
    tenant: str
    statement_id: str
    target_id: str


# An event of a page judged elsewhere that a share needs.
Hinted = Union[EvidenceHint, VoidingHint]
# Where a page's kept events go: (position, tenant, meaning), LogRebuild.take's arguments.
Keep = Callable[[int, str, Any], None]
# (tenant, statement id, owner's position, mismatches' position or -1)
Suspect = tuple[str, str, int, int]


def judge_page(
    work: LogRebuild, page: Page, share: int, shares: int, hints: list[list[Hinted]], keep: Keep | None = None
) -> None:
    """Judge every event of ``page`` (one this process judges): keep in
    ``work`` (or give ``keep``, to route later in log order) its own
    learners' evidence and every voiding, and keep in ``work`` the failures
    of the events it judges; each event another share needs (its learners'
    statements that may be evidence, the voidings) goes to that share's
    list of ``hints`` (:class:`EvidenceHint`, :class:`VoidingHint`): that
    share does not read the page."""
    catalog, persons, failed = work.catalog, work.persons, work.failed
    take = work.take if keep is None else keep
    for position, tenant, event_type, payload in page:
        if event_type != "statement":
            continue
        opened = open_payload(payload)  # a payload that does not open stops the replay
        try:
            view = decode_view(opened)
            judged = judge(view, catalog)
            if type(judged) is StatementVoided:
                uuid.UUID(judged.target_id)  # ids of other statements: stored as uuid columns
        except Exception as exc:  # the rules fail on it before its learner is known: parked here
            failed.append((position, tenant, repr(exc)))
            continue
        if judged is None:
            continue
        if type(judged) is StatementVoided:
            take(position, tenant, judged)
            voiding = VoidingHint(position, tenant, judged.statement_id, judged.target_id)
            for other, hinted in enumerate(hints):
                if other != share:
                    hinted.append(voiding)
            continue
        learner = judged[3]  # type: ignore[index]
        if persons:
            learner = persons.get((tenant, learner), learner)
        owner = hash(learner) % shares  # forked processes share the string hash's secret: the same share in each
        if owner != share:
            hints[owner].append(_evidence_hint(position, tenant, view, judged, catalog))  # type: ignore[arg-type]
            continue
        try:
            meaning = evidence_of(view, judged, catalog)  # type: ignore[arg-type]
        except Exception as exc:  # the rules fail on it: parked
            failed.append((position, tenant, repr(exc)))
            continue
        if meaning is not None:
            take(position, tenant, meaning)


def _evidence_hint(position: int, tenant: str, view: Any, judged: Any, catalog: Any) -> EvidenceHint:
    statement_id, verb, targets, learner, judged_success, completed, score = judged
    activity = targets[0][0]
    platform, registration, mastery, timestamp, stored, authority = evidence_fields(view)
    return EvidenceHint(
        position, tenant, statement_id, verb, activity, len(targets) > len(catalog.alignments.get(activity, ())),
        learner, judged_success, completed, score, platform, registration,
        None if mastery is None else bytes(mastery), timestamp, stored,
        bytes(authority) if platform is None and authority else None,
    )


def take_hinted(work: LogRebuild, hinted: Sequence[Hinted], keep: Keep | None = None) -> None:
    """Keep in ``work`` (or give ``keep``) the events ``hinted`` by the
    process that judged their page: the evidence of this share's learners'
    statements (built here, as evidence_of would from the statement), and
    the voidings."""
    catalog = work.catalog
    take = work.take if keep is None else keep
    for hint in hinted:
        if type(hint) is VoidingHint:
            take(hint.position, hint.tenant, StatementVoided(statement_id=hint.statement_id, target_id=hint.target_id))
            continue
        judged = (hint.statement_id, hint.verb, aligned_to(hint.activity, hint.objective, catalog), hint.learner,  # type: ignore[union-attr]
                  hint.judged, hint.completed, hint.score)  # type: ignore[union-attr]
        try:
            meaning = evidence_from(judged, catalog, hint.platform, hint.registration, hint.mastery,  # type: ignore[union-attr,arg-type]
                                    hint.timestamp, hint.stored, hint.authority)  # type: ignore[union-attr]
        except Exception as exc:  # the rules fail on it: parked
            work.failed.append((hint.position, hint.tenant, repr(exc)))
            continue
        if meaning is not None:
            take(hint.position, hint.tenant, meaning)


def suspects(work: LogRebuild, collisions: set[int]) -> list[Suspect]:
    """The statements this share owns whose id's hash is among
    ``collisions`` (another share owns an id of that hash), with the
    positions that named their owner and mismatches."""
    assert work.owner_positions is not None and work.mismatch_positions is not None
    mismatched = work.mismatch_positions
    return [
        (tenant, statement_id, at, mismatched.get((tenant, statement_id), -1))
        for (tenant, statement_id), at in work.owner_positions.items() if hash(statement_id) in collisions
    ]


def collisions(owned: Sequence[Sequence[int]]) -> set[int]:
    """The hashes of statement ids that more than one of the shares' ``owned`` lists holds."""
    seen: set[int] = set()
    twice: set[int] = set()
    for hashes in owned:
        mine = set(hashes)
        twice |= seen & mine
        seen |= mine
    return twice


def owned_hashes(work: LogRebuild) -> list[int]:
    return [hash(statement_id) for _, statement_id in work.owners]


def settle(reported: Sequence[Sequence[Suspect]]) -> list[tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """For each share's ``reported`` suspects, the statements whose owner and
    whose mismatches it gives up: the first position in the log wins, as in
    one process."""
    owner: dict[tuple[str, str], tuple[int, int]] = {}  # statement -> (position, share)
    mismatch: dict[tuple[str, str], tuple[int, int]] = {}
    for share, entries in enumerate(reported):
        for tenant, statement_id, at, mismatch_at in entries:
            key = (tenant, statement_id)
            if key not in owner or at < owner[key][0]:
                owner[key] = (at, share)
            if mismatch_at >= 0 and (key not in mismatch or mismatch_at < mismatch[key][0]):
                mismatch[key] = (mismatch_at, share)
    verdicts = []
    for share, entries in enumerate(reported):
        keys = [(tenant, statement_id) for tenant, statement_id, _, _ in entries]
        verdicts.append((
            [key for key in keys if owner[key][1] != share],
            [key for key in keys if key in mismatch and mismatch[key][1] != share],
        ))
    return verdicts


def give_up(work: LogRebuild, owners: Sequence[Sequence[str]], mismatches: Sequence[Sequence[str]]) -> None:
    """Forget the owners and mismatches of the statements :func:`settle` gave to another share."""
    for tenant, statement_id in owners:
        del work.owners[(tenant, statement_id)]
    for tenant, statement_id in mismatches:
        work.mismatches.pop((tenant, statement_id), None)
