"""CPU of the timestamp decision: the statement validator per statement, the
check alone, and the competency rules' reading, for two checkouts alternated.

The validator (``lrs.xapi.statement.parse_statements``, batch 100, the ingest
bench's statements) is timed with the statements' timestamp in the common
form (``2026-11-01T08:07:00Z``) and with an offset and a fraction
(``2026-11-01T15:07:00.250+07:00``); ``check_*`` times ``lrs.xapi.common.timestamp_problem``
alone (ns a call); ``rules_read`` the rules' ``normalise_timestamp`` of a
stored client timestamp with milliseconds (its general path).

Each side runs in its own process (``--repo``, as bench/ingest_pieces.py), the
sides alternated ``--pairs`` times; each figure is the best of ``--rounds``
with ``time.process_time``.  Figures of each side: the median over pairs::

    python bench/timestamp_check.py --side base=/work/wt/base --side mine=. --pairs 5 --label timestamps
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = 100


def measure(reps: int, rounds: int) -> dict[str, float]:
    """This process's figures (the checkout first on sys.path is measured)."""
    import ingest  # bench/ingest.py: the statements the ingest bench posts
    from lrs.xapi.common import timestamp_problem
    from lrs.xapi.statement import parse_statements
    from projections.competency.judgement import normalise_timestamp

    common = [ingest._body(BATCH, [i * BATCH]) for i in range(reps)]
    offset = [b.replace(b'"timestamp":"2026-11-01T08:', b'"timestamp":"2026-11-01T15:').replace(
        b':00Z"}', b':00.250+07:00"}') for b in common]
    texts_common = [f"2026-11-01T08:{i % 60:02d}:00Z" for i in range(1000)]
    texts_offset = [f"2026-11-01T15:{i % 60:02d}:00.250+07:00" for i in range(1000)]
    stored = [f"2026-11-01T08:{i % 60:02d}:00.250Z" for i in range(1000)]
    for body in common + offset:
        assert len(parse_statements(body, "1.0.3")) == BATCH
    from ingest_pieces import _measure  # best of rounds with process_time: µs / (reps × per)

    statements = _measure({"validate_common_us": lambda i: parse_statements(common[i], "1.0.3"),
                           "validate_offset_us": lambda i: parse_statements(offset[i], "1.0.3")}, reps, rounds, BATCH)
    calls = _measure({"check_common_ns": lambda i: timestamp_problem(texts_common[i % 1000]),
                      "check_offset_ns": lambda i: timestamp_problem(texts_offset[i % 1000]),
                      "rules_read_ns": lambda i: normalise_timestamp(stored[i % 1000])}, 20000, rounds, 0.001)
    del statements["sum"], calls["sum"]
    return statements | calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", action="append", default=[], help="NAME=CHECKOUT (repeat; alternated)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    sys.path.insert(0, str(HERE))
    from run_record import add_result_options, load_average, machine, write_result

    add_result_options(parser, output=True)
    args = parser.parse_args()
    if args.child:  # one side's figures, as JSON on stdout
        sys.path.insert(0, args.child)
        print(json.dumps(measure(args.reps, args.rounds)))
        return
    sides = dict(s.split("=", 1) for s in args.side) or {"this": str(HERE.parent)}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    load_before = list(load_average())
    for _ in range(args.pairs):
        for name, repo in sides.items():
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(Path(repo).resolve()), "--reps", str(args.reps),
                 "--rounds", str(args.rounds)], capture_output=True, text=True, check=True, cwd=str(Path(repo).resolve()))
            figures = json.loads(child.stdout)
            figures["load_average"] = list(load_average())
            runs[name].append(figures)
            print(name, figures, flush=True)
    medians = {name: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0] if k != "load_average"}
               for name, rs in runs.items()}
    record = {"benchmark": "timestamp-check", "machine": machine(load_before=load_before), "sides": sides,
              "pairs": args.pairs, "reps": args.reps, "rounds": args.rounds, "runs": runs, "medians": medians,
              "note": args.note}
    print(json.dumps(medians, indent=2))
    if not args.no_write:
        print(write_result(record, "timestamp-check", args.label, output=args.output))


if __name__ == "__main__":
    main()
