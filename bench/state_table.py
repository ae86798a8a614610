"""The learner-state table's storage, set for one side of an A/B and read back after a run.

``bench/live_apply_profile.py`` runs with the code of the checkout it lives
in, against a log that ``bench/projection_ab.py`` filled once; the table
``competency_learners`` in that database has the storage of whatever
migrations ran there.  To compare two checkouts on one log, give the table
each side's storage before its run (``--side before``: PostgreSQL's defaults
plus migration 0116, what main had at ece2845; ``--side after``: migration
0117's EXTERNAL storage and fillfactor 70; the run's ``reset`` empties the
table, so it is rewritten with them), and zero its statistics; after the run,
``--report`` prints what the run wrote: the mean stored bytes of a state and
of its layout, how many updates were HOT, and the table's size.

    python bench/state_table.py --data-dir D --database replay_all_evidence_200000 --side after
    python bench/live_apply_profile.py --data-dir D --log-events 200000 --mix all-evidence ...
    python bench/state_table.py --data-dir D --database replay_all_evidence_200000 --report
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402

SIDES = {
    "before": [
        "ALTER TABLE competency_learners ALTER COLUMN state SET STORAGE EXTENDED",
        "ALTER TABLE competency_learners RESET (fillfactor)",
        "ALTER TABLE competency_learners SET (toast_tuple_target = 8160)",
    ],
    "after": [
        "ALTER TABLE competency_learners ALTER COLUMN state SET STORAGE EXTERNAL",
        "ALTER TABLE competency_learners SET (toast_tuple_target = 8160, fillfactor = 70)",
    ],
}

REPORT = """
SELECT count(*) AS learners, avg(octet_length(state))::int AS stored_bytes,
       avg(pg_column_size(state))::int AS column_bytes,
       pg_table_size('competency_learners') AS table_bytes,
       (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'competency_learners'::regclass) AS updates,
       (SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'competency_learners'::regclass) AS hot_updates,
       (SELECT reloptions FROM pg_class WHERE oid = 'competency_learners'::regclass) AS options
FROM competency_learners
"""


async def main_async(args: argparse.Namespace) -> dict:
    pg = EmbeddedPostgres(Path(args.data_dir))
    await pg.start()
    try:
        conn = await asyncpg.connect(pg.url_for(args.database))
        try:
            if args.side:
                for sql in SIDES[args.side]:
                    await conn.execute(sql)
                await conn.execute("SELECT pg_stat_reset_single_table_counters('competency_learners'::regclass)")
                return {"side": args.side}
            row = dict(await conn.fetchrow(REPORT))
            if args.layout:
                from projections.competency.codec import open_state

                layout = [len(open_state(r["state"])) async for r in _states(conn)]
                row["layout_bytes"] = round(sum(layout) / max(len(layout), 1))
            return row
        finally:
            await conn.close()
    finally:
        await pg.stop()


async def _states(conn: asyncpg.Connection):  # type: ignore[no-untyped-def]
    async with conn.transaction():
        async for row in conn.cursor("SELECT state FROM competency_learners"):
            yield row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--side", choices=sorted(SIDES))
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--layout", action="store_true", help="with --report: also the states' uncompressed layout")
    args = parser.parse_args()
    if bool(args.side) == args.report:
        parser.error("give --side or --report")
    print(json.dumps(asyncio.run(main_async(args)), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
