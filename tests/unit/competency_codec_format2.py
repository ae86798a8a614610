"""Format 2 of a stored learner state, as main wrote it before format 3
(projections/competency/codec.py at 031620b): the writer of the states a
projection may still hold, kept to test that they read and digest alike."""

from __future__ import annotations

from typing import Any

import msgspec
import zstandard

from projections.competency.model import LearnerState


def encode_state_format_2(state: LearnerState, compressed: bool = True) -> bytes:
    t: dict[str, int] = {}
    ix = t.setdefault
    evidence: list[list[Any]] = []
    head: tuple[Any, ...] | None = None
    entries: list[list[Any]] = []
    for e in state.evidence:
        fields = (
            e.statement_id, e.timestamp, e.verb, e.registration, e.completed, e.score, e.statement_mastery_score,
            e.platform, e.stored,
        )
        if fields != head:
            head = fields
            entries = []
            statement_id, timestamp, verb, registration, completed, score, stated, platform, stored = fields
            evidence.append([
                ix(statement_id, len(t)), ix(timestamp, len(t)), ix(verb, len(t)),
                None if registration is None else ix(registration, len(t)),
                completed, score, stated, None if platform is None else ix(platform, len(t)),
                ix(stored, len(t)), entries,
            ])
        level = e.level
        entries.append([
            ix(e.competency, len(t)), None if level is None else ix(level, len(t)), e.level_rank,
            ix(e.activity, len(t)), ix(e.source, len(t)), e.passed, ix(e.move_on, len(t)), e.mastery_score,
        ])
    competencies: list[list[Any]] = []
    for _, c in sorted(state.competencies.items()):
        row: list[Any] = [ix(c.competency, len(t)), ix(c.status, len(t))]
        row.append(None if c.level is None else ix(c.level, len(t)))
        row.extend((c.best_score, c.latest_score, c.evidence_count))
        for at in (c.first_evidence_at, c.last_evidence_at, c.first_mastered_at):
            row.append(None if at is None else ix(at, len(t)))
        row.append([
            [None if a.level is None else ix(a.level, len(t)), a.level_rank, ix(a.achieved_at, len(t)),
             [ix(i, len(t)) for i in a.statement_ids], ix(a.known_at, len(t))]
            for a in c.attainments
        ])
        row.append(c.rule_version)
        competencies.append(row)
    certifications: list[list[Any]] = []
    for _, p in sorted(state.certifications.items()):
        certifications.append([
            ix(p.program, len(t)), ix(p.program_version, len(t)), p.earned,
            None if p.earned_at is None else ix(p.earned_at, len(t)),
            [ix(i, len(t)) for i in p.statement_ids], [ix(i, len(t)) for i in p.met],
            [ix(i, len(t)) for i in p.missing], p.rule_version,
            None if p.known_at is None else ix(p.known_at, len(t)),
        ])
    voided = [ix(i, len(t)) for i in state.voided]
    layout = msgspec.msgpack.encode(
        [2, state.learner, state.rule_version, list(t), voided, evidence, competencies, certifications]
    )
    return zstandard.ZstdCompressor(level=1, write_content_size=True).compress(layout) if compressed else layout
