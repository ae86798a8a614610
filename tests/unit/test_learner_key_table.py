"""The packed tables of the learner caches (lrs.store.learner_key_table):
the same answers as the dicts they replace, in the same order, with no
Python object a learner."""

from __future__ import annotations

import gc
import mmap
import os
import random

from lrs.privacy.data_key import SealKey, new_data_key_cipher
from lrs.privacy.statement_sealer import KnownForm
from lrs.store.learner_key_table import CipherTable, FormTable, KeyTable, PackedTable, TextTable


def test_a_packed_table_answers_as_a_dict_through_sets_pops_rebuilds_and_drops():
    rng = random.Random(7)
    table, expected = PackedTable(), {}
    for n in range(5000):
        key = f"key {n} ".encode() * rng.randrange(1, 9)
        value = os.urandom(rng.randrange(0, 90))
        table.set_raw(key, value)
        expected[key] = value
        if n % 3 == 0:  # pops leave dead records, and the table lays itself out anew
            gone = rng.choice(list(expected))
            assert table.pop_raw(gone) and not table.pop_raw(gone)
            del expected[gone]
    assert len(table) == len(expected)
    assert all(table.get_raw(k) == v for k, v in expected.items())
    assert table.get_raw(b"never set") is None and b"never set" not in table
    assert list(table.raw_items()) == list(expected.items())  # oldest first
    table.set_raw(next(iter(expected)), b"again")  # set again: to the end
    first = next(iter(expected))
    expected[first] = b"again"
    expected[first] = expected.pop(first)
    assert list(table.raw_items()) == list(expected.items())
    table.drop_oldest(len(expected) // 2)
    assert list(table.raw_items()) == list(expected.items())[len(expected) // 2:]
    table.clear()
    assert not table and table.get_raw(first) is None


def test_the_typed_tables_give_back_what_was_put_in():
    forms = FormTable()
    form = KnownForm("Group", "ab" * 16, 3, "v4.3.abcdefghijkl")
    forms.update({b'{"mbox":"mailto:a@example.org"}': form})
    assert forms.get(b'{"mbox":"mailto:a@example.org"}') == form and forms.get(b"{}") is None
    assert list(forms.items()) == [(b'{"mbox":"mailto:a@example.org"}', form)]

    raw = os.urandom(32)
    keys = KeyTable()
    keys.set("tenant\x00" + "cd" * 16, SealKey("cd" * 16, 2, new_data_key_cipher(raw)))
    found = keys.get("tenant\x00" + "cd" * 16)
    assert found is not None and (found.pseudonym, found.generation) == ("cd" * 16, 2)
    assert found.cipher._key() == raw and repr(found.cipher) == "DataKey(...)"
    keys.pop("tenant\x00" + "cd" * 16)
    assert keys.get("tenant\x00" + "cd" * 16) is None

    ciphers = CipherTable()
    ciphers.set("t\x00p\x001", None)  # an erased generation: cached as erased, not missing
    ciphers.set("t\x00p\x002", new_data_key_cipher(raw))
    assert ciphers.get("t\x00p\x001") == (True, None) and ciphers.get("t\x00p\x003") == (False, None)
    assert ciphers.get("t\x00p\x002")[1]._key() == raw and ciphers.generations("t\x00p") == [1, 2]

    names = TextTable()
    names.set("t\x00mbox:mailto:a@example.org", "ef" * 16)
    assert names.get("t\x00mbox:mailto:a@example.org") == "ef" * 16 and names.get("t\x00x") is None


def test_a_table_holds_a_few_buffers_however_many_entries():
    table = TextTable()
    for n in range(10_000):
        table.set(f"tenant\x00mbox:mailto:learner{n}@example.org", f"{n:032x}")
    held = [o for o in gc.get_referents(table) if not isinstance(o, (type, int, type(None)))]
    assert sorted(type(o).__name__ for o in held) == ["array", "bytearray", "list", "memoryview"]
    [chunks] = [o for o in held if isinstance(o, list)]
    assert [type(c).__name__ for c in chunks] == ["bytearray"]  # one chunk of 1 MiB holds these 10,000


def test_a_key_or_value_too_large_for_a_record_is_not_kept_and_drops_the_older_one():
    table = PackedTable()
    table.set_raw(b"small", b"old")
    table.set_raw(b"small", b"v" * 0x10000)  # the value too large: the old one must not be answered either
    assert table.get_raw(b"small") is None and len(table) == 0
    table.set_raw(b"k" * 0x10000, b"value")
    assert table.get_raw(b"k" * 0x10000) is None and not table
    table.set_raw(b"k" * 0xFFFF, b"v" * 0xFFFF)  # the largest that fit
    assert table.get_raw(b"k" * 0xFFFF) == b"v" * 0xFFFF


def _mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def test_small_tables_take_no_memory_mapping_each():
    """A worker keeps a FormTable a tenant: a mapping a table would spend
    one of vm.max_map_count (65,530) a tenant.  Small indexes are
    bytearrays; only a large one is mapped (zeroed by the kernel as touched)."""
    before = _mappings()
    tables = [FormTable() for _ in range(2_000)]
    for n, table in enumerate(tables):
        for k in range(20):
            table.set_raw(b"tenant-%d-agent-%d" % (n, k), b"form")
    assert _mappings() - before < 100
    large = PackedTable()
    for n in range(20_000):
        large.set_raw(b"%d" % n, b"v")
    assert isinstance(large._index.obj, mmap.mmap)
