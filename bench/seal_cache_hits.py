"""How often a worker's learner caches answer, for a learner population
larger or smaller than they hold: one process's ``LearnerKeys.seal_statements``
driven with bench/ingest.py's statements (``--learners N``: stable names,
drawn at random), its key statement answered in process (a new key for an
identity not yet made, the made one after: what PostgreSQL would answer,
without PostgreSQL), so the figures are the cache's alone.

For each statement it counts whether the actor's sealed form was cached
(nothing encrypted, no ciphertext sent) and whether its key had to be read;
and the CPU µs per statement of sealing (``time.process_time``).  A first
pass names every learner once (the warm-up); then ``--statements`` are
measured.  ``--tree CHECKOUT`` runs another checkout's ``lrs`` (its
defaults: before this branch, 100,000 learners per cache, emptied whole
when full).

    python bench/seal_cache_hits.py --learners 200000 --statements 400000
    python bench/seal_cache_hits.py --learners 200000 --statements 400000 --tree <main checkout>
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=200_000)
    parser.add_argument("--statements", type=int, default=400_000, help="measured statements (batches of 100)")
    parser.add_argument("--capacity", type=int, help="LearnerKeys capacity (default: the build's own default)")
    parser.add_argument("--tree", help="run this checkout's lrs package")
    parser.add_argument("--output", help="result file (default: print only)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve() if args.tree else HERE.parent))
    sys.path.insert(0, str(HERE))
    import psutil

    from ingest import Learners, _Bodies  # noqa: E402
    from seal_layout import seal_names  # noqa: E402
    from lrs.privacy.master import MasterKey  # noqa: E402
    from lrs.store import learner_keys as lk  # noqa: E402

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    master = MasterKey(os.urandom(32))
    made: dict[str, bytes] = {}
    reads = [0]

    class InProcess(lk.LearnerKeys):
        # The key statement, answered as PostgreSQL would.  Since the notes of
        # keys not known to be on disk (branch keys-crash) it is _load_or_create,
        # which answers the keys, their (generation, wrapped) and their stamp
        # (noted until the request is stored); before, _load answered the keys.
        async def _load_or_create(self, tenant, pseudonyms):
            reads[0] += len(pseudonyms)
            version, stamp = self._version, time.monotonic()
            keys, noted = [], {}
            for p in pseudonyms:
                data_key = made.setdefault(p, os.urandom(32))  # stands for its wrapped form too
                keys.append(self._remember(tenant, p, 1, seal.new_data_key_cipher(data_key), version, data_key, stamp))
                noted[p] = (1, data_key)
            return keys, noted, stamp

        async def _load(self, tenant, pseudonyms):
            if hasattr(lk.LearnerKeys, "_keys_noted"):
                return await super()._load(tenant, pseudonyms)
            reads[0] += len(pseudonyms)  # a checkout from before the notes
            version = self._version
            return [self._remember(tenant, p, 1, seal.new_data_key_cipher(made.setdefault(p, os.urandom(32))), version)
                    for p in pseudonyms]

    from lrs.config import Settings  # noqa: E402

    # The service's own default (LRS_LEARNER_CACHE_SIZE where the build has it).
    import dataclasses

    capacity = args.capacity or next(
        (f.default for f in dataclasses.fields(Settings) if f.name == "learner_cache_size"), None)
    kwargs = {} if capacity is None else {"capacity": capacity}
    keyring = InProcess(None, master, **kwargs)
    authority = {"objectType": "Agent", "account": {"homePage": "http://127.0.0.1", "name": "bench"}}
    learners = Learners(args.learners, seed=11)
    process = psutil.Process()

    async def drive(bodies, requests: int) -> tuple[int, float]:
        fresh = 0
        spent = 0.0
        for _ in range(requests):
            statements = json.loads(bodies.next())
            started = time.process_time()
            sealed = await keyring.seal_statements("default", statements, authority)
            spent += time.process_time() - started
            keyring.stored(sealed)  # as once its group commit is done
            fresh += len(sealed.forms)
        return fresh, spent

    gc.collect()
    rss_before = process.memory_info().rss
    warm = _Bodies(100, 20, learners.each_once())
    asyncio.run(drive(warm, -(-args.learners // 100)))
    reads[0] = 0
    bodies = _Bodies(100, 20, learners)
    requests = args.statements // 100
    fresh, spent = asyncio.run(drive(bodies, requests))
    gc.collect()
    statements = requests * 100
    result = {
        "benchmark": "seal_cache_hits",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tree": args.tree or str(HERE.parent),
        "lrs": str(Path(lk.__file__).parents[2]),
        "learners": args.learners,
        "capacity": keyring._capacity,
        "statements": statements,
        "forms_not_cached_share": round(fresh / statements, 4),
        "key_reads_share": round(reads[0] / statements, 4),
        "seal_cpu_us_per_statement": round(spent / statements * 1e6, 2),
        "rss_growth_mib": round((process.memory_info().rss - rss_before) / 2**20, 1),
        "load_average": list(os.getloadavg()),
    }
    print(json.dumps(result))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
