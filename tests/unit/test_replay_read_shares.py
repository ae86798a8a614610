"""A log read whole by every process of a replay, each keeping its share of
the learners (projections/competency/read_shares.py), rebuilds what one
process rebuilds: the same learners folded once each, statement owners and
mismatches named by the first statement with an id even when an id is
written twice for learners of different shares, every voiding, and every
failed event parked once."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any, Callable

import msgspec
import pytest

from projections.competency import read_shares, share_pipes
from projections.competency.share_judging import (
    Hinted, VoidingHint, collisions, give_up, judge_page, owned_hashes, settle, suspects, take_hinted,
)
from projections.competency.rebuild import LogRebuild
from projections.log_chain import PageChain
from tests.unit.test_competency_rebuild import CATALOG, COURSE, _log

MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
Log = list[tuple[int, str, str, bytes]]


Persons = dict[tuple[str, str], str]
LINKED = "mailto:l1@example.gov.vn"  # an identifier with evidence of its own


def _persons(count: int) -> Persons:
    """LINKED linked to a person whose share of ``count`` is not its own.
    The shares follow the string hash, which changes from one interpreter
    to the next: the learners are picked for the shares, whatever the hash."""
    person = next(f"mailto:l{n}@example.gov.vn" for n in range(5, 64)
                  if hash(f"mbox:mailto:l{n}@example.gov.vn") % count != hash(f"mbox:{LINKED}") % count)
    return {("default", f"mbox:{LINKED}"): f"mbox:{person}"}


def _share(tenant: str, mbox: str, count: int, persons: Persons) -> int:
    """The share of ``count`` a statement by ``mbox`` goes to: that of its
    person (share_judging.judge_page)."""
    learner = f"mbox:{mbox}"
    return hash(persons.get((tenant, learner), learner)) % count


def _log_with_ids_written_twice(seed: int, count: int, persons: Persons) -> Log:
    """_log, with some statements written again under the same id for a
    learner of another of ``count`` shares (a masteryscore of their own on
    some), statements of LINKED's person, a statement the rules cannot
    decode, and a voiding of something that is not an id."""
    rng = random.Random(seed)
    log = _log(seed, 240)
    bodies = [(t, msgspec.json.decode(p)) for _, t, kind, p in log if kind == "statement"]
    evidence = [(t, b) for t, b in bodies if b.get("verb", {}).get("id", "").endswith(("passed", "completed"))
                and b["object"]["id"].startswith(COURSE) and not b["object"]["id"].endswith("not-aligned")]
    extra: list[tuple[str, dict[str, Any]]] = []
    for tenant, body in rng.sample(evidence, 12):
        share = _share(tenant, body["actor"]["mbox"], count, persons)
        others = [mbox for mbox in (f"mailto:l{n}@example.gov.vn" for n in range(5, 64))
                  if _share(tenant, mbox, count, persons) != share]
        again = dict(body, actor={"mbox": rng.choice(others)})
        if rng.random() < 0.5:
            again["context"] = {"extensions": {MASTERY: 0.99}}
        extra.append((tenant, again))
    person = persons[("default", f"mbox:{LINKED}")].removeprefix("mbox:")
    for _, body in rng.sample([(t, b) for t, b in evidence if t == "default"], 3):  # the person's own
        extra.append(("default", dict(body, id=str(uuid.UUID(int=rng.getrandbits(128))), actor={"mbox": person})))
    extra.append(("default", {"id": 5, "actor": {"mbox": "mailto:l1@example.gov.vn"}}))
    extra.append(("default", {"id": "1c3c8b5e-7a0e-4b5f-9a55-6f1c2b9d0e11", "actor": {"mbox": "mailto:l2@example.gov.vn"},
                              "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                              "object": {"objectType": "StatementRef", "id": "not an id"}}))
    events = [(t, kind, p) for _, t, kind, p in log] + [(t, "statement", msgspec.json.encode(b)) for t, b in extra]
    tail = events[len(log):]
    events = events[:len(log)]
    for item in tail:  # the second copies before and after the first ones
        events.insert(rng.randrange(len(events) + 1), item)
    return [(i + 1, t, kind, p) for i, (t, kind, p) in enumerate(events)]


def _in_shares(log: Log, count: int, persons: dict[tuple[str, str], str], *, settled: bool = True) -> list[LogRebuild]:
    """The processes of a replay in shares, one after another on each page:
    page k judged by share k mod ``count``, the others taking its hints
    (and, ``settled``, the ids owned twice settled)."""
    parts = [LogRebuild(CATALOG, persons=persons, owner_positions={}, mismatch_positions={}) for _ in range(count)]
    for number, start in enumerate(range(0, len(log), 7)):
        page = log[start:start + 7]
        judging = number % count
        hints: list[list[Hinted]] = [[] for _ in range(count)]
        judge_page(parts[judging], page, judging, count, hints)
        assert hints[judging] == []
        for share, work in enumerate(parts):
            if share != judging:
                take_hinted(work, hints[share])
    if not settled:
        return parts
    twice = collisions([owned_hashes(work) for work in parts])
    reported = [suspects(work, twice) for work in parts]
    assert sum(map(len, reported)) >= 2  # ids written twice, in two shares
    for work, verdict in zip(parts, settle(reported)):
        give_up(work, *verdict)
    return parts


@pytest.mark.parametrize("seed, count", [(0, 2), (1, 2), (2, 3), (3, 2), (4, 4)])
def test_shares_of_the_learners_rebuild_what_one_process_rebuilds(seed: int, count: int) -> None:
    persons = _persons(count)
    log = _log_with_ids_written_twice(seed, count, persons)
    one = LogRebuild(CATALOG, persons=dict(persons))
    for event in log:
        one.add(*event)
    folded = {key: one.fold(key) for key in one.prepare()}

    parts = _in_shares(log, count, persons)
    mine: dict[Any, Any] = {}
    for work in parts:
        for key in work.prepare():
            assert key not in mine  # each learner in one share
            mine[key] = work.fold(key)
    assert mine == folded
    assert sum(bool(work.events) for work in parts) >= 2  # learners in more than one share
    assert sorted(row for work in parts for row in work.owner_rows()) == sorted(one.owner_rows())
    assert sorted(row for work in parts for row in work.mismatch_rows()) == sorted(one.mismatch_rows())
    assert one.mismatch_rows()
    assert all(work.voiding_rows() == one.voiding_rows() for work in parts) and one.voiding_rows()
    assert sorted(failure for work in parts for failure in work.failed) == one.failed
    assert len(one.failed) >= 3  # not a time (perhaps twice), an id that is not a string, a voided id that is not an id


def test_collisions_are_the_hashes_more_than_one_share_owns() -> None:
    assert collisions([[1, 2, 3], [3, 4], [4, 5, 1], []]) == {1, 3, 4}
    assert collisions([[1, 2], [3]]) == set()


def test_the_first_position_names_the_owner_and_the_mismatches() -> None:
    # (tenant, id, owner's position, mismatches' position or -1) as each share reported them
    reported = [
        [("t", "a", 10, -1), ("t", "b", 30, 30)],
        [("t", "a", 20, 20), ("t", "b", 5, -1)],
        [("t", "b", 7, 7)],
    ]
    # a: owner at 10 (share 0), mismatches at 20 (share 1); b: owner at 5 (share 1), mismatches at 7 (share 2)
    assert settle(reported) == [
        ([("t", "b")], [("t", "a"), ("t", "b")]),
        ([("t", "a")], [("t", "b")]),
        ([("t", "b")], []),
    ]


def _chain(page: Log) -> PageChain:
    """A page's chain as its reader found it, intact (these logs carry no hashes)."""
    return PageChain(len(page), page[0][0] if page else 0, b"", page[-1][0] if page else 0, b"", None)


