"""PostgreSQL's CPU and WAL per statement for each piece of the group
commit's INSERT: every index and every filter-key row it writes.

The whole-service bench (``bench/ingest.py``) gives PostgreSQL's share per
statement, but not which index or row of the group's one statement
(``lrs.store.group_commit_sql.INSERT_GROUP``) costs what.  This bench fills a
scratch store with ``--prefill`` statements of the ingest bench (committed, so
that the indexes have the depth and spread of a store in use), then executes
further groups of 100 on it in transactions that are rolled back, once per
variant and round, alternating the variants:

* ``full``: ``INSERT_GROUP`` as the writer runs it;
* ``no_pair_key``: without the activity + verb pair key row ('P:', migration 0141);
* ``no_statement_keys``: without any ``statement_keys`` row;
* ``drop:<index>``: ``INSERT_GROUP`` with that index dropped inside the
  transaction (so rolled back with it).

Each transaction plans the statement once on an untimed group (generic plans,
as the writer runs once the log is long), then times ``--groups`` groups: the
backend's CPU (``/proc/<pid>/schedstat``) and the WAL it wrote
(``pg_current_wal_insert_lsn``), per statement; a ``VACUUM`` (untimed) after
each clears the rolled-back rows.  The difference between ``full`` and a
variant is that piece's cost.  The median of ``--rounds`` is kept::

    python bench/group_insert_pg_pieces.py --prefill 200000 --rounds 7
    python bench/group_insert_pg_pieces.py --repo /path/to/main
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

PAIR = "CASE WHEN left(k, 2) = 'O:' THEN 'P:' || substr(k, 3) || chr(31) || u.verb_id END"
# how INSERT_GROUP derives the pair key from a row's keys: as main 54b7590 did, or since
PAIR_VALUES = f"LATERAL (VALUES (k), ({PAIR}))"
PAIR_ARRAY = f"unnest(ARRAY[k, {PAIR}])"


def _plans(start: int, groups: int, head=None) -> tuple[list, object]:
    import ingest  # bench/ingest.py: the statements the ingest bench posts
    from lrs.batching import AppendRequest, LogHead, plan_group, statement_form
    from lrs.ingest.prepare import prepare_statements
    from lrs.store import group_columns as columns_module
    from lrs.store.ids import RandomUuids, TimeOrderedUuids, parse_uuid
    from lrs.xapi.statement import parse_statements

    authority = {"objectType": "Agent", "name": "bench",
                 "account": {"homePage": "http://lrs.example", "name": "bench"}}
    if head is None:
        head = LogHead(0, b"\0" * 32, datetime(2026, 1, 1, tzinfo=timezone.utc))
    new_id, event_ids = RandomUuids(), TimeOrderedUuids()
    plans = []
    for i in range(start, start + groups):
        prepared = prepare_statements(parse_statements(ingest._body(100, [i * 100]), "1.0.3"), version="1.0.3",
                                      authority=authority, new_id=new_id, parse_id=parse_uuid)
        forms = tuple(statement_form(s, getattr(columns_module, "key_literal", columns_module.array_literal)) for s in prepared)
        plan = plan_group([AppendRequest("default", tuple(prepared), forms, True)], [], head,
                          datetime.now(timezone.utc), event_ids)
        head = plan.head
        plans.append(plan)
    return plans, head


def _arguments(plan) -> tuple:
    from lrs.store import group_columns as columns_module

    # as the writer calls it for clear statements: no new ciphertexts
    return (*columns_module.group_columns(plan), True, False, columns_module.authority_keys(plan), [], [])


def _backend_cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def _variants(sql: str, indexes: list[str]) -> dict[str, tuple[str, str | None]]:
    """Each variant's SQL and the DDL run before it in its transaction."""
    pair = PAIR_VALUES if PAIR_VALUES in sql else PAIR_ARRAY
    assert pair in sql, "INSERT_GROUP no longer derives the pair key as this bench expects"
    start = sql.index("), new_keys AS (")
    end = sql.index("), new_head AS (")
    variants: dict[str, tuple[str, str | None]] = {
        "full": (sql, None),
        "no_pair_key": (sql.replace(pair, "unnest(ARRAY[k])"), None),
        # the parameters stay typed; a CTE nothing reads is not run
        "no_statement_keys": (sql[:start] + "), new_keys AS (SELECT $10::text[], $11::text[]" + sql[end:], None),
    }
    # the DISTINCT over the group's key rows (a statement's keys are distinct by construction but
    # for hash collisions): taken away where the checkout has it, put back where it has not
    # (branch b100x: every walk of statement_keys reads a repeated position once instead)
    if "SELECT DISTINCT statement_key(" in sql:
        variants["no_distinct"] = (sql.replace("SELECT DISTINCT statement_key(", "SELECT statement_key("), None)
    else:
        keys_select = "    SELECT statement_key(coalesce(u.tenant, $3[1]), x.key)"
        assert keys_select in sql, "INSERT_GROUP no longer selects its key rows as this bench expects"
        variants["with_distinct"] = (sql.replace(keys_select, keys_select.replace("SELECT", "SELECT DISTINCT")), None)
    # the pair key as main 54b7590 derived it and as since (a function scan initialises its
    # expressions once; a correlated VALUES list compiles them again for every outer row)
    variants["pair_from_values"] = (sql.replace(pair, PAIR_VALUES), None)
    variants["pair_from_array"] = (sql.replace(pair, PAIR_ARRAY), None)
    for index in indexes:
        if index == "statements_tenant_statement_ref":
            continue  # the REFERRED probe needs it: without it, a scan of the statements per new Statement
        variants[f"drop:{index}"] = (sql, index)
    return variants


