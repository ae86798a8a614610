"""The log's hash chain walked in position order, piece by piece (pure).

``lrs audit verify`` reads the log in batches and a replay in pages, often
in several processes (projections/log_chain.py,
projections/competency/read_shares.py, parallel_replay.py).  Each piece is
checked as lrs.eventlog.verify_chain checks the log (each hash recomputed
over the stored form, each event naming the hash of the one before it,
positions without a gap); a page read elsewhere is checked from its first
event on where it is read, and its :class:`PageChain` says what it starts
and ends with.  One :class:`ChainWalk` takes the pieces in log order: each
must go on where the one before it ended, the event at the log head must
have the hash ``log_head`` names, and the walk must reach the head.  The
first position where any of this fails is raised as :class:`ChainBroken`:
``lrs audit verify`` prints it, a replay refuses the log with it.
"""

from __future__ import annotations

from typing import Sequence

from msgspec import Struct

from lrs.eventlog import GENESIS_HASH, EventRecord, broken_chain_line, link_break, verify_chain

__all__ = ["ChainBroken", "ChainWalk", "PageChain", "page_chain"]


class ChainBroken(RuntimeError):
    """The log's hash chain breaks at ``position``."""

    def __init__(self, position: int) -> None:
        super().__init__(broken_chain_line(position))
        self.position = position


class PageChain(Struct, array_like=True, frozen=True, gc=False):
    """What one page read of the log holds of the chain (sent between the
    processes of a replay as msgpack)."""

    count: int  # events read
    first: int  # the first position read (0: none)
    first_prev: bytes  # the prev_hash it names
    last: int  # the last position read (0: none)
    last_hash: bytes
    bad: int | None  # the first position inside the page that breaks the chain from its first event


def page_chain(records: Sequence[EventRecord]) -> PageChain:
    """The chain of ``records`` (a page of the log in position order),
    checked by lrs.eventlog.verify_chain from its first event on."""
    if not records:
        return PageChain(0, 0, b"", 0, b"", None)
    first, last = records[0], records[-1]
    bad = verify_chain(records, prev_position=first.position - 1, prev_hash=first.prev_hash)
    return PageChain(len(records), first.position, first.prev_hash, last.position, last.hash, bad)


class ChainWalk:
    """The log up to ``total`` (the log head's position), in position order:
    each piece goes on where the one before it ended, and the walk ends at
    ``total``.  ``position`` and ``hash``: where the chain checked so far
    ends; ``head_hash``: the hash log_head names at ``total`` (None: not
    checked)."""

    def __init__(self, total: int, head_hash: bytes | None = None) -> None:
        self.total = total
        self.head_hash = head_hash
        self.position = 0
        self.hash = GENESIS_HASH

    def page(self, chain: PageChain) -> None:
        """The next page, checked where it was read (a replay's pages end at
        ``total`` at the latest); raises ChainBroken at the first position
        it breaks."""
        if not chain.count:  # every event of its range missing: the next page, or the end, names the gap
            return
        bad = link_break(chain.first, chain.first_prev, self.position + 1, self.hash)
        if bad is None:
            bad = chain.bad
        if bad is not None:
            raise ChainBroken(bad)
        if chain.last == self.total:
            self._head(chain.last_hash)
        self.position, self.hash = chain.last, chain.last_hash

    def records(self, records: Sequence[EventRecord]) -> None:
        """The next events, read whole (lrs.store.log_reader), checked from
        where the walk ends; they may go on past ``total`` (events written
        since the head was read)."""
        if not records:
            return
        bad = verify_chain(records, prev_position=self.position, prev_hash=self.hash)
        if self.position < self.total <= records[-1].position and (bad is None or bad > self.total):
            self._head(records[self.total - self.position - 1].hash)  # consecutive up to there
        if bad is not None:
            raise ChainBroken(bad)
        self.position, self.hash = records[-1].position, records[-1].hash

    def _head(self, hash_: bytes) -> None:
        """The hash of the event at ``total``: no event names it, log_head
        does (set with it); another there is that event rewritten and hashed
        again, which breaks the chain there."""
        if self.head_hash is not None and hash_ != self.head_hash:
            raise ChainBroken(self.total)

    def end(self) -> None:
        """Every piece walked: the chain must reach ``total`` (a log head
        naming events that are not there breaks it after the last one)."""
        if self.position < self.total:
            raise ChainBroken(self.position + 1)
