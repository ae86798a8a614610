"""ndjson bulk import mapping and the LRS-to-LRS pull source."""

from __future__ import annotations

import gzip
import json
import uuid
from urllib.parse import unquote

from connectors.fakelrs import FakeLrs, Scripted
from connectors.framework.lines import Line
from connectors.framework.model import Mapped, Skip, SourceItem
from connectors.framework.runner import RunOptions, run_connector
from connectors.framework.sink import LrsSink
from connectors.lrspull.mapping import map_pulled
from connectors.lrspull.source import LrsPullSource
from connectors.ndjson.mapping import map_line
from connectors.ndjson.source import ndjson_source

import aiohttp
import pytest


def stmt(n: int, with_id: bool = True) -> dict:
    s = {
        "actor": {"mbox": f"mailto:learner{n}@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": f"https://example.org/activity/{n}"},
    }
    if with_id:
        s["id"] = str(uuid.UUID(int=1000 + n))
    return s


def line_item(text: str, number: int = 1, file: str = "/data/a.ndjson") -> SourceItem:
    return SourceItem(f"a.ndjson:{number}", Line(file, number, text.encode()))


def test_ndjson_keeps_ids_and_accepts_arrays():
    result = map_line(line_item(json.dumps([stmt(1), stmt(2)])))
    assert isinstance(result, Mapped)
    assert [s["id"] for s in result.statements] == [stmt(1)["id"], stmt(2)["id"]]


def test_ndjson_gives_id_less_statements_a_deterministic_id():
    text = json.dumps(stmt(1, with_id=False))
    first = map_line(line_item(text, number=7)).statements[0]["id"]
    assert first == map_line(line_item(text, number=7, file="/elsewhere/renamed.ndjson.gz")).statements[0]["id"]
    assert first != map_line(line_item(text, number=8)).statements[0]["id"]  # same content, other line
    assert first != map_line(line_item(json.dumps(stmt(2, with_id=False)), number=7)).statements[0]["id"]
    assert uuid.UUID(first).version == 5


def test_ndjson_bad_lines_are_skipped_with_a_reason():
    assert map_line(line_item("{oops")).kind == "invalid JSON"
    assert map_line(line_item("[1, 2]")).kind == "not a statement object"
    assert map_line(line_item("[]")).kind == "empty array"


async def test_ndjson_gz_import_into_fake_lrs_and_rerun_stores_nothing_twice(tmp_path):
    path = tmp_path / "export.ndjson.gz"
    with gzip.open(path, "wt") as handle:
        for n in range(0, 30, 3):
            handle.write(json.dumps([stmt(n, with_id=False), stmt(n + 1), stmt(n + 2)]) + "\n")
    fake = FakeLrs()
    await fake.start()
    try:
        for _ in range(2):
            async with LrsSink(fake.url, fake.key, fake.secret) as sink:
                summary = await run_connector(ndjson_source([str(path)], chunk_lines=4), map_line, sink, None,
                                              None, RunOptions(batch_size=7, max_in_flight=2, progress=False))
            assert summary.completed and summary.sent == 30 and not summary.rejected
        assert len(fake.statements) == 30
    finally:
        await fake.close()


async def _seeded(count: int) -> FakeLrs:
    source = FakeLrs("src", "src-secret")
    await source.start()
    for n in range(count):
        s = stmt(n)
        source.statements[s["id"]] = s
        source.stored[s["id"]] = f"2024-01-01T00:00:{n // 1000:02d}.{n % 1000:03d}000+00:00"
    source.page_size = 10
    return source


async def pull(source: FakeLrs, target: FakeLrs, cursor=None, store=None, since=None, secret=None,
               xapi_version=None, **source_options):
    async with aiohttp.ClientSession() as session:
        pull_source = LrsPullSource(source.url, source.key, secret or source.secret, session=session, page_limit=10,
                                    since=since, xapi_version=xapi_version, **source_options)
        async with LrsSink(target.url, target.key, target.secret, session=session) as sink:
            return await run_connector(pull_source, map_pulled, sink, store, cursor,
                                       RunOptions(batch_size=10, progress=False))


class Store:
    def __init__(self):
        self.saved = []

    def save(self, cursor):
        self.saved.append(cursor)


async def test_pull_follows_more_links_and_keeps_ids_without_stored():
    source, target = await _seeded(35), FakeLrs()
    await target.start()
    try:
        store = Store()
        summary = await pull(source, target, store=store)
        assert summary.completed and summary.sent == 35
        assert set(target.statements) == set(source.statements)
        assert all("stored" not in s for s in target.statements.values())
        assert source.gets[0].startswith("/xapi/statements?ascending=true&limit=10")
        assert sum("more=" in g for g in source.gets) == 3
        assert store.saved[-1] == {"more": None, "last_stored": "2024-01-01T00:00:00.034000+00:00"}
    finally:
        await source.close()
        await target.close()


async def test_pull_again_later_fetches_only_what_is_new():
    source, target = await _seeded(30), FakeLrs()
    await target.start()
    try:
        ids = sorted(source.statements, key=lambda s: source.stored[s])
        late = {sid: (source.statements.pop(sid), source.stored.pop(sid)) for sid in ids[20:]}
        first = Store()
        summary = await pull(source, target, store=first)
        assert summary.completed and len(target.statements) == 20
        cursor = first.saved[-1]
        assert cursor["more"] is None
        for sid, (statement, stored) in late.items():
            source.statements[sid], source.stored[sid] = statement, stored
        summary = await pull(source, target, cursor=cursor)
        assert summary.completed and len(target.statements) == 30
        # since = last stored minus 1 microsecond: the last one is read again, stored once
        assert summary.read == 11
        assert "since=2024-01-01T00:00:00.018999+00:00" in unquote(source.gets[-2])
    finally:
        await source.close()
        await target.close()


