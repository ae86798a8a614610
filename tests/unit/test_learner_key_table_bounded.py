"""No operation on a packed learner table does work in proportion to the
entries it holds (lrs/store/learner_key_table.py): a full cache dropping its
oldest sixteenth or half, the index growing or rid of its dead slots, and
records replaced again and again, each run a bounded number of Python lines,
so a worker's event loop is never held for long (branch seal5's tables laid
a full one out anew in a Python loop: 240 ms at 250,000 entries).  Counted in
executed lines, not time, so that a loaded machine cannot fail or pass it."""

from __future__ import annotations

import gc
import sys
from typing import Callable

from lrs.store import learner_key_table
from lrs.store.learner_key_table import PackedTable

_MOST_LINES = 1_500  # a bounded step is a few hundred; laying out 8,000 entries is tens of thousands


def _lines(action: Callable[[], object]) -> int:
    """Lines of lrs/store/learner_key_table.py that ``action`` runs."""
    count = 0
    path = learner_key_table.__file__

    def trace(frame, event, arg):  # noqa: ANN001, ANN202
        nonlocal count
        if frame.f_code.co_filename != path:
            return None
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        action()
    finally:
        sys.settrace(None)
    return count


def _key(n: int) -> bytes:
    return b"default\x00%032x" % n


def test_no_operation_of_a_full_cache_runs_in_proportion_to_its_entries():
    capacity = 8_000
    table = PackedTable()
    most = 0

    def store(n: int) -> None:  # as LearnerKeyCache._remember does with the live keys
        if len(table) >= capacity and _key(n) not in table:
            table.drop_oldest(max(len(table) // 16, 1))
        table.set_raw(_key(n), b"\x01" * 36)

    for n in range(3 * capacity):
        most = max(most, _lines(lambda: store(n)))
        if n % 5 == 0:  # stored again: the older record dead
            most = max(most, _lines(lambda: store(n - n % 1000)))
    assert len(table) <= capacity and table.get_raw(_key(3 * capacity - 1)) == b"\x01" * 36
    most = max(most, _lines(table.drop_oldest_half), _lines(lambda: table.drop_oldest(len(table))))
    assert not table
    assert most < _MOST_LINES, most


def test_one_key_replaced_again_and_again_keeps_the_buffers_bounded():
    table = PackedTable()
    for n in range(50_000):
        table.set_raw(b"same", b"%d" % n)
        table.set_raw(b"other %d" % (n % 10), b"x")
    assert table.get_raw(b"same") == b"49999" and len(table) == 11
    # the records' numbers: a few times the live ones; the bytes: the chunk being written and one more at most
    assert len(table._offsets) < 1_200 and sum(len(chunk) for chunk in table._chunks) < (1 << 20) + 40_000
    assert len(table._index) <= 64


def test_a_full_cache_frees_its_oldest_records_chunk_by_chunk():
    table = PackedTable()
    for n in range(200_000):
        if len(table) >= 50_000:
            table.drop_oldest(len(table) // 16)
        table.set_raw(_key(n), b"\x01" * 36)
    # 50,000 records of 81 bytes: about 4 MiB live, never more than about twice that held
    assert len(table._chunks) <= 9 and len(table._offsets) <= 2 * 50_000 + 1024


def test_dropping_the_oldest_and_clearing_run_no_collection():
    started = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(info["generation"])

    table = PackedTable()
    for n in range(20_000):
        table.set_raw(_key(n), b"\x01" * 36)
    enabled = gc.isenabled()
    gc.enable()
    gc.collect()
    gc.callbacks.append(note)
    try:
        table.drop_oldest(20_000 // 16)
        table.drop_oldest_half()
        table.clear()
    finally:
        gc.callbacks.remove(note)
        if not enabled:
            gc.disable()
    assert started == [] and not table
