"""CPU per stored statement of the whole service, two source trees alternated.

For each round and each tree (``--tree NAME=DIR``, e.g. a checkout of main and
one of a branch) it starts ``lrs serve`` from that tree on a fresh data
directory (embedded PostgreSQL and nats-server, the relay on), waits until it
is ready, notes the CPU time of every process of the service (the server, its
HTTP workers, PostgreSQL's processes, nats-server), drives it with
``bench/ingest.py --warmup 0`` from a separate process (the load generator is
not counted), lets the relay catch up, notes the CPU time again, and divides
by the statements stored (the log head).  Start-up and shutdown are not
counted.  psutil reads the processes' CPU times.

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
import psutil

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ingest import _free_port, _wait_ready  # noqa: E402
from log_head_lock import machine  # noqa: E402


def tree_cpu(root: psutil.Process, seen: dict[int, float]) -> float:
    """CPU seconds of ``root`` and its descendants; ``seen`` keeps the last
    figure of each process, so one that ended still counts."""
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            seen[proc.pid] = times.user + times.system
        except psutil.Error:
            pass
    return sum(seen.values())


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
    seen: dict[int, float] = {}
    try:
        await _wait_ready(url, proc)
        root = psutil.Process(proc.pid)
        await asyncio.sleep(2)  # start-up work (migrations, stream set-up) settles
        before = tree_cpu(root, seen)
        sampler_stop = asyncio.Event()

        async def sample() -> None:
            while not sampler_stop.is_set():
                tree_cpu(root, seen)
                await asyncio.sleep(0.25)

        sampler = asyncio.ensure_future(sample())
        load = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH / "ingest.py"), "--url", url, "--key", key, "--secret", secret,
            "--batch-sizes", str(args.batch), "--warmup", "0", "--duration", str(args.duration), "--no-save",
            stdout=asyncio.subprocess.PIPE, cwd=str(BENCH.parent),
        )
        out, _ = await load.communicate()
        await asyncio.sleep(args.settle)  # the relay publishes the last groups
        sampler_stop.set()
        await sampler
        after = tree_cpu(root, seen)
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
    load_before = os.getloadavg()
    runs = []
    for round_index in range(args.rounds):
        order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
        for name in order:
            result = await one_run(name, Path(trees[name]).resolve(), args)
            result["round"] = round_index
            result["load_1m"] = round(os.getloadavg()[0], 2)
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
            "command": "python " + " ".join(sys.argv), "machine": machine(load_before), "note": args.note,
            "batch": args.batch, "duration_s": args.duration, "trees": trees, "runs": runs, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--settle", type=float, default=3, help="seconds after the load for the relay to catch up")
    parser.add_argument("--scratch", default=None, help="where the data directories go (default: the temp dir)")
    parser.add_argument("--branch", default="")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    record = asyncio.run(main_async(args))
    branch = f"-{args.branch}" if args.branch else ""
    out = BENCH / "results" / f"ingest-cpu-ab{branch}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {out.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
