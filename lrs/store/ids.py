"""UUIDs on the ingest path, made and printed in C.

asyncpg returns uuid columns as its own UUID type, a subclass of
:class:`uuid.UUID` that compares and hashes like it and prints the same
text; building one from text or bytes, and printing it, costs a tenth of
what the standard library's pure-Python class does.  Ingest makes several
per statement (its id, its registration, its event's id), so the HTTP
handlers and the writer use these.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

from asyncpg.pgproto.pgproto import UUID as _FastUUID

__all__ = ["parse_uuid", "RandomUuids", "TimeOrderedUuids"]

_BLOCK = 256
# Version 4 and the RFC 4122 variant: the bits uuid.uuid4() sets.
_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_SET = (0x4000 << 64) | (0x8000 << 48)


def parse_uuid(text: str) -> uuid.UUID:
    """``uuid.UUID(text)`` for a UUID in standard (8-4-4-4-12) or 32-digit hex form."""
    return _FastUUID(text)


class RandomUuids:
    """A callable returning random version 4 UUIDs, like ``uuid.uuid4``, drawn
    from ``os.urandom`` a block at a time."""

    __slots__ = ("_ready",)

    def __init__(self) -> None:
        self._ready: list[uuid.UUID] = []

    def __call__(self) -> uuid.UUID:
        if not self._ready:
            self._ready = [_FastUUID(((bits & _KEEP) | _SET).to_bytes(16, "big")) for bits in _random_blocks()]
        return self._ready.pop()


def _random_blocks() -> list[int]:
    """``_BLOCK`` random 128-bit numbers from one ``os.urandom`` call."""
    raw = os.urandom(16 * _BLOCK)
    return [int.from_bytes(raw[i : i + 16], "big") for i in range(0, 16 * _BLOCK, 16)]


# Version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then the version,
# 74 random bits and the variant.
_V7_RANDOM = (((1 << 12) - 1) << 64) | ((1 << 62) - 1)
_V7_SET = (0x7 << 76) | (0b10 << 62)


class TimeOrderedUuids:
    """A callable returning version 7 UUIDs: they sort by the millisecond they
    were made in, so a unique index on them grows at its end, where a random
    UUID lands on any page of it (the events' ``event_id``)."""

    __slots__ = ("_random", "_clock")

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._random: list[int] = []
        self._clock = clock_ns

    def __call__(self) -> uuid.UUID:
        if not self._random:
            self._random = [bits & _V7_RANDOM for bits in _random_blocks()]
        millis = (self._clock() // 1_000_000) & ((1 << 48) - 1)
        return _FastUUID(((millis << 80) | _V7_SET | self._random.pop()).to_bytes(16, "big"))
