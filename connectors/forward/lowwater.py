"""Pure: which log positions a forwarder has dealt with, as a low-water mark.

JetStream delivers a consumer's messages for the first time in stream order,
but a message waiting for its redelivery (a retry after a failure, an
acknowledgement that timed out) is overtaken by the ones after it.  "The
highest position dealt with" then says nothing about that message: were the
consumer recreated, its first delivery would look like a copy of an event
already forwarded, and it would never be sent.

:class:`LowWaterMark` keeps instead the highest position ``low_water`` such
that every position at or below it is done, and the runs of positions above
it that are done too (``done_above``).  Log positions are 1, 2, 3, ... without
gaps (docs/contracts.md), so the positions in between (:meth:`gaps`) are
exactly the ones not dealt with yet.  The runs are few: each is separated
from the next by a position not done, that is a message still awaiting its
acknowledgement (at most the consumer's ``max_ack_pending``) or a position
whose message never comes (an event the consumer does not select, filled in
from the log by the caller through :meth:`record_range`).  Should they grow
anyway (forwarders sharing one name, each seeing part of the messages), the
caller bounds them with :meth:`forget_lowest`: forgetting only ever makes a
position be sent again.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Sequence


class LowWaterMark:
    __slots__ = ("low_water", "_firsts", "_lasts")

    def __init__(self, low_water: int = 0, done_above: Iterable[tuple[int, int]] = ()) -> None:
        self.low_water = low_water
        self._firsts: list[int] = []
        self._lasts: list[int] = []  # _firsts[i] .. _lasts[i] done; runs ascending, apart, above low_water + 1
        for first, last in done_above:
            self.record_range(first, last)

    def record(self, position: int) -> None:
        """``position`` was dealt with."""
        self.record_range(position, position)

    def record_range(self, first: int, last: int) -> None:
        """Every position from ``first`` to ``last`` was dealt with."""
        if last < first or last <= self.low_water:
            return
        first = max(first, self.low_water + 1)
        # The runs that overlap [first, last] or touch it are merged with it.
        lo = bisect.bisect_left(self._lasts, first - 1)
        hi = bisect.bisect_right(self._firsts, last + 1)
        if lo < hi:
            first, last = min(first, self._firsts[lo]), max(last, self._lasts[hi - 1])
        self._firsts[lo:hi] = [first]
        self._lasts[lo:hi] = [last]
        if self._firsts[0] == self.low_water + 1:  # runs are apart: at most one joins the low-water mark
            self.low_water = self._lasts[0]
            del self._firsts[0], self._lasts[0]

    def forget_lowest(self, keep: int) -> int:
        """Keep at most ``keep`` runs above the mark, forgetting the lowest:
        a position forgotten is sent again if it comes again (the target takes
        it as the same statement), never taken for a copy it is not.  The
        number of runs forgotten."""
        extra = max(len(self._firsts) - keep, 0)
        del self._firsts[:extra], self._lasts[:extra]
        return extra

    def is_done(self, position: int) -> bool:
        if position <= self.low_water:
            return True
        index = bisect.bisect_right(self._firsts, position) - 1
        return index >= 0 and self._lasts[index] >= position

    @property
    def done_above(self) -> tuple[tuple[int, int], ...]:
        """The runs (first, last) of positions done above the low-water mark."""
        return tuple(zip(self._firsts, self._lasts))

    @property
    def highest(self) -> int:
        """The highest position done."""
        return self._lasts[-1] if self._lasts else self.low_water

    def gaps(self, after: int = 0) -> list[tuple[int, int]]:
        """The runs (first, last) of positions not done between the low-water
        mark and the highest position done, clipped to those above ``after``."""
        holes = []
        previous = self.low_water
        for first, last in zip(self._firsts, self._lasts):
            start = max(previous + 1, after + 1)
            if start <= first - 1:
                holes.append((start, first - 1))
            previous = last
        return holes

    def serialise(self) -> tuple[int, list[int]]:
        """``(low_water, [first, last, first, last, ...])``: what PostgreSQL keeps."""
        flat: list[int] = []
        for first, last in zip(self._firsts, self._lasts):
            flat += (first, last)
        return self.low_water, flat

    @classmethod
    def deserialise(cls, low_water: int, flat: Sequence[int]) -> "LowWaterMark":
        """The inverse of :meth:`serialise`; ValueError for what it never writes."""
        if low_water < 0 or len(flat) % 2:
            raise ValueError(f"not a low-water mark: {low_water}, {list(flat)}")
        runs = list(zip(flat[0::2], flat[1::2]))
        previous = low_water
        for first, last in runs:
            if not previous + 1 < first <= last:
                raise ValueError(f"not a low-water mark: {low_water}, {list(flat)}")
            previous = last
        return cls(low_water, runs)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LowWaterMark) and self.low_water == other.low_water
                and self.done_above == other.done_above)

    def __repr__(self) -> str:
        return f"LowWaterMark({self.low_water}, {list(self.done_above)})"
