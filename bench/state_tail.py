"""CPU of storing learner states whole at every batch against appending to their tails.

Live apply stores, for every learner a batch changes, either the state
whole (``encode_state``: the layout's string table built in Python, then
zstd) or, since migration 0118, a frame appended to the row's tail
(``encode_tail``) while the tail stays within ``tail_fits``.  Both costs
depend on the learner's state: the whole encode walks all of it, a frame
only what the batch added.  This replays ``--statements`` statements of
``bench/projection.py``'s generator per learner, one batch per statement
as live apply at 5,000 statements/s mostly has it, and reports by the
statements the learner had before the batch: the CPU (``time.process_time``,
best of ``--repeat`` passes) of the whole encode each batch (main at
54b7590), and of the frames with the whole encodes the budget still makes
(this checkout); the stored bytes of the row (state and tail) either way; the
share of batches stored whole; and the decode of a row read back (a cache
miss, a query) with and without its tail.  No PostgreSQL: the figure that
moves least with a shared machine's load.

    python bench/state_tail.py --statements 200000 --learners 10000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from projection import statement  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.codec import decode_state, encode_state, encode_tail, tail_fits  # noqa: E402
from projections.competency.model import LearnerState  # noqa: E402
from projections.competency.policy import evolve_many, interpret  # noqa: E402

BUCKETS = ((0, 2), (3, 5), (6, 10), (11, 20), (21, 40), (41, 10**9))


def bucket(before: int) -> str:
    for low, high in BUCKETS:
        if low <= before <= high:
            return f"{low}-{high}" if high < 10**9 else f"{low}+"
    raise AssertionError(before)


def histories(statements: int, learners: int, seed: int) -> list[list]:
    catalog = load_catalog()
    rng = random.Random(seed)
    events: dict[str, list] = {}
    for _ in range(statements):
        meaning = interpret(json.loads(statement(rng, learners, 1.0)), catalog)
        if meaning is not None:
            events.setdefault(meaning.learner, []).append(meaning)
    return list(events.values())


def steps(history: list, catalog) -> list[tuple[LearnerState, LearnerState, list]]:  # type: ignore[no-untyped-def]
    state = LearnerState(learner=history[0].learner)
    out = []
    for event in history:
        after = evolve_many(state, [event], catalog)
        out.append((state, after, list(event.evidence)))
        state = after
    return out


def measure(statements: int, learners: int, repeat: int, seed: int) -> dict:
    catalog = load_catalog()
    all_steps = [steps(h, catalog) for h in histories(statements, learners, seed)]
    whole_cpu: dict[str, float] = {}
    tail_cpu: dict[str, float] = {}
    counts: dict[str, int] = {}
    whole_bytes: dict[str, int] = {}
    row_bytes: dict[str, int] = {}
    stored_whole: dict[str, int] = {}
    rows: list[tuple[bytes, bytes]] = []
    for learner_steps in all_steps:
        for before, _, _ in learner_steps:
            key = bucket(len({e.statement_id for e in before.evidence}))
            counts[key] = counts.get(key, 0) + 1
    for _ in range(repeat):
        spent_whole: dict[str, float] = {}
        spent_tail: dict[str, float] = {}
        rows = []
        for learner_steps in all_steps:
            raw, tail = b"", b""
            for n, (before, after, added) in enumerate(learner_steps):
                key = bucket(len({e.statement_id for e in before.evidence}))
                started = time.process_time()
                whole = encode_state(after)
                spent_whole[key] = spent_whole.get(key, 0.0) + time.process_time() - started
                started = time.process_time()
                frame = encode_tail(before, after, added) if n else None  # the first batch inserts the row
                if frame is not None and tail_fits(len(raw), len(tail), len(frame)):
                    tail += frame
                else:
                    raw, tail = encode_state(after), b""
                    frame = None
                spent_tail[key] = spent_tail.get(key, 0.0) + time.process_time() - started
                if _ == 0:
                    whole_bytes[key] = whole_bytes.get(key, 0) + len(whole)
                    row_bytes[key] = row_bytes.get(key, 0) + len(raw) + len(tail)
                    stored_whole[key] = stored_whole.get(key, 0) + (frame is None)
            rows.append((raw, tail))
        for key, seconds in spent_whole.items():
            whole_cpu[key] = min(whole_cpu.get(key, 9e9), seconds)
        for key, seconds in spent_tail.items():
            tail_cpu[key] = min(tail_cpu.get(key, 9e9), seconds)
    with_tail = [(raw, tail) for raw, tail in rows if tail]
    decode_with = decode_whole = 9e9
    for _ in range(repeat):
        started = time.process_time()
        for raw, tail in with_tail:
            decode_state(raw, tail)
        decode_with = min(decode_with, time.process_time() - started)
        wholes = [encode_state(decode_state(raw, tail)) for raw, tail in with_tail[:2000]]
        started = time.process_time()
        for raw in wholes:
            decode_state(raw)
        decode_whole = min(decode_whole, (time.process_time() - started) * len(with_tail) / max(len(wholes), 1))
    order = [bucket(low) for low, _ in BUCKETS if bucket(low) in counts]
    return {
        "by_statements_before": {
            key: {
                "batches": counts[key],
                "whole_every_batch_cpu_us": round(whole_cpu[key] / counts[key] * 1e6, 2),
                "tail_cpu_us": round(tail_cpu[key] / counts[key] * 1e6, 2),
                "stored_whole_share": round(stored_whole[key] / counts[key], 3),
                "whole_bytes": round(whole_bytes[key] / counts[key]),
                "row_bytes_with_tail": round(row_bytes[key] / counts[key]),
            }
            for key in order
        },
        "decode_of_rows_with_a_tail_cpu_us": round(decode_with / max(len(with_tail), 1) * 1e6, 2),
        "decode_of_the_same_states_whole_cpu_us": round(decode_whole / max(len(with_tail), 1) * 1e6, 2),
        "rows_with_a_tail": len(with_tail),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=200_000)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="write the result as JSON to this file")
    args = parser.parse_args(argv)
    import os

    result = {
        "benchmark": "state_tail",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": vars(args),
        **measure(args.statements, args.learners, args.repeat, args.seed),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
