"""A replay's log read whole by every process, each keeping its share of the learners.

The learners are cut into ``processes`` shares by a hash of their key (of
the person an identifier is linked to at the end of the log, so that a
linked identifier's evidence lands where its person's does: the links are
rebuilt before the log is read).  This process and each worker forked then
read every event of the log from PostgreSQL, each on its own connection and
in position order, open and decode each statement and judge it
(policy.judge: is it a voiding, could it be evidence, whose); only the
process whose share the learner is in builds its evidence, routes it, folds
the learner and copies the rows.  So both cores read and fold, and nothing
read is sent between processes: what every process repeats is reading the
page, opening the zstd frame and decoding the fields the rules read, about
3.5 µs an event; the evidence, routing, fold and copy (most of a replay's
work when statements are evidence) are done once.

What "first" means in the log stays as it is in one process:

- every process reads every voiding and keeps the first one per target, as
  one process would; each routes those whose target is evidence of its
  share, and this process writes the voidings' table;
- the first statement with an id names its learner (and its mismatches):
  each process notes the ids of the statements it left to others, and an
  id that is also evidence in another share (a statement id written twice
  in the log) is settled once everything is read by comparing the
  positions across processes;
- an event the rules fail on is parked by one process: the one whose share
  its learner is in, or, when the failure comes before its learner is
  known, the one its position falls to; the failures are merged in log order.

Each worker reports how many events it read and the last position, which
must be this process's own: every process interprets the same log.  A worker
that raises or dies fails the replay, which then swaps nothing in.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import pickle
import uuid
from typing import Any, AsyncIterator, Sequence

import msgspec

from lrs.payload_codec import open_payload
from lrs.store.identities import rebuild_links
from projections.competency.fold_shares import Connect, copy_learners, copy_share
from projections.competency.model import StatementVoided
from projections.competency.parallel_replay import (
    ReplayWorkerFailed, can_fork, fork_with_pipe, read_log, stop_forked, worker_signals,
)
from projections.competency.policy import evidence_of, judge, memo_limit
from projections.competency.rebuild import LogRebuild
from projections.competency.rows import MISMATCH_COLUMNS
from projections.competency.statement_view import decode_view
from projections.replay import LogPages

__all__ = ["MIN_SHARED_EVENTS", "REPLAY_MEMO_LIMIT", "rebuild_learners", "read_share", "settle"]

MIN_SHARED_EVENTS = 20_000  # a shorter log is read here (a fork costs more than it saves)
# A replay's memo of learner keys by actor: every learner of a log of this
# many actors is decoded once (the live projection's 8,192 made most
# evidence of a 20,000-learner log decode its actor again).
REPLAY_MEMO_LIMIT = 1 << 20

Page = Sequence[tuple[int, str, str, bytes]]
# (tenant, statement id, owner's position, mismatches' position or -1)
Suspect = tuple[str, str, int, int]
_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder()


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
            return await _in_shares(conn, work, pages, processes, connect)
        position = await read_log(work, pages, readers)
        # each statement's evidence goes to the person its actor is linked to at the end
        work.persons = await rebuild_links(conn, position)
        await copy_statements(conn, work, voids=True)
        await copy_learners(conn, work, processes, connect)
        return position


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


def read_share(work: LogRebuild, page: Page, share: int, shares: int, elsewhere: set[str]) -> None:
    """Keep in ``work`` what the events of ``page`` mean for the learners of
    ``share`` (of ``shares``), every voiding, and the failures that fall to
    it; the ids of statements that may be evidence of another share go to
    ``elsewhere``."""
    catalog, take, persons, failed = work.catalog, work.take, work.persons, work.failed
    for position, tenant, event_type, payload in page:
        if event_type != "statement":
            continue
        opened = open_payload(payload)  # a payload that does not open stops the replay, in any process
        try:
            view = decode_view(opened)
            judged = judge(view, catalog)
            if type(judged) is StatementVoided:
                uuid.UUID(judged.target_id)  # ids of other statements: stored as uuid columns
        except Exception as exc:  # every process fails on it here: one parks it
            if position % shares == share:
                failed.append((position, tenant, repr(exc)))
            continue
        if judged is None:
            continue
        if type(judged) is StatementVoided:
            take(position, tenant, judged)
            continue
        learner = judged[3]  # type: ignore[index]
        if persons:
            learner = persons.get((tenant, learner), learner)
        if hash(learner) % shares != share:
            elsewhere.add(judged[0])  # type: ignore[index]
            continue
        try:
            meaning = evidence_of(view, judged, catalog)  # type: ignore[arg-type]
        except Exception as exc:  # the rules fail on it: parked
            failed.append((position, tenant, repr(exc)))
            continue
        if meaning is not None:
            take(position, tenant, meaning)


def suspects(work: LogRebuild, elsewhere: set[str]) -> list[Suspect]:
    """The statements of this share whose id another share may have as
    evidence too, with the positions that named their owner and mismatches."""
    assert work.owner_positions is not None and work.mismatch_positions is not None
    mismatched = work.mismatch_positions
    return [
        (tenant, statement_id, at, mismatched.get((tenant, statement_id), -1))
        for (tenant, statement_id), at in work.owner_positions.items() if statement_id in elsewhere
    ]


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


def _give_up(work: LogRebuild, owners: Sequence[Sequence[str]], mismatches: Sequence[Sequence[str]]) -> None:
    for tenant, statement_id in owners:
        del work.owners[(tenant, statement_id)]
    for tenant, statement_id in mismatches:
        work.mismatches.pop((tenant, statement_id), None)


async def _read_all(work: LogRebuild, pages: AsyncIterator[Page], share: int, shares: int,
                    elsewhere: set[str]) -> tuple[int, int]:
    """Every page into ``work`` (read_share); (events read, last position)."""
    events = last = 0
    async for page in pages:
        if page:
            events += len(page)
            last = page[-1][0]
            read_share(work, page, share, shares, elsewhere)
    return events, last


async def _in_shares(conn: Any, work: LogRebuild, pages: LogPages, processes: int, connect: Connect) -> int:
    work.persons = await rebuild_links(conn, pages.total)
    work.owner_positions, work.mismatch_positions = {}, {}
    search_path = await conn.fetchval("SHOW search_path")
    workers: list[_ShareWorker] = []
    try:
        for share in range(1, processes):
            workers.append(_ShareWorker.start(work, pages, share, processes, search_path))
        elsewhere: set[str] = set()
        read = await _read_all(work, pages, 0, processes, elsewhere)
        reported = [suspects(work, elsewhere)]
        for worker in workers:
            events, last, theirs = await worker.receive(b"s")
            if (events, last) != read:
                raise ReplayWorkerFailed(
                    f"a replay worker read {events} events up to position {last}, this process {read[0]} up to {read[1]}"
                )
            reported.append([tuple(s) for s in theirs])  # type: ignore[misc]
        ours, *theirs = settle(reported)
        for worker, verdict in zip(workers, theirs):
            worker.send(verdict)
        _give_up(work, *ours)
        await copy_statements(conn, work, voids=True)  # every process has every voiding: this one writes them
        await copy_share(conn, work, work.prepare())
        for worker in workers:
            _, failed = await worker.receive(b"d")
            work.failed.extend(tuple(f) for f in failed)
    finally:
        for worker in workers:
            worker.stop()
    work.failed.sort()
    return read[1]


class _ShareWorker:
    """A forked process reading the whole log and keeping one share of the
    learners: it reports what it read and its suspects, takes the verdicts,
    then folds and copies its share, and reports its failed events."""

    def __init__(self, process: multiprocessing.process.BaseProcess, pipe: Any, verdicts: Any) -> None:
        self.process = process
        self.pipe = pipe
        self.verdicts = verdicts

    @classmethod
    def start(cls, work: LogRebuild, pages: LogPages, share: int, shares: int, search_path: str) -> "_ShareWorker":
        receiving, verdicts = multiprocessing.Pipe(duplex=False)
        process, pipe = fork_with_pipe(_share_in_worker, (work, pages, share, shares, search_path, receiving),
                                       "lrs-replay-share")
        receiving.close()
        return cls(process, pipe, verdicts)

    async def receive(self, kind: bytes) -> Any:
        """The worker's next report, of ``kind``; raises what it raised, or ReplayWorkerFailed."""
        if not self.pipe.poll():
            loop = asyncio.get_running_loop()
            readable = loop.create_future()
            loop.add_reader(self.pipe.fileno(), lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(self.pipe.fileno())
        try:
            message = self.pipe.recv_bytes()
        except EOFError:
            self.process.join()
            raise ReplayWorkerFailed(
                f"a replay share worker ended before its share was copied (exit code {self.process.exitcode})"
            ) from None
        if message[:1] == b"e":
            raise pickle.loads(message[1:])
        if message[:1] != kind:
            raise ReplayWorkerFailed(f"a replay share worker sent {message[:1]!r}, not {kind!r}")
        return _DECODE.decode(message[1:])

    def send(self, verdict: Any) -> None:
        self.verdicts.send_bytes(_ENCODE.encode(verdict))

    def stop(self) -> None:
        stop_forked(self.process, self.pipe)
        self.verdicts.close()


def _share_in_worker(
    work: LogRebuild, pages: LogPages, share: int, shares: int, search_path: str, verdicts: Any,
    sender: Any, parent: int,
) -> None:
    """The forked worker's body: its own selector event loop (the parent's
    is not usable after a fork) and its own connection.  The collector
    stays off: what it reads is kept until its rows are copied."""
    gc.disable()
    worker_signals(parent)
    loop = asyncio.SelectorEventLoop()
    try:
        loop.run_until_complete(_share_on_own_connection(work, pages, share, shares, search_path, verdicts, sender))
    except BaseException as exc:
        try:
            report = pickle.dumps(exc)
        except Exception:
            report = pickle.dumps(ReplayWorkerFailed(f"{type(exc).__name__}: {exc}"[:2000]))
        sender.send_bytes(b"e" + report)
        raise SystemExit(1) from None


async def _share_on_own_connection(
    work: LogRebuild, pages: LogPages, share: int, shares: int, search_path: str, verdicts: Any, sender: Any
) -> None:
    conn = await pages.connect()  # type: ignore[misc]
    try:
        await conn.execute(f"SET search_path TO {search_path}")
        elsewhere: set[str] = set()
        events, last = await _read_all(work, pages.between(0, pages.total, conn), share, shares, elsewhere)
        sender.send_bytes(b"s" + _ENCODE.encode((events, last, suspects(work, elsewhere))))
        _give_up(work, *_DECODE.decode(verdicts.recv_bytes()))
        await copy_statements(conn, work, voids=False)
        await copy_share(conn, work, work.prepare())
        sender.send_bytes(b"d" + _ENCODE.encode((0, work.failed)))
    finally:
        await conn.close()
