"""A bounded map of bytes to bytes kept in ``bytearray`` chunks of 1 MiB
(records), an ``array`` of the records' offsets and an open-addressing index
of them in anonymous memory: the per-learner
caches of :class:`lrs.store.learner_key_cache.LearnerKeyCache` without one
Python object a key or a value, and without ever laying every record out
again at once.

Why packed: a sealing worker grows its caches one learner at a time while it
handles requests, and each cached object (a ``str``, a ``bytes``, a small
struct) then lies in one of the small-object allocator's pools among the
requests' short-lived objects, which spread over more pools and pages than
in a worker that keeps nothing: the rest of the worker ran slower for it
(docs/privacy.md, "Sealing's cost and the heap's layout (branch seal4)").
Buffers large enough to come from ``malloc`` hold the same entries without
touching those pools; a look-up makes only short-lived slices.

Why never all at once (docs/privacy.md, "The learner caches in packed
tables that never stall (branch seal6)"): branch seal5's tables rebuilt
themselves in a Python loop whenever a full cache dropped its oldest
entries, 240 ms of the worker's event loop at 250,000.  Here:

* Records are appended in insertion order and numbered; ``_alive`` holds a
  byte a record.  Dropping the ``count`` oldest moves a cut: the number of
  the first record kept is found by counting live bytes in C
  (``bytearray.count``), and every record before the cut is gone.  The
  chunks wholly before the cut are dropped (none copied), and the record
  numbers' prefix deleted in C once it is half of them.
* The index is never grown or cleaned in one go: when it is 3/8 full (of
  live records and of the dead ones it still points at), a new one, four
  times the live records, in memory the kernel zeroes a page at a time, is
  filled :data:`_SCAN` records at a time by the
  inserts that follow, new records going into both; it replaces the old
  one when the scan reaches where the rebuild started.
* Records removed or replaced before the cut reaches them are dead bytes;
  once they outnumber the live records (by :data:`_SLACK`), each insert
  also moves the oldest :data:`_CLEAN` records past the cut, re-appending
  the live ones (which then count as the most recently stored).  Only
  then does the table's order differ from a dict's."""

from __future__ import annotations

import mmap
from array import array
from bisect import bisect_left
from typing import Iterator

from lrs.privacy.data_key import DataKey, SealKey
from lrs.privacy.statement_sealer import KnownForm

__all__ = ["CipherTable", "FormTable", "KeyTable", "PackedTable", "TextTable"]

_EMPTY = 0  # an index slot holding no record (logical offsets start at 1)
_HEAD = 5  # live flag (1 byte), key length (2), value length (2)
_LARGEST = 0xFFFF  # the largest key or value a record holds
_SHIFT = 20  # records lie in chunks of 1 MiB: a logical offset's chunk is offset >> _SHIFT
_WITHIN = (1 << _SHIFT) - 1
_SCAN = 32  # records an insert places in an index being rebuilt
_CLEAN = 2  # records an insert moves past the cut while dead ones outnumber the live
_SLACK = 64  # dead records tolerated beyond the live ones
# An index this large or larger is mapped; a smaller one is a bytearray
# (zeroing 64 KiB is some microseconds): each mapping is one of the process's
# vm.max_map_count (65,530 by default), and a worker keeps a FormTable a
# tenant, so one mapping a table made a few thousand tenants thousands of
# mappings, and tens of thousands of tenants would have run out of them.
_MAPPED_FROM = 1 << 16


def _new_index(live: int, holds: int = 0) -> memoryview:
    """An empty index four times ``live`` (a power of two), and at least
    twice ``holds`` (the most records it may be given): anonymous memory
    the kernel hands over zeroed a page at a time as probes touch it, so that
    making one for 250,000 entries costs no pass over its 8 MB (an ``array``
    filled with a marker cost 2-6 ms, more than the insert it came with)."""
    size = 16
    while size < 4 * live or size < 2 * holds + 2:
        size *= 2
    if size * 8 < _MAPPED_FROM:
        return memoryview(bytearray(size * 8)).cast("q")
    return memoryview(mmap.mmap(-1, size * 8)).cast("q")


def _place(index: memoryview, hashed: int, at: int) -> None:
    mask = len(index) - 1
    slot = hashed & mask
    while index[slot] != _EMPTY:
        slot = (slot + 1) & mask
    index[slot] = at


