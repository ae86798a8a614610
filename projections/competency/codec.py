"""The stored form of a learner's state: msgspec's own encode of its parts.

Format 3 (written now) is one msgpack array::

    [3, learner, rule_version, evidence: [Evidence...], voided: [statement_id...],
     competencies: [CompetencyState...], certifications: [ProgramCertification...]]

where each part is the array of its fields in the order :mod:`model`
declares them (the Structs are ``array_like``): the encode is one call of
msgspec's C encoder over the state's own objects, with no Python per field
or per string (format 2's string table cost about 45 µs a state of four
statements, format 3's encode about 10).  A field is only ever appended to
those Structs, with a default, or the format changes.  Competencies and
certifications are written in key order, so a state built from the same
evidence always has the same layout bytes (the audit digest hashes them:
:func:`digest_bytes`).  Decoding checks the layout's types (in C) as it
builds the Structs.  Pure: no I/O.

Format 2 (written before; still read) listed each distinct string once in a
table and referred to it by index::

    [2, learner, rule_version, strings, voided: [s...],
     evidence: [[statement_id s, timestamp s, verb s, registration s?, completed, score,
                 statement_mastery_score, platform s?, stored s,
                 [[competency s, level s?, level_rank, activity s, source s, passed, move_on s,
                   mastery_score], ...]],
                ...],  (one entry per statement, in the state's evidence order)
     competencies: [[competency s, status s, level s?, best_score,
                     latest_score, evidence_count, first_evidence_at s?,
                     last_evidence_at s?, first_mastered_at s?,
                     [[level s?, level_rank, achieved_at s, [statement_id s...], known_at s], ...],
                     rule_version], ...],
     certifications: [[program s, program_version s, earned, earned_at s?,
                       [statement_id s...], [met s...], [missing s...], rule_version, known_at s?], ...]]

Stored, the layout is compressed: one zstd frame (no dictionary, content
size in its header); format 3's layout repeats its strings, which the frame
takes out (a state of four statements: 6.6 KB of layout, about 1 KB
stored).  Every batch that concerns a learner writes its state again, so the
bytes written, logged and vacuumed per event are those of the stored form;
kept under PostgreSQL's TOAST threshold (about 2 KB) and in the row's page
with room to spare (fillfactor, migration 0117), the update is a HOT update.
The forms are told apart by their first byte: a zstd frame starts with its
magic number ``28 b5 2f fd``, and in it format 3's layout with msgpack's
fixed array of seven (``0x97``), format 2's with a fixed array of eight
(``0x98``); a format 2 layout stored uncompressed (before states were
compressed) reads as before.  The audit digest hashes format 3's layout
whatever form a row was stored in (:func:`digest_bytes`), so a projection
written before this format and its replay after it digest alike.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Optional

import msgspec
import zstandard

from projections.competency.model import (
    CompetencyState,
    Evidence,
    LearnerState,
    LevelAttainment,
    ProgramCertification,
)

__all__ = ["FORMAT", "encode_state", "decode_state", "digest_bytes", "open_state", "StateFormatError"]

FORMAT = 3  # 3: the parts as msgspec arrays; 2: a string table (still read)
_FORMAT_2 = 2

_ENCODER = msgspec.msgpack.Encoder()
# Level 1: level 3 saved 1-2 % more bytes for a fifth more CPU, and a
# negative level 12 % fewer µs for 14 % more bytes (bench/README.md,
# "Projection: the state stored compressed").
LEVEL = 1
MAGIC = b"\x28\xb5\x2f\xfd"
_LAYOUT = b"\x97"  # msgpack's fixed array of 7: format 3's layout
_LAYOUT_2 = b"\x98"  # msgpack's fixed array of 8: format 2's layout
_codecs = threading.local()  # zstd's contexts are reused, one pair per thread


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_codecs, "c", None)
    if c is None:
        c = _codecs.c = zstandard.ZstdCompressor(level=LEVEL, write_checksum=False, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_codecs, "d", None)
    if d is None:
        d = _codecs.d = zstandard.ZstdDecompressor()
    return d


# The layouts, typed, so that decoding checks them (in C) before anything is built.
_DECODER = msgspec.msgpack.Decoder(
    tuple[int, str, int, tuple[Evidence, ...], tuple[str, ...], list[CompetencyState], list[ProgramCertification]]
)
_Index = Annotated[int, msgspec.Meta(ge=0)]
_Entry = tuple[_Index, Optional[_Index], int, _Index, _Index, Optional[bool], _Index, Optional[float]]
_Statement = tuple[
    _Index, _Index, _Index, Optional[_Index], bool, Optional[float], Optional[float], Optional[_Index], _Index,
    list[_Entry],
]
_Attainment = tuple[Optional[_Index], int, _Index, list[_Index], _Index]
_Competency = tuple[
    _Index, _Index, Optional[_Index], Optional[float], Optional[float], int,
    Optional[_Index], Optional[_Index], Optional[_Index], list[_Attainment], int,
]
_Program = tuple[_Index, _Index, bool, Optional[_Index], list[_Index], list[_Index], list[_Index], int, Optional[_Index]]
_DECODER_2 = msgspec.msgpack.Decoder(
    tuple[int, str, int, list[str], list[_Index], list[_Statement], list[_Competency], list[_Program]]
)


class StateFormatError(ValueError):
    """The bytes are not a stored state of this format."""


def _layout(state: LearnerState) -> bytes:
    competencies = state.competencies
    certifications = state.certifications
    return _ENCODER.encode((
        FORMAT, state.learner, state.rule_version, state.evidence, state.voided,
        [competencies[k] for k in sorted(competencies)],
        [certifications[k] for k in sorted(certifications)],
    ))


def encode_state(state: LearnerState) -> bytes:
    return _compressor().compress(_layout(state))


def open_state(raw: bytes) -> bytes:
    """The layout's msgpack bytes of a stored state, compressed or not: what
    the audit digest hashes, so that it does not depend on the compressor.
    Raises StateFormatError when ``raw`` is neither form."""
    if raw[:4] == MAGIC:
        try:
            # One frame and nothing after it; by position (data,
            # max_output_size, read_across_frames, allow_extra_data), as
            # keywords are parsed slowly (lrs/payload_codec.py).
            return _decompressor().decompress(raw, 0, False, False)
        except zstandard.ZstdError as exc:
            raise StateFormatError(f"not a stored learner state: a damaged zstd frame: {exc}") from exc
    if raw[:1] == _LAYOUT_2:  # format 2, stored before states were compressed
        return bytes(raw)
    raise StateFormatError(f"not a stored learner state: it starts with {raw[:4].hex() or 'nothing'}")


def digest_bytes(raw: bytes) -> bytes:
    """What the audit digest hashes for a stored state: the format 3 layout
    of the state it holds (the same whether the row was stored compressed or
    not, in format 2 or 3), or, for a row that is neither form (altered by
    hand), its bytes as they are, so that the digest differs from any
    consistent projection's instead of failing."""
    try:
        layout = open_state(raw)
        if layout[:1] == _LAYOUT:
            return layout
        return _layout(_decode_layout(layout))
    except StateFormatError:
        return bytes(raw)


