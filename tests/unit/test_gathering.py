"""When waiting can still make a group commit's group larger (lrs.store.gathering), on a fake clock."""

from __future__ import annotations

from lrs.store.gathering import EXPECTED_BACK_S, Gathering


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_arriving_requests_and_answered_clients_may_grow_the_group_until_they_are_back() -> None:
    settled: list[int] = []
    clock = Clock()
    gathering = Gathering(lambda: settled.append(1), clock=clock)
    assert not gathering.may_grow()
    a, b = gathering.arrival("a"), gathering.arrival("b")
    assert gathering.may_grow() and gathering.arriving == 2
    a.reached()
    assert gathering.may_grow() and settled == []
    b.reached()
    assert not gathering.may_grow() and settled == [1]
    gathering.answered(["a", "b", None])
    assert gathering.expected_back == 2
    again = gathering.arrival("a")
    again.reached()
    assert gathering.may_grow()  # b is expected back
    assert settled == [1, 1]


def test_a_client_that_does_not_come_back_within_the_horizon_no_longer_holds_the_group() -> None:
    clock = Clock()
    gathering = Gathering(lambda: None, clock=clock)
    gathering.answered(["thinking"])
    clock.now += EXPECTED_BACK_S / 2
    assert gathering.may_grow()
    clock.now += EXPECTED_BACK_S
    assert not gathering.may_grow() and gathering.expected_back == 0


def test_a_request_that_leaves_before_the_writer_counts_once() -> None:
    settled: list[int] = []
    gathering = Gathering(lambda: settled.append(1), clock=Clock())
    arrival = gathering.arrival("c")
    arrival.close()
    arrival.close()
    assert gathering.arriving == 0 and settled == [1]
    assert not gathering.may_grow()
    retried = gathering.arrival("c")
    retried.reached()
    gathering.answered(["c"])
    retried.reached()  # appended again after an answer (a retry): not expected back any more
    assert gathering.arriving == 0 and gathering.expected_back == 0


def test_clients_answered_long_ago_are_forgotten_even_when_nobody_asks_whether_the_group_may_grow() -> None:
    # With LRS_GROUP_COMMIT_WAIT_MS=0, or a queue always full, or a request
    # always arriving, the writer never asks expected_back; connections that
    # were answered once and closed (one request per connection) must still
    # not be held (with their protocol objects) for the life of the worker.
    clock = Clock()
    gathering = Gathering(lambda: None, clock=clock)
    for n in range(10_000):
        gathering.answered([("connection", n)])
        clock.now += EXPECTED_BACK_S / 10
    assert len(gathering._answered) <= 11


def test_a_client_answered_again_is_expected_back_from_its_latest_answer() -> None:
    clock = Clock()
    gathering = Gathering(lambda: None, clock=clock)
    gathering.answered(["kept-alive", "other"])
    clock.now += EXPECTED_BACK_S * 0.75
    gathering.answered(["kept-alive"])  # answered again, later
    clock.now += EXPECTED_BACK_S * 0.5
    gathering.answered(["third"])
    assert gathering.expected_back == 2  # "other" is stale, "kept-alive" is not


class Connection:
    """As aiohttp's protocol: ``transport`` becomes None when the connection is lost."""

    def __init__(self) -> None:
        self.transport: object | None = object()


def test_a_connection_closed_after_its_answer_does_not_hold_the_next_group() -> None:
    clock = Clock()
    gathering = Gathering(lambda: None, clock=clock)
    staying, closing, closed_before = Connection(), Connection(), Connection()
    closed_before.transport = None
    gathering.answered([staying, closing, closed_before])
    assert gathering.expected_back == 2  # one already closed when answered: never expected
    closing.transport = None  # the client closed it after reading the answer
    assert gathering.expected_back == 1 and gathering.may_grow()
    gathering.arrival(staying).reached()
    assert not gathering.may_grow()  # well within the horizon: nobody else can join


def test_clients_being_committed_come_back_unless_unannounced_leaving_or_closed() -> None:
    gathering = Gathering(lambda: None, clock=Clock())
    staying, leaving, closed = Connection(), Connection(), Connection()
    gathering.arrival(leaving).last_on_connection()
    closed.transport = None
    assert gathering.coming_back([None, staying])
    assert not gathering.coming_back([None, leaving, closed])
    assert not gathering.coming_back([])


def test_a_request_that_closes_its_connection_after_the_answer_is_not_expected_back() -> None:
    gathering = Gathering(lambda: None, clock=Clock())
    last, kept = gathering.arrival("last"), gathering.arrival("kept")
    last.last_on_connection()
    last.reached()
    kept.reached()
    gathering.answered(["last", "kept"])
    last.close()
    kept.close()
    assert gathering.expected_back == 1 and gathering._leaving == set()
    again = gathering.arrival("kept")
    again.reached()
    assert not gathering.may_grow()
    # A request that asked to close and left before the writer leaves nothing behind.
    gone = gathering.arrival("refused")
    gone.last_on_connection()
    gone.close()
    assert gathering._leaving == set() and gathering.arriving == 0


async def test_when_only_a_client_expected_back_holds_the_group_the_writer_looks_again_at_the_horizon() -> None:
    import asyncio

    settled = asyncio.Event()
    gathering = Gathering(settled.set, expected_back_s=0.02)
    gathering.answered(["thinking"])
    assert gathering.may_grow()
    assert gathering.may_grow()  # one look-again at a time
    await asyncio.wait_for(settled.wait(), 5)  # without it, only the writer's own timer
    assert not gathering.may_grow()
