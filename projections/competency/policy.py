"""The competency rules: from statements to evidence, from evidence to state.

Pure: no clock, no randomness, no I/O.  A state depends only on the set of
evidence and voided ids, never on the order events arrive in:

- evidence is folded in (timestamp, statement id) order;
- a statement id is applied once (a second delivery changes nothing);
- a voided statement's evidence is removed and the affected competencies are
  refolded; a voided id stays remembered, so the voided statement arriving
  later (or again) is ignored.

Alignment.  A statement is evidence for a competency only when it is about
the aligned activity itself: its object is aligned, and it is not an
``answered`` statement nor about an interaction or question.  Statements that
name an aligned activity only in ``context.contextActivities`` (a quiz
answer whose parent is an aligned module, a page in an aligned course) are
about its children and never complete or pass it.  An object is aligned when

- cmi5 style, the activity *is* an objective: its id is a competence IRI or
  a competence-level IRI (``<competence IRI>/levels/<code>``) and its
  ``definition.type``, if given, is ``http://adlnet.gov/expapi/activities/objective``;
- or the activity is listed in a loaded alignment table (a course, a block,
  or a cmi5 AU: an AU's own statements have the AU as their object).

Evidence aligned to a competence also counts for the competences declared
equivalent to it (levels mapped through the frameworks' level equivalents).

Judgement (cmi5 section 9.3 and 9.5).  ``passed``, ``waived`` and
``satisfied`` judge success, ``failed`` judges failure, ``result.success``
overrides the verb; ``completed``, ``waived`` and ``satisfied`` (and
``result.completion: true``) mean completion.  When a scaled score and a
masteryScore both apply (the alignment table's, else the statement's cmi5
``masteryscore`` context extension), the score decides a success:
``scaled >= masteryScore``; an unjudged scored statement is judged by it too.
Evidence keeps the masteryScore that judged it and the statement's own one,
so a platform whose masteryScore differs from the alignment table's is
reported (:attr:`Evidence.mastery_differs`), not silently overruled.
A statement is evidence only when it carries a judgement, a completion or a
scaled score (``launched``, ``initialized`` and ``terminated`` are not).

Mastery.  Per aligned activity, level and registration, the alignment's cmi5
moveOn criterion (Passed, Completed, CompletedAndPassed, CompletedOrPassed)
decides when the level is reached; a reached level stays reached (a later
failure does not undo it, voiding the statements that reached it does).
"""

from __future__ import annotations

import re
from bisect import insort
from contextlib import contextmanager
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Iterable, Iterator

import msgspec

from lrs.xapi.identity import ifi_key
from projections.competency.catalog import AlignmentTarget, Catalog
from projections.competency.model import (
    RULE_VERSION,
    CompetencyState,
    Evidence,
    LearnerEvent,
    LearnerState,
    LevelAttainment,
    ProgramCertification,
    StatementEvidence,
    StatementVoided,
    new_evidence,
)
from projections.competency.statement_view import StatementView, decode_json_value, decode_view

__all__ = [
    "VERB_PASSED",
    "VERB_FAILED",
    "VERB_COMPLETED",
    "VERB_WAIVED",
    "VERB_SATISFIED",
    "VERB_VOIDED",
    "VERB_ANSWERED",
    "CHILD_ACTIVITY_TYPES",
    "OBJECTIVE_TYPE",
    "MASTERY_SCORE_EXTENSION",
    "normalise_timestamp",
    "interpret",
    "interpret_stored",
    "memo_limit",
    "judge",
    "evidence_of",
    "Judged",
    "fold_competency",
    "fold_ordered",
    "certifications",
    "evolve",
    "evolve_many",
    "fold",
    "state_events",
    "split",
]

VERB_PASSED = "http://adlnet.gov/expapi/verbs/passed"
VERB_FAILED = "http://adlnet.gov/expapi/verbs/failed"
VERB_COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
VERB_WAIVED = "https://w3id.org/xapi/adl/verbs/waived"
VERB_SATISFIED = "https://w3id.org/xapi/adl/verbs/satisfied"
VERB_VOIDED = "http://adlnet.gov/expapi/verbs/voided"
VERB_ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
OBJECTIVE_TYPE = "http://adlnet.gov/expapi/activities/objective"
MASTERY_SCORE_EXTENSION = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
# Activity types of the parts of an assessment: a statement about one is
# about a child of whatever activity is aligned, never the activity itself.
CHILD_ACTIVITY_TYPES = frozenset({
    "http://adlnet.gov/expapi/activities/cmi.interaction",
    "http://adlnet.gov/expapi/activities/interaction",
    "http://adlnet.gov/expapi/activities/question",
})

