"""A replay's pages of the log, each checked where it is read (pure).

A replay reads the log in pages, often in several processes
(projections/competency/read_shares.py, parallel_replay.py).  Each page is
checked where it is read, as ``lrs audit verify`` checks the log
(lrs.eventlog.verify_chain: each hash recomputed over the stored form,
each event naming the hash of the one before it, positions without a
gap), from its first event on; the page's :class:`PageChain` says what it
starts and ends with.  The process that routes the pages in log order
walks them with the walk ``lrs audit verify`` walks its batches with
(lrs.chain_walk.ChainWalk, named here too for the replay's modules): each
page must go on where the one before it ended, the last must end at the
log's end with the hash log_head names.  The first position where any of
this fails is the one ``lrs audit verify`` names: the replay raises
:class:`ChainBroken` with it and swaps nothing in.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from lrs.chain_walk import ChainBroken, ChainWalk, PageChain, page_chain
from lrs.eventlog import EventRecord
from lrs.store.log_reader import row_payload

__all__ = ["ChainBroken", "ChainWalk", "PageChain", "checked_page", "page_chain"]

# A page as a rebuild reads it: (position, tenant, event type, payload as canonical JSON).
Page = list[tuple[int, str, str, bytes]]


def checked_page(rows: Iterable[Sequence[Any]]) -> tuple[Page, PageChain]:
    """``rows`` of (position, event id, tenant, event type, stored, payload
    as stored, prev_hash, hash), as projections.replay reads a page: the
    page a rebuild reads and its chain.  A page that breaks is cut before
    its first bad event: nothing altered is interpreted (the replay stops
    at it)."""
    records = [
        EventRecord(position, event_id, tenant, event_type, None, stored, row_payload(payload), prev_hash, hash_)
        for position, event_id, tenant, event_type, stored, payload, prev_hash, hash_ in rows
    ]
    chain = page_chain(records)
    if chain.bad is not None:
        records = [r for r in records if r.position < chain.bad]
    return [(r.position, r.tenant, r.event_type, r.payload) for r in records], chain
