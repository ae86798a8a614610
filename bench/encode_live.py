"""CPU of live apply's state encode, per state, for checkouts in turn.

Live apply encodes a learner's whole state after every batch that changes
it (projections/competency/store.py, ``_write``).  This folds ``--statements``
statements of ``bench/projection.py``'s generator (every statement evidence
by default) one at a time into ``--learners`` learners, in memory, keeping
the state after each one, and times over those states (CPU,
``time.process_time``, the best of ``--repeat`` passes, the cyclic collector
off) the layout alone (``codec._layout``: the string table and msgpack) and
the whole ``encode_state`` (layout and zstd); in a checkout that has it
(1c02841, reverted), also ``codec.StateEncoder``, checked to give the same
bytes.  It also counts what bounds a
per-learner reuse of the previous encode: the share of a state's evidence
that sorts before the first piece its statement changed (the same objects
as in the learner's state before).  ``--in-time-order`` folds the statements
in timestamp order, as a live log mostly has them (the generator's
timestamps are random, so by default a new statement sorts anywhere).

Each ``--tree`` runs in a fresh interpreter of its own venv
(``TREE/.venv/bin/python``), alternating the order every round; the
statements are the same (seeded) in every tree, their ids aside:

    python bench/encode_live.py --tree base=/work/wt/base2 --tree encode=. --rounds 2 --label encode
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(tree: Path, statements: int, learners: int, evidence_share: float, repeat: int, in_time: bool) -> dict:
    sys.path.insert(0, str(tree))  # the codec of the tree first
    sys.path.insert(1, str(HERE))  # the statement generator of this checkout
    import gc
    import random

    from projections.competency import codec
    from projections.competency.catalog import load_catalog
    from projections.competency.model import LearnerState
    from projections.competency.policy import evolve_many, interpret_stored

    from projection import statement

    assert Path(codec.__file__).resolve().is_relative_to(tree), "the codec of another tree"
    catalog = load_catalog()
    rng = random.Random(1)
    current: dict[str, LearnerState] = {}
    states: list[LearnerState] = []
    kept = evidence = 0
    raw = [statement(rng, learners, evidence_share) for _ in range(statements)]
    if in_time:  # as a live log most often has them: each learner's statements in timestamp order
        raw.sort(key=lambda s: json.loads(s)["timestamp"])
    for payload in raw:
        meaning = interpret_stored(payload.encode(), catalog)
        if meaning is None:
            continue
        before = current.get(meaning.learner) or LearnerState(learner=meaning.learner)
        after = evolve_many(before, [meaning], catalog)
        if after is before:
            continue
        same, most = 0, min(len(before.evidence), len(after.evidence))
        while same < most and after.evidence[same] is before.evidence[same]:
            same += 1
        kept += same
        evidence += len(after.evidence)
        current[meaning.learner] = after
        states.append(after)

    def best(work) -> float:
        times = []
        for _ in range(repeat):
            start = time.process_time()
            for state in states:
                work(state)
            times.append(time.process_time() - start)
        return round(min(times) / len(states) * 1e6, 2)

    gc.disable()
    result = {
        "states": len(states),
        "evidence_per_state": round(evidence / len(states), 2),
        "evidence_before_first_change": round(kept / evidence, 3),
        "layout_us": best(codec._layout),
        "encode_us": best(codec.encode_state),
    }
    keyed = getattr(codec, "StateEncoder", None)  # a checkout of 1c02841 (reverted): the encode per learner
    if keyed is not None:
        times = []
        for _ in range(repeat):
            encoder = keyed(learners)
            start = time.process_time()
            encoded = [encoder.encode(state.learner, state) for state in states]
            times.append(time.process_time() - start)
        assert encoded == [codec.encode_state(state) for state in states], "other bytes than encode_state's"
        result["state_encoder_us"] = round(min(times) / len(states) * 1e6, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sys.path.insert(0, str(HERE))
    from tree_runs import add_tree_options, alternate, generator_args, write_runs

    add_tree_options(parser, statements=40_000, learners=4_000)
    parser.add_argument("--in-time-order", action="store_true",
                        help="fold the statements in timestamp order (the generator's timestamps are random)")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(Path(args.one).resolve(), args.statements, args.learners, args.evidence_share,
                                 args.repeat, args.in_time_order)))
        return 0
    runs = alternate(__file__, args.tree or [f"this={HERE.parent}"], args.rounds,
                     [*generator_args(args), *(["--in-time-order"] if args.in_time_order else [])])
    write_runs("encode-live", args, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
