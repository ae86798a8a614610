"""CPU of live apply's competency-row diff, per learner written, in memory.

After each refold, live apply writes again the ``competency_states`` rows of
the competencies whose row changed (projections/competency/store.py,
``_rewrite``): it used to build the new and the old row of each refolded
competency and compare them; since branch apply it reads the two states'
fields first (``_row_differs``) and builds only the new row.  This folds
``--statements`` statements of ``bench/projection.py``'s generator (every
statement evidence by default) one at a time into ``--learners`` learners,
keeps each (state before, state after) pair, and times (CPU, best of
``--repeat`` passes, the collector off) the diff of every pair both ways,
checking that they give the same rows and deletes.

    python bench/row_rewrite.py --statements 40000 --learners 4000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=40_000)
    parser.add_argument("--learners", type=int, default=4_000)
    parser.add_argument("--evidence-share", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from projection import statement

    from projections.competency.catalog import load_catalog
    from projections.competency.model import LearnerState
    from projections.competency.policy import evolve_many, interpret_stored
    from projections.competency.rows import state_row
    from projections.competency.store import _competency_key, _rewrite, _row_differs

    catalog = load_catalog()
    rng = random.Random(1)
    current: dict[str, LearnerState] = {}
    pairs: list[tuple[LearnerState, LearnerState]] = []
    for _ in range(args.statements):
        meaning = interpret_stored(statement(rng, args.learners, args.evidence_share).encode(), catalog)
        if meaning is None or not hasattr(meaning, "evidence"):
            continue
        before = current.get(meaning.learner) or LearnerState(learner=meaning.learner)
        after = evolve_many(before, [meaning], catalog)
        if after is not before:
            current[meaning.learner] = after
            pairs.append((before, after))

    def run(differs):  # type: ignore[no-untyped-def]
        deletes: list = []
        rows: list = []
        for before, after in pairs:
            _rewrite("t", after.learner, before.competencies, after.competencies, state_row, _competency_key,
                     deletes, rows, differs)
        return deletes, rows

    assert run(None) == run(_row_differs), "the two diffs give other rows"
    best = {"build both rows": float("inf"), "fields first": float("inf")}
    gc.disable()
    for _ in range(args.repeat):
        for name, differs in (("build both rows", None), ("fields first", _row_differs)):
            started = time.process_time()
            run(differs)
            best[name] = min(best[name], time.process_time() - started)
    deletes, rows = run(None)
    print(json.dumps({
        "learners_written": len(pairs),
        "rows_written_per_learner": round(len(rows) / len(pairs), 3),
        "refolded_competencies_per_learner": round(
            sum(sum(1 for n, c in a.competencies.items() if b.competencies.get(n) is not c) for b, a in pairs)
            / len(pairs), 3),
        "us_per_learner": {name: round(seconds / len(pairs) * 1e6, 3) for name, seconds in best.items()},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
