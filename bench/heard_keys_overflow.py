"""What the unconfirmed notes' overflow costs a worker: keys another worker
made are heard of (``ANNOUNCE_KEY``) and noted until this worker seals a
Statement under them (lrs.store.unconfirmed_keys); the notes hold a quarter
of the key cache's capacity (62,500 at the default 250,000), and when full
their oldest half is dropped, from the key cache too.  A learner whose key
was dropped so is read again (the key statement) the next time this worker
names it.

One process's ``LearnerKeys``: ``--heard N`` keys announced as another
worker's group commit announces them, then ``--named M`` of those learners
(drawn at random) asked for as a request's keys are (``keys_for_writing``,
batches of 100), the key statement answered in process with the key that
was heard (what PostgreSQL would answer: the one live key).  Prints the
share of named learners read again and the in-process CPU µs of such a read
(unwrapping the key and caching it; the key statement's round trip and
PostgreSQL's part are not in it).

    python bench/heard_keys_overflow.py --heard 200000 --named 20000 --label hygiene
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run_record import add_result_options, load_average, machine, write_result  # noqa: E402

from lrs.privacy.master import MasterKey  # noqa: E402
from lrs.store import learner_keys as lk  # noqa: E402

TENANT = "default"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heard", type=int, default=200_000, help="keys heard of, in order")
    parser.add_argument("--named", type=int, default=20_000, help="of those, learners named after (random)")
    parser.add_argument("--capacity", type=int, default=250_000, help="the key cache's (LRS_LEARNER_CACHE_SIZE)")
    parser.add_argument("--seed", type=int, default=1)
    add_result_options(parser, output=True)
    args = parser.parse_args()
    load_before = load_average()

    master = MasterKey(os.urandom(32))
    wrapped: dict[str, bytes] = {}
    reads = [0, 0.0]  # pseudonyms read again, CPU seconds of answering them

    class InProcess(lk.LearnerKeys):
        async def _load_or_create(self, tenant, pseudonyms):  # the key statement: the live key, the one heard
            started = time.process_time()
            version, stamp = self._version, time.monotonic()
            keys, noted = [], {}
            for p in pseudonyms:
                cipher = self._cipher(wrapped[p], tenant, p, 1)
                keys.append(self._remember(tenant, p, 1, cipher, version, wrapped[p], stamp))
                noted[p] = (1, wrapped[p])
            reads[0] += len(pseudonyms)
            reads[1] += time.process_time() - started
            return keys, noted, stamp

    keyring = InProcess(None, master, capacity=args.capacity)
    idents = [f"mbox:mailto:learner-{n}@example.org" for n in range(args.heard)]
    for ident in idents:
        pseudonym = keyring.pseudonym(TENANT, ident)
        wrapped[pseudonym] = master.wrap(os.urandom(32), TENANT, pseudonym, 1)
        keyring.heard(f"{TENANT} {pseudonym} 1:{wrapped[pseudonym].hex()}:0")
    cached = sum(1 for ident in idents if keyring._current.get(f"{TENANT}\x00{keyring.pseudonym(TENANT, ident)}"))
    named = random.Random(args.seed).sample(idents, min(args.named, len(idents)))

    async def name_all() -> None:
        for start in range(0, len(named), 100):
            await keyring.keys_for_writing(TENANT, named[start:start + 100])

    asyncio.run(name_all())
    result = {
        "benchmark": "heard_keys_overflow",
        "machine": machine(load_before=load_before),
        "note": args.note,
        "heard": args.heard,
        "capacity": args.capacity,
        "notes_capacity": keyring._unconfirmed._capacity,
        "heard_still_cached": cached,
        "named": len(named),
        "read_again_share": round(reads[0] / len(named), 4) if named else None,
        "read_again_cpu_us_each": round(reads[1] / reads[0] * 1e6, 2) if reads[0] else None,
    }
    print(json.dumps(result))
    if not args.no_write:
        write_result(result, "heard_keys_overflow", args.label, output=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
