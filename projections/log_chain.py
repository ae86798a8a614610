"""A replay's check of the hash chain, page by page (pure).

A replay reads the log in pages, often in several processes
(projections/competency/read_shares.py, parallel_replay.py).  Each page is
checked where it is read, as ``lrs audit verify`` checks the log
(lrs.eventlog.verify_chain's check, verify_rows: each hash recomputed over the stored form,
each event naming the hash of the one before it, positions without a
gap), from its first event on; the page's :class:`PageChain` says what it
starts and ends with.  The process that routes the pages in log order
walks them (:class:`ChainWalk`): each page must go on where the one before
it ended (its first position the next one, its first ``prev_hash`` the
last hash), and the last must end at the log's end.  The first position
where any of this fails is the one ``lrs audit verify`` names: the replay
raises :class:`ChainBroken` with it and swaps nothing in.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Sequence

from msgspec import Struct

from lrs.eventlog import (
    GENESIS_HASH, EventRecord, broken_chain_line, link_break, stored_texts_of_sent, verify_chain, verify_rows,
)
from lrs.store.log_reader import row_payload

__all__ = ["ChainBroken", "ChainWalk", "PageChain", "checked_page", "page_chain"]

# A page as a rebuild reads it: (position, tenant, event type, payload as canonical JSON).
Page = list[tuple[int, str, str, bytes]]


class ChainBroken(RuntimeError):
    """The log's hash chain breaks at ``position``: a replay refuses the log."""

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


def checked_page(rows: Sequence[Sequence[Any]]) -> tuple[Page, PageChain]:
    """``rows`` of (position, event id, tenant, event type, stored as
    ``timestamptz_send`` gives it, payload as stored, prev_hash, hash), as
    projections.replay reads a page: the page a rebuild reads and its chain,
    checked column by column by lrs.eventlog.verify_rows (the check
    verify_chain makes).  A page that breaks is cut before its first bad
    event: nothing altered is interpreted (the replay stops at it)."""
    if not rows:
        return [], PageChain(0, 0, b"", 0, b"", None)
    positions, event_ids, tenants, event_types, sent, stored, prev_hashes, hashes = zip(*rows)
    payloads = [row_payload(payload) for payload in stored]
    bad = verify_rows(
        zip(positions, [event_id.bytes for event_id in event_ids], tenants, event_types,
            stored_texts_of_sent(sent), payloads, prev_hashes, hashes),
        prev_position=positions[0] - 1,
        prev_hash=prev_hashes[0],
    )
    chain = PageChain(len(positions), positions[0], prev_hashes[0], positions[-1], hashes[-1], bad)
    page = list(zip(positions, tenants, event_types, payloads))
    if bad is not None:
        del page[bisect_left(positions, bad):]
    return page, chain


class ChainWalk:
    """The pages of the log up to ``total``, in position order: each goes on
    where the one before it ended, and the last ends at ``total``.
    ``position`` and ``hash``: where the chain checked so far ends;
    ``head_hash``: the hash log_head names at ``total`` (None: not checked)."""

    def __init__(self, total: int, head_hash: bytes | None = None) -> None:
        self.total = total
        self.head_hash = head_hash
        self.position = 0
        self.hash = GENESIS_HASH

    def page(self, chain: PageChain) -> None:
        """The next page; raises ChainBroken at the first position it breaks."""
        if not chain.count:  # every event of its range missing: the next page, or the end, names the gap
            return
        bad = link_break(chain.first, chain.first_prev, self.position + 1, self.hash)
        if bad is None:
            bad = chain.bad
        if bad is not None:
            raise ChainBroken(bad)
        self.position, self.hash = chain.last, chain.last_hash

    def records(self, records: Sequence[EventRecord]) -> None:
        """The next events, read whole (lrs.store.log_reader): checked from where the walk ends."""
        if records:
            bad = verify_chain(records, prev_position=self.position, prev_hash=self.hash)
            if bad is not None:
                raise ChainBroken(bad)
            self.position, self.hash = records[-1].position, records[-1].hash

    def end(self) -> None:
        """Every page walked: the chain must reach ``total`` (a log head
        naming events that are not there breaks it after the last one), and
        end with the hash log_head names there (else the last event was
        rewritten and hashed again: it breaks there)."""
        if self.position < self.total:
            raise ChainBroken(self.position + 1)
        if self.total and self.position == self.total and self.head_hash is not None and self.hash != self.head_hash:
            raise ChainBroken(self.total)
