"""PostgreSQL's CPU per statement for deriving a group's ``statement_keys``
rows, without inserting them: the part of the group INSERT that turns each
statement's keys literal into (hash, position) rows.

``bench/group_insert_pg_pieces.py`` times the whole INSERT, whose run-to-run
spread on a shared machine (a few µs) hides a change of a microsecond.  This
bench runs the ``SELECT`` of ``INSERT_GROUP``'s ``new_keys`` (taken from the
checkout's ``lrs.store.group_commit_sql``) under ``count(*)``, with the keys
of 100 statements of the ingest bench, alternated with the form main 54b7590
sent (a correlated VALUES list for the pair key; every filter key sent, the
authority's 'U:' key filtered out in SQL), and two forms that are measurement only (without the
DISTINCT; without the pair key).  Each form gets the keys literals its
checkout's writer sends: at 54b7590 ``filter_keys`` whole; here
``lrs.store.group_columns.key_literal``'s (neither the 'U:' key nor the
Agent authority's 'a:' key).  Backend CPU from ``/proc/<pid>/schedstat``;
the median of ``--rounds``::

    python bench/statement_key_rows_sql.py --rounds 21
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

PAIR = "CASE WHEN left(k, 2) = 'O:' THEN 'P:' || substr(k, 3) || chr(31) || u.verb_id END"
# INSERT_GROUP's new_keys SELECT at main 54b7590 (parameters renumbered as below)
MAIN_54B7590 = f"""
    SELECT DISTINCT statement_key(coalesce(u.tenant, $2[1]), x.key), $1::bigint + u.n - 1
    FROM unnest($2::text[], $4::text[], $3::text[]) WITH ORDINALITY AS u(tenant, keys, verb_id, n),
         unnest(u.keys::text[]) AS k,
         LATERAL (VALUES (k), ({PAIR})) AS x(key)
    WHERE left(k, 2) <> 'U:' AND x.key IS NOT NULL
"""


def _current_select() -> str:
    """The checkout's new_keys SELECT, its parameters renumbered $1 (first
    position), $2 (tenants), $3 (verbs), $4 (keys literals)."""
    from lrs.store.group_commit_sql import INSERT_GROUP

    start = INSERT_GROUP.index("INSERT INTO statement_keys (key, position)") + len("INSERT INTO statement_keys (key, position)")
    end = INSERT_GROUP.index("), new_head AS (")
    numbers = {"1": "1", "3": "2", "10": "3", "11": "4"}
    return re.sub(r"\$(\d+)", lambda m: "$" + numbers[m.group(1)], INSERT_GROUP[start:end])


def _keys() -> tuple[list[str], list[str], list[str]]:
    """The keys literals of 100 statements of the ingest bench as main
    54b7590's writer sent them (every filter key) and as this checkout's
    sends them, and their verbs."""
    import ingest  # bench/ingest.py
    from lrs.batching import filter_keys
    from lrs.ingest.prepare import prepare_statements
    from lrs.store.group_columns import array_literal, key_literal
    from lrs.store.ids import RandomUuids, parse_uuid
    from lrs.xapi.statement import parse_statements

    authority = {"objectType": "Agent", "name": "bench",
                 "account": {"homePage": "http://lrs.example", "name": "bench"}}
    prepared = prepare_statements(parse_statements(ingest._body(100, [0]), "1.0.3"), version="1.0.3",
                                  authority=authority, new_id=RandomUuids(), parse_id=parse_uuid)
    at_54b7590 = [array_literal(filter_keys(s)) for s in prepared]
    here = [key_literal(filter_keys(s)) for s in prepared]  # lrs.store.writer_queue's statement forms
    return at_54b7590, here, [s.verb_id for s in prepared]


def _cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


async def _measure(url: str, rounds: int, calls: int) -> dict:
    import asyncpg

    at_54b7590, here, verbs = _keys()
    current = _current_select()
    forms = {
        "main_54b7590": (MAIN_54B7590, at_54b7590),
        "this_checkout": (current, here),
        # without the DISTINCT where the checkout has it, with it where it has not (branch b100x)
        "this_checkout_without_distinct" if "SELECT DISTINCT" in current else "this_checkout_with_distinct": (
            current.replace("SELECT DISTINCT", "SELECT", 1) if "SELECT DISTINCT" in current
            else current.replace("SELECT statement_key(", "SELECT DISTINCT statement_key(", 1),
            here),
        "this_checkout_without_pair_key": (re.sub(r"CASE WHEN left\(k, 2\) = 'O:' THEN .*? END", "NULL", current),
                                           here),
    }
    conn = await asyncpg.connect(url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        counts = {name: await conn.fetchval(f"SELECT count(*) FROM ({sql}) AS d", 1, ["default"], verbs, keys)
                  for name, (sql, keys) in forms.items()}
        runs: dict[str, list[float]] = {name: [] for name in forms}
        for _ in range(rounds):
            for name, (sql, keys) in forms.items():
                query = f"SELECT count(*) FROM ({sql}) AS d"
                before = _cpu_ns(backend)
                for _ in range(calls):
                    await conn.fetchval(query, 1, ["default"], verbs, keys)
                runs[name].append((_cpu_ns(backend) - before) / 1e3 / (100 * calls))
    finally:
        await conn.close()
    return {
        "rows_per_100_statements": counts,
        "postgres_backend_us_per_statement": {name: round(statistics.median(r), 3) for name, r in runs.items()},
        "runs": {name: [round(x, 3) for x in r] for name, r in runs.items()},
    }


async def _run(args: argparse.Namespace) -> dict:
    from lrs.runtime.postgres import EmbeddedPostgres
    from lrs.service import migrate

    with tempfile.TemporaryDirectory(prefix="lrs-bench-key-rows-", dir=args.data_root) as data_dir:
        server = EmbeddedPostgres(Path(data_dir))
        url = await server.start()
        try:
            await migrate(url)
            return await _measure(url, args.rounds, args.calls)
        finally:
            await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="alternated rounds; the median is kept (default 21)")
    parser.add_argument("--calls", type=int, default=200, help="calls of 100 statements per form and round (default 200)")
    parser.add_argument("--data-root", default=None, help="where the scratch PostgreSQL lives (default: temp)")
    sys.path.insert(0, str(HERE))
    from checkout import use_checkout
    from run_record import add_result_options, load_average, write_result

    add_result_options(parser, label=False, note=False, output=True)
    args = parser.parse_args(argv)
    commit = use_checkout(str(HERE.parent))
    load_before = load_average()
    figures = asyncio.run(_run(args))
    record = {
        "benchmark": "statement-key-rows-sql",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "unit": "µs of PostgreSQL backend CPU per statement deriving its statement_keys rows (no insert),"
                " groups of 100, median of rounds",
        **figures,
    }
    for name, us in record["postgres_backend_us_per_statement"].items():
        print(f"{name:34} {us:7.3f} µs  ({record['rows_per_100_statements'][name]} rows per 100 statements)")
    if not args.no_write:
        write_result(record, "statement-key-rows-sql", output=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
