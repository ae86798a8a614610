"""What a Statement sent again costs when its learner was new when it was
stored: branch sealrow (reverted; its commits 3fb38de..af2a893) stored a
naming met first in the v2 form and, met again, sealed it in v4, so the
resent Statement no longer matched the stored one byte for byte and went
through the handler's ``_as_stored`` (a 409 in the writer, the stored
Statement read, opened and compared, a second append); the start, and this
build again, seal both in v4, the same bytes.  To measure inline-first, point
a ``--tree`` at a checkout of af2a893 (``git worktree add DIR af2a893``).

For each tree (``--tree NAME=DIR``, alternated each round) it starts ``lrs
serve`` (sealing on, one HTTP worker so the resend meets the same cache,
projections off), POSTs ``--batches`` batches of ``--batch`` Statements each
naming a learner not seen before, then POSTs every batch again and reports
the service's CPU a resent Statement (every process: worker, PostgreSQL,
relay, nats-server) and the resend's wall time.

    python bench/seal_resend.py --tree base=/work/wt/base --tree sealrow=/path/to/af2a893 --rounds 3

Results: ``bench/results/seal_resend-<label>-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import bench_target, run_stoppable  # noqa: E402
from process_cpu import ServiceCpu, per_statement_us  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402


def _batch(round_: int, index: int, size: int) -> list[dict]:
    return [{"id": str(uuid.uuid4()),
             "actor": {"objectType": "Agent", "mbox": f"mailto:r{round_}-b{index}-l{n}@example.org",
                       "name": f"Learner {round_} {index} {n}"},
             "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
             "object": {"id": f"https://lms.example/course/{n % 40}"}} for n in range(size)]


async def _post_all(session: aiohttp.ClientSession, url: str, auth: str, batches: list[list[dict]]) -> None:
    headers = {"Authorization": auth, "X-Experience-API-Version": "1.0.3"}
    for batch in batches:
        async with session.post(f"{url}/xapi/statements", json=batch, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {await response.text()}")


async def one_run(name: str, tree: str, round_: int, args: argparse.Namespace) -> dict:
    data = tempfile.mkdtemp(prefix="seal-resend-", dir=args.scratch)
    target = types.SimpleNamespace(start_service=True, service_tree=str(Path(tree).resolve()), data_dir=data,
                                   log_level="warning")
    async with bench_target(target) as (url, key, secret):
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        cpu = ServiceCpu(target.service_pid, ended=True)
        batches = [_batch(round_, i, args.batch) for i in range(args.batches)]
        async with aiohttp.ClientSession() as session:
            await _post_all(session, url, auth, batches)
            await asyncio.sleep(args.settle)
            before, started = cpu.sample(), time.perf_counter()
            await _post_all(session, url, auth, batches)
            wall = time.perf_counter() - started
            await asyncio.sleep(args.settle)
            after = cpu.sample()
    statements = args.batch * args.batches
    used = per_statement_us(before, after, statements)
    return {"tree": name, "round": round_, "resent": statements, "cpu_us_per_resent_statement": used,
            "wall_ms_per_batch": round(wall / args.batches * 1000, 2), "load_1m": load_average()[0]}


async def main_async(args: argparse.Namespace) -> dict:
    trees = dict(t.split("=", 1) for t in args.tree)
    load_before = load_average()
    runs = []
    for round_ in range(args.rounds):
        for name in (list(trees) if round_ % 2 == 0 else list(reversed(trees))):
            run = await one_run(name, trees[name], round_, args)
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {name: {"median_all_us": statistics.median(r["cpu_us_per_resent_statement"]["all"]
                                                         for r in runs if r["tree"] == name),
                      "median_wall_ms_per_batch": statistics.median(r["wall_ms_per_batch"]
                                                                    for r in runs if r["tree"] == name)}
               for name in trees}
    print(json.dumps(summary, indent=2), flush=True)
    return {"benchmark": "seal_resend", "command": "python " + " ".join(sys.argv),
            "machine": machine(load_before=load_before), "note": args.note, "trees": trees,
            "batch": args.batch, "batches": args.batches, "runs": runs, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds for the relay to catch up")
    parser.add_argument("--scratch", default=None, help="where the data directories go")
    add_result_options(parser)
    args = parser.parse_args()
    os.environ["LRS_SEAL_PERSONAL_DATA"] = "true"
    os.environ["LRS_HTTP_WORKERS"] = "1"
    os.environ["LRS_PROJECTIONS_ENABLED"] = "false"
    result = run_stoppable(main_async(args), "seal_resend")
    if not args.no_write:
        write_result(result, "seal_resend", *([args.label] if args.label else []))


if __name__ == "__main__":
    main()
