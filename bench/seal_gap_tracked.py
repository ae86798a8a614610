"""Objects the cyclic collector tracks, per Statement, that a request keeps
while it waits for its group commit: clear and sealed (known learners, every
form cached), as ``post_statements`` holds them (the decoded bodies, the
sealed copies, the prepared Statements and their stored forms).  In one
process, no servers.

    .venv/bin/python bench/seal_gap_tracked.py [--statements 100]

Every tracked object alive in flight is visited by each young collection
that runs meanwhile (bench/seal_gap_profile.py --gc-stats times them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def measure(count: int) -> dict:
    import msgspec

    from bench.ingest import _TEMPLATE
    from bench.seal_form_bytes import keyring_knowing
    from lrs.batching import statement_form
    from lrs.ingest.prepare import prepare_statements
    from lrs.store.group_columns import array_literal

    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "http://127.0.0.1:8080", "name": "bench"}}
    raw = [(_TEMPLATE % (uuid.uuid4(), n, n, n % 40, n % 21, n % 21, n % 100, n % 100, 1 + n % 59, uuid.uuid4(), n % 60))
           .encode() for n in range(count)]
    body = b"[" + b",".join(raw) + b"]"
    first = msgspec.json.decode(body)
    keyring = keyring_knowing(tenant, authority, first)
    keyring.stored(await keyring.seal_statements(tenant, first, authority))  # every form known

    def prepare(bodies, authority):
        prepared = prepare_statements(bodies, version="1.0.3", authority=authority, new_id=uuid.uuid4)
        return prepared, [statement_form(p, array_literal) for p in prepared]

    async def request(sealing: bool) -> list:
        statements = msgspec.json.decode(body)
        kept: list = [statements]
        if sealing:
            sealed = await keyring.seal_statements(tenant, statements, authority)
            kept += [sealed, prepare(sealed.statements, sealed.authority)]
        else:
            kept.append(prepare(statements, authority))
        return kept

    out = {}
    for side in ("clear", "sealed", "clear", "sealed"):
        gc.collect()
        gc.disable()
        before = Counter(type(o).__name__ for o in gc.get_objects())
        count_before = gc.get_count()[0]
        kept = await request(side == "sealed")
        # What the young generation's threshold counts: objects of collected
        # types allocated less those freed, tracked or not.
        counted = gc.get_count()[0] - count_before
        after = Counter(type(o).__name__ for o in gc.get_objects())
        gc.enable()
        grown = after - before
        out[side] = {"gc_count_per_statement": round(counted / count, 2),
                     "tracked_per_statement": round(sum(grown.values()) / count, 2),
                     "by_type_per_statement": {k: round(v / count, 2) for k, v in grown.most_common(12)}}
        del kept
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.statements)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
