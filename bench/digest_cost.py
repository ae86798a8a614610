"""What the audit digest's rows cost: the competency projection's digest
with and without the derived rows it now covers, alternating.

Starts one PostgreSQL under ``--data-dir`` (kept between runs, so the log is
filled and replayed once), fills a log with ``bench/projection.py``'s
``fill_log`` (every statement evidence by default), replays it into the
projection's tables, then digests the projection ``--rounds`` times each way,
alternating the order: ``states`` hashes what the digest hashed before
branch rules (every learner's stored state, the unit counts, the roster, the
series), ``states+rows`` also the rows of ``competency_states``,
``competency_certifications`` and ``competency_mastery_mismatches``
(:data:`projections.competency.store.DIGESTED_ROWS`).  Reports wall seconds,
this process's CPU seconds and PostgreSQL's (the server and its backends),
per learner and per row, with the load average beside each run.

    python bench/digest_cost.py --events 200000 --learners 50000 --rounds 3 \\
        --data-dir /work/benchdata/rules/digest --label rules
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from process_cpu import load_average, tree_cpu_s  # noqa: E402
from projection import fill_log, settle  # noqa: E402
from run_record import add_result_options, branch, machine, write_result  # noqa: E402


async def _built(url: str) -> dict[str, int]:
    """Replay the log into the projection's tables unless done already; the tables' row counts."""
    import asyncpg

    from projections.competency.catalog import load_catalog
    from projections.competency.store import DIGESTED_ROWS, CompetencyProjection
    from projections.replay import replay

    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    try:
        head = await pool.fetchval("SELECT position FROM log_head")
        done = await pool.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'competency'")
        if done != head:
            await replay(pool, CompetencyProjection(load_catalog()))
        tables = ["competency_learners", *(table for table, _, _ in DIGESTED_ROWS)]
        return {table: int(await pool.fetchval(f"SELECT count(*) FROM {table}")) for table in tables}
    finally:
        await pool.close()


async def _digest(url: str, postgres_pid: int, rows: bool) -> dict:
    import asyncpg

    from projections.competency import store

    kept = store.DIGESTED_ROWS
    store.DIGESTED_ROWS = kept if rows else ()
    conn = await asyncpg.connect(url)
    try:
        load = load_average()
        pg_before, cpu_before, wall_before = tree_cpu_s(postgres_pid), time.process_time(), time.perf_counter()
        value, _ = await store.digest_with_position(conn)
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        pg = tree_cpu_s(postgres_pid) - pg_before
    finally:
        store.DIGESTED_ROWS = kept
        await conn.close()
    return {"variant": "states+rows" if rows else "states", "digest": value, "wall_s": round(wall, 3),
            "python_cpu_s": round(cpu, 3), "postgres_cpu_s": round(pg, 3), "loadavg_before": load}


async def main_async(args: argparse.Namespace) -> dict:
    pg = EmbeddedPostgres(Path(args.data_dir))
    server = await pg.start()
    try:
        name = f"digest_{args.events}_{args.learners}"
        await ensure_database(server, name)
        url = pg.url_for(name)
        await fill_log(url, args.events, args.learners, 1, 0.01, args.evidence_share)
        await settle(url)
        counts = await _built(url)
        assert pg.pid is not None
        runs = []
        for round_ in range(args.rounds):
            for rows in ((False, True) if round_ % 2 == 0 else (True, False)):
                run = {"round": round_ + 1, **await _digest(url, pg.pid, rows)}
                print(json.dumps(run), flush=True)
                runs.append(run)
    finally:
        await pg.stop()
    learners = counts["competency_learners"]
    rows_total = sum(n for table, n in counts.items() if table != "competency_learners")
    summary = {}
    for variant in ("states", "states+rows"):
        mine = [r for r in runs if r["variant"] == variant]
        summary[variant] = {
            key: sorted(r[key] for r in mine) for key in ("wall_s", "python_cpu_s", "postgres_cpu_s")
        }
        best = min(r["python_cpu_s"] + r["postgres_cpu_s"] for r in mine)
        summary[variant]["best_cpu_us_per_learner"] = round(best / learners * 1e6, 2)
    extra = {key: round(min(r[key] for r in runs if r["variant"] == "states+rows")
                        - min(r[key] for r in runs if r["variant"] == "states"), 3)
             for key in ("wall_s", "python_cpu_s", "postgres_cpu_s")}
    extra["cpu_us_per_row"] = round((extra["python_cpu_s"] + extra["postgres_cpu_s"]) / rows_total * 1e6, 3)
    summary["rows_added_best_of_each"] = extra
    return {
        "benchmark": "digest-cost",
        "settings": {k: v for k, v in vars(args).items() if k not in ("no_write",)},
        "machine": machine(ROOT),
        "branch": branch(ROOT),
        "tables": counts,
        "summary": summary,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="statements in the log (default: 200000)")
    parser.add_argument("--learners", type=int, default=50_000, help="distinct learners (default: 50000)")
    parser.add_argument("--evidence-share", type=float, default=1.0, help="share of statements that are evidence")
    parser.add_argument("--rounds", type=int, default=3, help="digests each way (default: 3)")
    parser.add_argument("--data-dir", required=True, help="where PostgreSQL keeps the filled log")
    add_result_options(parser)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(json.dumps(result["summary"], indent=2))
    digests = {r["variant"]: r["digest"] for r in result["runs"]}
    if len({r["digest"] for r in result["runs"]}) != len(digests):
        raise SystemExit("bench/digest_cost.py: one variant's digests differ between runs")
    if not args.no_write:
        write_result(result, "digest-cost", args.label)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LRS_LOG_LEVEL", "warning")
    sys.exit(main())
