"""A learner's competency state under events: evidence added, statements voided.

Pure: no clock, no randomness, no I/O.  A state depends only on the set of
evidence and voided ids, never on the order events arrive in:

- evidence is folded in (timestamp, statement id) order;
- a statement id is applied once (a second delivery changes nothing);
- a voided statement's evidence is removed and the affected competencies are
  refolded; a voided id stays remembered, so the voided statement arriving
  later (or again) is ignored.

What a statement means is projections/competency/judgement.py's; what a
competency's evidence reaches, projections/competency/mastery.py's.
"""

from __future__ import annotations

from bisect import insort
from operator import attrgetter
from typing import Iterable

from projections.competency.catalog import Catalog
from projections.competency.mastery import certifications, fold_ordered
from projections.competency.model import (
    RULE_VERSION,
    CompetencyState,
    Evidence,
    LearnerEvent,
    LearnerState,
    StatementEvidence,
    StatementVoided,
)

_STATEMENT_ID = attrgetter("statement_id")


def evolve(state: LearnerState, event: LearnerEvent, catalog: Catalog) -> LearnerState:
    """The learner's state after ``event``; ``state`` itself is unchanged."""
    if isinstance(event, StatementVoided):
        if event.target_id in state.voided:
            return state
        voided = tuple(sorted((*state.voided, event.target_id)))
        removed = [e for e in state.evidence if e.statement_id == event.target_id]
        kept = tuple(e for e in state.evidence if e.statement_id != event.target_id)
        return _refold(state, kept, voided, {e.competency for e in removed}, catalog)
    if event.statement_id in state.voided or any(e.statement_id == event.statement_id for e in state.evidence):
        return state
    merged = tuple(sorted((*state.evidence, *event.evidence)))
    return _refold(state, merged, state.voided, {e.competency for e in event.evidence}, catalog)


def evolve_many(state: LearnerState, events: Iterable[LearnerEvent], catalog: Catalog) -> LearnerState:
    """The state after all ``events`` with one refold: equal to applying
    :func:`evolve` to each in turn, and ``state`` itself when nothing changes."""
    if type(events) is list and len(events) == 1 and type(events[0]) is StatementEvidence:
        return _add_one(state, events[0], catalog)
    voided = set(state.voided)
    present = set(map(_STATEMENT_ID, state.evidence))
    newly_voided: set[str] = set()
    added: list[Evidence] = []
    for event in events:
        if isinstance(event, StatementVoided):
            if event.target_id not in voided:
                voided.add(event.target_id)
                newly_voided.add(event.target_id)
        elif event.statement_id not in voided and event.statement_id not in present:
            present.add(event.statement_id)
            added.extend(event.evidence)
    if not newly_voided and not added:
        return state
    if not newly_voided:  # most batches: new evidence only, nothing to take out
        evidence = _merged(state.evidence, added)
        return _refold(state, evidence, state.voided, {e.competency for e in added}, catalog)
    removed = [e for e in state.evidence if e.statement_id in newly_voided]
    kept_added = [e for e in added if e.statement_id not in newly_voided]
    evidence = tuple(
        sorted((*(e for e in state.evidence if e.statement_id not in newly_voided), *kept_added))
    )
    affected = {e.competency for e in removed} | {e.competency for e in kept_added}
    return _refold(state, evidence, tuple(sorted(voided)), affected, catalog)


def _add_one(state: LearnerState, event: StatementEvidence, catalog: Catalog) -> LearnerState:
    """:func:`evolve_many` of one statement's evidence (most of live apply's
    learners in a batch): its id is looked for in the state's evidence
    without building a set of all of them first."""
    statement_id = event.statement_id
    if not event.evidence or statement_id in state.voided or statement_id in map(_STATEMENT_ID, state.evidence):
        return state
    evidence = _merged(state.evidence, list(event.evidence))
    return _refold(state, evidence, state.voided, {e.competency for e in event.evidence}, catalog)