class PackedTable:
    """``bytes`` keys to ``bytes`` values, each under 64 KiB (larger ones are
    not kept: :meth:`set_raw`), in insertion order (a key set again moves to
    the end).  :meth:`get_raw` returns the value as a ``bytearray`` slice (a
    copy).  Every operation does a bounded amount of work: at most
    :data:`_SCAN` + :data:`_CLEAN` records besides its own, and C-level
    copies and counts of the record numbers (a byte and 8 bytes a record).
    Records lie in chunks of 1 MiB, so freeing the ones before the cut
    drops whole chunks and copies none."""

    __slots__ = ("_chunks", "_chunk0", "_end", "_offsets", "_alive", "_first", "_cut", "_cut_at", "_live",
                 "_dead", "_index", "_mask", "_used", "_next", "_next_used", "_scanned", "_scan_end", "_slack")

    def __init__(self, *, slack: int = _SLACK) -> None:
        self._slack = slack
        self.clear()

    def clear(self) -> None:
        self._chunks = [bytearray(1)]  # logical offset 0 is never a record's: 0 marks an empty slot
        self._chunk0 = 0  # the number of _chunks[0]
        self._end = 1  # the logical offset of the next record
        self._offsets = array("q")  # each record's logical offset, by its number - _first
        self._alive = bytearray()  # 1 while a record is live, by its number - _first
        self._first = 0  # the number of _offsets[0]
        self._cut = 0  # records numbered below it are gone
        self._cut_at = 1  # no record before the cut lies at or after it, none after it before
        self._live = 0
        self._dead = 0  # records at or after the cut that are not live
        self._index = _new_index(0)
        self._mask = len(self._index) - 1
        self._used = 0  # index slots holding an offset, live or not
        self._next: memoryview | None = None  # the index being filled, while it is
        self._next_used = 0
        self._scanned = 0  # the number of the next record to place in _next
        self._scan_end = 0  # ... up to this one (later ones are placed when appended)

    def __len__(self) -> int:
        return self._live

    def __bool__(self) -> bool:
        return self._live > 0

    def _find(self, key: bytes) -> int:
        """The logical offset of ``key``'s live record, or -1."""
        chunks, first_chunk, index, mask, cut_at = self._chunks, self._chunk0, self._index, self._mask, self._cut_at
        size = len(key)
        slot = hash(key) & mask
        while True:
            at = index[slot]
            if at == _EMPTY:
                return -1
            if at >= cut_at:
                blob = chunks[(at >> _SHIFT) - first_chunk]
                p = at & _WITHIN
                if blob[p] and blob[p + 1] | blob[p + 2] << 8 == size and blob.startswith(key, p + _HEAD):
                    return at
            slot = (slot + 1) & mask

    def get_raw(self, key: bytes) -> bytearray | None:
        at = self._find(key)
        if at < 0:
            return None
        blob = self._chunks[(at >> _SHIFT) - self._chunk0]
        p = at & _WITHIN
        start = p + _HEAD + len(key)
        return blob[start:start + (blob[p + 3] | blob[p + 4] << 8)]

    def __contains__(self, key: bytes) -> bool:
        return self._find(key) >= 0

    def _kill(self, at: int) -> None:
        self._chunks[(at >> _SHIFT) - self._chunk0][at & _WITHIN] = 0
        self._alive[bisect_left(self._offsets, at)] = 0
        self._live -= 1
        self._dead += 1

    def pop_raw(self, key: bytes) -> bool:
        """Remove ``key``; whether it was there."""
        at = self._find(key)
        if at < 0:
            return False
        self._kill(at)
        return True

    def set_raw(self, key: bytes, value: bytes) -> None:
        """Keep ``value`` under ``key``.  A key or value of 64 KiB or more (an
        Agent's name or account as large as a body allows) is not kept, and
        any older value under the key goes: a cache answers it as missing."""
        if len(key) > _LARGEST or len(value) > _LARGEST:
            self.pop_raw(key)
            return
        at = self._find(key)
        if at >= 0:
            self._kill(at)
        self._append(key, value)
        if self._next is not None:
            self._scan(_SCAN)
        elif self._used * 8 > len(self._index) * 3:
            # Room for the live records and for every one the inserts until
            # it is full add (one each, and _CLEAN re-appended), ceil(scanned
            # / _SCAN) of them: sized by the live ones alone, an index begun
            # after most entries were popped filled up before its scan ended,
            # and the next probe of it never returned.
            scanned = self._first + len(self._offsets) - self._cut
            self._next = _new_index(self._live, self._live + (1 + _CLEAN) * -(-scanned // _SCAN))
            self._next_used = 0
            self._scanned, self._scan_end = self._cut, self._first + len(self._offsets)
            self._scan(_SCAN)
        if self._dead > self._live + self._slack:
            self._clean(_CLEAN)
        self._trim()

    def _append(self, key: bytes, value: bytes) -> None:
        size = _HEAD + len(key) + len(value)
        blob = self._chunks[-1]
        if len(blob) + size > _WITHIN + 1:  # a record never straddles two chunks
            blob = bytearray()
            self._chunks.append(blob)
            self._end = (self._chunk0 + len(self._chunks) - 1) << _SHIFT
        at = self._end
        blob += bytes((1, len(key) & 0xFF, len(key) >> 8, len(value) & 0xFF, len(value) >> 8))
        blob += key
        blob += value
        self._end = at + size
        self._offsets.append(at)
        self._alive.append(1)
        self._live += 1
        hashed = hash(key)
        self._used += self._settle(self._index, hashed, at)
        if self._next is not None:
            self._next_used += self._settle(self._next, hashed, at)

    def _settle(self, index: memoryview, hashed: int, at: int) -> int:
        """Point a slot of ``index`` at the new record ``at``: the first slot
        on its probe whose record is gone (a key stored again, popped or
        dropped leaves one), else the empty one that ends the probe (then 1:
        a slot more in use).  Any key still held lies further on the same
        probe, or on another, so it is found as before; without the reuse, one
        key stored again and again lengthened one probe by a slot each time."""
        chunks, first_chunk, cut_at = self._chunks, self._chunk0, self._cut_at
        mask = len(index) - 1
        slot, reuse = hashed & mask, -1
        while True:
            found = index[slot]
            if found == _EMPTY:
                break
            if reuse < 0 and (found < cut_at or not chunks[(found >> _SHIFT) - first_chunk][found & _WITHIN]):
                reuse = slot
            slot = (slot + 1) & mask
        if reuse >= 0:
            index[reuse] = at
            return 0
        index[slot] = at
        return 1

    def _record(self, number: int) -> tuple[bytes, bytes]:
        """Record ``number``'s key and value."""
        at = self._offsets[number - self._first]
        blob = self._chunks[(at >> _SHIFT) - self._chunk0]
        p = at & _WITHIN
        key_end = p + _HEAD + (blob[p + 1] | blob[p + 2] << 8)
        return bytes(blob[p + _HEAD:key_end]), bytes(blob[key_end:key_end + (blob[p + 3] | blob[p + 4] << 8)])

    def _scan(self, count: int) -> None:
        """Place up to ``count`` more live records in the index being filled;
        it replaces the index once every record it must hold is placed."""
        index = self._next
        assert index is not None
        number, end = max(self._scanned, self._cut), self._scan_end
        stop = min(end, number + count)
        alive, offsets, first, chunks, first_chunk = self._alive, self._offsets, self._first, self._chunks, self._chunk0
        while number < stop:
            if alive[number - first]:
                at = offsets[number - first]
                blob = chunks[(at >> _SHIFT) - first_chunk]
                p = at & _WITHIN
                _place(index, hash(bytes(blob[p + _HEAD:p + _HEAD + (blob[p + 1] | blob[p + 2] << 8)])), at)
                self._next_used += 1
            number += 1
        self._scanned = number
        if number >= end:
            self._index, self._mask, self._used = index, len(index) - 1, self._next_used
            self._next = None

    def _move_cut(self, number: int) -> None:
        self._cut = number
        position = number - self._first
        self._cut_at = self._offsets[position] if position < len(self._offsets) else self._end

    def _clean(self, count: int) -> None:
        """Move the cut past up to ``count`` records, re-appending the live ones."""
        for _ in range(count):
            number = self._cut
            if number >= self._first + len(self._offsets):
                return
            if self._alive[number - self._first]:
                key, value = self._record(number)
                self._live -= 1
                self._move_cut(number + 1)
                self._append(key, value)
            else:
                self._dead -= 1
                self._move_cut(number + 1)

    def _trim(self) -> None:
        """Free the chunks wholly before the cut, and the numbers of the
        records before it once they are half of them (C-level moves of a byte
        and 8 bytes a record)."""
        chunks = min((self._cut_at >> _SHIFT) - self._chunk0, len(self._chunks) - 1)
        if chunks > 0:
            del self._chunks[:chunks]
            self._chunk0 += chunks
        gone = self._cut - self._first
        if gone >= 1024 and gone * 2 >= len(self._offsets):
            del self._offsets[:gone]
            del self._alive[:gone]
            self._first = self._cut

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        """The live entries, oldest first."""
        for number in range(self._cut, self._first + len(self._offsets)):
            if self._alive[number - self._first]:
                yield self._record(number)

    def drop_oldest(self, count: int) -> None:
        """Remove the ``count`` oldest entries: the cut moves past them (the
        live records among those passed are counted in C)."""
        count = min(max(count, 0), self._live)
        if not count:
            return
        alive, start = self._alive, self._cut - self._first
        end = start + count
        found = alive.count(1, start, end)
        while found < count:
            more = end
            end += count - found
            found += alive.count(1, more, end)
        self._dead -= (end - start) - count
        self._live -= count
        self._move_cut(self._first + end)
        self._trim()

    def drop_oldest_half(self) -> None:
        """As :func:`lrs.store.learner_key_cache.drop_oldest_half` does a dict's."""
        self.drop_oldest(self._live // 2 or 1)


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


_ENTRY = 37  # a generation (4 bytes), whether it is erased (1), its masked key (32)


class CipherTable(PackedTable):
    """The ciphers of an identity's keys by generation: a :class:`DataKey`,
    or None for an erased one.  One record an identity (tenant NUL
    pseudonym) holding an entry a generation cached, so that an erasure
    drops the identity's ciphers with one :meth:`forget`, not a pass over
    every cached one (the dicts' comprehension held the event loop 208 ms at
    500,000).  Asked by :func:`lrs.store.learner_key_cache.cipher_id`
    (tenant NUL pseudonym NUL generation)."""

    __slots__ = ()

    def _entries(self, cipher_key: str) -> tuple[bytes, bytes, bytearray | None]:
        ident, _, generation = cipher_key.rpartition("\x00")
        raw = ident.encode()
        return raw, int(generation).to_bytes(4, "big"), self.get_raw(raw)

    def get(self, cipher_key: str) -> tuple[bool, DataKey | None]:
        """(whether it is cached, its cipher or None)."""
        _, generation, found = self._entries(cipher_key)
        if found is not None:
            for at in range(0, len(found), _ENTRY):
                if found[at:at + 4] == generation:
                    return True, _unpack_key(found[at + 5:at + _ENTRY]) if found[at + 4] else None
        return False, None

    def __contains__(self, cipher_key: object) -> bool:
        return isinstance(cipher_key, str) and self.get(cipher_key)[0]

    def __getitem__(self, cipher_key: str) -> DataKey | None:
        cached, cipher = self.get(cipher_key)
        if not cached:
            raise KeyError(cipher_key)
        return cipher

    def set(self, cipher_key: str, cipher: DataKey | None) -> None:
        """Cache one generation's cipher (None: erased); the identity's record moves to the end."""
        raw, generation, found = self._entries(cipher_key)
        kept = b"".join(bytes(found[at:at + _ENTRY]) for at in range(0, len(found or b""), _ENTRY)
                        if found is not None and found[at:at + 4] != generation)
        entry = b"\x00" + bytes(32) if cipher is None else b"\x01" + _pack_key(cipher)
        self.set_raw(raw, kept + generation + entry)

    def generations(self, ident: str) -> list[int]:
        """The generations cached of identity ``ident`` (tenant NUL pseudonym)."""
        found = self.get_raw(ident.encode()) or b""
        return [int.from_bytes(found[at:at + 4], "big") for at in range(0, len(found), _ENTRY)]

    def forget(self, ident: str) -> None:
        self.pop_raw(ident.encode())

    def values(self) -> Iterator[DataKey | None]:
        for _, found in self.raw_items():
            for at in range(0, len(found), _ENTRY):
                yield _unpack_key(found[at + 5:at + _ENTRY]) if found[at + 4] else None
