"""CPU of the competency fold's pieces, in memory, for two checkouts in turn.

The fold over a learner's ordered evidence (``policy.fold_ordered``) runs in
three places: live apply's refold of the competencies a batch touches, every
decode of a stored state (format 3 folds every competency again), and a
replay (every competency of every learner).  This builds learners from
``--statements`` statements of ``bench/projection.py``'s generator (every
statement evidence by default), keeps each learner's last statement apart,
and times, per item (CPU, ``time.process_time``, the best of ``--repeat``
passes, the cyclic collector off):

- ``interpret_stored`` of a statement's stored bytes;
- ``fold_ordered`` of each competency's evidence, by its number of pieces;
- live apply's refold of the last statement into the rest (``evolve_many``);
- a replay's fold of a learner from nothing (``evolve_many`` of all events);
- ``encode_state`` and ``decode_state`` of the learner's state.

Each ``--tree`` runs in a fresh interpreter of its own venv
(``TREE/.venv/bin/python``), alternating the order every round, so two
checkouts are compared in one session on the same statements:

    python bench/fold_cpu.py --tree base=/work/wt/base --tree fold=. --rounds 3 --label fold
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(tree: Path, statements: int, learners: int, evidence_share: float, repeat: int) -> dict:
    sys.path.insert(0, str(tree))  # the rules of the tree first
    sys.path.insert(1, str(HERE))  # the statement generator of this checkout, for the same statements
    import gc
    import random
    from collections import defaultdict

    from projections.competency.catalog import load_catalog
    from projections.competency.codec import decode_state, encode_state
    from projections.competency.model import LearnerState
    from projections.competency.policy import evolve_many, fold, fold_ordered, interpret_stored

    from projection import statement  # after the rules: it puts this checkout on the path

    assert Path(fold_ordered.__code__.co_filename).resolve().is_relative_to(tree), "the rules of another tree"

    catalog = load_catalog()
    rng = random.Random(1)
    raw = [statement(rng, learners, evidence_share).encode() for _ in range(statements)]
    events: dict[str, list] = {}
    for payload in raw:
        meaning = interpret_stored(payload, catalog)
        if meaning is not None:
            events.setdefault(meaning.learner, []).append(meaning)
    pairs = [(fold(learner, items[:-1], catalog), items[-1]) for learner, items in events.items() if len(items) > 1]
    states = [evolve_many(before, [event], catalog) for before, event in pairs]
    stored = [encode_state(state) for state in states]
    by_size: dict[int, list] = defaultdict(list)
    for state in states:
        own: dict[str, list] = {}
        for e in state.evidence:
            own.setdefault(e.competency, []).append(e)
        for competency, group in own.items():
            by_size[min(len(group), 4)].append((competency, group))
    gc.disable()

    def best_us(function, count: int) -> float:  # type: ignore[no-untyped-def]
        spent = []
        for _ in range(repeat):
            started = time.process_time()
            function()
            spent.append(time.process_time() - started)
        return round(min(spent) / count * 1e6, 2)

    result = {
        "rules_from": str(tree),
        "learners": len(pairs),
        "mean_statements_a_learner": round(sum(len(items) for items in events.values()) / len(events), 2),
        "interpret_stored_us_a_statement": best_us(lambda: [interpret_stored(p, catalog) for p in raw], len(raw)),
        "fold_ordered_us_a_competency_by_pieces": {
            ("4+" if size == 4 else str(size)): [len(groups), best_us(lambda: [fold_ordered(c, g) for c, g in groups], len(groups))]
            for size, groups in sorted(by_size.items())
        },
        "live_refold_us_a_learner": best_us(lambda: [evolve_many(b, [e], catalog) for b, e in pairs], len(pairs)),
        "replay_fold_us_a_learner": best_us(
            lambda: [evolve_many(LearnerState(learner=learner), items, catalog) for learner, items in events.items()],
            len(events),
        ),
        "encode_us_a_state": best_us(lambda: [encode_state(s) for s in states], len(states)),
        "decode_us_a_state": best_us(lambda: [decode_state(b) for b in stored], len(stored)),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sys.path.insert(0, str(HERE))
    from tree_runs import add_tree_options, alternate, generator_args, write_runs

    add_tree_options(parser, statements=100_000, learners=20_000)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(Path(args.one), args.statements, args.learners, args.evidence_share, args.repeat)))
        return 0
    runs = alternate(__file__, args.tree or [f"this={HERE.parent}"], args.rounds, generator_args(args))
    write_runs("fold-cpu", args, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
