"""PostgreSQL's CPU for the sealing statements alone, per learner: making
learner keys (``LOAD_OR_CREATE``; and, where the checkout has it, the
group commit's ``PROPOSE_KEYS``, in a transaction of its own per statement
that does not wait for the WAL flush, which the group's commit pays for its
Statements anyway), reading known ones, and inserting v3
ciphertexts (``sealed_identities``), on an embedded PostgreSQL migrated to
this checkout's schema, and with ``--index`` variants of
``learner_keys`` to price each of its indexes.

The CPU is the backend's own (psutil, user + system) over ``--rows`` rows in
statements of ``--batch`` learners, plus the WAL writer's and checkpointer's
time over the same span (the rest of the server idles).  What each index
costs is the difference with it dropped, run next to each other.

    python bench/seal_store_sql.py --rows 20000 --batch 100 --index
    python bench/seal_store_sql.py --rows 5000 --batch 1
    python bench/seal_store_sql.py --tree /path/to/main   # main's statements and schema
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import psutil

# --tree CHECKOUT: that checkout's SQL and migrations (e.g. main's, to compare).
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _TREE)

from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
try:  # the learner keys' SQL in a module of its own; in lrs.store.learner_keys in checkouts before the split
    from lrs.store.learner_key_sql import LOAD_OR_CREATE  # noqa: E402
except ImportError:
    from lrs.store.learner_keys import LOAD_OR_CREATE  # noqa: E402

try:  # keys made in the group commit (lrs.store.group_keys); not in older checkouts
    from lrs.store.group_keys import PROPOSE_KEYS  # noqa: E402
except ImportError:
    PROPOSE_KEYS = None
from lrs.store.sealed_identities import INSERT_CIPHERTEXTS  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _server_cpu(server_pid: int, backend_pid: int) -> float:
    """CPU seconds of the backend and of the server's background processes
    (WAL writer, checkpointer, ...), not other backends."""
    total = 0.0
    for proc in [psutil.Process(server_pid), *psutil.Process(server_pid).children()]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _pseudonym(n: int, salt: str) -> str:
    return hashlib.sha256(f"{salt}{n}".encode()).digest().hex()[:32]


async def _measure(conn: asyncpg.Connection, server_pid: int, backend_pid: int, label: str, batches, run) -> dict:
    await conn.execute("CHECKPOINT")
    before = _server_cpu(server_pid, backend_pid)
    rows = 0
    for batch in batches:
        await run(batch)
        rows += len(batch)
    cpu = _server_cpu(server_pid, backend_pid) - before
    return {"case": label, "rows": rows, "cpu_us_per_row": round(cpu / rows * 1e6, 2)}


async def one_variant(url: str, server_pid: int, args: argparse.Namespace, variant: str) -> list[dict]:
    conn = await asyncpg.connect(url)
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    results = []
    try:
        await conn.execute("TRUNCATE learner_keys, sealed_identities")
        if variant == "without learner_keys_live":
            await conn.execute("DROP INDEX IF EXISTS learner_keys_live")
        elif variant == "with learner_keys_live":
            await conn.execute("""CREATE UNIQUE INDEX IF NOT EXISTS learner_keys_live
                                  ON learner_keys (tenant, pseudonym) WHERE wrapped IS NOT NULL""")
        salt = secrets.token_hex(4)
        names = [_pseudonym(n, salt) for n in range(args.rows)]
        batches = [sorted(names[i:i + args.batch]) for i in range(0, len(names), args.batch)]
        wrapped = secrets.token_bytes(60)

        async def make(batch):
            await conn.fetch(LOAD_OR_CREATE, "t", batch, [wrapped] * len(batch))

        results.append(await _measure(conn, server_pid, backend, "make keys", batches, make))
        if args.analyze:
            await conn.execute("ANALYZE learner_keys")
        results.append(await _measure(conn, server_pid, backend, "read known keys", batches, make))
        refs = [[secrets.token_bytes(16) for _ in batch] for batch in batches]
        ciphertext = secrets.token_bytes(int(args.ciphertext_bytes))
        it = iter(refs)

        async def insert(batch):
            mine = sorted(next(it))
            await conn.execute(INSERT_CIPHERTEXTS, mine, [ciphertext] * len(mine))

        results.append(await _measure(conn, server_pid, backend, "insert ciphertexts", batches, insert))
        if PROPOSE_KEYS is not None:
            fresh = [[_pseudonym(n, salt + "g") for n in range(i, i + len(batch))]
                     for i, batch in zip(range(0, args.rows, args.batch), batches)]
            by_batch = iter(sorted(b) for b in fresh)

            async def propose(batch):
                mine = next(by_batch)
                async with conn.transaction():
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    await conn.fetch(PROPOSE_KEYS, ["t"] * len(mine), mine, [wrapped] * len(mine))

            results.append(await _measure(conn, server_pid, backend, "make keys in the group commit", batches, propose))
        for r in results:
            r["variant"] = variant
            print(json.dumps(r), flush=True)
    finally:
        await conn.close()
    return results


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="seal-sql-", dir="/tmp") as scratch:
        server = EmbeddedPostgres(Path(scratch))
        url = await server.start()
        try:
            await migrate(url)
            runs = []
            variants = ["with learner_keys_live", "without learner_keys_live"] if args.index else ["as migrated"]
            for _ in range(args.rounds):
                for variant in variants:
                    runs += await one_variant(url, server.pid, args, variant)
        finally:
            await server.stop()
    record = {
        "benchmark": "seal_store_sql",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/seal_store_sql.py " + " ".join(sys.argv[1:]),
        "tree": _TREE,
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ciphertext-bytes", type=int, default=70)
    parser.add_argument("--index", action="store_true",
                        help="with and without learner_keys_live (0070's partial index, dropped by 0095)")
    parser.add_argument("--tree", help="the checkout whose SQL and migrations to run (default: this one)")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE learner_keys after the keys are made")
    parser.add_argument("--output")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
