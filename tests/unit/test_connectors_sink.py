"""The LRS sink against a scripted in-process fake LRS."""

from __future__ import annotations

import socket
import uuid
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest

from connectors.fakelrs import FakeLrs, Scripted
from connectors.framework.sink import (
    LrsSink,
    Outgoing,
    SinkFatal,
    SinkUnavailable,
    statements_endpoint,
)
from tests.statements import EXPERIENCED
from tests.statements import statement as shared_statement


def statement(n: int) -> dict:
    return shared_statement(
        statement_id=str(uuid.UUID(int=n + 1)), verb=EXPERIENCED, activity=f"https://example.org/page/{n}",
        actor={"account": {"homePage": "https://example.org", "name": str(n)}},
    )


def batch(count: int, start: int = 0) -> list[Outgoing]:
    return [Outgoing(statement(n), f"input:{n + 1}") for n in range(start, start + count)]


@pytest.fixture
async def lrs():
    fake = FakeLrs()
    await fake.start()
    yield fake
    await fake.close()


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_sink(lrs: FakeLrs, sleeps: Sleeps, **kwargs) -> LrsSink:
    return LrsSink(lrs.url, lrs.key, lrs.secret, sleep=sleeps, jitter=lambda: 1.0, **kwargs)


async def test_accepted_batch_is_stored_with_version_header_and_basic_auth(lrs):
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps) as sink:
        outcome = await sink.send(batch(10))
    assert outcome.accepted == 10 and outcome.rejected == []
    assert len(lrs.statements) == 10
    assert lrs.posts == [10] and sleeps == []


async def test_503_then_200_backs_off_then_delivers(lrs):
    lrs.script = [Scripted(503, body="busy"), Scripted(502)]
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, backoff_base=0.5) as sink:
        outcome = await sink.send(batch(3))
    assert outcome.accepted == 3
    assert len(lrs.statements) == 3
    assert sleeps == [0.5, 1.0]  # exponential: base * 2**(failures-1), full jitter at its ceiling


async def test_backoff_is_capped(lrs):
    lrs.script = [Scripted(500)] * 6
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, backoff_base=1.0, backoff_cap=5.0) as sink:
        await sink.send(batch(1))
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


async def test_429_waits_for_retry_after_without_using_attempts(lrs):
    lrs.script = [Scripted(429, {"Retry-After": "7"})] * 3
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, max_attempts=2) as sink:
        outcome = await sink.send(batch(2))
    assert outcome.accepted == 2
    assert sleeps == pytest.approx([7.7, 7.7, 7.7])  # as asked, plus jitter (at its most here)


async def test_shedding_503_waits_as_asked_without_using_attempts_and_stores_each_once(lrs):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    lrs.script = [Scripted(503, {"Retry-After": "2"}, "overloaded")] * 4 + [Scripted(503, {"Retry-After": later})]
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, max_attempts=1) as sink:  # one failure would end it
        outcome = await sink.send(batch(5))
    assert outcome.accepted == 5 and outcome.rejected == []
    assert sleeps[:4] == pytest.approx([2.2] * 4)
    assert 50 < sleeps[4] <= 66
    assert len(lrs.posts) == 6 and len(lrs.statements) == 5


async def test_shedding_between_failures_leaves_the_attempts_to_the_failures(lrs):
    shed = Scripted(503, {"Retry-After": "1"})
    lrs.script = [Scripted(500), shed, shed, Scripted(502), shed]
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, max_attempts=3, backoff_base=0.5) as sink:
        outcome = await sink.send(batch(1))
    assert outcome.accepted == 1
    assert sleeps == pytest.approx([0.5, 1.1, 1.1, 1.0, 1.1])


async def test_a_long_retry_after_is_capped(lrs):
    lrs.script = [Scripted(503, {"Retry-After": "86400"})]
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, max_retry_after=30.0) as sink:
        await sink.send(batch(1))
    assert sleeps == pytest.approx([33.0])


async def test_shedding_past_the_overall_deadline_raises_unavailable(lrs):
    lrs.script = [Scripted(503, {"Retry-After": "10"}, "overloaded")] * 20
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, max_asked_wait=40.0) as sink:
        with pytest.raises(SinkUnavailable, match="asked to wait") as raised:
            await sink.send(batch(1))
    assert raised.value.status == 503
    assert sleeps == pytest.approx([11.0] * 3) and len(lrs.posts) == 4 and lrs.statements == {}


async def test_server_errors_until_attempts_run_out_raise_unavailable(lrs):
    lrs.script = [Scripted(503)] * 10
    sleeps = Sleeps()
    async with make_sink(lrs, sleeps, max_attempts=4) as sink:
        with pytest.raises(SinkUnavailable, match="503"):
            await sink.send(batch(2))
    assert len(lrs.posts) == 4 and lrs.statements == {}


