"""The competency rules' second half, for one competency and one programme:
which levels a learner's evidence reaches, and which programmes it earns.

Pure: no clock, no randomness, no I/O.  Evidence is folded in (timestamp,
statement id) order.

Mastery.  Per aligned activity, level and registration, the alignment's cmi5
moveOn criterion (Passed, Completed, CompletedAndPassed, CompletedOrPassed)
decides when the level is reached; a reached level stays reached (a later
failure does not undo it, voiding the statements that reached it does).
A programme is earned when each of its required competencies has reached
the level it needs.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Iterable

from projections.competency.catalog import Catalog
from projections.competency.model import (
    RULE_VERSION,
    CompetencyState,
    Evidence,
    LevelAttainment,
    ProgramCertification,
)

_LEVEL_RANK = attrgetter("level_rank")
_EARLIEST_ATTAINMENT = attrgetter("achieved_at", "level_rank", "statement_ids")  # which attainment meets a requirement


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


