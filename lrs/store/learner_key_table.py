"""A bounded map of bytes to bytes kept in one ``bytearray`` (records) and
one ``array`` (an open-addressing index of their offsets): the per-learner
caches of :class:`lrs.store.learner_key_cache.LearnerKeyCache` without one
Python object a key or a value.

Why: a sealing worker grows its caches one learner at a time while it
handles requests, and each cached object (a ``str``, a ``bytes``, a small
struct) then lies in one of the small-object allocator's pools among the
requests' short-lived objects, which spread over more pools and pages than
in a worker that keeps nothing: the rest of the worker ran slower for it
(docs/privacy.md, "Sealing's cost and the heap's layout (branch seal4)").
Two buffers large enough to come from ``malloc`` hold the same entries
without touching those pools; a look-up makes only short-lived slices."""

from __future__ import annotations

from array import array
from typing import Callable, Iterator

from lrs.privacy.data_key import DataKey, SealKey
from lrs.privacy.statement_sealer import KnownForm

__all__ = ["CipherTable", "FormTable", "KeyTable", "PackedTable", "TextTable"]

_EMPTY = -1
_HEAD = 5  # live flag (1 byte), key length (2), value length (2)
_LARGEST = 0xFFFF  # the largest key or value a record holds


class PackedTable:
    """``bytes`` keys to ``bytes`` values, each under 64 KiB (larger ones are
    not kept: :meth:`set_raw`), in insertion order (a key set again moves to the end).  :meth:`get` returns
    the value as a ``bytearray`` slice (a copy).  Removed and replaced
    entries stay in the buffer, dead, until :meth:`_rebuild` lays the live
    ones out again (when dead ones outnumber them, and on :meth:`drop_oldest`)."""

    __slots__ = ("_blob", "_index", "_mask", "_live", "_used")

    def __init__(self) -> None:
        self._blob = bytearray()
        self._index = array("q", [_EMPTY]) * 8
        self._mask = 7
        self._live = 0
        self._used = 0  # index slots holding an offset, live or dead

    def __len__(self) -> int:
        return self._live

    def __bool__(self) -> bool:
        return self._live > 0

    def _find(self, key: bytes) -> int:
        """The offset of ``key``'s live record, or -1."""
        blob, index, mask = self._blob, self._index, self._mask
        size = len(key)
        slot = hash(key) & mask
        while True:
            offset = index[slot]
            if offset == _EMPTY:
                return -1
            if blob[offset + 1] | blob[offset + 2] << 8 == size and blob[offset] and blob.startswith(key, offset + _HEAD):
                return offset
            slot = (slot + 1) & mask

    def get_raw(self, key: bytes) -> bytearray | None:
        offset = self._find(key)
        if offset < 0:
            return None
        blob = self._blob
        start = offset + _HEAD + len(key)
        return blob[start:start + (blob[offset + 3] | blob[offset + 4] << 8)]

    def __contains__(self, key: bytes) -> bool:
        return self._find(key) >= 0

    def pop_raw(self, key: bytes) -> bool:
        """Remove ``key``; whether it was there."""
        offset = self._find(key)
        if offset < 0:
            return False
        self._blob[offset] = 0
        self._live -= 1
        if self._used > 64 and self._live * 2 < self._used:
            self._rebuild()
        return True

    def set_raw(self, key: bytes, value: bytes) -> None:
        """Keep ``value`` under ``key``.  A key or value of 64 KiB or more (an
        Agent's name or account as large as a body allows) is not kept, and
        any older value under the key goes: a cache answers it as missing."""
        if len(key) > _LARGEST or len(value) > _LARGEST:
            self.pop_raw(key)
            return
        offset = self._find(key)
        if offset >= 0:
            self._blob[offset] = 0
            self._live -= 1
        if (self._used + 1) * 2 > len(self._index):
            self._rebuild(grow=self._live * 2 + 2 > len(self._index))
        blob = self._blob
        offset = len(blob)
        blob += bytes((1, len(key) & 0xFF, len(key) >> 8, len(value) & 0xFF, len(value) >> 8))
        blob += key
        blob += value
        self._place(hash(key), offset)
        self._live += 1

    def _place(self, hashed: int, offset: int) -> None:
        index, mask = self._index, self._mask
        slot = hashed & mask
        while index[slot] != _EMPTY:
            slot = (slot + 1) & mask
        index[slot] = offset
        self._used += 1

    def _records(self) -> Iterator[tuple[bytes, bytes]]:
        """The live entries, oldest first."""
        blob = self._blob
        offset, end = 0, len(blob)
        while offset < end:
            key_size = blob[offset + 1] | blob[offset + 2] << 8
            value_size = blob[offset + 3] | blob[offset + 4] << 8
            start = offset + _HEAD
            if blob[offset]:
                yield bytes(blob[start:start + key_size]), bytes(blob[start + key_size:start + key_size + value_size])
            offset = start + key_size + value_size

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        return self._records()

    def _rebuild(self, *, grow: bool = False, skip: int = 0, keep: Callable[[bytes], bool] | None = None) -> None:
        """Lay the live records out anew (dead ones dropped; the ``skip``
        oldest live ones too, and those whose key ``keep`` is false of), the
        index twice as large with ``grow``.  Each record is copied as it
        lies, its key hashed once: going through :meth:`set_raw` with a
        tuple an entry took 1.8 s for 250,000 entries, the event loop stalled
        each time a full cache dropped its oldest sixteenth, or an erasure was
        heard (the ciphers' :meth:`keep_only`)."""
        old = self._blob
        size = len(self._index) * (2 if grow else 1)
        while size < 8 or (self._live - skip) * 2 + 2 > size:
            size *= 2
        blob, index, mask = bytearray(), array("q", [_EMPTY]) * size, size - 1
        live = 0
        view = memoryview(old)
        offset, end = 0, len(old)
        while offset < end:
            start = offset + _HEAD
            key_end = start + (old[offset + 1] | old[offset + 2] << 8)
            record_end = key_end + (old[offset + 3] | old[offset + 4] << 8)
            if old[offset]:
                if skip:
                    skip -= 1
                else:
                    key = bytes(view[start:key_end])
                    if keep is None or keep(key):
                        slot = hash(key) & mask
                        while index[slot] != _EMPTY:
                            slot = (slot + 1) & mask
                        index[slot] = len(blob)
                        blob += view[offset:record_end]
                        live += 1
            offset = record_end
        view.release()
        self._blob, self._index, self._mask = blob, index, mask
        self._live = self._used = live

    def drop_oldest(self, count: int) -> None:
        """Remove the ``count`` oldest entries."""
        self._rebuild(skip=min(max(count, 0), self._live))

    def drop_oldest_half(self) -> None:
        """As :func:`lrs.store.learner_key_cache.drop_oldest_half` does a dict's."""
        self.drop_oldest(self._live // 2 or 1)

    def keep_only(self, keep: Callable[[bytes], bool]) -> None:
        """Remove every entry whose key ``keep(key)`` is false of."""
        self._rebuild(keep=keep)

    def clear(self) -> None:
        self._rebuild(skip=self._live)


class TextTable(PackedTable):
    """``str`` to ``str`` (the pseudonyms by identity)."""

    __slots__ = ()

    def get(self, key: str) -> str | None:
        found = self.get_raw(key.encode())
        return None if found is None else found.decode()

    def set(self, key: str, value: str) -> None:
        self.set_raw(key.encode(), value.encode())


class FormTable(PackedTable):
    """One tenant's sealed forms (:class:`KnownForm`) by the Agent's sorted JSON."""

    __slots__ = ()

    def get(self, own: bytes) -> KnownForm | None:
        found = self.get_raw(own)
        if found is None:
            return None
        object_type, pseudonym, generation, text = found.decode().split("\x00")
        return KnownForm(object_type, pseudonym, int(generation), text)

    def update(self, forms: dict[bytes, KnownForm]) -> None:
        for own, form in forms.items():
            self.set_raw(own, f"{form.object_type}\x00{form.pseudonym}\x00{form.generation}\x00{form.text}".encode())

    def items(self) -> Iterator[tuple[bytes, KnownForm]]:
        for own, packed in self.raw_items():
            object_type, pseudonym, generation, text = packed.decode().split("\x00")
            yield own, KnownForm(object_type, pseudonym, int(generation), text)

    def keys(self) -> Iterator[bytes]:
        return (own for own, _ in self.raw_items())

    def values(self) -> Iterator[KnownForm]:
        return (form for _, form in self.items())


def _pack_key(key: DataKey) -> bytes:
    return key._masked.to_bytes(32, "big")


def _unpack_key(packed: bytes | bytearray) -> DataKey:
    return DataKey(int.from_bytes(packed, "big"))


class KeyTable(PackedTable):
    """The live keys (:class:`SealKey`, their cipher a :class:`DataKey`) by
    identity (tenant NUL pseudonym): the generation's 4 bytes and the
    masked key's 32."""

    __slots__ = ()

    def get(self, ident: str) -> SealKey | None:
        found = self.get_raw(ident.encode())
        if found is None:
            return None
        return SealKey(ident[ident.index("\x00") + 1:], int.from_bytes(found[:4], "big"), _unpack_key(found[4:]))

    def set(self, ident: str, key: SealKey) -> None:
        self.set_raw(ident.encode(), key.generation.to_bytes(4, "big") + _pack_key(key.cipher))

    def pop(self, ident: str) -> None:
        self.pop_raw(ident.encode())

    def values(self) -> Iterator[SealKey]:
        for ident, _ in self.raw_items():
            key = self.get(ident.decode())
            assert key is not None
            yield key


_ERASED = b""


class CipherTable(PackedTable):
    """The ciphers of keys by generation (tenant NUL pseudonym NUL
    generation): a :class:`DataKey`, or None for an erased one."""

    __slots__ = ()

    def get(self, cipher_key: str) -> tuple[bool, DataKey | None]:
        """(whether it is cached, its cipher or None)."""
        found = self.get_raw(cipher_key.encode())
        if found is None:
            return False, None
        return True, None if found == _ERASED else _unpack_key(found)

    def set(self, cipher_key: str, cipher: DataKey | None) -> None:
        self.set_raw(cipher_key.encode(), _ERASED if cipher is None else _pack_key(cipher))

    def keys(self) -> Iterator[str]:
        return (key.decode() for key, _ in self.raw_items())

    def values(self) -> Iterator[DataKey | None]:
        return (None if packed == _ERASED else _unpack_key(packed) for _, packed in self.raw_items())
