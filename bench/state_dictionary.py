"""Train, check and evaluate the zstd dictionary of stored learner states (projections/competency/codec.py).

The corpus: the layouts (``codec._layout``) of the learner states that
folding ``bench/projection.py``'s generated statements one at a time gives,
under the shipped frameworks (``schemas/frameworks``), with a fixed seed,
statement ids drawn from that seed, and both evidence shares the benches run
(the cmi5 mix, 0.33, and every statement evidence), a state kept after each
statement that changed it, as live apply stores it after a batch.  So it
knows the shipped frameworks' identifiers and the layout's own structure; a
deployment whose frameworks and learners' identifiers differ gains less (the
layout's structure, the verbs and the timestamps' shapes are all it shares).

    python bench/state_dictionary.py train --dict-id 1001   # writes schemas/zstd/states/1001.dict
    python bench/state_dictionary.py check                  # every shipped dictionary trains again byte for byte
    python bench/state_dictionary.py evaluate [--save]      # bytes and CPU µs a state, held-out states

A shipped dictionary is never changed: stored states name it (zstd's
dictionary id in each frame's header) for as long as they exist.  A better
one gets the next id and becomes codec.STATE_DICTIONARY.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from payload_dictionary import check_trained, dictionary_commands, write_trained  # noqa: E402
from projection import statement  # noqa: E402
from projections.competency import codec  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.model import LearnerState  # noqa: E402
from projections.competency.policy import evolve_many, interpret_stored  # noqa: E402

OUT_DIR = ROOT / "schemas" / "zstd" / "states"
# Training parameters of each shipped dictionary:
# (seed, statements of each evidence share, learners, size, k, d).
# fastcover with k and d given and one thread is deterministic.
TRAINED = {1001: (20261208, 10_000, 2_000, 16 * 1024, 1024, 8)}
EVIDENCE_SHARES = (0.33, 1.0)


def layouts(seed: int, statements: int, learners: int, evidence_share: float) -> list[bytes]:
    """The layout of each state folding ``statements`` generated statements gives, in order."""
    catalog = load_catalog()
    rng = random.Random(seed)
    current: dict[str, LearnerState] = {}
    found = []
    for _ in range(statements):
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        meaning = interpret_stored(statement(rng, learners, evidence_share, sid).encode(), catalog)
        if meaning is None:
            continue
        before = current.get(meaning.learner) or LearnerState(learner=meaning.learner)
        after = evolve_many(before, [meaning], catalog)
        if after is not before:
            current[meaning.learner] = after
            found.append(codec._layout(after))
    return found


def corpus(seed: int, statements: int, learners: int) -> list[bytes]:
    return [layout for n, share in enumerate(EVIDENCE_SHARES)
            for layout in layouts(seed + n, statements, learners, share)]


def train(dictionary_id: int) -> bytes:
    seed, statements, learners, size, k, d = TRAINED[dictionary_id]
    samples = corpus(seed, statements, learners)
    trained = zstandard.train_dictionary(size, samples, dict_id=dictionary_id, k=k, d=d, threads=1, level=codec.LEVEL)
    return trained.as_bytes()


def evaluate(statements: int, rounds: int) -> dict:
    """Held-out states (another seed, the benches' learner count): bytes and
    CPU µs a state (best and median of ``rounds`` interleaved rounds, the
    collector off), without a dictionary and with the codec's."""
    report: dict = {"dictionary": codec.STATE_DICTIONARY, "load_before": [round(x, 2) for x in __import__("os").getloadavg()]}
    for share in EVIDENCE_SHARES:
        data = layouts(7, statements, 4_000, share)
        plain = zstandard.ZstdCompressor(level=codec.LEVEL, write_checksum=False, write_content_size=True)
        plain_d = zstandard.ZstdDecompressor()
        ways = {
            "without dictionary": (plain.compress, lambda f: plain_d.decompress(f, 0, False, False)),
            "with the codec's dictionary": (codec.compress_layout, codec.open_state),
        }
        frames = {name: [c(x) for x in data] for name, (c, _) in ways.items()}
        for name, (_, o) in ways.items():
            assert [o(f) for f in frames[name]] == data, name
        timed: dict[str, dict[str, list[float]]] = {name: {"compress": [], "open": []} for name in ways}
        gc.disable()
        for round_ in range(rounds):
            for name in (list(ways) if round_ % 2 == 0 else list(ways)[::-1]):
                c, o = ways[name]
                start = time.process_time()
                for x in data:
                    c(x)
                timed[name]["compress"].append((time.process_time() - start) / len(data) * 1e6)
                start = time.process_time()
                for f in frames[name]:
                    o(f)
                timed[name]["open"].append((time.process_time() - start) / len(data) * 1e6)
        gc.enable()
        report[f"evidence share {share}"] = {
            "states": len(data),
            "layout_bytes": round(sum(map(len, data)) / len(data), 1),
            **{name: {"frame_bytes": round(sum(map(len, frames[name])) / len(data), 1),
                      **{f"{k}_us_best": round(min(v), 2) for k, v in timed[name].items()},
                      **{f"{k}_us_median": round(statistics.median(v), 2) for k, v in timed[name].items()}}
               for name in ways},
        }
    report["load_after"] = [round(x, 2) for x in __import__("os").getloadavg()]
    return report


def main() -> int:
    parser, sub = dictionary_commands(__doc__, TRAINED)
    evaluator = sub.add_parser("evaluate", help="bytes and CPU a state on held-out states")
    evaluator.add_argument("--statements", type=int, default=20_000)
    evaluator.add_argument("--rounds", type=int, default=7)
    evaluator.add_argument("--save", action="store_true", help="write bench/results/state-dictionary-<UTC time>.json")
    args = parser.parse_args()
    if args.command == "train":
        return write_trained(OUT_DIR / f"{args.dict_id}.dict", lambda: train(args.dict_id), args.force)
    if args.command == "check":
        return check_trained({i: OUT_DIR / f"{i}.dict" for i in sorted(TRAINED)}, train)
    report = evaluate(args.statements, args.rounds)
    print(json.dumps(report, indent=2))
    if args.save:
        out = ROOT / "bench" / "results" / f"state-dictionary-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps({"benchmark": "state-dictionary", "command": "python " + " ".join(sys.argv),
                                   "result": report}, indent=2) + "\n")
        print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
