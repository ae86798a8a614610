"""Two of live apply's writes, each way of passing their rows, alone.

The competency projection writes each batch's statement-to-learner rows and
learner states with ``unnest`` over one array parameter a column; asyncpg
checks every element of those against collections.abc before encoding it.
This bench writes the same rows each way in turn (round after round, the
order reversed every other round), each write in a transaction rolled back
after it, on a log ``bench/projection_ab.py`` filled (``--data-dir``):

- ``arrays``: an array parameter a column (as projections/competency/store.py);
- ``json``: one ``jsonb`` parameter of rows encoded by msgspec (states in base64);
- ``json-text``: the same with the ``json`` type (each element parsed again where read);
- ``stage``: binary COPY into a temporary table, then one INSERT ... SELECT
  with the conflict rule that empties it.

The states are ``--rows`` stored ones written back (the update of a conflict,
as live apply mostly does); the statement-to-learner rows are new ones.
Reports this process's CPU (the encoding and the protocol) and the backend's
(``/proc/PID/schedstat``) per row, for each table and way.

    python bench/live_write_params.py --data-dir /work/benchdata/applycopy/ab --rows 1000 --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec  # noqa: E402

from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from run_record import add_result_options, load_average, write_result  # noqa: E402

ARRAYS = {
    "competency_learners": """
INSERT INTO competency_learners (tenant, learner, state, position)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
ON CONFLICT (tenant, learner) DO UPDATE SET state = EXCLUDED.state, position = EXCLUDED.position""",
    "competency_statement_learners": """
INSERT INTO competency_statement_learners (tenant, statement_id, learner, actor)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING""",
}
JSON = {
    "competency_learners": """
INSERT INTO competency_learners (tenant, learner, state, position)
SELECT r->>0, r->>1, decode(r->>2, 'base64'), (r->>3)::bigint FROM jsonb_array_elements($1::jsonb) AS r
ON CONFLICT (tenant, learner) DO UPDATE SET state = EXCLUDED.state, position = EXCLUDED.position""",
    "competency_statement_learners": """
INSERT INTO competency_statement_learners (tenant, statement_id, learner, actor)
SELECT r->>0, (r->>1)::uuid, r->>2, r->>3 FROM jsonb_array_elements($1::jsonb) AS r ON CONFLICT DO NOTHING""",
}
STAGE_TABLES = {
    "competency_learners": ("(tenant text, learner text, state bytea, position bigint)",
                            ("tenant", "learner", "state", "position"),
                            "ON CONFLICT (tenant, learner) DO UPDATE SET state = EXCLUDED.state, position = EXCLUDED.position"),
    "competency_statement_learners": ("(tenant text, statement_id uuid, learner text, actor text)",
                                      ("tenant", "statement_id", "learner", "actor"), "ON CONFLICT DO NOTHING"),
}
# The same with the ``json`` type (kept as text, each element parsed where it is read).
JSON_TEXT = {table: sql.replace("jsonb", "json") for table, sql in JSON.items()}
ENCODER = msgspec.json.Encoder()


def backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


async def write(conn, way: str, table: str, rows: list[tuple]) -> None:
    if way == "arrays":
        await conn.execute(ARRAYS[table], *[[row[i] for row in rows] for i in range(4)])
    elif way in ("json", "json-text"):
        await conn.execute((JSON if way == "json" else JSON_TEXT)[table], ENCODER.encode(rows).decode())
    else:
        definition, columns, rule = STAGE_TABLES[table]
        stage = f"{table}_stage"
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} {definition} ON COMMIT DELETE ROWS")
        await conn.copy_records_to_table(stage, records=rows, columns=columns)
        await conn.execute(f"WITH staged AS (DELETE FROM {stage} RETURNING *) INSERT INTO {table} ({', '.join(columns)}) "
                           f"SELECT {', '.join(columns)} FROM staged {rule}")


async def measure(url: str, ways: list[str], rows: int, rounds: int) -> list[dict]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        backend = conn.get_server_pid()
        states = [tuple(r) for r in await conn.fetch(
            "SELECT tenant, learner, state, position FROM competency_learners ORDER BY tenant, learner LIMIT $1", rows)]
        sample = await conn.fetch("SELECT tenant, learner FROM competency_learners LIMIT $1", rows)
        runs = []
        for round_ in range(rounds):
            links = [(r["tenant"], str(uuid.uuid4()), r["learner"], None) for r in sample]
            for way in (ways if round_ % 2 == 0 else ways[::-1]):
                for table, data in (("competency_learners", states), ("competency_statement_learners", links)):
                    tr = conn.transaction()
                    await tr.start()
                    cpu, pg = time.process_time(), backend_cpu_s(backend)
                    await write(conn, way, table, data)
                    cpu, pg = time.process_time() - cpu, backend_cpu_s(backend) - pg
                    await tr.rollback()
                    runs.append({"round": round_ + 1, "way": way, "table": table, "rows": len(data),
                                 "python_us_per_row": round(cpu / len(data) * 1e6, 3),
                                 "postgres_us_per_row": round(pg / len(data) * 1e6, 3)})
        return runs
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database", default="replay_all_evidence_100000")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--way", action="append", choices=["arrays", "json", "json-text", "stage"])
    add_result_options(parser)
    args = parser.parse_args()
    ways = args.way or ["arrays", "json", "json-text", "stage"]

    async def run() -> list[dict]:
        pg = EmbeddedPostgres(Path(args.data_dir))
        await pg.start()
        try:
            return await measure(pg.url_for(args.database), ways, args.rows, args.rounds)
        finally:
            await pg.stop()

    runs = asyncio.run(run())
    summary = {}
    for table in ARRAYS:
        for way in ways:
            mine = [r for r in runs if r["way"] == way and r["table"] == table and r["round"] > 1]  # round 1 warms up
            py = sorted(r["python_us_per_row"] for r in mine)
            pg = sorted(r["postgres_us_per_row"] for r in mine)
            summary[f"{table} {way}"] = {"python_us_per_row_median": py[len(py) // 2],
                                         "postgres_us_per_row_median": pg[len(pg) // 2],
                                         "python_range": [py[0], py[-1]], "postgres_range": [pg[0], pg[-1]]}
    result = {"benchmark": "live_write_params", "settings": vars(args), "load": load_average(),
              "loadavg": [round(x, 2) for x in os.getloadavg()], "summary": summary, "runs": runs}
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    if not args.no_write:
        write_result(result, "live_write_params", args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