async def _pages(pages: list[Log]) -> Any:
    for page in pages:
        yield page, _chain(page)


@pytest.mark.parametrize("seed", [0, 3])
async def test_a_process_reading_its_share_judges_on_while_the_other_judges_and_keeps_log_order(seed: int) -> None:
    """Share 0 of two reads its pages of the log (read_shares._read_all)
    when share 1 has already judged every page of its own and sent its hints
    and then what it read: share 0 judges all its pages without waiting page by page,
    routes what it keeps in log order (as the page-by-page order of
    _in_shares gives), and leaves the message after the hints unread."""
    persons = _persons(2)
    log = _log_with_ids_written_twice(seed, 2, persons)
    expected = _in_shares(log, 2, persons, settled=False)[0]
    links = share_pipes.Links(2)
    other = LogRebuild(CATALOG, persons=persons, owner_positions={}, mismatch_positions={})
    pages = [log[start:start + 7] for start in range(0, len(log), 7)]
    for number in range(1, len(pages), 2):  # every page of share 1, judged before share 0 starts
        hints: list[list[Hinted]] = [[], []]
        judge_page(other, pages[number], 1, 2, hints)
        links.to(0, 1).send_bytes(b"h" + msgspec.msgpack.encode((_chain(pages[number]), hints[0])))
    links.to(0, 1).send_bytes(b"r what it read")
    waited: list[int] = []
    receive = read_shares.receive

    async def counting(pipe: Any, what: str) -> bytes:
        waited.append(1)
        return await receive(pipe, what)

    work = LogRebuild(CATALOG, persons=persons, owner_positions={}, mismatch_positions={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(read_shares, "receive", counting)
        assert await read_shares._read_all(work, _pages(pages[::2]), len(pages), 0, links) == (len(log), log[-1][0])
    assert waited == []  # every hint was there when its page was read
    assert links.of(0, 1).recv_bytes() == b"r what it read"
    assert work.events == expected.events and work.owners == expected.owners and work.voids == expected.voids
    assert list(work.owner_positions.items()) == list(expected.owner_positions.items())  # type: ignore[union-attr]
    assert work.mismatches == expected.mismatches and sorted(work.failed) == sorted(expected.failed)


class _Pages:
    """LogPages over a list (its fetch as its SELECT: the positions in a range, at most a page)."""

    def __init__(self, log: Log, page_size: int) -> None:
        self.log, self.page_size, self.total = log, page_size, log[-1][0]
        self.fetched: list[tuple[int, int]] = []
        self.progress: list[int] = []

    async def fetch(self, after: int, upto: int, conn: Any = None) -> tuple[Log, PageChain]:
        self.fetched.append((after, upto))
        page = [e for e in self.log if after < e[0] <= upto][:self.page_size]
        return page, _chain(page)

    def reached(self, position: int) -> None:
        self.progress.append(position)


@pytest.mark.parametrize("shares", [2, 3])
async def test_each_share_reads_its_own_pages_of_positions_once_in_order(shares: int) -> None:
    """read_shares.own_pages: page k is the positions k * size < p <= (k + 1) * size,
    read by share k mod shares only (fewer events where positions were
    skipped, none in a page of skipped positions); the shares' pages
    together are the log, each event once."""
    log = [(p, "t", "statement", b"{}") for p in range(1, 104) if not (p % 5 == 0 or 21 <= p <= 30)]
    count = read_shares.page_count(103, 10)
    assert count == 11
    read: dict[int, Log] = {}
    for share in range(shares):
        pages = _Pages(log, 10)
        own = [page async for page, _ in read_shares.own_pages(pages, share, shares)]  # type: ignore[arg-type]
        assert pages.fetched == [(k * 10, min(k * 10 + 10, 103)) for k in range(share, count, shares)]
        assert pages.progress == []  # _read_all reports it, in page order
        read.update(zip(range(share, count, shares), own))
    assert [e for k in range(count) for e in read[k]] == log
    assert read[2] == [] and len(read[0]) == 8


async def test_what_a_rebuild_read_is_freed_a_slice_at_a_time_after_it() -> None:
    """read_shares.release_later: the rebuild's evidence is handed over at
    once (the replay goes on to its index builds) and freed while the event
    loop is idle, RELEASED_PER_SLICE learners a turn."""
    work = LogRebuild(CATALOG, owner_positions={}, mismatch_positions={})
    for position, tenant, kind, payload in _log(5, 400):
        work.add(position, tenant, kind, payload)
    events = work.events = {**work.events, **{("t", f"learner {n}"): [] for n in range(2500)}}
    owners = work.owners
    assert len(events) > 2500 and owners
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(read_shares, "RELEASED_PER_SLICE", 1000)
        read_shares.release_later(work)
        assert work.events == {} and work.owners == {} and work.voids == {} and work.positions == {}
        before = len(events)
        assert before > 2500  # nothing freed yet
        await asyncio.sleep(0)
        assert len(events) == before - 1000
        await asyncio.sleep(0)
        assert len(events) == before - 2000
        await asyncio.gather(*read_shares._releasing)
    assert events == {} and owners == {}


def _read_share_in_fork(share: int, links: Any, log: Log, run: Callable[[Any], Any]) -> None:
    """A forked process reading ``log`` in pages of 3,000 as share ``share``
    of two, its event loop run by ``run``; exit code 0 when it read it all."""
    links.keep(share)
    work = LogRebuild(CATALOG, owner_positions={}, mismatch_positions={})
    pages = [log[start:start + 3000] for start in range(0, len(log), 3000)]
    read = run(read_shares._read_all(work, _pages(pages[share::2]), len(pages), share, links))
    raise SystemExit(0 if read == (len(log), log[-1][0]) else 3)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_two_shares_whose_hints_outgrow_their_pipes_do_not_wait_for_each_other_for_ever(loop: str) -> None:
    """Each page's hints are larger than a pipe holds (a pipe that could not
    be widened: 64 KB, or 4 KB once the user's pipes are over their soft
    limit, against pages of 10,000 events): each process of the two must
    still read the other's hints while its own are being written, or both
    wait on a full pipe for ever.  On uvloop (the CLI's and the service's
    loop) a process waiting for hints then reads each in parts, as the
    other writes it."""
    import fcntl
    import multiprocessing

    def everything_for_the_other(work: Any, page: Any, share: int, shares: int, hints: Any, keep: Any = None) -> None:
        for other in range(shares):
            if other != share:  # about 24 KB of msgpack a page
                hints[other].extend(VoidingHint(position, "t", "", "") for position, _, _, _ in page)

    log = [(position, "t", "statement", b"{}") for position in range(1, 3000 * 12 + 1)]
    links = share_pipes.Links(2)
    for receiving, _ in links.pipes.values():
        fcntl.fcntl(receiving.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    context = multiprocessing.get_context("fork")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(read_shares, "judge_page", everything_for_the_other)
        patch.setattr(read_shares, "take_hinted", lambda work, hinted, keep=None: None)
        run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
        processes = [context.Process(target=_read_share_in_fork, args=(share, links, log, run)) for share in (0, 1)]
        for process in processes:
            process.start()
    for receiving, sending in links.pipes.values():
        receiving.close()
        sending.close()
    for process in processes:
        process.join(20)
    stuck = [process for process in processes if process.is_alive()]
    for process in stuck:
        process.kill()
        process.join()
    assert stuck == [] and [process.exitcode for process in processes] == [0, 0]


async def test_a_process_judges_at_most_max_waiting_pages_past_the_first_page_it_has_not_been_sent() -> None:
    """read_shares._read_all: share 0 of two, sent nothing by share 1,
    judges its own pages up to MAX_WAITING_PAGES past page 1 (share 1's
    first) and then waits for it: what it holds stays bounded however far
    ahead its own pages go."""
    persons = _persons(2)
    log = _log_with_ids_written_twice(0, 2, persons)
    pages = [log[start:start + 2] for start in range(0, len(log), 2)]
    assert len(pages) > 2 * (read_shares.MAX_WAITING_PAGES + 4)
    links = share_pipes.Links(2)
    judged: list[int] = []
    judge = read_shares.judge_page

    def counting(work: Any, page: Any, *args: Any) -> None:
        judged.append(pages.index(page))
        judge(work, page, *args)

    class Waited(Exception):
        pass

    async def waiting(pipe: Any, what: str) -> bytes:
        raise Waited(what)

    work = LogRebuild(CATALOG, persons=persons, owner_positions={}, mismatch_positions={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(read_shares, "judge_page", counting)
        patch.setattr(read_shares, "receive", waiting)
        with pytest.raises(Waited, match="the hints of page 1$"):
            await read_shares._read_all(work, _pages(pages[::2]), len(pages), 0, links)
    assert judged == list(range(0, 1 + read_shares.MAX_WAITING_PAGES, 2))


class _StuckPipe:
    """A pipe's sending end whose first message never finishes being written
    (its reader has stopped reading); it records what else is written to it."""

    def __init__(self) -> None:
        import threading
        self.writing = threading.Event()
        self.release = threading.Event()
        self.written: list[bytes] = []

    def send_bytes(self, message: bytes) -> None:
        if not self.writing.is_set():
            self.writing.set()
            self.release.wait(30)
        self.written.append(message)


async def test_a_failed_process_whose_hint_is_stuck_mid_write_sends_its_error_only_where_no_message_is_being_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """share_pipes.HintSender.abandon lets the hint being written finish for
    HINTS_ABANDONED_SECONDS; past that, the error the failed process sends
    next (Links.send_error) must not be written into that pipe, where it
    would land inside the hint, but still reaches the other processes."""
    links = share_pipes.Links(3)
    stuck, other = _StuckPipe(), _StuckPipe()
    other.writing.set()  # never stuck
    links.pipes[(1, 0)] = (links.pipes[(1, 0)][0], stuck)  # share 1 to share 0
    links.pipes[(1, 2)] = (links.pipes[(1, 2)][0], other)
    monkeypatch.setattr(share_pipes, "HINTS_ABANDONED_SECONDS", 0.2)
    sender = share_pipes.HintSender(links, 1)
    sender.send(0, b"h a page's hints")
    assert await asyncio.to_thread(stuck.writing.wait, 10)
    sender.abandon()
    links.send_error(1, b"what share 1 raised")
    assert other.written == [b"ewhat share 1 raised"]
    assert stuck.written == []
    stuck.release.set()
    sender.thread.join(10)
    assert stuck.written == [b"h a page's hints"]  # the hint whole, nothing inside or after it
