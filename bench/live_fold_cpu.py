"""CPU of live apply's pure part per learner: the refold, the encode, the changed rows.

Live apply, for every learner a batch touches, folds the batch's new
statements into the learner's state (``evolve_many``), encodes the new state
(``encode_state``) and works out which of its competency and certification
rows changed (``store._rewrite``).  With every statement evidence a learner
is in about one batch per statement, so this is paid about once per event.

This builds, in memory, learners from ``--statements`` statements of
``bench/projection.py``'s generator, keeps each learner's last statement
apart, and measures (CPU seconds, ``time.process_time``: the best of
``--repeat`` passes) folding that statement into the state of the others,
then the same with the encode and the rows.  No PostgreSQL, no asyncpg: the
figure that moves least with a shared machine's load.  ``--tree`` runs the
rules of another checkout (its ``projections`` package) on the same
statements, so two checkouts can be compared in turn in one session:

    python bench/live_fold_cpu.py --tree /path/to/main --out bench/results/<file>.json
    python bench/live_fold_cpu.py --tree . --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(tree: Path, statements: int, learners: int, evidence_share: float, repeat: int) -> dict:
    sys.path.insert(0, str(tree))  # the rules first, so the generator's imports find them loaded
    import projections
    from projections.competency.catalog import load_catalog
    from projections.competency.codec import encode_state
    from projections.competency.policy import evolve_many, fold, interpret
    from projections.competency.rows import certification_row, state_row
    from projections.competency.store import _competency_key, _program_key, _rewrite

    sys.path.insert(1, str(HERE))  # the statement generator of this checkout, for the same statements
    from projection import statement

    catalog = load_catalog()
    rng = random.Random(1)
    events: dict[str, list] = {}
    for _ in range(statements):
        meaning = interpret(json.loads(statement(rng, learners, evidence_share)), catalog)
        if meaning is not None:
            events.setdefault(meaning.learner, []).append(meaning)
    pairs = [(fold(learner, items[:-1], catalog), items[-1]) for learner, items in events.items() if len(items) > 1]

    def refold() -> None:
        for before, event in pairs:
            evolve_many(before, [event], catalog)

    def whole() -> None:
        for before, event in pairs:
            after = evolve_many(before, [event], catalog)
            encode_state(after)
            gone: list = []
            rows: list = []
            _rewrite("t", before.learner, before.competencies, after.competencies, state_row, _competency_key, gone, rows)
            if after.certifications is not before.certifications:
                _rewrite("t", before.learner, before.certifications, after.certifications, certification_row,
                         _program_key, gone, rows)

    def best_us(function) -> float:  # type: ignore[no-untyped-def]
        spent = []
        for _ in range(repeat):
            started = time.process_time()
            function()
            spent.append(time.process_time() - started)
        return round(min(spent) / len(pairs) * 1e6, 2)

    return {
        "rules_from": str(Path(projections.__file__).resolve().parent.parent),
        "learners_measured": len(pairs),
        "mean_statements_before": round(sum(len({e.statement_id for e in b.evidence}) for b, _ in pairs) / len(pairs), 2),
        "evolve_many_cpu_us": best_us(refold),
        "evolve_encode_rows_cpu_us": best_us(whole),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(HERE.parent), help="the checkout whose rules run (default: this one)")
    parser.add_argument("--statements", type=int, default=50_000)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--evidence-share", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", help="append the result as one JSON line to this file")
    args = parser.parse_args(argv)
    result = {
        "benchmark": "live-fold-cpu",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        **measure(Path(args.tree).resolve(), args.statements, args.learners, args.evidence_share, args.repeat),
    }
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "a") as out:
            out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
