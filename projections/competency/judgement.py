"""The competency rules' first half: what a statement means, as an event.

Pure: no clock, no randomness, no I/O.  A statement is a voiding, evidence,
or nothing to the projection (:func:`interpret_stored`; :func:`judge` and
:func:`evidence_of` are its two halves, for a replay that judges in one
process and builds evidence in another).

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
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator

import msgspec
from msgspec import Raw

from lrs.xapi.identity import ifi_key
from lrs.xapi.timestamps import timestamp_problem, utc_instant
from projections.competency.catalog import AlignmentTarget, Catalog
from projections.competency.model import Evidence, LearnerEvent, StatementEvidence, StatementVoided, new_evidence
from projections.competency.statement_view import StatementView, decode_json_value, decode_view

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
_FROM_ISO = datetime.fromisoformat
# Already UTC, to the microsecond at most, no leap second (which rolls over).
_UTC_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d(?:\.(\d{1,6}))?(?:Z|z|\+00:00)")


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

    Read by lrs.xapi.timestamps.utc_instant, the decision ingest's validator
    makes too: a timestamp the LRS stores is read here, and what the LRS
    refuses (year 0000, a UTC beyond 9999, ``24:00``, ``-00:00``, ordinal or
    week dates) raises ValueError, so an old log's statement that holds one
    is still parked.  A timestamp without an offset is read as UTC."""
    # The two shapes most statements carry, told by their separators and
    # checked by the parse alone: ``stored`` as the LRS writes it (already
    # normal) and a timestamp to the second in UTC.  Each costs a fifth of
    # the general path (its pattern match and formatting), twice a statement.
    if (value[-1:] == "Z" and value[10:11] == "T" and value[4:5] == value[7:8] == "-"
            and value[13:14] == value[16:17] == ":"):
        # What the parse refuses (a leap second among it) takes the general path.
        try:
            if len(value) == 27 and value[19] == ".":
                _FROM_ISO(value)  # validates
                return value
            if len(value) == 20:
                _FROM_ISO(value)
                return value[:19] + ".000000Z"
        except ValueError:
            pass
    utc = _UTC_SHAPE.fullmatch(value)
    if utc is not None:  # already UTC (as the LRS stores timestamps): pad the fraction
        problem = timestamp_problem(value)  # a text of the grammar: the rest of utc_instant
        if problem is not None:
            raise ValueError(f"{problem}, got {value!r}")
        return f"{value[:19]}.{(utc.group(1) or '').ljust(6, '0')}Z"
    d = utc_instant(value)  # validates
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}Z"
    )


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


# What :func:`evidence_of` reads of a statement besides what :func:`judge`
# found: (context platform, context registration, the masteryScore
# extension's JSON, timestamp, stored, authority's JSON), each as stored.
EvidenceFields = tuple["str | None", "str | None", "Raw | bytes | None", "str | None", "str | None", "Raw | bytes | None"]


def evidence_fields(statement: StatementView) -> EvidenceFields:
    """The fields of ``statement`` :func:`evidence_from` reads, as they are."""
    context = statement.context
    if context is None:
        return None, None, None, statement.timestamp, statement.stored, statement.authority
    raw_mastery = context.extensions.get(MASTERY_SCORE_EXTENSION) if context.extensions else None
    return (context.platform, context.registration, raw_mastery, statement.timestamp, statement.stored,
            statement.authority)


def evidence_of(statement: StatementView, judged: Judged, catalog: Catalog) -> StatementEvidence | None:
    """The second half of :func:`interpret_stored`: the evidence of a
    statement :func:`judge` found may be evidence, or None."""
    return evidence_from(judged, catalog, *evidence_fields(statement))


def evidence_from(
    judged: Judged, catalog: Catalog, platform: str | None, registration: str | None, raw_mastery: Raw | bytes | None,
    when_stated: str | None, when_stored: str | None, authority: Raw | bytes | None,
) -> StatementEvidence | None:
    """:func:`evidence_of` given the statement's :func:`evidence_fields`
    (which a replay's judging process sends the process that builds the
    evidence instead of the statement: projections/competency/share_judging.py)."""
    statement_id, verb, targets, learner, judged_success, completed, score = judged
    context_mastery = None
    if registration is not None:
        registration = registration.lower()
    if raw_mastery is not None:
        context_mastery = _fraction(decode_json_value(raw_mastery))
    when = when_stated or when_stored
    if when is None:
        raise ValueError(f"statement {statement_id} has neither timestamp nor stored")
    timestamp = normalise_timestamp(when)
    stored = normalise_timestamp(when_stored) if when_stored else timestamp
    if platform is None and authority:
        platform = _authority_platform(bytes(authority))

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
    return aligned_to(obj.id, declared is None or declared == OBJECTIVE_TYPE, catalog)


def aligned_to(iri: str, objective_type: bool, catalog: Catalog) -> list[tuple[str, AlignmentTarget]]:
    """The alignment targets of activity ``iri`` (its objective's only when ``objective_type``)."""
    found = []
    objective = catalog.objectives.get(iri)
    if objective is not None and objective_type:
        found.append((iri, objective))
    for target in catalog.alignments.get(iri, ()):
        found.append((iri, target))
    return found


def _fraction(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None