async def test_pull_resumes_from_its_more_link():
    source, target = await _seeded(30), FakeLrs()
    await target.start()
    try:
        cursor = {"more": source.url + "/xapi/statements?more=10", "last_stored": "ignored"}
        summary = await pull(source, target, cursor=cursor)
        assert summary.completed and summary.read == 20
        assert source.gets[0] == "/xapi/statements?more=10"
    finally:
        await source.close()
        await target.close()


async def test_pull_falls_back_to_last_stored_when_the_more_link_expired():
    source, target = await _seeded(30), FakeLrs()
    await target.start()
    try:
        ids = sorted(source.statements, key=lambda s: source.stored[s])
        source.expired_more = {"10"}
        cursor = {"more": source.url + "/xapi/statements?more=10", "last_stored": source.stored[ids[9]]}
        summary = await pull(source, target, cursor=cursor)
        assert summary.completed
        assert set(target.statements) == set(ids[9:])
    finally:
        await source.close()
        await target.close()


async def test_pull_stops_when_the_source_lrs_refuses():
    source, target = await _seeded(5), FakeLrs()
    await target.start()
    try:
        summary = await pull(source, target, secret="wrong")
        assert not summary.completed and "401" in summary.error and target.statements == {}
    finally:
        await source.close()
        await target.close()


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def test_pull_waits_out_a_shedding_source_without_using_attempts():
    source, target = await _seeded(25), FakeLrs()
    source.get_script = [Scripted(503, {"Retry-After": "3"}, "overloaded")] * 3 + [Scripted(429, {"Retry-After": "1"})]
    await target.start()
    try:
        sleeps = Sleeps()
        summary = await pull(source, target, max_attempts=1, sleep=sleeps, jitter=lambda: 0.0)
        assert summary.completed, summary.error
        assert set(target.statements) == set(source.statements) and sum(target.received.values()) == 25
        assert sleeps == [3.0, 3.0, 3.0, 1.0]
    finally:
        await source.close()
        await target.close()


async def test_pull_gives_up_when_the_source_sheds_past_the_overall_deadline():
    source, target = await _seeded(5), FakeLrs()
    source.get_script = [Scripted(503, {"Retry-After": "10"})] * 10
    await target.start()
    try:
        summary = await pull(source, target, sleep=Sleeps(), jitter=lambda: 0.0, max_asked_wait=25.0)
        assert not summary.completed and "asked to wait (HTTP 503)" in summary.error
        assert target.statements == {} and len(source.gets) == 3
    finally:
        await source.close()
        await target.close()


def test_pulled_statement_without_id_is_skipped():
    assert map_pulled(SourceItem("x", {"actor": {}})) == Skip("statement without id")


def test_ndjson_statement_with_id_is_sent_as_its_exact_bytes():
    import msgspec

    from connectors.framework.sink import Outgoing

    text = json.dumps(stmt(3), indent=None, separators=(", ", ": "))
    (raw,) = map_line(line_item(text)).statements
    assert isinstance(raw, msgspec.Raw) and bytes(raw) == text.encode()
    assert Outgoing(raw, "f:1").statement_id == stmt(3)["id"]
    assert msgspec.json.decode(msgspec.json.encode([raw])) == [stmt(3)]
    # An id that is not a string takes the general path and is sent as decoded.
    (odd,) = map_line(line_item(json.dumps({**stmt(3), "id": 7}))).statements
    assert odd["id"] == 7 and Outgoing(odd, "f:2").statement_id is None


def test_ndjson_2_0_statements_take_the_decoded_path_so_the_sink_sends_them_as_2_0():
    from connectors.framework.sink import Outgoing, request_version

    (decoded,) = map_line(line_item(json.dumps({**stmt(4), "version": "2.0.0"}))).statements
    assert isinstance(decoded, dict) and request_version(Outgoing(decoded, "f:1")) == "2.0.0"
    (raw,) = map_line(line_item(json.dumps({**stmt(4), "version": "1.0.3"}))).statements
    assert request_version(Outgoing(raw, "f:1")) == "1.0.3"


@pytest.mark.parametrize(
    ("advertised", "forced", "used"),
    [
        (["1.0.3", "2.0.0"], None, "2.0.0"),  # the source's About lists 2.0: read in 2.0
        (["1.0.0", "1.0.3"], None, "1.0.3"),
        (None, None, "1.0.3"),  # no About resource: 1.0.3, as every 1.0 LRS reads
        (["2.0.0"], "1.0.3", "1.0.3"),  # --xapi-version wins
    ],
)
async def test_pull_reads_in_the_highest_version_the_source_lists(advertised, forced, used):
    source, target = await _seeded(25), FakeLrs()
    source.about_versions = advertised
    await target.start()
    try:
        summary = await pull(source, target, xapi_version=forced)
        assert summary.completed and len(target.statements) == 25
        assert source.get_versions == [used] * 3  # every page
    finally:
        await source.close()
        await target.close()


def test_pull_refuses_a_version_it_cannot_speak():
    with pytest.raises(ValueError, match="xapi_version"):
        LrsPullSource("http://127.0.0.1:1", "k", "s", session=None, xapi_version="1.0.1")  # type: ignore[arg-type]
