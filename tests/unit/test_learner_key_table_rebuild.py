"""A packed learner table lays its records out anew (a full cache dropping
its oldest, an erasure's keep_only, the index growing) without a Python
object an entry kept alive meanwhile: a rebuild that held every entry as a
tuple made the collector run dozens of times over them and stalled the
worker's event loop for seconds at the default capacity."""

from __future__ import annotations

import gc

from lrs.store.learner_key_table import PackedTable


def _collections_during(action) -> int:
    started = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()
    gc.callbacks.append(note)
    try:
        action()
    finally:
        gc.callbacks.remove(note)
    return len(started)


def _table(entries: int) -> PackedTable:
    table = PackedTable()
    for n in range(entries):
        table.set_raw(b"default\x00%032x" % n, b"\x01" * 36)
    return table


def test_dropping_the_oldest_keeping_some_and_clearing_run_no_collection():
    enabled = gc.isenabled()
    gc.enable()
    try:
        table = _table(20_000)
        assert _collections_during(lambda: table.drop_oldest(20_000 // 16)) == 0
        assert _collections_during(table.drop_oldest_half) == 0
        assert _collections_during(lambda: table.keep_only(lambda k: not k.endswith(b"7"))) == 0
        assert len(table) == sum(1 for k, _ in table.raw_items()) and all(not k.endswith(b"7") for k, _ in table.raw_items())
        assert _collections_during(table.clear) == 0 and not table
    finally:
        if not enabled:
            gc.disable()
