"""PostgreSQL's CPU a statement, backend by backend, while an ingest bench runs.

Run next to ``bench/ingest.py --start-service --data-dir DIR`` on a cluster
whose postgresql.conf preloads pg_stat_statements (the PyPI server has no
contrib: initdb ``DIR/postgres/pgdata`` with the system's PostgreSQL and run
the service with ``LRS_POSTGRES_BIN_DIR`` pointing at it, docs/scaling.md,
branch b1-pg).  Once the log has grown by ``--after`` events it waits
``--settle`` seconds, then over ``--seconds`` records: the CPU (user + system,
psutil) of every process of that cluster grouped by ``application_name`` (the
writer's connections, the relay's, the credential and commit listeners, the
walwriter...), PostgreSQL transactions a statement, pg_stat_statements' calls
a statement (wall-clock times: on a busy machine they include waits) and,
with ``--perf``, a ``perf record --call-graph dwarf`` of the writer's
backends summed by phase (index inserts, the group INSERT's other work, the
head-lock function, COMMIT's WAL flush, executor start-up, socket reads).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import psutil


async def _snapshot(conn: asyncpg.Connection, postmaster: int) -> tuple[dict[int, float], dict[int, str], int, int]:
    rows = await conn.fetch("SELECT pid, coalesce(application_name, '') AS app, backend_type FROM pg_stat_activity")
    names = {r["pid"]: r["app"] or r["backend_type"] for r in rows}
    cpu: dict[int, float] = {}
    for proc in [psutil.Process(postmaster), *psutil.Process(postmaster).children()]:
        try:
            times = proc.cpu_times()
            cpu[proc.pid] = times.user + times.system
            names.setdefault(proc.pid, " ".join(proc.cmdline())[:40])
        except psutil.Error:
            pass
    head = await conn.fetchval("SELECT position FROM log_head WHERE singleton")
    xacts = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return cpu, names, head, xacts


PHASES = (
    ("head-lock function: executor start", ("plpgsql_exec_function", "standard_ExecutorStart")),
    ("head-lock function: the rest", ("plpgsql_exec_function",)),
    ("COMMIT: WAL flush", ("CommitTransactionCommand", "XLogFlush")),
    ("COMMIT: NOTIFY signalling (AtCommit_Notify)", ("CommitTransactionCommand", "AtCommit_Notify")),
    ("COMMIT: the rest", ("CommitTransactionCommand",)),
    ("executor start (the group INSERT)", ("standard_ExecutorStart",)),
    ("index inserts", ("ExecInsertIndexTuples",)),
    ("the INSERT's other work (CTEs run at ExecutorFinish)", ("standard_ExecutorFinish",)),
    ("executor run, other", ("standard_ExecutorRun",)),
    ("socket reads", ("secure_read",)),
    ("socket writes", ("secure_write",)),
    ("portal, other", ("PortalRun",)),
)


def _phases(perf_data: Path) -> list[tuple[str, float]]:
    script = subprocess.run(["perf", "script", "-i", str(perf_data), "-F", "ip,sym"], capture_output=True,
                            text=True, check=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    for block in script.split("\n\n"):
        frames = {line.split(None, 1)[1].strip() for line in block.splitlines() if len(line.split(None, 1)) > 1}
        if not frames:
            continue
        for name, needed in PHASES:
            if all(f in frames for f in needed):
                counts[name] += 1
                break
        else:
            counts["other"] += 1
    total = sum(counts.values()) or 1
    return [(name, count / total) for name, count in counts.most_common()]


async def main(args: argparse.Namespace) -> None:
    while True:
        try:
            conn = await asyncpg.connect(args.url)
            break
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.5)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    start = None
    while True:
        try:
            head = await conn.fetchval("SELECT position FROM log_head WHERE singleton")
        except asyncpg.PostgresError:
            head = None
        if head is not None:
            start = head if start is None else start
            if head > start + args.after:
                break
        await asyncio.sleep(0.2)
    await asyncio.sleep(args.settle)
    postmaster = int((Path(args.pgdata) / "postmaster.pid").read_text().split()[0])
    await conn.execute("SELECT pg_stat_statements_reset()")
    cpu0, _, head0, xacts0 = await _snapshot(conn, postmaster)
    writers = [pid for pid, name in (await _snapshot(conn, postmaster))[1].items() if name == "lrs-writer"]
    perf_data = Path(tempfile.mkdtemp(prefix="pg-backend-cpu-")) / "perf.data"
    perf = subprocess.Popen(["perf", "record", "-F", "1000", "--call-graph", "dwarf,16384", "-o", str(perf_data),
                             "-p", ",".join(map(str, writers)), "--", "sleep", str(args.seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if args.perf and writers else None
    await asyncio.sleep(args.seconds)
    cpu1, names, head1, xacts1 = await _snapshot(conn, postmaster)
    statements = max(head1 - head0, 1)
    print(f"{statements} statements; PostgreSQL transactions a statement {(xacts1 - xacts0) / statements:.3f}")
    by_name: collections.Counter[str] = collections.Counter()
    backends: collections.Counter[str] = collections.Counter()
    for pid, seconds in cpu1.items():
        by_name[names.get(pid, "?")] += seconds - cpu0.get(pid, 0.0)
        backends[names.get(pid, "?")] += 1
    print(f"PostgreSQL CPU µs a statement: {sum(by_name.values()) / statements * 1e6:.1f}")
    for name, seconds in by_name.most_common():
        if seconds > 0:
            print(f"  {seconds / statements * 1e6:7.1f}  x{backends[name]}  {name}")
    rows = await conn.fetch(
        "SELECT calls, total_exec_time, total_plan_time, toplevel,"
        " left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS q"
        " FROM pg_stat_statements ORDER BY calls DESC LIMIT $1", args.queries)
    print("calls/statement  exec µs/statement  plan µs/statement  (wall clock)  query")
    for r in rows:
        print(f"  {r['calls'] / statements:6.3f} {r['total_exec_time'] * 1000 / statements:8.1f} "
              f"{r['total_plan_time'] * 1000 / statements:8.1f}  {'top' if r['toplevel'] else 'in '} {r['q']}")
    await conn.close()
    if perf is not None:
        perf.wait()
        print("the writer's backends, perf samples by phase:")
        for name, share in _phases(perf_data):
            print(f"  {share:6.1%}  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the service's database URL")
    parser.add_argument("--pgdata", required=True, help="the cluster's data directory (for its postmaster.pid)")
    parser.add_argument("--after", type=int, default=1500, help="events the log grows by before (default 1500)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds more before measuring (default 1)")
    parser.add_argument("--seconds", type=float, default=9.0, help="seconds measured (default 9)")
    parser.add_argument("--queries", type=int, default=25, help="pg_stat_statements rows shown (default 25)")
    parser.add_argument("--perf", action="store_true", help="also perf record the writer's backends (root)")
    asyncio.run(main(parser.parse_args()))
