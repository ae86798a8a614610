"""A replay's log read in pages shared by every process, each keeping its share of the learners.

The learners are cut into ``processes`` shares by a hash of their key (of
the person an identifier is linked to at the end of the log, so that a
linked identifier's evidence lands where its person's does: the links are
rebuilt before the log is read).  The log is cut into pages of positions
(page k: k * size < position <= (k + 1) * size), and page k is read from
PostgreSQL, on its own connection, and judged by the process of share k
mod ``processes`` (this one or a worker forked): it opens, decodes and
judges each statement (policy.judge: a voiding, evidence perhaps, whose),
keeps its own learners' evidence and every voiding, and sends each other
process the events of that page it needs (its learners' statements that
may be evidence, the voidings: their positions, tenants and payloads as
opened), with the page's number of events and last position; that process
decodes and judges them again.  So every page is read once and every
statement opened once, a statement that is not evidence decoded once, one
that is evidence at most twice, and only the process whose share the
learner is in builds its evidence, routes it, folds the learner and copies
the rows: both cores read and fold (after the log is read, the processes
send each other the hashes of the ids each worker owns, and its failures).

What "first" means in the log stays as it is in one process:

- every process keeps every voiding, in log order, and the first per
  target; each routes those whose target is evidence of its share, and
  this process writes the voidings' table;
- the first statement with an id names its learner (and its mismatches):
  the hashes of the ids each share owns are compared once everything is
  read, and an id owned by two shares (a statement id written twice in the
  log) is settled by the positions, the first one winning;
- an event the rules fail on is parked by one process: the one that judged
  it when it fails before its learner is known, else the one whose share
  the learner is in; the failures are merged in log order.

Every process hears of every page (its chain: number of events, first
and last position and hash) from its judge, so all end at the same
position, which must be the log's end (where the replay started): a replay
that stopped short of it fails rather than swap in a projection of part of
the log.  A worker that raises or dies fails the replay (whoever waits for
it learns why, or sees its pipe end), which then swaps nothing in.  The
hash chain is checked as ``lrs audit verify`` checks it
(projections/log_chain.py): the judge of a page checks the page (each
hash recomputed, each link, no gap), and this process walks the pages'
chains in log order (each page goes on from the one before it, the last
ends at the log's end): where it breaks, the replay stops with the first
bad position and swaps nothing in.

The judging of a page and the settling of ids owned twice are
:mod:`projections.competency.share_judging`; the pipes between the
processes, :mod:`projections.competency.share_pipes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import msgspec

from lrs.store.identities import rebuild_links
from projections.competency.fold_shares import Connect, copy_learners, copy_share
from projections.competency.parallel_replay import ReplayWorkerFailed, can_fork, read_log, worker_signals
from projections.competency.policy import memo_limit
from projections.competency.rebuild import LogRebuild
from projections.competency.rows import MISMATCH_COLUMNS
from projections.competency.share_judging import (
    Hinted, Keep, Page, collisions, give_up, judge_page, owned_hashes, settle, suspects, take_hinted,
)
from projections.competency.share_pipes import HintSender, Links, receive, received, send
from projections.log_chain import ChainWalk, PageChain
from projections.replay import LogPages, index_early

__all__ = ["MIN_SHARED_EVENTS", "REPLAY_MEMO_LIMIT", "STATEMENT_TABLES", "ReplayReadShort", "copy_statements",
           "rebuild_learners", "release_later"]

MIN_SHARED_EVENTS = 20_000  # a shorter log is read here (a fork costs more than it saves)
# How many pages past the first one whose hints have not come a process
# judges on before it waits for them (what it sends meanwhile waits in the
# pipes and the sending thread's queue: a page's hints each).
MAX_WAITING_PAGES = 8
# A replay's memo of learner keys by actor: every learner of a log of this
# many actors is decoded once (the live projection's 8,192 made most
# evidence of a 20,000-learner log decode its actor again).  An entry
# costs about 200-300 bytes (the actor's JSON as key, its learner key), and
# every process of a replay in shares fills its own: up to about 300 MB each.
REPLAY_MEMO_LIMIT = 1 << 20
_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder()
# What a judge sends each other process of a page: its chain (events, first and last position and hash,
# where it breaks), what that one needs of them.
_HINTS = msgspec.msgpack.Decoder(tuple[PageChain, list[Hinted]])


class ReplayReadShort(RuntimeError):
    """A replay in shares read up to a position before the log's end."""


