"""Client CPU of the group commit's INSERT per statement: building its
parameters and asyncpg encoding them, with PostgreSQL's side left out.

The writer sends a group's events and read-model rows as array parameters of
one statement (``lrs.store.group_commit_sql.INSERT_GROUP``), and asyncpg encodes each
element of each array on its own.  This bench lays out groups of 100
statements of the ingest bench (``bench/ingest.py``) with the real pure
functions, then executes ``INSERT_GROUP`` with them on a migrated scratch
database inside a transaction that is rolled back, and reports the
``time.process_time`` of this (client) process per statement, best of
``--rounds``: ``group_columns`` and ``authority_keys`` (compression included)
plus asyncpg's encoding and protocol work (``group_insert_client_us``), the
execute alone (``asyncpg_execute_client_us``), and the PostgreSQL backend's
CPU for the statement (``postgres_backend_us``, from ``/proc``).  ``--repo`` measures another checkout (e.g. main's
worktree) with the same script::

    python bench/group_insert_encoding.py
    python bench/group_insert_encoding.py --repo /path/to/main
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _plans(groups: int, batch: int) -> list:
    import ingest  # bench/ingest.py: the statements the ingest bench posts
    from lrs.batching import AppendRequest, LogHead, plan_group, statement_form
    from lrs.ingest.prepare import prepare_statements
    from lrs.store import group_columns as columns_module
    from lrs.store.ids import RandomUuids, TimeOrderedUuids, parse_uuid
    from lrs.xapi.statement import parse_statements

    authority = {"objectType": "Agent", "name": "bench",
                 "account": {"homePage": "http://lrs.example", "name": "bench"}}
    head = LogHead(0, b"\0" * 32, datetime(2026, 1, 1, tzinfo=timezone.utc))
    new_id, event_ids = RandomUuids(), TimeOrderedUuids()
    plans = []
    for i in range(groups):
        prepared = prepare_statements(parse_statements(ingest._body(batch, [i * batch]), "1.0.3"), version="1.0.3",
                                      authority=authority, new_id=new_id, parse_id=parse_uuid)
        forms = tuple(statement_form(s, getattr(columns_module, "key_literal", columns_module.array_literal)) for s in prepared)
        plan = plan_group([AppendRequest("default", tuple(prepared), forms, True)], [], head,
                          datetime.now(timezone.utc), event_ids)
        head = plan.head
        plans.append(plan)
    return plans


def _backend_cpu_ns(pid: int) -> int:
    """CPU time of a PostgreSQL backend so far, in ns (/proc/<pid>/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


async def _measure(url: str, plans: list, rounds: int) -> dict[str, float]:
    import asyncpg
    from lrs.store import group_columns as columns_module
    from lrs.store import group_commit_sql

    conn = await asyncpg.connect(url)
    statements = sum(len(p.new) for p in plans)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        best = best_execute = best_backend = float("inf")
        for _ in range(rounds):
            spent = executing = 0.0
            backend_spent = 0
            for plan in plans:
                transaction = conn.transaction()
                await transaction.start()
                started = time.process_time()
                columns = columns_module.group_columns(plan), columns_module.authority_keys(plan)
                laid_out = time.process_time()
                backend_before = _backend_cpu_ns(backend)
                # as the writer calls it, for clear statements: no new ciphertexts
                await conn.execute(group_commit_sql.INSERT_GROUP, *columns[0], True, False, columns[1], [], [])
                backend_spent += _backend_cpu_ns(backend) - backend_before
                done = time.process_time()
                spent += done - started
                executing += done - laid_out
                await transaction.rollback()
            best, best_execute = min(best, spent), min(best_execute, executing)
            best_backend = min(best_backend, backend_spent / 1e9)
    finally:
        await conn.close()
    return {
        "group_insert_client_us": round(best / statements * 1e6, 2),
        "asyncpg_execute_client_us": round(best_execute / statements * 1e6, 2),
        "postgres_backend_us": round(best_backend / statements * 1e6, 2),
    }


async def _run(args: argparse.Namespace) -> dict[str, float]:
    from lrs.runtime.postgres import EmbeddedPostgres
    from lrs.service import migrate

    plans = _plans(args.groups, 100)
    with tempfile.TemporaryDirectory(prefix="lrs-bench-insert-", dir=args.data_root) as data_dir:
        server = EmbeddedPostgres(Path(data_dir))
        url = await server.start()
        try:
            await migrate(url)
            return await _measure(url, plans, args.rounds)
        finally:
            await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is measured")
    parser.add_argument("--groups", type=int, default=30, help="groups of 100 statements (default 30)")
    parser.add_argument("--rounds", type=int, default=5, help="timings; the best is kept (default 5)")
    parser.add_argument("--data-root", default=None, help="where the scratch PostgreSQL lives (default: temp)")
    sys.path.insert(0, str(HERE))
    from checkout import use_checkout
    from run_record import add_result_options, load_average, write_result

    add_result_options(parser, label=False, note=False, output=True)
    args = parser.parse_args(argv)

    commit = use_checkout(args.repo)
    load_before = load_average()
    figures = asyncio.run(_run(args))
    record = {
        "benchmark": "group-insert-encoding",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repo": args.repo,
        "commit": commit,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "unit": "µs of CPU per statement (best of rounds), groups of 100: client process_time with and"
                " without the parameters' layout (group_columns, authority_keys), the backend's from schedstat",
        **figures,
    }
    print(json.dumps(record))
    if not args.no_write:
        write_result(record, "group-insert-encoding", output=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
