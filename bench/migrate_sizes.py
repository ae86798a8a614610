"""Bytes per statement of a bench store before and after the pending migrations.

Starts the embedded PostgreSQL of a store made by ``bench/bulk_store.py``
(``--data``; migrate a copy to keep the original for A/B query runs), reads
``pg_relation_size`` of ``events``, ``statements``, ``statement_keys`` and each
of their indexes per statement, applies the migrations
(:func:`lrs.service.migrate`), timing them, runs ``VACUUM (ANALYZE)`` on
``statements`` and reads the sizes again.

    cp -a /work/benchdata/store /work/benchdata/store-migrated
    .venv/bin/python bench/migrate_sizes.py --data /work/benchdata/store-migrated --label lean-store

Results: bench/results/migrate-sizes-<label>-<UTC time>.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk_store import DATABASE, server  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402

from lrs.service import migrate  # noqa: E402

SIZES = """
SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND (c.relname IN ('events', 'statements', 'statement_keys') OR c.oid IN (
    SELECT indexrelid FROM pg_index WHERE indrelid IN ('statements'::regclass, 'events'::regclass,
                                                       'statement_keys'::regclass)))
"""


async def run(data: Path) -> dict:
    pg = server(data)
    await pg.start()
    try:
        conn = await asyncpg.connect(pg.url_for(DATABASE))
        try:
            total = await conn.fetchval("SELECT position FROM log_head")
            before = {r["name"]: round(r["bytes"] / total, 1) for r in await conn.fetch(SIZES)}
            started = time.perf_counter()
            await migrate(pg.url_for(DATABASE))
            seconds = round(time.perf_counter() - started, 1)
            await conn.execute("VACUUM (ANALYZE) statements")
            after = {r["name"]: round(r["bytes"] / total, 1) for r in await conn.fetch(SIZES)}
        finally:
            await conn.close()
    finally:
        await pg.stop()
    return {"statements": total, "migrate_s": seconds, "bytes_per_statement_before": before,
            "bytes_per_statement_after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a store made by bench/bulk_store.py (migrated in place)")
    add_result_options(parser)
    args = parser.parse_args()
    load = load_average()
    result = asyncio.run(run(args.data))
    result.update({"benchmark": "migrate sizes", "command": "python " + " ".join(sys.argv), "note": args.note,
                   "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(load_before=load)})
    print(json.dumps(result, indent=1))
    if not args.no_write:
        write_result(result, "migrate-sizes", args.label, indent=1)


if __name__ == "__main__":
    main()
