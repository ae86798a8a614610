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