_JUDGED_SUCCESS = {VERB_PASSED: True, VERB_WAIVED: True, VERB_SATISFIED: True, VERB_FAILED: False}
_MEANS_COMPLETION = frozenset({VERB_COMPLETED, VERB_WAIVED, VERB_SATISFIED})
_JSON_ENCODER = msgspec.json.Encoder()
_LEVEL_RANK = attrgetter("level_rank")
_STATEMENT_ID = attrgetter("statement_id")
_EARLIEST_ATTAINMENT = attrgetter("achieved_at", "level_rank", "statement_ids")  # which attainment meets a requirement
_FROM_ISO = datetime.fromisoformat
_UTC_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,6}))?(?:Z|z|\+00:00)")


# Memos of pure functions of what statements repeat: a client's statements
# share their authority, a session's its actor.  Each is emptied when it
# reaches MEMO_LIMIT entries.
MEMO_LIMIT = 8192
_LEARNERS: dict[bytes, str | None] = {}
_PLATFORMS: dict[bytes, str | None] = {}


@contextmanager
def memo_limit(limit: int) -> Iterator[None]:
    """Memos of up to ``limit`` entries while the block runs (a replay's
    learners are more than a live batch's: with fewer, most evidence would
    decode its actor again), emptied and set back after it."""
    global MEMO_LIMIT
    before = MEMO_LIMIT
    MEMO_LIMIT = max(limit, before)
    try:
        yield
    finally:
        MEMO_LIMIT = before
        _LEARNERS.clear()
        _PLATFORMS.clear()


def _learner(actor: bytes) -> str | None:
    """The learner key of a statement's actor (its JSON bytes)."""
    try:
        return _LEARNERS[actor]
    except KeyError:
        pass
    learner = ifi_key(decode_json_value(actor))
    if len(_LEARNERS) >= MEMO_LIMIT:
        _LEARNERS.clear()
    _LEARNERS[actor] = learner
    return learner


def _authority_platform(authority: bytes) -> str | None:
    """The IFI key of a statement's authority (its JSON bytes), when it is an object."""
    try:
        return _PLATFORMS[authority]
    except KeyError:
        pass
    value = decode_json_value(authority)
    platform = ifi_key(value) if isinstance(value, dict) else None
    if len(_PLATFORMS) >= MEMO_LIMIT:
        _PLATFORMS.clear()
    _PLATFORMS[authority] = platform
    return platform


def normalise_timestamp(value: str) -> str:
    """An xAPI timestamp as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (sortable text).

    A timestamp without an offset is read as UTC.  Raises ValueError."""
    # The two shapes most statements carry, told by their separators and
    # checked by the parse alone: ``stored`` as the LRS writes it (already
    # normal) and a timestamp to the second in UTC.  Each costs a fifth of
    # the general path (its pattern match and formatting), twice a statement.
    if (value[-1:] == "Z" and value[10:11] == "T" and value[4:5] == value[7:8] == "-"
            and value[13:14] == value[16:17] == ":"):
        if len(value) == 27 and value[19] == ".":
            _FROM_ISO(value)  # validates
            return value
        if len(value) == 20:
            _FROM_ISO(value)
            return value[:19] + ".000000Z"
    parsed = datetime.fromisoformat(value.replace("z", "Z"))  # validates
    utc = _UTC_SHAPE.fullmatch(value)
    if utc is not None:  # already UTC (as the LRS stores timestamps): pad the fraction
        return f"{value[:19]}.{(utc.group(1) or '').ljust(6, '0')}Z"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    d = parsed.astimezone(timezone.utc)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}Z"
    )


# -- statement -> event ----------------------------------------------------------


def interpret(statement: dict[str, Any], catalog: Catalog) -> LearnerEvent | None:
    """The event a statement (as a JSON object) means for the projection, or None."""
    return interpret_stored(_JSON_ENCODER.encode(statement), catalog)


def interpret_stored(payload: bytes, catalog: Catalog) -> LearnerEvent | None:
    """The event a stored statement (its JSON bytes) means for the projection, or None."""
    statement = decode_view(payload)
    judged = judge(statement, catalog)
    if judged is None or type(judged) is StatementVoided:
        return judged
    return evidence_of(statement, judged, catalog)  # type: ignore[arg-type]


