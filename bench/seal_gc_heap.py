"""What a worker's learner caches cost the cyclic garbage collector: one
process holding N learners as an HTTP worker does after sealing their
Statements (keys, pseudonyms, ciphers and sealed forms cached), then the
time of a full collection (``gc.collect()``) and of the collections that
one batch of 100 Statements' allocations set off at the service's
thresholds, against the same with no learners cached.

    python bench/seal_gc_heap.py --learners 50000
    python bench/seal_gc_heap.py --learners 50000 --tree /work/wt/base

The service freezes what exists at start (``lrs.commands.common.settle_heap``);
the caches fill afterwards, so a full collection walks them: every key and
value of every cache dict it still tracks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(HERE), help="checkout whose lrs package is measured (default: this one)")
    parser.add_argument("--learners", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", help="write the result here as JSON")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve()))
    sys.path.insert(1, str(HERE))
    result = {"tree": args.tree, "learners": args.learners, **asyncio.run(measure(args.learners, args.rounds))}
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


async def measure(learners: int, rounds: int) -> dict[str, float]:
    import msgspec

    from bench.ingest import _TEMPLATE
    from lrs.commands.common import SERVICE_GC_THRESHOLDS
    from seal_layout import seal_names
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example/", "name": "client-1"}}

    def statement(n: int) -> dict:
        return msgspec.json.decode(_TEMPLATE % (
            uuid.uuid4(), n, n % 50_000, n % 40, n % 21, n % 21, n % 100, n % 100, 1 + n % 59, uuid.uuid4(), n % 60))

    gc.collect()
    gc.freeze()  # as the service does once started (settle_heap)
    keyring = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=250_000)  # type: ignore[arg-type]
    for start in range(0, learners, 100):
        batch = [statement(n) for n in range(start, min(start + 100, learners))]
        idents = seal.identities({"actor": authority})
        for one in batch:
            idents |= seal.identities(one)
        for ident in idents:  # as a key read or made is kept (LearnerKeys._remember)
            keyring._remember(tenant, keyring.pseudonym(tenant, ident), 1,
                              seal.new_data_key_cipher(secrets.token_bytes(32)), keyring._version)
        keyring.stored(await keyring.seal_statements(tenant, batch, authority))
    gc.collect()
    gc.collect()
    full = []
    for _ in range(rounds):
        start = time.process_time()
        gc.collect()
        full.append((time.process_time() - start) * 1e3)
    return {
        "tracked objects (not frozen)": len(gc.get_objects()),
        "full collection ms": round(statistics.median(full), 2),
        "thresholds": list(SERVICE_GC_THRESHOLDS),
    }


if __name__ == "__main__":
    raise SystemExit(main())
