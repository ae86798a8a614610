"""PostgreSQL's CPU an event of a replay with the replayed database's
``wal_compression`` as the server sets it (the embedded server: pglz where
its build has no lz4) and off, alternated.

A replay writes its scratch tables by COPY and then builds their indexes;
an index build writes every page of the index to the WAL as a full-page
image, which ``wal_compression`` compresses.  This sets the database's own
``wal_compression`` (``ALTER DATABASE``: the replay's connections take it;
the logs of ``bench/projection_ab.py``'s ``--data-dir``, on a PostgreSQL
started on it by hand) before each replay, replays once with
``bench/replay_measure.py`` (uvloop, the tree given), and counts
PostgreSQL's CPU, ended backends included (``bench/process_cpu.py``).
Each database's setting is reset at the end.

    python bench/replay_wal_compression.py --data-dir /work/benchdata/replay4/ab --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process_cpu import tree_cpu_s  # noqa: E402

MIXES = ("all_evidence", "cmi5")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="projection_ab.py's --data-dir, its PostgreSQL running")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", default=str(ROOT), help="the checkout whose replay runs (its own venv)")
    args = parser.parse_args()
    data = Path(args.data_dir).resolve()
    postmaster = int((data / "pgdata" / "postmaster.pid").read_text().split()[0])

    def url(database: str) -> str:
        return f"postgresql://postgres@/{database}?host={data / 'run'}&port=5432"

    async def set_compression(database: str, value: str | None) -> None:
        conn = await asyncpg.connect(url("postgres"))
        try:
            change = "RESET wal_compression" if value is None else f"SET wal_compression = {value}"
            await conn.execute(f'ALTER DATABASE "{database}" {change}')
        finally:
            await conn.close()

    python = str(Path(args.tree) / ".venv" / "bin" / "python")
    for round_ in range(args.rounds):
        for mix in MIXES:
            database = f"replay_{mix}_{args.events}"
            try:
                for value in (None, "off") if round_ % 2 == 0 else ("off", None):
                    asyncio.run(set_compression(database, value))
                    load = os.getloadavg()
                    before = tree_cpu_s(postmaster, ended=True)
                    done = subprocess.run([python, str(ROOT / "bench" / "replay_measure.py"), "--tree", args.tree,
                                           "--database-url", url(database)], capture_output=True, text=True, check=True)
                    postgres_s = tree_cpu_s(postmaster, ended=True) - before
                    replayed = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
                    print(json.dumps({
                        "round": round_ + 1, "mix": mix, "wal_compression": value or "server's", "loadavg_before": load,
                        "events_per_s": replayed["events_per_s"],
                        "postgresql_cpu_us_per_event": round(postgres_s / replayed["events"] * 1e6, 2),
                        "python_cpu_us_per_event": round(replayed["python_cpu_us_per_event"]
                                                         + replayed["worker_cpu_us_per_event"], 2),
                        "digest": replayed["digest"],
                    }), flush=True)
            finally:
                asyncio.run(set_compression(database, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