async def test_unreachable_lrs_raises_unavailable_after_attempts():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    async with LrsSink(f"http://127.0.0.1:{port}", "k", "s", sleep=sleeps, max_attempts=3) as sink:
        with pytest.raises(SinkUnavailable, match="unreachable"):
            await sink.send(batch(1))
    assert len(sleeps) == 2


async def test_bad_credentials_are_fatal_at_once(lrs):
    sleeps = Sleeps()
    async with LrsSink(lrs.url, lrs.key, "wrong", sleep=sleeps) as sink:
        with pytest.raises(SinkFatal, match="401"):
            await sink.send(batch(1))
    assert lrs.posts == [] and sleeps == []


@pytest.mark.parametrize("name_path", [True, False])
async def test_400_narrows_down_to_the_offending_statements(lrs, name_path):
    lrs.name_path_in_errors = name_path
    items = batch(16)
    bad = {items[5].statement_id, items[12].statement_id}
    lrs.reject_ids = {sid: "actor is not a valid Agent" for sid in bad}
    async with make_sink(lrs, Sleeps()) as sink:
        outcome = await sink.send(items)
    assert outcome.accepted == 14
    assert {r.statement_id for r in outcome.rejected} == bad
    assert {r.ref for r in outcome.rejected} == {"input:6", "input:13"}
    assert all(r.status == 400 and "actor is not a valid Agent" in r.reason for r in outcome.rejected)
    assert set(lrs.statements) == {item.statement_id for item in items} - bad
    if name_path:  # the LRS named the statement: no bisection needed
        assert len(lrs.posts) == 3


async def test_409_conflict_is_reported_as_rejected_and_the_rest_stored(lrs):
    items = batch(6)
    conflicting = items[2].statement_id
    lrs.statements[conflicting] = dict(items[2].statement, verb={"id": "http://example.org/other"})
    lrs.stored[conflicting] = "2024-01-01T00:00:00+00:00"
    async with make_sink(lrs, Sleeps()) as sink:
        outcome = await sink.send(items)
    assert outcome.accepted == 5
    assert [(r.statement_id, r.status) for r in outcome.rejected] == [(conflicting, 409)]
    assert "different content" in outcome.rejected[0].reason


async def test_resending_the_same_statements_is_accepted(lrs):
    async with make_sink(lrs, Sleeps()) as sink:
        first = await sink.send(batch(5))
        again = await sink.send(batch(5))
    assert first.accepted == again.accepted == 5 and again.rejected == []
    assert len(lrs.statements) == 5


def test_statements_endpoint_accepts_base_or_xapi_urls():
    assert statements_endpoint("http://h:1") == "http://h:1/xapi/statements"
    assert statements_endpoint("http://h:1/") == "http://h:1/xapi/statements"
    assert statements_endpoint("http://h/lrs/xapi") == "http://h/lrs/xapi/statements"
    assert statements_endpoint("http://h/xapi/statements") == "http://h/xapi/statements"


async def test_statements_are_sent_with_the_request_version_of_their_own_version(lrs):
    items = batch(6)
    for n in (2, 3, 5):
        items[n] = Outgoing({**items[n].statement, "version": "2.0.0"}, items[n].ref)
    items[4] = Outgoing({**items[4].statement, "version": "1.0.3"}, items[4].ref)
    async with make_sink(lrs, Sleeps()) as sink:
        outcome = await sink.send(items)
    assert outcome.accepted == 6
    # Consecutive runs, in order: 0-1, 2-3, 4, 5.
    assert lrs.posts == [2, 2, 1, 1]
    assert lrs.post_versions == ["1.0.3", "2.0.0", "1.0.3", "2.0.0"]


async def test_raw_statements_are_sent_as_their_bytes(lrs):
    import msgspec

    raw = msgspec.Raw(msgspec.json.encode(statement(1)))
    async with make_sink(lrs, Sleeps()) as sink:
        outcome = await sink.send([Outgoing(raw, "input:1")])
    assert outcome.accepted == 1 and lrs.statements[statement(1)["id"]] == statement(1)
    assert lrs.post_versions == ["1.0.3"]


async def test_an_unreachable_lrs_is_described_in_words_not_as_an_exception_repr():
    # "ClientConnectorError(ConnectionKey(host='127.0.0.1', port=1, is_ssl=False, ssl=True, proxy=None, ...))"
    # was what `lrs forward` and `lrs import` printed for a target that refused connections.
    import aiohttp

    from connectors.framework.sink import failure_words

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError) as refused:
            await session.get(f"http://127.0.0.1:{port}/xapi/statements")
    words = failure_words(refused.value)
    assert words.startswith(f"cannot connect to 127.0.0.1:{port}: "), words
    assert "ConnectionKey" not in words and "proxy" not in words and "\n" not in words
    assert failure_words(TimeoutError()) == "no answer in time"
