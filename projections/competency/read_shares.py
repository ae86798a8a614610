"""A replay's log read by every process, each keeping its share of the learners.

The learners are cut into ``processes`` shares by a hash of their key (of
the person an identifier is linked to at the end of the log, so that a
linked identifier's evidence lands where its person's does: the links are
rebuilt before the log is read).  This process and each worker forked then
read every page of the log from PostgreSQL, each on its own connection and
in position order.  Page k is judged by the process of share k mod
``processes``: it opens, decodes and judges each statement
(policy.judge: a voiding, evidence perhaps, whose), keeps its own learners'
evidence and every voiding, and sends each other process the indexes of the
events of that page it needs (its learners' statements that may be
evidence, the voidings), which that process opens and judges again.  So a
statement that is not evidence is opened once, one that is evidence at most
twice, and only the process whose share the learner is in builds its
evidence, routes it, folds the learner and copies the rows: both cores read
and fold, and while the log is read nothing travels between processes but
indexes (after it, the hashes of the ids each worker owns, and its failures).

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

Each worker reports how many events it read and the last position, which
must be this process's own: every process interprets the same log.  A worker
that raises or dies fails the replay (whoever waits for it learns why, or
sees its pipe end), which then swaps nothing in.  The replay checks what it
checked in one process: every process reads the log from PostgreSQL, the
record; the hash chain is ``lrs audit verify``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
import queue
import threading
import uuid
from typing import Any, AsyncIterator, Callable, Sequence

import msgspec

from lrs.payload_codec import open_payload
from lrs.store.identities import rebuild_links
from projections.competency.fold_shares import Connect, copy_learners, copy_share
from projections.competency.model import StatementVoided
from projections.competency.parallel_replay import (
    ReplayWorkerFailed, _widen, can_fork, ended_in_message, read_log, wait_readable, worker_signals,
)
from projections.competency.policy import evidence_of, judge, memo_limit
from projections.competency.rebuild import LogRebuild
from projections.competency.rows import MISMATCH_COLUMNS
from projections.competency.statement_view import decode_view
from projections.replay import LogPages, index_early

__all__ = ["MIN_SHARED_EVENTS", "REPLAY_MEMO_LIMIT", "collisions", "give_up", "judge_page", "rebuild_learners",
           "owned_hashes", "settle", "suspects", "take_hinted"]

MIN_SHARED_EVENTS = 20_000  # a shorter log is read here (a fork costs more than it saves)
# Pages judged by another process held while this one judges on, before it
# waits for their hints (each another process's page of stored payloads).
MAX_WAITING_PAGES = 8
# How long a process of those that failed lets the hint being written finish
# before it sends its error (the others read on unless they failed too).
HINTS_ABANDONED_SECONDS = 10.0
# A replay's memo of learner keys by actor: every learner of a log of this
# many actors is decoded once (the live projection's 8,192 made most
# evidence of a 20,000-learner log decode its actor again).  An entry
# costs about 200-300 bytes (the actor's JSON as key, its learner key), and
# every process of a replay in shares fills its own: up to about 300 MB each.
REPLAY_MEMO_LIMIT = 1 << 20

Page = Sequence[tuple[int, str, str, bytes]]
# Where a page's kept events go: (position, tenant, meaning), LogRebuild.take's arguments.
Keep = Callable[[int, str, Any], None]
# (tenant, statement id, owner's position, mismatches' position or -1)
Suspect = tuple[str, str, int, int]
_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder()
_HINTS = msgspec.msgpack.Decoder(list[int])


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
            await _receive(pipe, "that it copied its statements")
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


def judge_page(
    work: LogRebuild, page: Page, share: int, shares: int, hints: list[list[int]], keep: Keep | None = None
) -> None:
    """Judge every event of ``page`` (one this process judges): keep in
    ``work`` (or give ``keep``, to route later in log order) its own
    learners' evidence and every voiding, and keep in ``work`` the failures
    of the events it judges; the index of each event another share needs
    (its learners' statements that may be evidence, the voidings) goes to
    that share's list of ``hints``."""
    catalog, persons, failed = work.catalog, work.persons, work.failed
    take = work.take if keep is None else keep
    for index, (position, tenant, event_type, payload) in enumerate(page):
        if event_type != "statement":
            continue
        opened = open_payload(payload)  # a payload that does not open stops the replay
        try:
            view = decode_view(opened)
            judged = judge(view, catalog)
            if type(judged) is StatementVoided:
                uuid.UUID(judged.target_id)  # ids of other statements: stored as uuid columns
        except Exception as exc:  # the rules fail on it before its learner is known: parked here
            failed.append((position, tenant, repr(exc)))
            continue
        if judged is None:
            continue
        if type(judged) is StatementVoided:
            take(position, tenant, judged)
            for other, hinted in enumerate(hints):
                if other != share:
                    hinted.append(index)
            continue
        learner = judged[3]  # type: ignore[index]
        if persons:
            learner = persons.get((tenant, learner), learner)
        owner = hash(learner) % shares  # forked processes share the string hash's secret: the same share in each
        if owner != share:
            hints[owner].append(index)
            continue
        try:
            meaning = evidence_of(view, judged, catalog)  # type: ignore[arg-type]
        except Exception as exc:  # the rules fail on it: parked
            failed.append((position, tenant, repr(exc)))
            continue
        if meaning is not None:
            take(position, tenant, meaning)


def take_hinted(work: LogRebuild, page: Page, hinted: Sequence[int], keep: Keep | None = None) -> None:
    """Keep in ``work`` (or give ``keep``) the events of ``page`` at the
    indexes ``hinted`` by the process that judged it: statements of this
    share's learners that may be evidence, and voidings (judged there
    without failing: the rules are pure, so they do not fail here either)."""
    catalog = work.catalog
    take = work.take if keep is None else keep
    for index in hinted:
        position, tenant, _, payload = page[index]
        view = decode_view(open_payload(payload))
        judged = judge(view, catalog)
        if type(judged) is StatementVoided:
            take(position, tenant, judged)
            continue
        try:
            meaning = evidence_of(view, judged, catalog)  # type: ignore[arg-type]
        except Exception as exc:  # the rules fail on it: parked
            work.failed.append((position, tenant, repr(exc)))
            continue
        if meaning is not None:
            take(position, tenant, meaning)


def suspects(work: LogRebuild, collisions: set[int]) -> list[Suspect]:
    """The statements this share owns whose id's hash is among
    ``collisions`` (another share owns an id of that hash), with the
    positions that named their owner and mismatches."""
    assert work.owner_positions is not None and work.mismatch_positions is not None
    mismatched = work.mismatch_positions
    return [
        (tenant, statement_id, at, mismatched.get((tenant, statement_id), -1))
        for (tenant, statement_id), at in work.owner_positions.items() if hash(statement_id) in collisions
    ]


def collisions(owned: Sequence[Sequence[int]]) -> set[int]:
    """The hashes of statement ids that more than one of the shares' ``owned`` lists holds."""
    seen: set[int] = set()
    twice: set[int] = set()
    for hashes in owned:
        mine = set(hashes)
        twice |= seen & mine
        seen |= mine
    return twice


def owned_hashes(work: LogRebuild) -> list[int]:
    return [hash(statement_id) for _, statement_id in work.owners]


def settle(reported: Sequence[Sequence[Suspect]]) -> list[tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """For each share's ``reported`` suspects, the statements whose owner and
    whose mismatches it gives up: the first position in the log wins, as in
    one process."""
    owner: dict[tuple[str, str], tuple[int, int]] = {}  # statement -> (position, share)
    mismatch: dict[tuple[str, str], tuple[int, int]] = {}
    for share, entries in enumerate(reported):
        for tenant, statement_id, at, mismatch_at in entries:
            key = (tenant, statement_id)
            if key not in owner or at < owner[key][0]:
                owner[key] = (at, share)
            if mismatch_at >= 0 and (key not in mismatch or mismatch_at < mismatch[key][0]):
                mismatch[key] = (mismatch_at, share)
    verdicts = []
    for share, entries in enumerate(reported):
        keys = [(tenant, statement_id) for tenant, statement_id, _, _ in entries]
        verdicts.append((
            [key for key in keys if owner[key][1] != share],
            [key for key in keys if key in mismatch and mismatch[key][1] != share],
        ))
    return verdicts


def give_up(work: LogRebuild, owners: Sequence[Sequence[str]], mismatches: Sequence[Sequence[str]]) -> None:
    """Forget the owners and mismatches of the statements :func:`settle` gave to another share."""
    for tenant, statement_id in owners:
        del work.owners[(tenant, statement_id)]
    for tenant, statement_id in mismatches:
        work.mismatches.pop((tenant, statement_id), None)


class _Links:
    """The pipes between the processes of a replay read in shares: one each
    way between every two, each read by one process and written by one."""

    def __init__(self, shares: int) -> None:
        context = multiprocessing.get_context("fork")
        self.shares = shares
        self.pipes = {(a, b): context.Pipe(duplex=False) for a in range(shares) for b in range(shares) if a != b}
        for receiving, _ in self.pipes.values():
            _widen(receiving)

    def keep(self, share: int) -> None:
        """Close every end ``share``'s process does not use (so that it sees
        the end of a pipe whose writer died)."""
        for (a, b), (receiving, sending) in self.pipes.items():
            if b != share:
                receiving.close()
            if a != share:
                sending.close()

    def to(self, share: int, frm: int) -> Any:
        return self.pipes[(frm, share)][1]

    def of(self, share: int, frm: int) -> Any:
        return self.pipes[(frm, share)][0]


async def _receive(pipe: Any, what: str) -> bytes:
    """The next message on ``pipe``; ReplayWorkerFailed when its writer ended
    first, what it raised when it sent that."""
    await wait_readable([pipe])
    return _received(pipe.recv_bytes, what)


def _send(links: _Links, share: int, frm: int, message: bytes) -> None:
    """Send ``message`` from share ``frm`` to ``share``.  A broken pipe means
    that share's process has ended: see :func:`_ended`."""
    try:
        links.to(share, frm).send_bytes(message)
    except BrokenPipeError:
        _ended(links, share, frm)


def _ended(links: _Links, share: int, frm: int) -> None:
    """Raise what the process of ``share``, which has ended, sent ``frm``
    before it ended (its error), or ReplayWorkerFailed when it was killed,
    rather than the broken pipe ``frm`` met writing to it (which of the two
    a process meets is a matter of timing)."""
    pipe = links.of(frm, share)
    while True:  # what it sent before its error (hints, reports) is of no use now
        _received(pipe.recv_bytes, "its error")


class _HintSender:
    """The hints a process of a replay read in shares sends while it reads,
    written by a thread of their own: a process blocked writing hints to a
    full pipe would not read the other's, and two such processes would wait
    on each other for ever (a page's hints are a few KB to tens of KB,
    against a pipe of 64 KB or less when it could not be widened)."""

    def __init__(self, links: _Links, share: int) -> None:
        self.links, self.share = links, share
        self.outbox: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self.ended: list[int] = []  # the shares whose pipe broke: their process ended
        loop = asyncio.get_running_loop()
        self.written = loop.create_future()
        self.thread = threading.Thread(
            target=self._write, args=(lambda: loop.call_soon_threadsafe(self.written.set_result, None),),
            name="lrs-replay-hints", daemon=True,
        )
        self.thread.start()

    def send(self, other: int, message: bytes) -> None:
        self.outbox.put((other, message))

    def _write(self, done: Callable[[], None]) -> None:
        try:
            while (item := self.outbox.get()) is not None:
                other, message = item
                if other not in self.ended:
                    try:
                        self.links.to(other, self.share).send_bytes(message)
                    except BrokenPipeError:
                        self.ended.append(other)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                done()

    async def finish(self) -> None:
        """Once every hint is written (the others read them as they read
        on); what an ended process sent, if one did."""
        self.outbox.put(None)
        await self.written
        for other in self.ended:
            _ended(self.links, other, self.share)

    def abandon(self) -> None:
        """After a failure here: the hints queued are not sent, the one being
        written is let finish (for a while) so that the error sent next does
        not land in the middle of it."""
        while not self.outbox.empty():
            with contextlib.suppress(queue.Empty):
                self.outbox.get_nowait()
        self.outbox.put(None)
        self.thread.join(HINTS_ABANDONED_SECONDS)


def _received(recv: Callable[[], bytes], what: str) -> bytes:
    """The message ``recv`` reads from a pipe: ReplayWorkerFailed when its
    writer ended first, what it raised when it sent that."""
    try:
        message: bytes = recv()
    except EOFError:
        raise ReplayWorkerFailed(f"a replay share process ended before sending {what}") from None
    except OSError as exc:
        if not ended_in_message(exc):
            raise
        raise ReplayWorkerFailed(f"a replay share process ended while sending {what}") from None
    if message[:1] == b"e":
        raise pickle.loads(message[1:])
    return message


async def _read_all(
    work: LogRebuild, pages: AsyncIterator[Page], share: int, links: _Links
) -> tuple[int, int]:
    """Every page into ``work``: page k is judged by the process of share k
    mod shares, which sends every other its hints; (events read, last position).

    A process judges its own pages without waiting for the others' hints
    (waiting for them page by page made the processes judge one page at a
    time, in turn): a page judged elsewhere waits here, up to
    MAX_WAITING_PAGES of them, until its hints come, and what each page
    keeps is routed into ``work`` in page order, so "first" means what it
    means in one process."""
    shares = links.shares
    events = last = 0
    number = 0
    waiting: dict[int, Page] = {}  # judged elsewhere, its hints not yet here
    hinted: dict[int, list[int]] = {}  # hints come, their page not yet read here
    heard = [0] * shares  # hints received from each judge (its pages share, share + shares, ...)
    kept: dict[int, list[tuple[int, str, Any]]] = {}  # by page number, not yet routed
    routed = 0

    def match(at: int) -> None:
        if at in waiting and at in hinted:
            page_kept: list[tuple[int, str, Any]] = []
            keep = _keeper(page_kept)
            take_hinted(work, waiting.pop(at), hinted.pop(at), keep)
            kept[at] = page_kept

    def hear(judge_of: int, message: bytes) -> None:
        at = judge_of + heard[judge_of] * shares
        heard[judge_of] += 1
        hinted[at] = _HINTS.decode(message[1:])
        match(at)

    def hear_arrived(upto: int) -> None:
        """The hints already sent of the pages up to ``upto`` (read here):
        what a judge sends after its last page's hints is not read here."""
        for other in range(shares):
            if other != share:
                pipe = links.of(share, other)
                while other + heard[other] * shares <= upto and pipe.poll():
                    hear(other, _received(pipe.recv_bytes, "hints"))

    def route() -> None:
        nonlocal routed
        take = work.take
        while routed in kept:
            for position, tenant, meaning in kept.pop(routed):
                take(position, tenant, meaning)
            routed += 1

    async def hear_page(at: int) -> None:
        judge_of = at % shares
        while at in waiting:
            hear(judge_of, await _receive(links.of(share, judge_of), f"the hints of page {at}"))

    async def judge_and_hear(sender: _HintSender) -> None:
        nonlocal events, last, number
        async for page in pages:
            if not page:
                continue
            events += len(page)
            last = page[-1][0]
            judge_of = number % shares
            if judge_of == share:
                hints: list[list[int]] = [[] for _ in range(shares)]
                page_kept: list[tuple[int, str, Any]] = []
                judge_page(work, page, share, shares, hints, _keeper(page_kept))
                kept[number] = page_kept
                for other in range(shares):
                    if other != share:
                        sender.send(other, b"h" + _ENCODE.encode(hints[other]))
            else:
                waiting[number] = page
                match(number)
            hear_arrived(number)
            while len(waiting) > MAX_WAITING_PAGES:
                await hear_page(min(waiting))
            route()
            number += 1
        for at in sorted(waiting):
            await hear_page(at)
        route()

    sender = _HintSender(links, share)
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
    links = _Links(processes)
    context = multiprocessing.get_context("fork")
    workers: list[multiprocessing.process.BaseProcess] = []
    done = False
    try:
        for share in range(1, processes):
            worker = context.Process(
                target=_share_in_worker, args=(work, pages, share, links, search_path, os.getpid()),
                name="lrs-replay-share", daemon=True,
            )
            worker.start()
            workers.append(worker)
        links.keep(0)
        read = await _read_all(work, pages, 0, links)
        reports = [await _receive(links.of(0, share), "what it read") for share in range(1, processes)]
        owned = [owned_hashes(work)]
        for share, message in enumerate(reports, start=1):
            events, last, hashes = _DECODE.decode(message[1:])
            if (events, last) != read:
                raise ReplayWorkerFailed(
                    f"the replay's share {share} read {events} events up to position {last}, "
                    f"share 0 {read[0]} up to {read[1]}"
                )
            owned.append(hashes)
        twice = sorted(collisions(owned))
        for share in range(1, processes):
            _send(links, share, 0, _ENCODE.encode(twice))
        reported = [suspects(work, set(twice))]
        for share in range(1, processes):
            message = await _receive(links.of(0, share), "its suspects")
            reported.append([tuple(s) for s in _DECODE.decode(message[1:])])  # type: ignore[misc]
        ours, *theirs = settle(reported)
        for share, verdict in enumerate(theirs, start=1):
            _send(links, share, 0, _ENCODE.encode(verdict))
        give_up(work, *ours)
        await copy_statements(conn, work, voids=True)  # every process has every voiding: this one writes them
        async with _indexed_early(conn, connect, [links.of(0, share) for share in range(1, processes)]):
            await copy_share(conn, work, work.prepare())
        for share in range(1, processes):
            message = await _receive(links.of(0, share), "its failed events")
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


def _share_in_worker(work: LogRebuild, pages: LogPages, share: int, links: _Links, search_path: str,
                     parent: int) -> None:
    """The forked worker's body: its own selector event loop (the parent's
    is not usable after a fork) and its own connection.  The collector
    stays off: what it reads is kept until its rows are copied."""
    gc.disable()
    worker_signals(parent)
    links.keep(share)
    loop = asyncio.SelectorEventLoop()
    try:
        loop.run_until_complete(_share_on_own_connection(work, pages, share, links, search_path))
    except BaseException as exc:
        try:
            report = pickle.dumps(exc)
        except Exception:
            report = pickle.dumps(ReplayWorkerFailed(f"{type(exc).__name__}: {exc}"[:2000]))
        for other in range(links.shares):  # whoever waits for this process learns why
            if other != share:
                with contextlib.suppress(OSError):
                    links.to(other, share).send_bytes(b"e" + report)
        raise SystemExit(1) from None


async def _share_on_own_connection(
    work: LogRebuild, pages: LogPages, share: int, links: _Links, search_path: str
) -> None:
    conn = await pages.connect()  # type: ignore[misc]
    try:
        await conn.execute(f"SET search_path TO {search_path}")
        events, last = await _read_all(work, pages.between(0, pages.total, conn), share, links)
        parent = links.to(0, share)
        parent.send_bytes(b"r" + _ENCODE.encode((events, last, owned_hashes(work))))
        twice = set(_DECODE.decode(await _receive(links.of(share, 0), "the collisions")))
        parent.send_bytes(b"s" + _ENCODE.encode(suspects(work, twice)))
        give_up(work, *_DECODE.decode(await _receive(links.of(share, 0), "the verdicts")))
        await copy_statements(conn, work, voids=False)
        parent.send_bytes(b"c")  # its statements copied: they may be indexed
        await copy_share(conn, work, work.prepare())
        parent.send_bytes(b"d" + _ENCODE.encode(work.failed))
    finally:
        await conn.close()
