"""The runner: ordered checkpoints, bounded concurrency, resuming after a failure."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from connectors.framework.checkpoint import CheckpointError, CheckpointFile
from connectors.framework.model import Chunk, Mapped, Skip, SourceItem
from connectors.framework.runner import OrderedCompletion, RunOptions, run_connector
from connectors.framework.sink import BatchOutcome, SinkUnavailable


class ListSource:
    """Items 0..n-1 in chunks; cursor = number of items read."""

    name = "list"
    progress_unit = "item"

    def __init__(self, count: int, chunk: int) -> None:
        self.count = count
        self.chunk = chunk
        self.progress_total = count

    async def chunks(self, cursor):
        start = cursor["next"] if cursor else 0
        for begin in range(start, self.count, self.chunk):
            end = min(begin + self.chunk, self.count)
            items = [SourceItem(f"item:{n}", n) for n in range(begin, end)]
            yield Chunk(items, {"next": end}, end - begin)


def mapping(item: SourceItem):
    n = item.data
    if n % 10 == 9:
        return Skip("every tenth")
    return Mapped([{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"item/{n}")), "n": n}])


class RecordingStore:
    def __init__(self) -> None:
        self.saved: list[dict] = []

    def save(self, cursor: dict) -> None:
        self.saved.append(cursor)


class MemorySink:
    """Stores by id; can hold batches until released and fail after a number of batches."""

    def __init__(self, fail_at_batch: int | None = None) -> None:
        self.stored: dict[str, dict] = {}
        self.deliveries: list[str] = []
        self.batches = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_at_batch = fail_at_batch
        self.gates: dict[int, asyncio.Event] = {}

    async def send(self, batch):
        number = self.batches
        self.batches += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if number in self.gates:
                await self.gates[number].wait()
            else:
                await asyncio.sleep(0)
            if self.fail_at_batch is not None and number >= self.fail_at_batch:
                raise SinkUnavailable("LRS down")
            for item in batch:
                self.stored[item.statement["id"]] = item.statement
                self.deliveries.append(item.statement["id"])
            return BatchOutcome(accepted=len(batch))
        finally:
            self.in_flight -= 1


def test_ordered_completion_releases_cursors_only_in_order():
    tracker = OrderedCompletion()
    assert tracker.mark({"c": "none yet"}, -1) == {"c": "none yet"}
    assert tracker.mark({"c": 0}, 0) is None
    assert tracker.mark({"c": 1}, 1) is None
    assert tracker.mark({"c": 2}, 2) is None
    assert tracker.done(1) is None  # batch 0 still open
    assert tracker.done(2) is None
    assert tracker.done(0) == {"c": 2}  # everything up to 2 is now answered


async def test_everything_is_delivered_once_and_the_final_cursor_saved():
    sink, store = MemorySink(), RecordingStore()
    summary = await run_connector(ListSource(100, 7), mapping, sink, store, None,
                                  RunOptions(batch_size=8, max_in_flight=3, progress=False))
    assert summary.completed and summary.error is None
    assert summary.read == 100 and summary.sent == 90 and summary.skipped == {"every tenth": 10}
    assert len(sink.stored) == 90 and len(sink.deliveries) == 90
    assert store.saved[-1] == {"next": 100}
    assert [c["next"] for c in store.saved] == sorted(c["next"] for c in store.saved)
    assert sink.max_in_flight <= 3


async def test_cursor_is_not_saved_past_a_batch_the_lrs_has_not_accepted():
    sink, store = MemorySink(), RecordingStore()
    sink.gates[0] = asyncio.Event()  # the first batch hangs; later ones complete
    task = asyncio.create_task(run_connector(
        ListSource(40, 4), mapping, sink, store, None,
        RunOptions(batch_size=4, max_in_flight=4, progress=False)))
    while sink.batches < 4:  # batches 1..3 answered while 0 is still open
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    assert sink.max_in_flight == 4
    assert len(sink.stored) > 0
    assert store.saved == []  # batch 0 holds item 0: no cursor is safe yet
    sink.gates[0].set()
    summary = await task
    assert summary.completed and store.saved[-1] == {"next": 40}


async def test_failure_stops_at_last_accepted_cursor_and_rerun_completes_exactly_once():
    sink, store = MemorySink(fail_at_batch=3), RecordingStore()
    options = RunOptions(batch_size=5, max_in_flight=1, progress=False)
    summary = await run_connector(ListSource(60, 5), mapping, sink, store, None, options)
    assert not summary.completed and summary.error == "LRS down"
    resume = store.saved[-1]
    # Everything before the saved cursor was accepted by the LRS.
    accepted_items = {s["n"] for s in sink.stored.values()}
    assert {n for n in range(resume["next"]) if n % 10 != 9} <= accepted_items

    sink.fail_at_batch = None
    summary = await run_connector(ListSource(60, 5), mapping, sink, store, resume, options)
    assert summary.completed
    expected = {str(uuid.uuid5(uuid.NAMESPACE_URL, f"item/{n}")) for n in range(60) if n % 10 != 9}
    assert set(sink.stored) == expected


async def test_source_with_only_skips_still_advances_the_cursor():
    sink, store = MemorySink(), RecordingStore()
    summary = await run_connector(ListSource(10, 5), lambda item: Skip("nothing"), sink, store, None,
                                  RunOptions(progress=False))
    assert summary.completed and summary.sent == 0 and sink.batches == 0
    assert store.saved[-1] == {"next": 10}


def test_checkpoint_file_round_trip_and_refuses_another_job(tmp_path):
    path = tmp_path / "sub" / "cp.json"
    checkpoint = CheckpointFile(path, {"command": "import", "files": ["a"]})
    assert checkpoint.load() is None
    checkpoint.save({"files": {"a": [10, 2]}})
    checkpoint.save({"files": {"a": [20, 4]}})
    assert checkpoint.load() == {"files": {"a": [20, 4]}}
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"]  # no temporary files left
    assert json.loads(path.read_text())["version"] == 1
    with pytest.raises(CheckpointError, match="another job"):
        CheckpointFile(path, {"command": "import", "files": ["b"]}).load()
    path.write_text("{torn")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load()


async def test_a_failing_mapping_is_counted_not_fatal():
    def broken(item):
        if item.data == 3:
            raise KeyError("boom")
        return mapping(item)

    sink = MemorySink()
    summary = await run_connector(ListSource(5, 5), broken, sink, None, None, RunOptions(progress=False))
    assert summary.completed and summary.sent == 4
    assert summary.skipped == {"mapping error (KeyError)": 1}