# What :func:`judge` found in a statement that may be evidence: (statement id,
# verb, aligned targets, learner key, judged success, completed, scaled score).
Judged = tuple[str, str, list[tuple[str, AlignmentTarget]], str, "bool | None", bool, "float | None"]


def judge(statement: StatementView, catalog: Catalog) -> StatementVoided | Judged | None:
    """The first half of :func:`interpret_stored`, on a decoded statement: a
    voiding, None (not evidence), or what a statement that may be evidence
    says, with its learner, for :func:`evidence_of` to finish.  (A replay
    read by several processes judges each statement to learn whose it is,
    and builds its evidence only in the process that keeps that learner:
    projections/competency/read_shares.py.)"""
    statement_id = statement.id.lower()
    verb = statement.verb.id if statement.verb is not None else ""
    obj = statement.object
    if verb == VERB_VOIDED and obj is not None and obj.objectType == "StatementRef":
        return StatementVoided(statement_id=statement_id, target_id=(obj.id or "").lower())
    targets = _aligned_targets(statement, catalog)
    if not targets or not statement_id or not statement.actor:
        return None
    result = statement.result
    score = result.score.scaled if result is not None and result.score is not None else None
    explicit = result.success if result is not None else None
    judged: bool | None = explicit if explicit is not None else _JUDGED_SUCCESS.get(verb)
    completed = (result is not None and result.completion is True) or verb in _MEANS_COMPLETION
    if judged is None and not completed and score is None:
        return None  # launched, initialized, terminated...: nothing judged, completed or scored
    learner = _learner(bytes(statement.actor))
    if learner is None:
        return None
    return (statement_id, verb, targets, learner, judged, completed, score)


def evidence_of(statement: StatementView, judged: Judged, catalog: Catalog) -> StatementEvidence | None:
    """The second half of :func:`interpret_stored`: the evidence of a
    statement :func:`judge` found may be evidence, or None."""
    statement_id, verb, targets, learner, judged_success, completed, score = judged
    context = statement.context
    context_mastery = None
    registration = None
    platform = None
    if context is not None:
        platform = context.platform
        registration = context.registration.lower() if context.registration is not None else None
        raw_mastery = (context.extensions or {}).get(MASTERY_SCORE_EXTENSION)
        if raw_mastery is not None:
            context_mastery = _fraction(decode_json_value(raw_mastery))
    when = statement.timestamp or statement.stored
    if when is None:
        raise ValueError(f"statement {statement_id} has neither timestamp nor stored")
    timestamp = normalise_timestamp(when)
    stored = normalise_timestamp(statement.stored) if statement.stored else timestamp
    if platform is None and statement.authority:
        platform = _authority_platform(bytes(statement.authority))

    evidence: dict[tuple[str, str | None, str], Evidence] = {}
    for activity, target in targets:
        mastery = target.mastery_score if target.mastery_score is not None else context_mastery
        passed = judged_success
        if score is not None and mastery is not None and judged_success is not False:
            passed = score >= mastery
        if passed is None and not completed and score is None:
            continue  # nothing judged, completed or scored: not evidence
        for competency, level, level_rank, source in catalog.expansions(target):
            key = (competency, level, activity)
            if key in evidence:
                continue
            evidence[key] = new_evidence(
                timestamp, statement_id, competency, level_rank, activity, level, source, verb, registration,
                passed, completed, score, target.move_on, mastery, context_mastery, platform, stored,
            )
    if not evidence:
        return None
    ordered = tuple(sorted(evidence.values()))  # Evidence compares in EVIDENCE_ORDER
    return StatementEvidence(statement_id=statement_id, learner=learner, evidence=ordered)


def _aligned_targets(statement: StatementView, catalog: Catalog) -> list[tuple[str, AlignmentTarget]]:
    """The alignments of the statement's object, when the statement is about
    that activity itself (see the module's docstring)."""
    obj = statement.object
    if obj is None or obj.objectType != "Activity" or obj.id is None:
        return []
    verb = statement.verb.id if statement.verb is not None else ""
    declared = obj.definition.type if obj.definition is not None else None
    if verb == VERB_ANSWERED or declared in CHILD_ACTIVITY_TYPES:
        return []
    iri = obj.id
    found = []
    objective = catalog.objectives.get(iri)
    if objective is not None and (declared is None or declared == OBJECTIVE_TYPE):
        found.append((iri, objective))
    for target in catalog.alignments.get(iri, ()):
        found.append((iri, target))
    return found


