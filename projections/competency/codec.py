"""The stored form of a learner's state: msgpack with a string table.

A state repeats the same strings many times: every statement's evidence is
expanded per competency and level (a statement aligned to a course module
of two frameworks is two or more evidence entries with the same id,
timestamp, verb and activity), and attainments and certifications name
those statements and competencies again.  Stored as JSON with field names,
a learner with ten statements was about 16 KB, which PostgreSQL compressed
on every write; this form lists each distinct string once per state and
refers to it by index, which makes the same state about a fifth of that.

Layout (one msgpack array; ``s`` is an index into ``strings``, ``s?`` an
index or nil)::

    [FORMAT, learner, rule_version, strings, voided: [s...],
     evidence: [[statement_id s, timestamp s, verb s, registration s?, completed, score,
                 statement_mastery_score, platform s?, stored s,
                 [[competency s, level s?, level_rank, activity s, source s, passed, move_on s,
                   mastery_score], ...]],
                ...],  (one entry per statement, in the state's evidence order)
     certifications: [[program s, program_version s, earned, earned_at s?,
                       [statement_id s...], [met s...], [missing s...], rule_version, known_at s?], ...]]

A competency's state is not stored (format 3): it is a function of its own
evidence alone (:func:`policy.fold_ordered`: status, level, scores, count,
first and last evidence, attainments), so decoding folds it again from the
evidence, which gives the state that was stored field for field, and the
encode writes (and PostgreSQL stores) only what no rule derives.  Format 2
also stored them (``competencies`` between the evidence and the
certifications: [competency, status, level, best, latest, count, first,
last, first mastered, attainments, rule_version]); a state stored in it
still decodes (its competencies are checked for type and folded again
likewise) and is digested as the same state in format 3
(:func:`digest_bytes`), so stored states carry across the upgrade without
a replay.  Certifications are stored: they need the frameworks' programmes.

Certifications are written in key order, so a state built from the same
evidence always has the same layout bytes (the audit digest hashes them:
:func:`digest_bytes`).  Decoding checks the layout's types (indices are
never negative) before it builds anything.  Pure: no I/O.

Stored, the layout is compressed: one zstd frame (level 1, content size in
its header), which makes a state of nine statements about 1.2 KB instead of
3.2 KB (frames of any level read alike).  Since branch lag6 the frame is
made with a dictionary trained on states (``schemas/zstd/states/``, one file
per zstd dictionary id, never changed or removed: each frame's header names
its dictionary; ``bench/state_dictionary.py`` trains it again byte for
byte); frames stored before, without one, read as they are.  Every batch that concerns a learner writes its
state again, so the bytes written, logged and vacuumed per event are those
of the stored form; kept under PostgreSQL's TOAST threshold (about 2 KB) and
in the row's page with room to spare (fillfactor, migration 0117), the
update is a HOT update.  The two forms are told apart by their first byte: a
zstd frame starts with its magic number ``28 b5 2f fd``, the uncompressed
layout (format 2 states stored before compression, which read as before)
with msgpack's fixed array of eight, ``0x98``; inside a frame, format 3's
layout is an array of seven (``0x97``) and format 2's of eight.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Annotated, Any, Optional

import msgspec
import zstandard

from lrs.contracts import SCHEMAS
from projections.competency.model import RULE_VERSION, Evidence, LearnerState, ProgramCertification, new_evidence
from projections.competency.policy import fold_ordered

__all__ = [
    "FORMAT", "encode_state", "decode_state", "digest_bytes", "open_state", "StateFormatError", "StateRulesError",
]

FORMAT = 3  # 2: evidence keeps the masteryScores, the platform and the stored time; 3: no competencies

_ENCODER = msgspec.msgpack.Encoder()
# Level 1: level 3 saved 1-2 % more bytes for a fifth more CPU (bench/README.md,
# "Projection: the state stored compressed"); level -1 (the literals left
# uncompressed) takes about 4 µs off a state's frame for 14 % more bytes and
# about 116 more bytes of WAL a state update, not worth the disk per statement
# (docs/scaling.md, "Live apply's state encode and evidence, branch lag5").
# Frames of any level read alike.
LEVEL = 1
# New frames use it; a frame names its dictionary (or none) in its header.
STATE_DICTIONARY = 1001
STATE_DICTIONARIES = SCHEMAS / "zstd" / "states"
MAGIC = b"\x28\xb5\x2f\xfd"
_LAYOUT = b"\x98"  # msgpack's fixed array of 8: format 2's layout (stored uncompressed before compression)
_codecs = threading.local()  # zstd's contexts are reused, one pair per thread


@lru_cache(maxsize=None)
def _dictionary(dictionary_id: int) -> zstandard.ZstdCompressionDict:
    path = STATE_DICTIONARIES / f"{dictionary_id}.dict"
    if not path.is_file():
        raise StateFormatError(f"a stored learner state compressed with zstd dictionary {dictionary_id}, which this"
                               f" version of lrs does not ship (schemas/zstd/states/{dictionary_id}.dict)")
    loaded = zstandard.ZstdCompressionDict(path.read_bytes(), dict_type=zstandard.DICT_TYPE_FULLDICT)
    if loaded.dict_id() != dictionary_id:
        raise StateFormatError(f"schemas/zstd/states/{dictionary_id}.dict holds dictionary {loaded.dict_id()}")
    return loaded


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_codecs, "c", None)
    if c is None:
        c = _codecs.c = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=_dictionary(STATE_DICTIONARY),
            write_checksum=False, write_content_size=True, write_dict_id=True,
        )
    return c


def _decompressor(frame: bytes) -> zstandard.ZstdDecompressor:
    """The decompressor of ``frame``'s dictionary: none when its header's
    Dictionary_ID_flag (the descriptor byte's two low bits) is 0."""
    found = getattr(_codecs, "d", None)
    if found is None:
        found = _codecs.d = {}
    dictionary_id = zstandard.get_frame_parameters(frame).dict_id if frame[4] & 3 else 0
    d = found.get(dictionary_id)
    if d is None:
        d = found[dictionary_id] = zstandard.ZstdDecompressor(
            dict_data=_dictionary(dictionary_id) if dictionary_id else None)
    return d

# The layout, typed, so that decoding checks it (in C) before anything is built.
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
_Layout = tuple[int, str, int, list[str], list[_Index], list[_Statement], list[_Program]]
_DECODER = msgspec.msgpack.Decoder(_Layout)
# Format 2 (stored before this one) also held each competency's fields:
# they are checked and dropped, since the evidence gives them again.
_Layout2 = tuple[int, str, int, list[str], list[_Index], list[_Statement], list[_Competency], list[_Program]]
_DECODER_2 = msgspec.msgpack.Decoder(_Layout2)


class StateFormatError(ValueError):
    """The bytes are not a stored state of this format."""


class StateRulesError(StateFormatError):
    """The state was stored under other rules (its ``rule_version``): its
    evidence and certifications are those rules' answers, so folding its
    competencies with these rules would answer with two rule sets at once.
    It is refused, never refolded; a replay builds it again under these
    rules (docs/competency.md, "A state stored under other rules")."""

    def __init__(self, stored: int) -> None:
        super().__init__(f"the learner's state was built under rule version {stored}; these rules are version "
                         f"{RULE_VERSION}")
        self.stored = stored


def encode_state(state: LearnerState) -> bytes:
    return _compressor().compress(_layout(state))


def compress_layout(layout: bytes) -> bytes:
    """A layout's stored frame, as :func:`encode_state` makes it."""
    return _compressor().compress(layout)


def _layout(state: LearnerState) -> bytes:
    # The string table: each string's index is the table's length when it
    # is first met (``ix(value, len(t))``: dict.setdefault, one C call, where
    # a dict subclass's __missing__ was a Python call per new string).
    t: dict[str, int] = {}
    ix = t.setdefault
    # Evidence is sorted by (timestamp, statement id, ...), so the entries of
    # one statement are adjacent: its own fields are written once.
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
    certifications: list[list[Any]] = []
    for _, p in sorted(state.certifications.items()):
        row = [ix(p.program, len(t)), ix(p.program_version, len(t)), p.earned]
        row.append(None if p.earned_at is None else ix(p.earned_at, len(t)))
        row.append([ix(i, len(t)) for i in p.statement_ids])
        row.append([ix(i, len(t)) for i in p.met])
        row.append([ix(i, len(t)) for i in p.missing])
        row.append(p.rule_version)
        row.append(None if p.known_at is None else ix(p.known_at, len(t)))
        certifications.append(row)
    voided = [ix(i, len(t)) for i in state.voided]
    return _ENCODER.encode([FORMAT, state.learner, state.rule_version, list(t), voided, evidence, certifications])


def open_state(raw: bytes) -> bytes:
    """The layout's msgpack bytes of a stored state, compressed or not: what
    the audit digest hashes, so that it does not depend on the compressor.
    Raises StateFormatError when ``raw`` is neither form."""
    if raw[:4] == MAGIC:
        try:
            # One frame and nothing after it; by position (data,
            # max_output_size, read_across_frames, allow_extra_data), as
            # keywords are parsed slowly (lrs/payload_codec.py).
            return _decompressor(raw).decompress(raw, 0, False, False)
        except (zstandard.ZstdError, IndexError) as exc:
            raise StateFormatError(f"not a stored learner state: a damaged zstd frame: {exc}") from exc
    if raw[:1] == _LAYOUT:
        return bytes(raw)
    raise StateFormatError(f"not a stored learner state: it starts with {raw[:4].hex() or 'nothing'}")


def digest_bytes(raw: bytes) -> bytes:
    """What the audit digest hashes for a stored state: its layout's bytes
    in this format (a state stored in format 2, or uncompressed, is hashed
    as the same state stored now would be, so a projection rebuilt after an
    upgrade digests alike), or, for a row that is neither form (altered by
    hand), its bytes as they are, so that the digest differs from any
    consistent projection's instead of failing."""
    try:
        layout = open_state(raw)
        return _layout(_decode(layout, fold=False)) if layout[:1] == _LAYOUT else layout
    except StateFormatError:
        return bytes(raw)


def decode_state(raw: bytes) -> LearnerState:
    """Raises StateFormatError when ``raw`` is not a stored state, and
    StateRulesError when it was stored under another rule version."""
    return _decode(open_state(raw), fold=True)


def _decode(layout: bytes, *, fold: bool) -> LearnerState:
    """The state in ``layout``; without ``fold`` its competencies are left
    empty (what the digest's layout needs, whatever the rule version)."""
    kind = layout[:1]
    try:
        if kind == _LAYOUT:  # format 2: its competencies are dropped and refolded like format 3's
            fmt, learner, rule_version, strings, voided, evidence, _, certifications = _DECODER_2.decode(layout)
            expected = 2
        else:
            fmt, learner, rule_version, strings, voided, evidence, certifications = _DECODER.decode(layout)
            expected = FORMAT
    except msgspec.DecodeError as exc:
        raise StateFormatError(f"not a stored learner state of format 2 or {FORMAT}: {exc}") from exc
    if fmt != expected:
        raise StateFormatError(f"stored state format {fmt!r} in a layout of format {expected}")
    if fold and rule_version != RULE_VERSION:
        raise StateRulesError(rule_version)
    try:
        return _build(learner, rule_version, strings, voided, evidence, certifications, fold)
    except IndexError as exc:
        raise StateFormatError("not a stored learner state: a string index is past the table") from exc
    except (KeyError, TypeError, ValueError) as exc:
        # Well-typed evidence that no fold of statements makes (a row altered
        # by hand): the competencies folded from it on decode cannot be built.
        raise StateFormatError(f"not a stored learner state: its evidence does not fold ({exc!r})") from exc


def _build(
    learner: str, rule_version: int, s: list[str], voided: list[int], evidence: list[list[Any]],
    certifications: list[list[Any]], fold: bool,
) -> LearnerState:
    def opt(index: int | None) -> str | None:
        return None if index is None else s[index]

    items = tuple(
        new_evidence(
            ts, sid, s[x[0]], x[2], s[x[3]], opt(x[1]), s[x[4]], verb, registration, x[5], completed, score,
            s[x[6]], x[7], stated, platform, stored,
        )
        for sid, ts, verb, registration, completed, score, stated, platform, stored, entries in (
            (s[g[0]], s[g[1]], s[g[2]], opt(g[3]), g[4], g[5], g[6], opt(g[7]), s[g[8]], g[9]) for g in evidence
        )
        for x in entries
    )
    # Each competency is a function of its own evidence (the state keeps it
    # sorted and without duplicates): folded again here, it is the state
    # that was stored, field for field, without storing what repeats it.
    own: dict[str, list[Evidence]] = {}
    for e in items if fold else ():
        group = own.get(e.competency)
        if group is None:
            own[e.competency] = [e]
        else:
            group.append(e)
    states = {competency: fold_ordered(competency, own[competency]) for competency in sorted(own)}
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
