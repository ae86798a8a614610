"""CPU of encoding and decoding learner states (projections/competency/codec.py).

Live apply encodes every learner a batch changes (about one state per event
when every statement is evidence) and a replay encodes every learner once.
This folds ``--learners`` states from ``--statements`` statements of
``bench/projection.py``'s generator (the cmi5 mix, or every statement
evidence), in memory, and reports the CPU seconds (``time.process_time``,
which moves far less with the machine's load than the wall clock) per
encode and per decode: the best of ``--repeat`` passes over all states.
Runs with the code of the checkout it lives in; to compare two checkouts,
run each one's copy in turn (same arguments, same states).

``--split`` also weighs a stored state that keeps only what the fold cannot
derive (its evidence and voidings; the competencies and certifications are
rows of their own tables): the encode and decode of that part, its bytes, and
what deriving the rest on load would cost (the decode, whose fold gives the
competencies, and the certifications from those).  A measurement of the layout's
parts, not a codec: such a state is not something ``decode_state`` reads back
whole.  Since format 3 (branch proj-slim) the stored state itself leaves the
competencies out and ``decode_state`` folds them again from the evidence, so
the part's decode includes that fold and only the certifications are left
out beyond what every state now leaves out.

    python bench/state_codec.py --statements 100000 --learners 20000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from projection import statement  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.codec import decode_state, encode_state  # noqa: E402
from projections.competency.mastery import certifications  # noqa: E402
from projections.competency.policy import fold, interpret  # noqa: E402


def states(statements: int, learners: int, evidence_share: float, seed: int) -> list:
    catalog = load_catalog()
    rng = random.Random(seed)
    events: dict[str, list] = {}
    for _ in range(statements):
        meaning = interpret(json.loads(statement(rng, learners, evidence_share)), catalog)
        if meaning is not None:
            events.setdefault(meaning.learner, []).append(meaning)
    return [fold(learner, items, catalog) for learner, items in sorted(events.items())]


def split(folded: list, repeat: int) -> dict:
    """The evidence-and-voidings part of each state, and deriving the rest from it."""
    import msgspec

    catalog = load_catalog()
    parts = [msgspec.structs.replace(s, competencies={}, certifications={}) for s in folded]
    stored = [encode_state(s) for s in parts]

    def derive(raw: bytes):  # type: ignore[no-untyped-def]
        # decode_state has folded the competencies again (format 3); what is
        # left is the certifications.  (Refolding the decoded state, as this
        # did, found no attainment changed and kept its empty certifications.)
        part = decode_state(raw)
        return msgspec.structs.replace(part, certifications=certifications(part.competencies, catalog))

    assert all(derive(raw) == whole for raw, whole in zip(stored[:500], folded))
    return {
        "mean_bytes_evidence_part": round(sum(map(len, stored)) / len(stored)),
        "encode_evidence_part_cpu_us": best_cpu_us(encode_state, parts, repeat),
        "decode_evidence_part_cpu_us": best_cpu_us(decode_state, stored, repeat),
        "decode_and_derive_cpu_us": best_cpu_us(derive, stored, repeat),
    }


def best_cpu_us(function, items: list, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for item in items:
            function(item)
        best = min(best, time.process_time() - started)
    return round(best / len(items) * 1e6, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--mix", choices=("cmi5", "all-evidence"), action="append")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split", action="store_true",
                        help="also weigh the part of a state that is not competencies and certifications")
    args = parser.parse_args(argv)
    for mix in args.mix or ["cmi5", "all-evidence"]:
        folded = states(args.statements, args.learners, 0.33 if mix == "cmi5" else 1.0, args.seed)
        stored = [encode_state(s) for s in folded]
        print(json.dumps({
            "mix": mix, "states": len(folded), "mean_bytes": round(sum(map(len, stored)) / len(stored)),
            "encode_cpu_us": best_cpu_us(encode_state, folded, args.repeat),
            "decode_cpu_us": best_cpu_us(decode_state, stored, args.repeat),
            **(split(folded, args.repeat) if args.split else {}),
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