def decode_state(raw: bytes) -> LearnerState:
    """Raises StateFormatError when ``raw`` is not a stored state."""
    return _decode_layout(open_state(raw))


def _decode_layout(layout: bytes) -> LearnerState:
    if layout[:1] != _LAYOUT:
        return _decode_format_2(layout)
    try:
        fmt, learner, rule_version, evidence, voided, competencies, certifications = _DECODER.decode(layout)
    except msgspec.DecodeError as exc:
        raise StateFormatError(f"not a stored learner state of format {FORMAT}: {exc}") from exc
    if fmt != FORMAT:
        raise StateFormatError(f"stored state format {fmt!r}, expected {FORMAT}")
    return LearnerState(
        learner=learner, evidence=evidence, voided=voided,
        competencies={c.competency: c for c in competencies},
        certifications={f"{p.program}|{p.program_version}": p for p in certifications},
        rule_version=rule_version,
    )


def _decode_format_2(layout: bytes) -> LearnerState:
    try:
        fmt, learner, rule_version, strings, voided, evidence, competencies, certifications = _DECODER_2.decode(layout)
    except msgspec.DecodeError as exc:
        raise StateFormatError(f"not a stored learner state of format {FORMAT} or {_FORMAT_2}: {exc}") from exc
    if fmt != _FORMAT_2:
        raise StateFormatError(f"stored state format {fmt!r}, expected {_FORMAT_2} in this layout")
    try:
        return _build(learner, rule_version, strings, voided, evidence, competencies, certifications)
    except IndexError as exc:
        raise StateFormatError("not a stored learner state: a string index is past the table") from exc


def _build(
    learner: str, rule_version: int, s: list[str], voided: list[int], evidence: list[list[Any]],
    competencies: list[list[Any]], certifications: list[list[Any]],
) -> LearnerState:
    def opt(index: int | None) -> str | None:
        return None if index is None else s[index]

    items = tuple(
        Evidence(
            statement_id=sid, timestamp=ts, competency=s[x[0]], level=opt(x[1]), level_rank=x[2],
            activity=s[x[3]], source=s[x[4]], verb=verb, registration=registration, passed=x[5],
            completed=completed, score=score, move_on=s[x[6]], mastery_score=x[7],
            statement_mastery_score=stated, platform=platform, stored=stored,
        )
        for sid, ts, verb, registration, completed, score, stated, platform, stored, entries in (
            (s[g[0]], s[g[1]], s[g[2]], opt(g[3]), g[4], g[5], g[6], opt(g[7]), s[g[8]], g[9]) for g in evidence
        )
        for x in entries
    )
    states = {}
    for c in competencies:
        iri = s[c[0]]
        states[iri] = CompetencyState(
            competency=iri, status=s[c[1]], level=opt(c[2]), best_score=c[3], latest_score=c[4],
            evidence_count=c[5], first_evidence_at=opt(c[6]), last_evidence_at=opt(c[7]),
            first_mastered_at=opt(c[8]),
            attainments=tuple(
                LevelAttainment(level=opt(a[0]), level_rank=a[1], achieved_at=s[a[2]],
                                statement_ids=tuple(s[i] for i in a[3]), known_at=s[a[4]])
                for a in c[9]
            ),
            rule_version=c[10],
        )
    programs = {}
    for p in certifications:
        program, version = s[p[0]], s[p[1]]
        programs[f"{program}|{version}"] = ProgramCertification(
            program=program, program_version=version, earned=p[2], earned_at=opt(p[3]),
            statement_ids=tuple(s[i] for i in p[4]), met=tuple(s[i] for i in p[5]),
            missing=tuple(s[i] for i in p[6]), rule_version=p[7], known_at=opt(p[8]),
        )
    return LearnerState(
        learner=learner, evidence=items, voided=tuple(s[i] for i in voided),
        competencies=states, certifications=programs, rule_version=rule_version,
    )
