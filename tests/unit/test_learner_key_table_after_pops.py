"""A packed learner table after most of its entries were popped (an
erasure's ``forget`` of many learners, keys dropped as unconfirmed): the
index being rebuilt must have room for every record the inserts during the
rebuild add, however few entries were live when it began.  Sized by the live
entries alone, it filled up and the next insert probed it for ever, holding
the worker's event loop."""

from __future__ import annotations

import signal

import pytest

from lrs.store.learner_key_table import PackedTable


class _Stuck(Exception):
    pass


@pytest.fixture
def seconds():
    def stuck(signum, frame):  # noqa: ANN001
        raise _Stuck("an operation of the table did not return")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _key(n: int) -> bytes:
    return b"tenant\x00learner-%d" % n


def _up_to_a_rebuild(table: PackedTable, at_least: int) -> int:
    """Store keys until the next would start a rebuild of the index, after
    ``at_least`` of them; how many were stored."""
    n = 0
    while n < at_least or table._next is not None or (table._used + 1) * 8 <= len(table._index) * 3:
        table.set_raw(_key(n), b"v")
        n += 1
    return n


@pytest.mark.parametrize("kept", [0, 1, 5])
def test_inserts_after_most_entries_were_popped_finish_and_find_every_entry(seconds, kept):
    table = PackedTable()
    stored = _up_to_a_rebuild(table, 2_000)
    for n in range(stored - kept):
        assert table.pop_raw(_key(n))
    model = {_key(n): b"v" for n in range(stored - kept, stored)}
    for n in range(stored, stored + 400):  # the rebuild starts at the first of them
        table.set_raw(_key(n), b"w%d" % n)
        model[_key(n)] = b"w%d" % n
    assert len(table) == len(model)
    for key, value in model.items():
        assert table.get_raw(key) == value
    assert table.get_raw(_key(0)) is None


@pytest.mark.parametrize("popped", [0.9, 0.99, 1.0])
def test_rounds_of_pops_keep_both_indexes_from_filling(seconds, popped):
    """Stored up to a rebuild, nearly all popped, as many stored again, six
    times over: the index being filled stays at most half full, the one in
    use (begun at 3/8, taking the scan's inserts) at most three quarters."""
    table, n = PackedTable(), 0
    for _ in range(6):
        n += _up_to_a_rebuild_from(table, n, 300)
        held = [k for k in range(n) if _key(k) in table]
        for k in held[:int(len(held) * popped)]:
            table.pop_raw(_key(k))
        for _ in range(300):
            table.set_raw(_key(n), b"v")
            n += 1
            assert table._used * 4 <= len(table._index) * 3
            assert table._next is None or table._next_used * 2 <= len(table._next)


def _up_to_a_rebuild_from(table: PackedTable, start: int, at_least: int) -> int:
    n = start
    while n < start + at_least or table._next is not None or (table._used + 1) * 8 <= len(table._index) * 3:
        table.set_raw(_key(n), b"v")
        n += 1
    return n - start
