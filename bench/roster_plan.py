"""The plan of a roster load's current-memberships lookup, without and with
statistics of the rows the load wrote (projections/units/store.py, ANALYZE_* in projections/units/sql.py).

In one transaction on a fresh private PostgreSQL: COPY 50,000 memberships,
prepare SELECT_CURRENT as asyncpg does (a parameter array, a generic plan)
and EXPLAIN ANALYZE it for 1,000 learners, before and after
ANALYZE roster_memberships.

    python bench/roster_plan.py
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
from lrs.store.pool import create_pool  # noqa: E402
from projections.units import sql as units_sql  # noqa: E402

ROWS, LOOKED_UP = 50_000, 1_000


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="lrs-bench-plan-", dir="/tmp"))
    pg = EmbeddedPostgres(work / "pg")
    try:
        await ensure_database(await pg.start(), "lrs")
        pool = await create_pool(pg.url_for("lrs"), min_size=1, max_size=1)
        await migrate(pool)
        since = datetime(2024, 1, 1, tzinfo=timezone.utc)
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(
                "roster_memberships", columns=units_sql.MEMBERSHIP_COLUMNS,
                records=[("default", f"l{n:07d}", "u", since, None, 1, since, None, None) for n in range(ROWS)],
            )
            await conn.execute("PREPARE current_of(text, text[]) AS " + units_sql.SELECT_CURRENT)
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            names = "{" + ",".join(f"l{n:07d}" for n in range(ROWS - LOOKED_UP, ROWS)) + "}"
            explain = f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE current_of('default', '{names}')"
            print(f"{ROWS} rows written in this transaction, {LOOKED_UP} learners looked up; no statistics:")
            for row in await conn.fetch(explain):
                print("  ", row[0])
            await conn.execute(units_sql.ANALYZE_MEMBERSHIPS)
            print("after ANALYZE roster_memberships in the transaction:")
            for row in await conn.fetch(explain):
                print("  ", row[0])
        await pool.close()
    finally:
        await pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
