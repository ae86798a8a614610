"""What a group's once-a-statement C calls cost when the process comes back to
them with its caches cold, as a writer does after each of a group's waits on
PostgreSQL (other processes run on the core meanwhile): zstd with the payload
dictionary, msgspec's encode, SHA-256, warm (called back to back) and cold
(a buffer larger than the caches walked between calls)::

    python bench/cold_cache_pieces.py [--evict-mb 16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_writer import sample_statement  # noqa: E402

from lrs.payload_codec import store_payloads  # noqa: E402


def timed(call, calls: int, evict: bytearray | None) -> float:
    spent = 0.0
    for _ in range(calls):
        if evict is not None:
            evict[::64] = bytes(len(evict) // 64 + (len(evict) % 64 > 0))  # one write a cache line
        started = time.perf_counter()
        call()
        spent += time.perf_counter() - started
    return round(spent / calls * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evict-mb", type=int, default=16)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    statement = sample_statement(1)
    payload = msgspec.json.encode(statement)
    pieces = {
        "zstd with the dictionary (store_payloads, one payload)": lambda: store_payloads([payload]),
        "msgspec.json.encode of the statement": lambda: msgspec.json.encode(statement),
        "sha256 of the payload": lambda: hashlib.sha256(payload).digest(),
    }
    evict = bytearray(args.evict_mb << 20)
    for name, call in pieces.items():
        print(json.dumps({"piece": name, "warm_us": timed(call, args.calls, None),
                          "cold_us": timed(call, args.calls, evict)}))


if __name__ == "__main__":
    main()