async def rebuild_learners(
    conn: Any, work: LogRebuild, pages: Any, *, processes: int, readers: int, connect: Connect | None
) -> int:
    """Read the log in ``pages`` into ``work``, rebuild the identity links,
    and copy into the tables on ``conn``'s search path the rows of
    ``competency_statement_learners``, ``competency_voids``,
    ``competency_mastery_mismatches`` and of every learner
    (fold_shares.py); returns the last position read.  With ``readers``
    equal to the ``processes`` (two or more), every process reads the whole
    log and keeps its share of the learners (this module); else
    ``readers`` read it (parallel_replay.py) and the ``processes`` fold it
    after."""
    with memo_limit(REPLAY_MEMO_LIMIT):
        if (
            processes > 1 and readers >= processes and connect is not None and isinstance(pages, LogPages)
            and pages.total >= max(MIN_SHARED_EVENTS, 1) and can_fork()
        ):
            position = await _in_shares(conn, work, pages, processes, connect)
        else:
            position = await read_log(work, pages, readers)
            # each statement's evidence goes to the person its actor is linked to at the end
            work.persons = await rebuild_links(conn, position)
            await copy_statements(conn, work, voids=True)
            async with _indexed_early(conn, connect, []):
                await copy_learners(conn, work, processes, connect)
        release_later(work)
        return position


# What release_later frees, a slice at a time, and the tasks freeing it.
RELEASED_PER_SLICE = 1000
_releasing: set[asyncio.Task[None]] = set()


def release_later(work: LogRebuild) -> None:
    """Empty ``work`` of what it read (every learner's evidence, the owners,
    the voidings), which is then freed a slice at a time while this event
    loop is idle (the replay waits for PostgreSQL's index builds next),
    instead of at once when the rebuild returns: freeing the evidence of a
    200,000-event log took the replaying process about as long as half its
    reading, before the indexes were built."""
    held: list[dict[Any, Any]] = [work.events, work.owners, work.voids, work.positions, work.mismatches]
    work.events, work.owners, work.voids, work.positions, work.mismatches = {}, {}, {}, {}, {}
    if work.owner_positions is not None:
        held.append(work.owner_positions)
        work.owner_positions = {}
    if work.mismatch_positions is not None:
        held.append(work.mismatch_positions)
        work.mismatch_positions = {}
    task = asyncio.ensure_future(_release(held))
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


async def _release(held: list[dict[Any, Any]]) -> None:
    for items in held:  # the learners' evidence first: the most of it
        while items:
            for _ in range(min(RELEASED_PER_SLICE, len(items))):
                items.popitem()
            await asyncio.sleep(0)


# The tables copied before the learners are folded: indexed while they fold.
STATEMENT_TABLES = ("competency_statement_learners", "competency_voids", "competency_mastery_mismatches")


@contextlib.asynccontextmanager
async def _indexed_early(conn: Any, connect: Connect | None, copied: Sequence[Any]) -> AsyncIterator[None]:
    """While the block runs, the STATEMENT_TABLES are indexed and analysed
    on another connection (projections.replay.index_early), once each pipe
    of ``copied`` has said its process copied its rows into them; waited
    for at the end of the block, cancelled when it raises."""
    if connect is None:
        yield
        return
    scratch = await conn.fetchval("SELECT current_schema()")

    async def index() -> None:
        for pipe in copied:
            await receive(pipe, "that it copied its statements")
        await index_early(connect, scratch, STATEMENT_TABLES)

    task = asyncio.ensure_future(index())
    try:
        yield
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    await task


