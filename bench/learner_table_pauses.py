"""The longest single operation of the learner caches at capacity, packed
tables (lrs/store/learner_key_table.py) against the dicts they replace, and
the cost of a look-up in each (docs/privacy.md, "The learner caches in packed
tables that never stall (branch seal6)").

Each side is filled to ``--entries`` identities the way a worker's live-key
cache is (LearnerKeyCache._remember: when full, the oldest sixteenth out
before a new identity), then takes ``--new`` more new identities, timing
every store; then ``--lookups`` look-ups of held identities at random.  The
sides alternate ``--rounds`` times in one process.  Times are the thread's
CPU time (``time.thread_time``), so that a busy machine's preemptions do not
show as pauses; the wall-clock worst is kept beside it.  Results:
bench/results/learner_table_pauses-LABEL-STAMP.json (the command in it)."""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrs.store.learner_key_table import PackedTable  # noqa: E402


def _key(n: int) -> str:
    return f"default\x00{n:032x}"


VALUE = b"\x00\x00\x00\x01" + b"\x5a" * 32  # a live key's record: generation and masked key


class DictSide:
    """The dicts as on main: pop, drop the first sixteenth through islice, set."""

    def __init__(self) -> None:
        self.cache: dict[str, bytes] = {}

    def store(self, key: str, capacity: int) -> None:
        cache = self.cache
        cache.pop(key, None)
        if len(cache) >= capacity:
            for old in list(itertools.islice(cache, max(len(cache) // 16, 1))):
                del cache[old]
        cache[key] = VALUE

    def get(self, key: str) -> object:
        return self.cache.get(key)


class PackedSide:
    """As LearnerKeyCache._remember stores into its KeyTable."""

    def __init__(self) -> None:
        self.table = PackedTable()

    def store(self, key: str, capacity: int) -> None:
        raw = key.encode()
        table = self.table
        if len(table) >= capacity and raw not in table:
            table.drop_oldest(max(len(table) // 16, 1))
        table.set_raw(raw, VALUE)

    def get(self, key: str) -> object:
        return self.table.get_raw(key.encode())


def one(side_name: str, entries: int, new: int, lookups: int, seed: int) -> dict:
    side = DictSide() if side_name == "dict" else PackedSide()
    gc.collect()
    clock, wall = time.thread_time, time.perf_counter
    fill_most = 0.0
    for n in range(entries):
        started = clock()
        side.store(_key(n), entries)
        fill_most = max(fill_most, clock() - started)
    times, wall_most = [], 0.0
    for n in range(entries, entries + new):
        started, wall_started = clock(), wall()
        side.store(_key(n), entries)
        times.append(clock() - started)
        wall_most = max(wall_most, wall() - wall_started)
    rng = random.Random(seed)
    held = [_key(rng.randrange(entries + new - entries // 2, entries + new)) for _ in range(lookups)]
    get = side.get
    started = clock()
    for key in held:
        get(key)
    per_lookup = (clock() - started) / lookups
    times.sort()
    return {"side": side_name, "entries": entries, "most_ms_filling": fill_most * 1e3,
            "most_ms_full": times[-1] * 1e3, "most_ms_full_wall": wall_most * 1e3, "p999_ms_full": times[int(len(times) * 0.999)] * 1e3,
            "mean_us_store_full": statistics.fmean(times) * 1e6, "us_lookup": per_lookup * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--new", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--label", default="seal6")
    args = parser.parse_args()
    rows = []
    for round_ in range(args.rounds):
        for entries in args.entries:
            for side in (("dict", "packed") if round_ % 2 == 0 else ("packed", "dict")):
                row = one(side, entries, args.new, args.lookups, round_)
                row["round"] = round_
                row["load"] = os.getloadavg()[0]
                rows.append(row)
                print(json.dumps(row), flush=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(__file__).parent / "results" / f"learner_table_pauses-{args.label}-{stamp}.json"
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "rows": rows}, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
