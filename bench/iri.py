"""Per-statement cost of IRI validation (RFC 3987, lrs.xapi.iri), a micro-benchmark.

Measures, in this process, with no server:

* the time to match typical IRIs against the RFC 3987 pattern and against
  the earlier loose pattern (a scheme, a colon, no spaces or controls);
* the time ``parse_statements`` takes per statement for a batch of 100
  statements of the ingest bench's shape (five IRIs each).

* the worst case: long IRIs (about 80,000 characters) that fail at their
  end or are made of escapes or slashes, against the portable pattern the
  JSON Schemas publish (the pattern applied before it was made possessive)
  and the possessive one applied now, in ms per 100 KB of input (the
  fastest of the repeats, as a worst case is about the pattern, not load).

Run it from a checkout of each commit to compare decoding before and after:

    python bench/iri.py --repeat 7 --record

It takes a few seconds.  Figures vary with load: take the median of repeats.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import timeit
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from lrs.xapi import parse_statements  # noqa: E402
from lrs.xapi.common import IRI_PATTERN, PUBLISHED_PATTERNS  # noqa: E402
from bench.run_record import load_average, write_result  # noqa: E402
from bench.store_writer import sample_statement  # noqa: E402

LOOSE_PATTERN = r'^(?:[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20\x7f<>"{}|\\^`]+)$(?!\n)'
TYPICAL_IRIS = [
    "http://adlnet.gov/expapi/verbs/completed",
    "https://mooc.example.org/course/17/unit/214",
    "http://adlnet.gov/expapi/activities/lesson",
    "https://mooc.example.org",
    "https://w3id.org/xapi/video/extensions/length?lang=vi#t=10",
]


def per_iri_us(pattern: str, number: int) -> float:
    match = re.compile(pattern).match
    started = time.perf_counter()
    for _ in range(number):
        for iri in TYPICAL_IRIS:
            match(iri)
    return (time.perf_counter() - started) / (number * len(TYPICAL_IRIS)) * 1e6


LONG = 80_000
LONG_IRIS = {
    "path_then_space": "http://example.com/" + "a" * LONG + " ",
    "host_then_nul": "http://" + "a" * LONG + "\x00",
    "slashes_then_space": "http://x" + "/" * LONG + " ",
    "segments_then_space": "http://x" + "/a" * (LONG // 2) + " ",
    "escapes": "http://example.com/" + "%41" * (LONG // 3),
    "escaped_host_then_space": "http://" + "%41" * (LONG // 3) + " ",
    "userinfo": "http://" + "a" * LONG + "@",
    "rootless_then_space": "urn:" + "a:" * (LONG // 2) + " ",
    "query_then_space": "http://x/?" + "a" * LONG + " ",
}


def long_ms_per_100kb(pattern: str, repeat: int) -> dict[str, float]:
    match = re.compile(pattern).match
    out = {}
    for name, iri in LONG_IRIS.items():
        best = min(timeit.repeat(lambda: match(iri), number=1, repeat=repeat))
        out[name] = round(best * 1000 * 100_000 / len(iri), 3)
    return out


def per_statement_us(number: int) -> float:
    body = msgspec.json.encode([sample_statement(n) for n in range(100)])
    seconds = timeit.timeit(lambda: parse_statements(body, "1.0.3"), number=number)
    return seconds / (number * 100) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeats; the median is reported")
    parser.add_argument("--record", action="store_true", help="write bench/results/iri-<time>.json")
    parser.add_argument("--label", default="", help="what code this is (e.g. a commit)")
    args = parser.parse_args()
    strict = statistics.median(per_iri_us(IRI_PATTERN, 20_000) for _ in range(args.repeat))
    portable = statistics.median(per_iri_us(PUBLISHED_PATTERNS[IRI_PATTERN], 20_000) for _ in range(args.repeat))
    loose = statistics.median(per_iri_us(LOOSE_PATTERN, 20_000) for _ in range(args.repeat))
    statement = statistics.median(per_statement_us(200) for _ in range(args.repeat))
    result = {
        "benchmark": "iri",
        "label": args.label,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "load_average_1m": load_average()[0],
        "per_iri_us": {"rfc3987": round(strict, 3), "rfc3987_portable": round(portable, 3),
                       "loose_before": round(loose, 3)},
        "iris_per_statement": 5,
        "parse_statements_us_per_statement": round(statement, 2),
        "long_iri_ms_per_100kb": {
            "portable_before": long_ms_per_100kb(PUBLISHED_PATTERNS[IRI_PATTERN], args.repeat),
            "possessive_applied": long_ms_per_100kb(IRI_PATTERN, args.repeat),
        },
        "repeat": args.repeat,
    }
    print(json.dumps(result, indent=2))
    if args.record:
        write_result(result, "iri")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
