"""The cost of naming a page of never-rostered learners from their Statements.

Runs on a store built by ``bench/bulk_store.py`` (``--data``).  For
``--learners`` learners with Statements it reads each learner's latest
Statement naming them two ways, alternating ``--rounds`` times:

* ``per_learner``: one GET-sized page query per learner, limit 1
  (:func:`lrs.store.reader.query_statements` with the ``agent`` filter: how
  lrs/store/statement_identities.py read them before), and
* ``one_query``: :data:`lrs.store.statement_identities.SELECT_LATEST_NAMING`
  for all of them at once,

and prints wall time and PostgreSQL CPU of each, with the plan of the one
query (``EXPLAIN (ANALYZE, BUFFERS)``).  The bench store is not sealed: the
filter keys are the clear IFI keys, the walk is the same as for pseudonym keys.

    nice -n 10 .venv/bin/python bench/learner_identities.py --data /work/benchdata/store
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bulk_store as gen  # noqa: E402
from process_cpu import tree_cpu_s  # noqa: E402
from lrs.batching import AGENT_KEY  # noqa: E402
from lrs.ingest.query import StatementQuery  # noqa: E402
from lrs.store.reader import query_statements  # noqa: E402
from lrs.store.statement_identities import END_OF_LOG, SELECT_LATEST_NAMING  # noqa: E402

TENANT = "default"


DATA_DIR = ""  # the store's directory: only its PostgreSQL's processes are counted


def _postgres_cpu() -> float:
    """CPU seconds of this store's PostgreSQL: its postmaster (postmaster.pid) and
    every process below it (the machine runs others)."""
    postmaster = (gen.server(Path(DATA_DIR)).pgdata / "postmaster.pid").read_text().split()[0]
    return tree_cpu_s(int(postmaster))


async def run(url: str, args: argparse.Namespace) -> dict:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        keys = [gen.learner_of(s) for s in range(0, args.learners * 50, 50)]
        wanted = sorted({f"mbox:{gen.learner(n)['mbox']}" if "mbox" in gen.learner(n)
                         else f"account:{gen.SITE}|u{n}" for n in keys})[: args.learners]
        tenant = await pool.fetchval("SELECT tenant FROM statements LIMIT 1")
        rounds: dict[str, list[dict[str, float]]] = {"per_learner": [], "one_query": []}
        found: dict[str, int] = {}
        for _ in range(args.rounds):
            for way in ("per_learner", "one_query"):
                cpu, start = _postgres_cpu(), time.perf_counter()
                if way == "per_learner":
                    n = 0
                    for key in wanted:
                        payloads, _, _ = await query_statements(pool, tenant, StatementQuery(agent=key, limit=1), limit=1)
                        n += len(payloads)
                else:
                    rows = await pool.fetch(SELECT_LATEST_NAMING, tenant, [AGENT_KEY + k for k in wanted], 1,
                                           [END_OF_LOG] * len(wanted))
                    n = len(rows)
                rounds[way].append({"wall_ms": (time.perf_counter() - start) * 1000,
                                    "postgres_cpu_ms": (_postgres_cpu() - cpu) * 1000})
                found[way] = n
        plan = await pool.fetch("EXPLAIN (ANALYZE, BUFFERS) " + SELECT_LATEST_NAMING.replace("$3", "1"), tenant,
                                [AGENT_KEY + k for k in wanted], [END_OF_LOG] * len(wanted))
        statements = await pool.fetchval("SELECT count(*) FROM statements")
    finally:
        await pool.close()
    return {
        "benchmark": "learner identities", "statements": statements, "learners": len(wanted), "found": found,
        "sealed": False, "rounds": rounds,
        "median_wall_ms": {w: sorted(r["wall_ms"] for r in rs)[len(rs) // 2] for w, rs in rounds.items()},
        "plan": [r[0] for r in plan], "loadavg": os.getloadavg(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


async def main_async(args: argparse.Namespace) -> dict:
    global DATA_DIR
    DATA_DIR = str(args.data.resolve())
    async with gen.store_database(args.data) as url:
        return await run(url, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of a bench/bulk_store.py store")
    parser.add_argument("--learners", type=int, default=100, help="learners on the page")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of both ways")
    parser.add_argument("--out", type=Path, help="write the result JSON here too")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
