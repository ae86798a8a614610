"""Bulk import benchmark: ``lrs import`` of a large ndjson.gz file, rate and memory.

1. Generates a deterministic file of ``--statements`` statements (ids are
   UUIDv5 of their number, so every run sends the same statements; the gzip
   header carries no time, so the same N gives the same bytes), cached under
   ``--data`` and reused.
2. Optionally measures the ingest rate of the same service first with the
   ingest bench (batch 100, ``--compare-seconds``), for the comparison the
   import must win: an import no slower than ordinary ingest.
3. Runs ``python -m lrs import FILE`` as a child process against the service,
   samples its resident memory (VmRSS) every ``--sample-interval`` seconds, and
   records statements/s, the peak RSS and the whole RSS series in
   ``bench/results/import-<UTC time>.json``.

    python bench/import.py --start-service                       # 1,000,000 statements
    python bench/import.py --start-service --statements 200000
    python bench/import.py --url http://127.0.0.1:8080 --key K --secret S
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import add_service_options, bench_target, run_one, run_stoppable  # noqa: E402
from run_record import load_average, machine, write_result  # noqa: E402
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:lrs:bench:import")
DEFAULT_DATA = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrs-bench"

_TEMPLATE = (
    '{"id":"%s","actor":{"objectType":"Agent","name":"Learner %d","mbox":"mailto:learner%d@agency%d.example.gov"},'
    '"verb":{"id":"http://adlnet.gov/expapi/verbs/passed","display":{"en-US":"passed"}},'
    '"object":{"objectType":"Activity","id":"https://mooc.example.gov/courses/digcomp/unit-%d",'
    '"definition":{"name":{"en-US":"Digital literacy unit %d"},"type":"http://adlnet.gov/expapi/activities/lesson"}},'
    '"result":{"score":{"scaled":0.%02d,"raw":%d,"min":0,"max":100},"success":true,"completion":true,"duration":"PT%dM"},'
    '"context":{"registration":"%s","platform":"bench","language":"vi-VN",'
    '"contextActivities":{"parent":[{"id":"https://mooc.example.gov/courses/digcomp"}]}},'
    '"timestamp":"2026-11-01T08:%02d:00Z"}'
)


def statement_line(n: int) -> str:
    """Statement number ``n`` (the same shape as the ingest bench's)."""
    score = n % 100
    return _TEMPLATE % (
        uuid.uuid5(NAMESPACE, f"statement/{n}"), n, n % 50_000, n % 40, n % 21, n % 21, score, score,
        1 + n % 59, uuid.uuid5(NAMESPACE, f"registration/{n % 100_000}"), n % 60,
    )


def generate(path: Path, count: int) -> Path:
    """Writes ``count`` statements, one per line, gzip-compressed (reused when present)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    started = time.perf_counter()
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        for start in range(0, count, 10_000):
            out.write(("\n".join(statement_line(n) for n in range(start, min(count, start + 10_000))) + "\n").encode())
    os.replace(tmp, path)
    print(f"generated {path} ({path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f}s",
          flush=True)
    return path


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


async def run_import(url: str, key: str, secret: str, path: Path, args: argparse.Namespace) -> dict:
    workdir = tempfile.mkdtemp(prefix="lrs-bench-import-")
    checkpoint = Path(workdir) / "checkpoint.json"
    argv = [sys.executable, "-m", "lrs", "import", str(path), "--to", url, "--key", key, "--secret", secret,
            "--batch-size", str(args.batch_size), "--concurrency", str(args.concurrency),
            "--checkpoint", str(checkpoint), "--no-progress"]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    output = asyncio.ensure_future(process.communicate())
    series: list[list[float]] = []
    while not output.done():
        sample = rss_kib(process.pid)
        if sample is not None:
            series.append([round(time.perf_counter() - started, 2), round(sample / 1024, 1)])
        await asyncio.wait([output], timeout=args.sample_interval)
    out, err = output.result()
    elapsed = time.perf_counter() - started
    shutil.rmtree(workdir, ignore_errors=True)
    summary = err.decode()
    if process.returncode != 0:
        raise SystemExit(f"lrs import exited with {process.returncode}:\n{summary[-3000:]}")
    counts = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("read", "sent", "skipped", "rejected"):
            counts[parts[0]] = int(parts[1])
    rss = [mib for _, mib in series]
    half = len(rss) // 2
    return {
        "statements": args.statements,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "duration_s": round(elapsed, 2),
        "statements_per_s": round(counts.get("sent", 0) / elapsed, 1),
        "summary": counts,
        "rss_mib": {
            "max": max(rss) if rss else None,
            "median": statistics.median(rss) if rss else None,
            "max_first_half": max(rss[:half]) if half else None,
            "max_second_half": max(rss[half:]) if half else None,
            "samples": len(rss),
            "interval_s": args.sample_interval,
        },
        "rss_series_mib": series,
    }


async def main_async(args: argparse.Namespace) -> int:
    path = generate(Path(args.file) if args.file else Path(args.data) / f"import-{args.statements}.ndjson.gz",
                    args.statements)
    async with bench_target(args, stop_timeout=120) as (url, key, secret):
        if not key or not secret:
            print("bench: --key and --secret (or LRS_BENCH_KEY / LRS_BENCH_SECRET) are required", file=sys.stderr)
            return 2
        load_before = load_average()
        ingest = None
        if args.compare_seconds > 0:
            auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
            ingest = await run_one(url, auth, 100, 8, args.compare_seconds, 3.0)
            print(f"ingest bench batch=100 concurrency=8: {ingest['statements_per_s']:,.0f} statements/s", flush=True)
        result = await run_import(url, key, secret, path, args)
    print(f"import of {args.statements:,} statements: {result['statements_per_s']:,.0f} statements/s in "
          f"{result['duration_s']:.1f}s, peak RSS {result['rss_mib']['max']} MiB "
          f"(first half {result['rss_mib']['max_first_half']}, second half {result['rss_mib']['max_second_half']})",
          flush=True)
    record = {
        "benchmark": "import",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": url if not args.start_service else "lrs serve (embedded PostgreSQL and nats-server)",
        "machine": machine(),
        "load_average_before": load_before,
        "note": args.note,
        "ingest_batch_100": ingest,
        "import": result,
        "import_vs_ingest": round(result["statements_per_s"] / ingest["statements_per_s"], 2) if ingest else None,
    }
    if not args.no_save:
        write_result(record, "import", output=args.output)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=1_000_000, help="statements in the file (default: 1,000,000)")
    parser.add_argument("--file", help="use this ndjson(.gz) file instead of generating one")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help=f"where generated files are kept ({DEFAULT_DATA})")
    parser.add_argument("--batch-size", type=int, default=500, help="lrs import --batch-size (default: 500)")
    parser.add_argument("--concurrency", type=int, default=4, help="lrs import --concurrency (default: 4)")
    parser.add_argument("--sample-interval", type=float, default=1.0, help="seconds between RSS samples (default: 1)")
    parser.add_argument("--compare-seconds", type=float, default=20.0,
                        help="measure the ingest bench (batch 100) this long first; 0 to skip (default: 20)")
    add_service_options(parser, "import")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_stoppable(main_async(args), "import")


if __name__ == "__main__":
    sys.exit(main())
