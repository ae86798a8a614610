"""CPU per stored statement of the whole service, two source trees alternated.

For each round and each tree (``--tree NAME=DIR``, e.g. a checkout of main and
one of a branch) it starts ``lrs serve`` from that tree on a fresh data
directory (embedded PostgreSQL and nats-server, the relay on), waits until it
is ready, notes the CPU time of every process of the service (the server, its
HTTP workers, PostgreSQL's processes, nats-server), drives it with
``bench/ingest.py --warmup 0`` from a separate process (the load generator is
not counted), lets the relay catch up, notes the CPU time again, and divides
by the statements stored (the log head).  Start-up and shutdown are not
counted.  bench/process_cpu.py reads the CPU times from /proc, those of
processes that ended during the run (and were waited for) included.

    python bench/ingest_cpu_ab.py --tree before=/path/main --tree after=/path/branch --rounds 3

Results: bench/results/ingest-cpu-ab-<branch>-<UTC time>.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ingest import _free_port, _wait_ready  # noqa: E402
from process_cpu import tree_cpu_s  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402


async def one_run(name: str, tree: Path, args: argparse.Namespace) -> dict:
    data = Path(tempfile.mkdtemp(prefix="lrs-bench-cpu-", dir=args.scratch))
    port = _free_port()
    url, key, secret = f"http://127.0.0.1:{port}", "bench", uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(tree), "LRS_HTTP_PORT": str(port), "LRS_DATA_DIR": str(data),
           "LRS_BOOTSTRAP_CREDENTIAL": f"{key}:{secret}", "LRS_LOG_LEVEL": "warning"}
    # The tree's own venv when it has one: the schemas are found through the
    # installed package (lrs.contracts, files("lrs_schemas")), so another venv's
    # editable install would run ITS migrations against this tree's code.
    own = Path(tree) / ".venv" / "bin" / "python"
    proc = subprocess.Popen([str(own) if own.exists() else sys.executable, "-m", "lrs", "serve"], env=env, cwd=tree)
    try:
        await _wait_ready(url, proc)
        await asyncio.sleep(2)  # start-up work (migrations, stream set-up) settles
        # every process below the server, those that ended (and were waited for) included
        before = tree_cpu_s(proc.pid, ended=True)
        load = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH / "ingest.py"), "--url", url, "--key", key, "--secret", secret,
            "--batch-sizes", str(args.batch), "--warmup", "0", "--duration", str(args.duration), "--no-save",
            stdout=asyncio.subprocess.PIPE, cwd=str(BENCH.parent),
        )
        out, _ = await load.communicate()
        await asyncio.sleep(args.settle)  # the relay publishes the last groups
        after = tree_cpu_s(proc.pid, ended=True)
        head = await _log_head(data)
        return {
            "tree": name, "statements": head, "cpu_s": round(after - before, 3),
            "cpu_us_per_statement": round((after - before) / max(head, 1) * 1e6, 1),
            "load_generator": out.decode().strip().splitlines()[-1] if out else "",
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


async def _log_head(data: Path) -> int:
    """The log head, read through the running service's own PostgreSQL."""
    from lrs.runtime.postgres import running_server_url

    url = running_server_url(data / "postgres", "lrs")
    if url is None:
        raise RuntimeError(f"no running PostgreSQL under {data}")
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT position FROM log_head"))
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> dict:
    trees = dict(t.split("=", 1) for t in args.tree)
    load_before = load_average()
    runs = []
    for round_index in range(args.rounds):
        order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
        for name in order:
            result = await one_run(name, Path(trees[name]).resolve(), args)
            result["round"] = round_index
            result["load_1m"] = load_average()[0]
            runs.append(result)
            print(json.dumps(result), flush=True)
    summary = {
        name: {
            "median_cpu_us_per_statement": statistics.median(r["cpu_us_per_statement"] for r in runs if r["tree"] == name),
            "runs": [r["cpu_us_per_statement"] for r in runs if r["tree"] == name],
        }
        for name in trees
    }
    print(json.dumps(summary, indent=2))
    return {"benchmark": "ingest-cpu-ab", "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join(sys.argv), "machine": machine(load_before=load_before), "note": args.note,
            "batch": args.batch, "duration_s": args.duration, "trees": trees, "runs": runs, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--settle", type=float, default=3, help="seconds after the load for the relay to catch up")
    parser.add_argument("--scratch", default=None, help="where the data directories go (default: the temp dir)")
    add_result_options(parser)
    parser.add_argument("--branch", dest="label", help=argparse.SUPPRESS)  # the former name of --label
    args = parser.parse_args()
    record = asyncio.run(main_async(args))
    if not args.no_write:
        write_result(record, "ingest-cpu-ab", args.label)


if __name__ == "__main__":
    main()
