"""CPU and bytes of a learner state's zstd frame at each level, in one process.

Live apply compresses a learner's whole state layout after every batch that
changes it, and a replay once a learner (projections/competency/codec.py).
This folds ``--statements`` statements of ``bench/projection.py``'s
generator (every statement evidence by default) one at a time into
``--learners`` learners, keeps each state's layout (``codec._layout``) after
each statement, and times, per state (CPU, ``time.process_time``, the cyclic
collector off), compressing the layouts and decompressing the frames at each
``--level``, the levels interleaved ``--rounds`` times in this one process so
that the machine's load moves every level alike.  Reports the best and the
median round per level, and the mean frame's bytes.

    .venv/bin/python bench/state_zstd_level.py --level 1 --level -1 --rounds 7 --label lag5
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

import zstandard  # noqa: E402

from state_dictionary import layouts  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=40_000)
    parser.add_argument("--learners", type=int, default=4_000)
    parser.add_argument("--evidence-share", type=float, default=1.0)
    parser.add_argument("--level", type=int, action="append", help="zstd levels (default: 1 and -1)")
    parser.add_argument("--rounds", type=int, default=7)
    add_result_options(parser)
    args = parser.parse_args(argv)
    levels = args.level or [1, -1]
    load_before = load_average()
    data = layouts(1, args.statements, args.learners, args.evidence_share)
    compressors = {lv: zstandard.ZstdCompressor(level=lv, write_checksum=False, write_content_size=True)
                   for lv in levels}
    decompress = zstandard.ZstdDecompressor().decompress
    frames = {lv: [c.compress(x) for x in data] for lv, c in compressors.items()}
    for lv in levels:
        assert [decompress(f, 0, False, False) for f in frames[lv]] == data, f"level {lv} does not round trip"
    timed: dict[int, dict[str, list[float]]] = {lv: {"compress": [], "decompress": []} for lv in levels}
    gc.disable()
    for round_ in range(args.rounds):
        for lv in (levels if round_ % 2 == 0 else levels[::-1]):
            compress = compressors[lv].compress
            start = time.process_time()
            for x in data:
                compress(x)
            timed[lv]["compress"].append((time.process_time() - start) / len(data) * 1e6)
            start = time.process_time()
            for f in frames[lv]:
                decompress(f, 0, False, False)
            timed[lv]["decompress"].append((time.process_time() - start) / len(data) * 1e6)
    gc.enable()
    result = {
        "states": len(data),
        "layout_bytes_mean": round(statistics.fmean(map(len, data)), 1),
        "levels": {
            str(lv): {
                "frame_bytes_mean": round(statistics.fmean(map(len, frames[lv])), 1),
                **{f"{what}_us_best": round(min(times), 2) for what, times in timed[lv].items()},
                **{f"{what}_us_median": round(statistics.median(times), 2) for what, times in timed[lv].items()},
            }
            for lv in levels
        },
        "load_before": load_before,
        "load_after": load_average(),
        "machine": machine(),
    }
    print(result)
    if not args.no_write:
        write_result({"benchmark": "state_zstd_level", "settings": vars(args), "note": args.note, "result": result},
                     "state-zstd-level", args.label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