def _merged(evidence: tuple[Evidence, ...], added: list[Evidence]) -> tuple[Evidence, ...]:
    """``sorted((*evidence, *added))`` (evidence compares in
    :data:`EVIDENCE_ORDER`) for an ``evidence`` already in that order: each
    added item is inserted after its equals (``insort``), as the stable sort
    puts it, so only about log(n) comparisons are made per added item (a
    learner's state grows with every statement; the batch adds one or two)."""
    if len(added) > 4 * len(evidence) + 8:  # a merge of whole states: sorting once is cheaper
        return tuple(sorted((*evidence, *added)))
    merged = list(evidence)
    for e in sorted(added):
        insort(merged, e)
    return tuple(merged)


def fold(learner: str, events: Iterable[LearnerEvent], catalog: Catalog) -> LearnerState:
    """The state after all ``events`` (a replay from nothing)."""
    state = LearnerState(learner=learner)
    for event in events:
        state = evolve(state, event, catalog)
    return state


def state_events(state: LearnerState, learner: str) -> list[LearnerEvent]:
    """Events that rebuild ``state``'s evidence and voidings for ``learner``
    (a person a linked identifier's state is merged into)."""
    by_statement: dict[str, list[Evidence]] = {}
    for e in state.evidence:
        by_statement.setdefault(e.statement_id, []).append(e)
    events: list[LearnerEvent] = [
        StatementEvidence(statement_id=sid, learner=learner, evidence=tuple(items)) for sid, items in by_statement.items()
    ]
    events.extend(StatementVoided(statement_id="", target_id=target) for target in state.voided)
    return events


def split(state: LearnerState, statement_ids: set[str], catalog: Catalog) -> tuple[LearnerState, LearnerState]:
    """``state`` without the evidence and voidings of ``statement_ids``, and
    a state of just those (for the learner of ``state``: the caller names it
    again), as an unlink gives an identifier's statements back to it."""
    moved = [e for e in state.evidence if e.statement_id in statement_ids]
    kept = tuple(e for e in state.evidence if e.statement_id not in statement_ids)
    voided = tuple(v for v in state.voided if v not in statement_ids)
    rest = _refold(state, kept, voided, {e.competency for e in moved}, catalog)
    part = LearnerState(learner=state.learner, evidence=(), voided=(), competencies={}, certifications={})
    part = evolve_many(
        part,
        [*state_events(LearnerState(learner=state.learner, evidence=tuple(moved)), state.learner),
         *(StatementVoided(statement_id="", target_id=v) for v in state.voided if v in statement_ids)],
        catalog,
    )
    return rest, part


def _refold(
    state: LearnerState,
    evidence: tuple[Evidence, ...],
    voided: tuple[str, ...],
    affected: set[str],
    catalog: Catalog,
) -> LearnerState:
    competencies = dict(state.competencies)
    if len(affected) == 1:  # most live batches: a comprehension, not a loop that groups
        (only,) = affected
        groups = {only: [e for e in evidence if e.competency == only]}
    else:
        groups = {competency: [] for competency in affected}
        for e in evidence:
            group = groups.get(e.competency)
            if group is not None:
                group.append(e)
    added = False  # a competency the state did not have (the others keep their place in key order)
    for competency in sorted(affected):
        own = groups[competency]
        if own:
            added = added or competency not in competencies
            competencies[competency] = fold_ordered(competency, own)
        else:
            competencies.pop(competency, None)
    # (A state's evidence is sorted and holds each (statement, level,
    # activity) of a competency once, so each group is ready to fold.)
    return LearnerState(
        learner=state.learner,
        evidence=evidence,
        voided=voided,
        competencies=dict(sorted(competencies.items())) if added else competencies,
        certifications=(
            certifications(competencies, catalog)
            if _attainments_changed(state.competencies, competencies, affected, catalog)
            else state.certifications
        ),
        rule_version=RULE_VERSION,
    )


def _attainments_changed(
    before: dict[str, CompetencyState], after: dict[str, CompetencyState], affected: set[str], catalog: Catalog
) -> bool:
    """Whether :func:`certifications` could differ between ``before`` and ``after``.

    A certification reads, of the required competencies only, whether the
    learner has one at all and its attainments; when a refold of ``affected``
    left both as they were for every required one, the certifications are the
    ones the state already has.  (Most new evidence changes a competency's
    count or scores and none of its attainments.)"""
    for competency in catalog.required_competencies.intersection(affected):
        was = before.get(competency)
        now = after.get(competency)
        if was is None or now is None:
            if was is not now:
                return True
        elif was.attainments != now.attainments:
            return True
    return False
