"""The group's payload compression and the event hash, this checkout against another, alternated.

Three pieces of the ingest path, each timed with this checkout's code and with
``--base``'s (its ``lrs/payload_codec.py`` and ``lrs/eventlog.py`` loaded from
their files beside this checkout's package) in turn, round after round, on the
ingest bench's statements laid out by the group commit
(``bench/group_insert_encoding.py``), 100 a group:

* ``store_payloads``: an HTTP worker's zstd of a group's payloads (the INSERT's
  payload column);
* ``event hash``: the hash of each event, as the writer's plan computes it
  (``_hasher(tenant, type)(...)`` per event);
* ``verify_chain``: the relay's anchor check of a batch (the hash of every
  event again, and its links).

Both sides' results are checked to be the same bytes first.  µs of CPU (the thread's) per
statement, best of ``--repeat`` timings in each round; the record holds every
round of both sides, with the load average::

    .venv/bin/python bench/hash_payload_pieces.py --base /work/wt/base --rounds 8
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from replay_chain_cost import thread_cpu  # noqa: E402
from run_record import add_result_options, machine, write_result  # noqa: E402


def _module_of(path: Path, name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pieces(codec, eventlog, records, texts) -> dict[str, Callable[[], object]]:  # type: ignore[no-untyped-def]
    payloads = [r.payload for r in records]
    groups = [payloads[i:i + 100] for i in range(0, len(payloads), 100)]
    args = [(r.prev_hash, r.position, r.event_id.bytes, t, r.payload) for r, t in zip(records, texts)]
    hasher = eventlog._hasher
    return {
        "store_payloads": lambda: [codec.store_payloads(g) for g in groups],
        "event hash": lambda: [hasher("default", "statement")(*a) for a in args],
        "verify_chain": lambda: eventlog.verify_chain(records, prev_position=0, prev_hash=b"\0" * 32, stored_texts=texts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the other checkout (its lrs/payload_codec.py and lrs/eventlog.py)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=9, help="timings per piece and round; the best is kept")
    parser.add_argument("--groups", type=int, default=20, help="groups of 100 statements")
    add_result_options(parser, output=True)
    args = parser.parse_args(argv)

    from group_insert_encoding import _plans

    from lrs import eventlog, payload_codec

    base = Path(args.base)
    records, texts = _laid_out(_plans, args.groups)
    sides = {
        "base": pieces(_module_of(base / "lrs" / "payload_codec.py", "base_payload_codec"),
                       _module_of(base / "lrs" / "eventlog.py", "base_eventlog"), records, texts),
        "this": pieces(payload_codec, eventlog, records, texts),
    }
    for name in sides["this"]:
        a, b = sides["base"][name](), sides["this"][name]()
        assert a == b, f"{name}: the two checkouts disagree"
    load_before = [round(x, 2) for x in os.getloadavg()]
    rounds: dict[str, dict[str, list[float]]] = {n: {s: [] for s in sides} for n in sides["this"]}
    for i in range(args.rounds):
        order = ("base", "this") if i % 2 == 0 else ("this", "base")
        for name in rounds:
            for side in order:
                rounds[name][side].append(round(thread_cpu(sides[side][name], len(records), args.repeat), 3))
    summary = {}
    for name, by_side in rounds.items():
        lower = sum(t < b for t, b in zip(by_side["this"], by_side["base"]))
        summary[name] = {side: {"median": round(statistics.median(v), 3), "min": min(v), "max": max(v)}
                         for side, v in by_side.items()}
        summary[name]["rounds this lower"] = f"{lower} of {len(by_side['this'])}"
        print(name, summary[name])
    if not args.no_write:
        write_result({
            "benchmark": "hash-payload-pieces", "command": " ".join(sys.argv), "base": str(base),
            "machine": machine(), "unit": "µs of CPU per statement", "note": args.note,
            "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "rounds": rounds, "summary": summary,
        }, "hash-payload-pieces", args.label, output=args.output)
    return 0


def _laid_out(plans, groups: int):  # type: ignore[no-untyped-def]
    from lrs.eventlog import stored_texts_of

    records = [new.event for plan in plans(groups, 100) for new in plan.new]
    return records, stored_texts_of(records)


if __name__ == "__main__":
    raise SystemExit(main())
