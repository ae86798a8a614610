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

    python bench/encode_live.py --tree base=/work/wt/base2 --tree encode=. --rounds 2 \\
        --out bench/results/encode_live-encode.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", metavar="NAME=PATH",
                        help="a checkout with its own .venv (default: this one)")
    parser.add_argument("--statements", type=int, default=40_000)
    parser.add_argument("--learners", type=int, default=4_000)
    parser.add_argument("--evidence-share", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--in-time-order", action="store_true",
                        help="fold the statements in timestamp order (the generator's timestamps are random)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", help="write the result (JSON) here as well")
    parser.add_argument("--one", metavar="PATH", help=argparse.SUPPRESS)  # a child: measure PATH and print
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one).resolve(), args.statements, args.learners, args.evidence_share,
                                 args.repeat, args.in_time_order)))
        return
    trees = [t.split("=", 1) for t in (args.tree or [f"this={HERE.parent}"])]
    runs: list[dict] = []
    for round_ in range(args.rounds):
        for name, path in (trees if round_ % 2 == 0 else trees[::-1]):
            root = Path(path).resolve()
            with open("/proc/loadavg") as f:
                load = f.read().split()[:3]
            out = subprocess.run(
                [str(root / ".venv/bin/python"), __file__, "--one", str(root), "--statements", str(args.statements),
                 "--learners", str(args.learners), "--evidence-share", str(args.evidence_share),
                 "--repeat", str(args.repeat), *(["--in-time-order"] if args.in_time_order else [])],
                check=True, capture_output=True, text=True,
            ).stdout
            run = {"tree": name, "round": round_, "loadavg": load, **json.loads(out.splitlines()[-1])}
            print(json.dumps(run))
            runs.append(run)
    if args.out:
        Path(args.out).write_text(json.dumps({
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "statements": args.statements,
            "learners": args.learners, "evidence_share": args.evidence_share, "in_time_order": args.in_time_order, "runs": runs,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