async def copy_statements(conn: Any, work: LogRebuild, *, voids: bool) -> None:
    """The statement-to-learner rows, the mismatches, and (``voids``) the voidings of ``work``."""
    await conn.copy_records_to_table(
        "competency_statement_learners", records=work.owner_rows(),
        columns=["tenant", "statement_id", "learner", "actor"],
    )
    if voids:
        await conn.copy_records_to_table(
            "competency_voids", records=work.voiding_rows(), columns=["tenant", "target_id", "voiding_statement_id"]
        )
    await conn.copy_records_to_table("competency_mastery_mismatches", records=work.mismatch_rows(),
                                     columns=MISMATCH_COLUMNS)


def page_count(total: int, page_size: int) -> int:
    """The pages of a log of ``total`` positions read in shares: page k is
    the positions k * ``page_size`` < position <= (k + 1) * ``page_size``
    (at most a page of events, fewer where positions were skipped)."""
    return -(-total // page_size)


async def own_pages(
    pages: LogPages, share: int, shares: int, conn: Any = None
) -> AsyncIterator[tuple[Page, PageChain]]:
    """The pages of ``pages``'s log that ``share`` of ``shares`` judges
    (page_count's k, k mod ``shares`` equal to ``share``), each with its
    chain (LogPages.fetch), read on ``conn`` (default: the replay's), the
    next one read while the caller judges this one."""
    size, total = pages.page_size, pages.total

    def fetch(number: int) -> Awaitable[tuple[Page, PageChain]]:
        return pages.fetch(number * size, min((number + 1) * size, total), conn)

    numbers = iter(range(share, page_count(total, size), shares))
    number = next(numbers, None)
    upcoming = None if number is None else asyncio.ensure_future(fetch(number))
    try:
        while upcoming is not None:
            page = await upcoming
            upcoming = None
            number = next(numbers, None)
            if number is not None:
                upcoming = asyncio.ensure_future(fetch(number))
            yield page
    finally:
        if upcoming is not None:
            upcoming.cancel()
            with contextlib.suppress(BaseException):
                await upcoming


async def _read_all(
    work: LogRebuild, own: AsyncIterator[tuple[Page, PageChain]], count: int, share: int, links: Links,
    reached: Callable[[int], None] | None = None, walk: ChainWalk | None = None,
) -> tuple[int, int]:
    """The log's ``count`` pages into ``work``: page k is read and judged by
    the process of share k mod shares (``own``: this one's pages, in
    order), which sends every other the events of it that one needs, opened
    (so each page is read from PostgreSQL and opened once), with the
    page's number of events and last position; (events, last position) of
    the whole log.

    A process judges its own pages without waiting for the others (waiting
    for them page by page made the processes judge one page at a time, in
    turn), up to MAX_WAITING_PAGES pages ahead of the first whose events it
    has not been sent yet, and what each page keeps is routed into ``work``
    in page order, so "first" means what it means in one process, and
    ``reached`` (the replay's progress) is told each page's last position
    as it is routed: up to the log's end, whoever read the last page.
    Each page's chain (checked by the process that read it) comes with
    it: ``walk`` (this one's, when it checks the seams) walks them in page
    order, raising ChainBroken at the first page that does not go on from
    the one before it or breaks inside, before the page is routed."""
    shares = links.shares
    events = last = 0
    heard = [0] * shares  # pages heard from each judge (its pages share, share + shares, ...)
    kept: dict[int, list[tuple[int, str, Any]]] = {}  # by page number, not yet routed
    chains: dict[int, PageChain] = {}  # the chain of each page not yet routed
    routed = 0

    def hear(judge_of: int, message: bytes) -> None:
        nonlocal events, last
        at = judge_of + heard[judge_of] * shares
        heard[judge_of] += 1
        chain, hinted = _HINTS.decode(memoryview(message)[1:])  # not a copy of the message
        events += chain.count
        last = max(last, chain.last)
        page_kept: list[tuple[int, str, Any]] = []
        take_hinted(work, hinted, _keeper(page_kept))
        kept[at] = page_kept
        chains[at] = chain

    def heard_all(judge_of: int) -> bool:
        """Every page of ``judge_of`` heard: what it sends next is not hints."""
        return judge_of + heard[judge_of] * shares >= count

    def hear_arrived() -> None:
        for other in range(shares):
            if other != share:
                pipe = links.of(share, other)
                while not heard_all(other) and pipe.poll():
                    hear(other, received(pipe.recv_bytes, "hints"))

    def route() -> None:
        nonlocal routed
        take = work.take
        while routed in kept:
            chain = chains.pop(routed)
            if walk is not None:
                walk.page(chain)
            for position, tenant, meaning in kept.pop(routed):
                take(position, tenant, meaning)
            if reached is not None and chain.last:
                reached(chain.last)
            routed += 1

    async def hear_page(at: int) -> None:
        judge_of = at % shares
        while at not in kept and routed <= at:
            hear(judge_of, await receive(links.of(share, judge_of), f"the hints of page {at}"))

    async def judge_and_hear(sender: HintSender) -> None:
        async with contextlib.aclosing(own):  # a page read ahead is given up with what raised here
            await judge_all(sender)
        while routed < count:
            await hear_page(routed)
            route()

    async def judge_all(sender: HintSender) -> None:
        nonlocal events, last
        async for page, chain in own:
            number = share + heard[share] * shares
            heard[share] += 1
            while number - routed > MAX_WAITING_PAGES:
                await hear_page(routed)
                route()
            hints: list[list[Hinted]] = [[] for _ in range(shares)]
            page_kept: list[tuple[int, str, Any]] = []
            judge_page(work, page, share, shares, hints, _keeper(page_kept))
            kept[number] = page_kept
            chains[number] = chain
            events += chain.count
            last = max(last, chain.last)
            for other in range(shares):
                if other != share:  # encoded after its kind's byte, not copied behind it
                    message = bytearray(b"h")
                    _ENCODE.encode_into((chain, hints[other]), message, 1)
                    sender.send(other, message)
            hear_arrived()
            route()

    sender = HintSender(links, share)
    try:
        await judge_and_hear(sender)
    except BaseException:
        sender.abandon()
        raise
    await sender.finish()
    return events, last


def _keeper(into: list[tuple[int, str, Any]]) -> Keep:
    def keep(position: int, tenant: str, meaning: Any) -> None:
        into.append((position, tenant, meaning))
    return keep


async def _in_shares(conn: Any, work: LogRebuild, pages: LogPages, processes: int, connect: Connect) -> int:
    work.persons = await rebuild_links(conn, pages.total)
    work.owner_positions, work.mismatch_positions = {}, {}
    search_path = await conn.fetchval("SHOW search_path")
    links = Links(processes)
    context = multiprocessing.get_context("fork")
    workers: list[multiprocessing.process.BaseProcess] = []
    done = False
    try:
        for share in range(1, processes):
            worker = context.Process(
                target=_share_in_worker,
                args=(work, pages, share, links, search_path, os.getpid(), type(asyncio.get_running_loop())),
                name="lrs-replay-share", daemon=True,
            )
            worker.start()
            workers.append(worker)
        links.keep(0)
        count = page_count(pages.total, pages.page_size)
        read = await _read_all(work, own_pages(pages, 0, processes), count, 0, links, pages.reached, pages.walk)
        if count * pages.page_size >= pages.total:  # every page was read: the chain must reach the log's end
            pages.walk.end()
        if read[1] != pages.total:  # every process heard of the same pages: they all stopped there
            raise ReplayReadShort(
                f"the replay in shares read {read[0]} events up to position {read[1]}; the log ends at {pages.total}"
            )
        owned = [owned_hashes(work)]
        for share in range(1, processes):
            owned.append(_DECODE.decode((await receive(links.of(0, share), "what it owns"))[1:]))
        twice = sorted(collisions(owned))
        for share in range(1, processes):
            send(links, share, 0, _ENCODE.encode(twice))
        reported = [suspects(work, set(twice))]
        for share in range(1, processes):
            message = await receive(links.of(0, share), "its suspects")
            reported.append([tuple(s) for s in _DECODE.decode(message[1:])])  # type: ignore[misc]
        ours, *theirs = settle(reported)
        for share, verdict in enumerate(theirs, start=1):
            send(links, share, 0, _ENCODE.encode(verdict))
        give_up(work, *ours)
        await copy_statements(conn, work, voids=True)  # every process has every voiding: this one writes them
        async with _indexed_early(conn, connect, [links.of(0, share) for share in range(1, processes)]):
            await copy_share(conn, work, work.prepare())
        for share in range(1, processes):
            message = await receive(links.of(0, share), "its failed events")
            work.failed.extend(tuple(f) for f in _DECODE.decode(message[1:]))  # type: ignore[misc]
        done = True
    finally:
        for worker in workers:
            if not done and worker.is_alive():
                worker.kill()
            worker.join()
        for receiving, sending in links.pipes.values():
            receiving.close()
            sending.close()
    for worker in workers:
        if worker.exitcode != 0:  # it sent all it had to and then failed
            raise ReplayWorkerFailed(f"a replay share worker failed (exit code {worker.exitcode})")
    work.failed.sort()
    return read[1]


def _share_in_worker(work: LogRebuild, pages: LogPages, share: int, links: Links, search_path: str,
                     parent: int, loop_type: type[asyncio.AbstractEventLoop]) -> None:
    """The forked worker's body: an event loop of its own (the parent's is
    not usable after a fork) of the parent's ``loop_type`` (uvloop's under
    ``lrs replay``: asyncpg's protocol and the pipes' waits cost less on it
    than on asyncio's selector loop), and its own connection.  The
    collector stays off: what it reads is kept until its rows are copied."""
    gc.disable()
    worker_signals(parent)
    links.keep(share)
    loop = loop_type()
    try:
        loop.run_until_complete(_share_on_own_connection(work, pages, share, links, search_path))
    except BaseException as exc:
        try:
            report = pickle.dumps(exc)
        except Exception:
            report = pickle.dumps(ReplayWorkerFailed(f"{type(exc).__name__}: {exc}"[:2000]))
        links.send_error(share, report)  # whoever waits for this process learns why
        raise SystemExit(1) from None


async def _share_on_own_connection(
    work: LogRebuild, pages: LogPages, share: int, links: Links, search_path: str
) -> None:
    conn = await pages.connect()  # type: ignore[misc]
    try:
        await conn.execute(f"SET search_path TO {search_path}")
        await _read_all(
            work, own_pages(pages, share, links.shares, conn), page_count(pages.total, pages.page_size), share, links
        )
        parent = links.to(0, share)
        parent.send_bytes(b"r" + _ENCODE.encode(owned_hashes(work)))
        twice = set(_DECODE.decode(await receive(links.of(share, 0), "the collisions")))
        parent.send_bytes(b"s" + _ENCODE.encode(suspects(work, twice)))
        give_up(work, *_DECODE.decode(await receive(links.of(share, 0), "the verdicts")))
        await copy_statements(conn, work, voids=False)
        parent.send_bytes(b"c")  # its statements copied: they may be indexed
        await copy_share(conn, work, work.prepare())
        parent.send_bytes(b"d" + _ENCODE.encode(work.failed))
    finally:
        await conn.close()
