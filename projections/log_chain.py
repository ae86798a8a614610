"""A replay's pages of the log, each checked where it is read (pure).

A replay reads the log in pages, often in several processes
(projections/competency/read_shares.py, parallel_replay.py).  Each page is
checked where it is read, as ``lrs audit verify`` checks the log
(lrs.eventlog.verify_chain's check, verify_rows: each hash recomputed over the stored form,
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

from bisect import bisect_left
from typing import Any, Sequence

from lrs.chain_walk import ChainBroken, ChainWalk, PageChain, page_chain
from lrs.eventlog import stored_texts_of_sent, verify_rows
from lrs.store.log_reader import row_payload

__all__ = ["ChainBroken", "ChainWalk", "PageChain", "checked_page", "page_chain"]

# A page as a rebuild reads it: (position, tenant, event type, payload as canonical JSON).
Page = list[tuple[int, str, str, bytes]]


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