async def _drop(conn, index: str) -> None:
    constraint = await conn.fetchrow(
        "SELECT c.conname, c.conrelid::regclass::text AS tab FROM pg_constraint c"
        " WHERE c.conindid = $1::regclass AND c.contype IN ('p', 'u')", index)
    if constraint is not None:
        await conn.execute(f'ALTER TABLE {constraint["tab"]} DROP CONSTRAINT {constraint["conname"]} CASCADE')
    else:
        await conn.execute(f"DROP INDEX {index}")


async def _measure(url: str, args: argparse.Namespace) -> dict:
    import asyncpg
    from lrs.store import group_commit_sql

    conn = await asyncpg.connect(url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        # the prefill, committed, in chunks so that plans are not all held at once
        head = None
        done = 0
        while done < args.prefill // 100:
            chunk = min(200, args.prefill // 100 - done)
            plans, head = _plans(done, chunk, head)
            for plan in plans:
                await conn.execute(group_commit_sql.INSERT_GROUP, *_arguments(plan))
            done += chunk
        await conn.execute("VACUUM ANALYZE")
        indexes = [r["indexrelid"] for r in await conn.fetch(
            "SELECT i.indexrelid::regclass::text AS indexrelid FROM pg_index i"
            " WHERE i.indrelid IN ('events'::regclass, 'statements'::regclass, 'statement_keys'::regclass)"
            " ORDER BY 1")]
        sizes = {r["name"]: r["bytes"] for r in await conn.fetch(
            "SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes FROM pg_class c"
            " WHERE c.relname IN ('events', 'statements', 'statement_keys') OR c.oid = ANY($1::regclass[])",
            indexes)}
        timed, _ = _plans(done, args.groups + 1, head)
        arguments = [_arguments(plan) for plan in timed]
        statements = sum(len(p.new) for p in timed[1:])
        variants = _variants(group_commit_sql.INSERT_GROUP, indexes)
        if args.variants:
            variants = {name: variants[name] for name in args.variants.split(",")}
        print(f"backend pid {backend}", file=sys.stderr, flush=True)
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        wal: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(args.rounds):
            # each round starts at another variant: no variant always follows the same one
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                sql, index = variants[name]
                transaction = conn.transaction()
                await transaction.start()
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                if index is not None:
                    await _drop(conn, index)
                await conn.execute(sql, *arguments[0])  # plans it, untimed
                wal_before = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
                before = _backend_cpu_ns(backend)
                for values in arguments[1:]:
                    await conn.execute(sql, *values)
                spent = _backend_cpu_ns(backend) - before
                wal_bytes = await conn.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", wal_before)
                await transaction.rollback()
                await conn.execute("VACUUM events, statements, statement_keys")
                cpu[name].append(spent / 1e3 / statements)
                wal[name].append(float(wal_bytes) / statements)
    finally:
        await conn.close()
    reference = "full" if "full" in cpu else next(iter(cpu))  # saves_* are against it
    full_cpu, full_wal = statistics.median(cpu[reference]), statistics.median(wal[reference])
    return {
        "prefill_statements": args.prefill,
        "timed_statements_per_variant_round": statements,
        "relation_bytes": sizes,
        "reference_variant": reference,
        "variants": {
            name: {
                "postgres_backend_us_median": round(statistics.median(cpu[name]), 2),
                "postgres_backend_us_runs": [round(x, 2) for x in cpu[name]],
                "saves_us": round(full_cpu - statistics.median(cpu[name]), 2),
                "wal_bytes_median": round(statistics.median(wal[name]), 1),
                "saves_wal_bytes": round(full_wal - statistics.median(wal[name]), 1),
            }
            for name in variants
        },
    }


async def _run(args: argparse.Namespace) -> dict:
    from lrs.runtime.postgres import EmbeddedPostgres
    from lrs.service import migrate

    with tempfile.TemporaryDirectory(prefix="lrs-bench-pg-pieces-", dir=args.data_root) as data_dir:
        server = EmbeddedPostgres(Path(data_dir))
        url = await server.start()
        try:
            await migrate(url)
            return await _measure(url, args)
        finally:
            await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is measured")
    parser.add_argument("--prefill", type=int, default=200_000, help="statements committed first (default 200,000)")
    parser.add_argument("--groups", type=int, default=20, help="timed groups of 100 per variant and round (default 20)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of all variants; the median is kept (default 7)")
    parser.add_argument("--variants", default=None, help="comma-separated variants to run (default all); saves_* are against 'full', else the first")
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
        "benchmark": "group-insert-pg-pieces",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repo": args.repo,
        "commit": commit,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "unit": "µs of PostgreSQL backend CPU and bytes of WAL per statement, groups of 100, rolled back;"
                " median of rounds; saves_* = full minus the variant",
        **figures,
    }
    for name, figures_of in record["variants"].items():
        print(f"{name:45} {figures_of['postgres_backend_us_median']:8.2f} µs  saves {figures_of['saves_us']:6.2f} µs"
              f"  WAL {figures_of['wal_bytes_median']:7.1f} B  saves {figures_of['saves_wal_bytes']:6.1f} B")
    if not args.no_write:
        write_result(record, "group-insert-pg-pieces", output=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
