"""How an event's payload is kept in ``events.payload``: its canonical JSON,
or that JSON compressed with zstd and a dictionary trained on xAPI
statements.

The hash chain, the anchors, the relay's messages, export and replay all use
the canonical JSON: compression is how the bytes lie on disk, nothing more.
:func:`open_payload` gives the canonical JSON back from either form, so every
reader of the column calls it on what it reads.

The two forms are told apart by their first bytes.  A compressed payload is
one zstd frame, which starts with zstd's magic number ``28 b5 2f fd``; its
header names the dictionary (zstd's own dictionary id) and the content size.
A canonical JSON payload starts with ``{`` (every event is a JSON object), so
no JSON payload, stored before or after this change, is mistaken for a frame.
Rows written before compression existed stay as they are and read as before.

The dictionaries live in ``schemas/zstd/`` (the package ``lrs_schemas``), one
file per id, ``events-<id>.dict``, and are never changed or removed: a row
names its dictionary for as long as it exists.  ``bench/payload_dictionary.py``
trains a dictionary again from the same generated corpus, byte for byte.
New rows are written with :data:`CURRENT_DICTIONARY`.

Statement and document events are compressed.  A payload is kept as it is
when compression does not make it smaller, and when it holds the text
``"attachments"``: the erasure of a learner finds the attachments only a
learner's statements refer to through the stored bytes (lrs/store/erasure.py
and the ``events_attachment_hashes`` index), so statements with attachments
stay searchable.  Roster, identity and erasure events
(lrs/store/event_append.py) are few and are kept as JSON: erasure searches the
roster and identity ones in SQL.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import zstandard

from lrs.contracts import SCHEMAS

__all__ = [
    "CURRENT_DICTIONARY",
    "DICTIONARIES",
    "DamagedPayload",
    "PayloadFormatError",
    "UnknownDictionary",
    "dictionary_bytes",
    "open_payload",
    "open_payloads",
    "store_payload",
    "store_payloads",
]

DICTIONARIES = SCHEMAS / "zstd"
CURRENT_DICTIONARY = 1
LEVEL = 3  # zstd's default: with the dictionary, level 6 saved 8 % more at 4x the CPU (docs/scaling.md)
MAGIC = b"\x28\xb5\x2f\xfd"
ATTACHMENTS_KEY = b'"attachments"'


class PayloadFormatError(ValueError):
    """A stored payload this version of lrs cannot read."""


class UnknownDictionary(PayloadFormatError):
    """The payload names a dictionary this version of lrs does not ship."""


class DamagedPayload(PayloadFormatError):
    """The payload starts as a zstd frame but is not one whole, readable
    frame: the row was altered (its bytes no longer give the JSON its
    event hash covers)."""


def dictionary_bytes(dictionary_id: int) -> bytes:
    """The bytes of dictionary ``dictionary_id`` as shipped."""
    path = DICTIONARIES / f"events-{dictionary_id}.dict"
    if not path.is_file():
        shipped = sorted(f.name for f in DICTIONARIES.iterdir() if f.name.endswith(".dict")) if DICTIONARIES.is_dir() else []
        raise UnknownDictionary(
            f"event payload compressed with zstd dictionary {dictionary_id}, which this version of lrs does not ship"
            f" (it has {', '.join(shipped) or 'none'}); run a version of lrs that has schemas/zstd/events-{dictionary_id}.dict"
        )
    return path.read_bytes()


@lru_cache(maxsize=None)
def _dictionary(dictionary_id: int) -> zstandard.ZstdCompressionDict:
    data = dictionary_bytes(dictionary_id)
    loaded = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
    if loaded.dict_id() != dictionary_id:
        raise PayloadFormatError(
            f"schemas/zstd/events-{dictionary_id}.dict holds dictionary {loaded.dict_id()}, not {dictionary_id}"
        )
    return loaded


# Compressors and decompressors keep state and are not safe to share
# between threads (the service compresses in its event loop's thread only,
# tools may use several): one of each per thread and dictionary.
_local = threading.local()


def _compressor(dictionary_id: int) -> zstandard.ZstdCompressor:
    found = getattr(_local, "compressors", None)
    if found is None:
        found = _local.compressors = {}
    compressor = found.get(dictionary_id)
    if compressor is None:
        compressor = found[dictionary_id] = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=_dictionary(dictionary_id),
            write_checksum=False,  # the event hash covers the JSON; PostgreSQL checks its pages
            write_content_size=True, write_dict_id=True,
        )
    return compressor


def _decompressor(dictionary_id: int) -> zstandard.ZstdDecompressor:
    found = getattr(_local, "decompressors", None)
    if found is None:
        found = _local.decompressors = {}
    decompressor = found.get(dictionary_id)
    if decompressor is None:
        # Dictionary id 0: a frame made without one (zstd's own convention).
        dictionary = _dictionary(dictionary_id) if dictionary_id else None
        decompressor = found[dictionary_id] = zstandard.ZstdDecompressor(dict_data=dictionary)
    return decompressor


def store_payload(payload: bytes, dictionary_id: int | None = CURRENT_DICTIONARY) -> bytes:
    """What ``events.payload`` keeps for the canonical JSON ``payload``:
    a zstd frame, or ``payload`` itself (``dictionary_id`` None, a payload
    holding attachments, or one that compression would not make smaller)."""
    if dictionary_id is None or ATTACHMENTS_KEY in payload:
        return payload
    frame = _compressor(dictionary_id).compress(payload)
    return frame if len(frame) < len(payload) else payload


def store_payloads(payloads: list[bytes], dictionary_id: int | None = CURRENT_DICTIONARY) -> list[bytes]:
    """:func:`store_payload` for each of ``payloads``."""
    if dictionary_id is None:
        return payloads
    compress = _compressor(dictionary_id).compress
    # One search of the group's bytes first (about 0.1 µs a statement less
    # than one a payload, bench/hash_payload_pieces.py): a payload holding
    # the key makes the joined bytes hold it; a match across two payloads
    # only sends the group to the search of each one below.
    if ATTACHMENTS_KEY not in b"".join(payloads):
        frames = [compress(payload) for payload in payloads]
        return [frame if len(frame) < len(payload) else payload for frame, payload in zip(frames, payloads)]
    kept: list[bytes] = []
    for payload in payloads:
        if ATTACHMENTS_KEY in payload:
            kept.append(payload)
            continue
        frame = compress(payload)
        kept.append(frame if len(frame) < len(payload) else payload)
    return kept


def open_payload(stored: bytes) -> bytes:
    """The canonical JSON of a stored payload, compressed or not."""
    if stored[:4] != MAGIC:
        return stored
    try:
        dictionary_id = zstandard.get_frame_parameters(stored).dict_id
    except zstandard.ZstdError as exc:
        raise DamagedPayload(f"event payload is not a readable zstd frame: {exc}") from None
    try:
        # One frame and nothing after it: bytes appended to a row are an
        # alteration, not something to skip.  The arguments go by position
        # (data, max_output_size, read_across_frames, allow_extra_data):
        # parsing them as keywords cost about a fifth of opening a ~1 KB
        # statement, for every event any reader of the log opens.
        return _decompressor(dictionary_id).decompress(stored, 0, False, False)
    except zstandard.ZstdError as exc:
        raise DamagedPayload(f"event payload (zstd dictionary {dictionary_id}) does not decompress: {exc}") from None


def open_payloads(stored: list[bytes]) -> list[bytes]:
    """:func:`open_payload` for each of ``stored``."""
    return [open_payload(s) for s in stored]