def _fraction(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


# -- evidence -> state -----------------------------------------------------------


def _move_on_met(move_on: str, passed_id: str | None, completed_id: str | None) -> tuple[str, ...] | None:
    """The statement ids that meet ``move_on``, or None when it is not met."""
    if move_on == "Passed":
        return (passed_id,) if passed_id else None
    if move_on == "Completed":
        return (completed_id,) if completed_id else None
    if move_on == "CompletedAndPassed":
        return tuple(sorted({passed_id, completed_id})) if passed_id and completed_id else None  # type: ignore[arg-type]
    # CompletedOrPassed: whichever came first (both when one statement did both)
    ids = {i for i in (passed_id, completed_id) if i}
    return tuple(sorted(ids)) if ids else None


def _move_on_known(move_on: str, passed_at: str | None, completed_at: str | None) -> str | None:
    """When (stored clock) a track's evidence first met ``move_on``."""
    if move_on == "Passed":
        return passed_at
    if move_on == "Completed":
        return completed_at
    if move_on == "CompletedAndPassed":
        return max(passed_at, completed_at) if passed_at and completed_at else None
    found = [t for t in (passed_at, completed_at) if t]
    return min(found) if found else None


def fold_competency(competency: str, evidence: Iterable[Evidence]) -> CompetencyState:
    """The state of one competency from its evidence (any order, any duplicates)."""
    unique = {(e.statement_id, e.level, e.activity): e for e in evidence if e.competency == competency}
    return fold_ordered(competency, sorted(unique.values()))


def fold_ordered(competency: str, ordered: list[Evidence]) -> CompetencyState:
    """:func:`fold_competency` of evidence of ``competency`` that is already
    in order and without duplicates (as a learner's state keeps it).

    It runs for every competency a batch touches (a replay: every
    competency of every learner; a decode: every competency of the state),
    three times in four over a single piece of evidence, which
    :func:`_fold_one` folds without building tracks; otherwise it keeps to
    plain locals and builds each attainment once."""
    if len(ordered) == 1:
        folded = _fold_one(competency, ordered[0])
        if folded is not None:
            return folded
    statements: set[str] = set()
    best: float | None = None
    latest: float | None = None
    # (level, activity, registration, move_on) -> [first passed id, first completed id,
    # earliest passed stored, earliest completed stored]
    tracks: dict[tuple[str | None, str, str | None, str], list[str | None]] = {}
    # level -> (level_rank, achieved_at, statement ids)
    attained: dict[str | None, tuple[int, str, tuple[str, ...]]] = {}
    for e in ordered:
        statement_id = e.statement_id
        statements.add(statement_id)
        score = e.score
        if score is not None:
            latest = score
            if best is None or score > best:
                best = score
        level = e.level
        move_on = e.move_on
        key = (level, e.activity, e.registration, move_on)
        track = tracks.get(key)
        if track is None:
            track = tracks[key] = [None, None, None, None]
        if e.passed:
            stored = e.stored
            if track[2] is None or stored < track[2]:
                track[2] = stored
            if track[0] is None:
                track[0] = statement_id
        if e.completed:
            stored = e.stored
            if track[3] is None or stored < track[3]:
                track[3] = stored
            if track[1] is None:
                track[1] = statement_id
        if level in attained:
            continue
        met_by = _move_on_met(move_on, track[0], track[1])
        if met_by is not None:
            attained[level] = (e.level_rank, e.timestamp, met_by)
    attainments: tuple[LevelAttainment, ...] = ()
    if attained:
        # Reached levels stay reached as evidence is added, so the first stored
        # time a track met its criterion is when the LRS knew the level.
        # (Only the reached levels' times are read.)
        level_known: dict[str | None, str] = {}
        for (level, _, _, move_on), track in tracks.items():
            if level not in attained:
                continue
            met_at = _move_on_known(move_on, track[2], track[3])
            if met_at is not None and (level not in level_known or met_at < level_known[level]):
                level_known[level] = met_at
        if len(attained) == 1:  # most often: one level reached, nothing to sort
            ((level, (rank, at, ids)),) = attained.items()
            attainments = (
                LevelAttainment(level=level, level_rank=rank, achieved_at=at, statement_ids=ids,
                                known_at=level_known[level]),
            )
        else:
            attainments = tuple(sorted(
                (
                    LevelAttainment(level=level, level_rank=rank, achieved_at=at, statement_ids=ids,
                                    known_at=level_known[level])
                    for level, (rank, at, ids) in attained.items()
                ),
                key=_LEVEL_RANK,
            ))
    top = attainments[-1] if attainments else None  # one attainment per level: the ranks differ
    return CompetencyState(
        competency=competency,
        status="mastered" if attainments else ("in_progress" if ordered else "not_started"),
        level=top.level if top else None,
        best_score=best,
        latest_score=latest,
        evidence_count=len(statements),
        first_evidence_at=ordered[0].timestamp if ordered else None,
        last_evidence_at=ordered[-1].timestamp if ordered else None,
        first_mastered_at=(
            attainments[0].achieved_at if len(attainments) == 1 else min([a.achieved_at for a in attainments])
        ) if attainments else None,
        attainments=attainments,
        rule_version=RULE_VERSION,
    )


def _fold_one(competency: str, e: Evidence) -> CompetencyState | None:
    """:func:`fold_ordered` of one piece of evidence, field for field (one
    statement, one track), or None where the general fold must answer (a
    level reached with no stored time to know it by: a row altered by hand,
    which the general fold refuses)."""
    statement_id = e.statement_id
    passed = e.passed
    completed = e.completed
    move_on = e.move_on
    met_by = _move_on_met(move_on, statement_id if passed else None, statement_id if completed else None)
    score = e.score
    timestamp = e.timestamp
    if met_by is None:
        return CompetencyState(
            competency=competency, status="in_progress", level=None, best_score=score, latest_score=score,
            evidence_count=1, first_evidence_at=timestamp, last_evidence_at=timestamp, first_mastered_at=None,
            attainments=(), rule_version=RULE_VERSION,
        )
    stored = e.stored
    known = _move_on_known(move_on, stored if passed else None, stored if completed else None)
    if known is None:
        return None
    level = e.level
    attainment = LevelAttainment(
        level=level, level_rank=e.level_rank, achieved_at=timestamp, statement_ids=met_by, known_at=known
    )
    return CompetencyState(
        competency=competency, status="mastered", level=level, best_score=score, latest_score=score,
        evidence_count=1, first_evidence_at=timestamp, last_evidence_at=timestamp, first_mastered_at=timestamp,
        attainments=(attainment,), rule_version=RULE_VERSION,
    )


def certifications(
    competencies: dict[str, CompetencyState], catalog: Catalog
) -> dict[str, ProgramCertification]:
    """Each programme the learner has any evidence towards, earned or not.

    A requirement is met by the earliest attainment at or above its level; the
    programme is earned when the last requirement is met, by exactly the
    statements of those attainments."""
    result: dict[str, ProgramCertification] = {}
    for (program, needs), required in zip(catalog.program_needs, catalog.program_required):
        if required.isdisjoint(competencies):
            continue
        met: list[str] = []
        missing: list[str] = []
        for competency, needed in needs:
            state = competencies.get(competency)
            # attainments are kept lowest level first: the last is the highest reached
            if state is not None and state.attainments and state.attainments[-1].level_rank >= needed:
                met.append(competency)
            else:
                missing.append(competency)
        key = f"{program.iri}|{program.version}"
        if missing:  # most learners, most of the time: what earned it is not asked
            result[key] = ProgramCertification(
                program=program.iri, program_version=program.version, earned=False, earned_at=None,
                statement_ids=(), met=tuple(sorted(met)), missing=tuple(sorted(missing)),
            )
            continue
        times: list[str] = []
        known: list[str] = []
        ids: set[str] = set()
        for competency, needed in needs:
            candidates = [a for a in competencies[competency].attainments if a.level_rank >= needed]
            if len(candidates) == 1:  # most often: one level reached, or one at or above the need
                first = candidates[0]
                known.append(first.known_at)
            else:
                first = min(candidates, key=_EARLIEST_ATTAINMENT)
                known.append(min([a.known_at for a in candidates]))
            times.append(first.achieved_at)
            ids.update(first.statement_ids)
        result[key] = ProgramCertification(
            program=program.iri, program_version=program.version, earned=True, earned_at=max(times),
            known_at=max(known), statement_ids=tuple(sorted(ids)), met=tuple(sorted(met)), missing=(),
        )
    return result


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
