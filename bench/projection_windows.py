"""Where the projection's time goes early and late in a lag run.

Runs beside ``bench/projection.py --workers 2`` (the projection in its own
``lrs project`` process): finds that process by its ``LRS_DATABASE_URL``
(which names ``--work-dir``), then, in each window (seconds after the
projection's checkpoint first moves), measures

- the events applied (the checkpoint's advance),
- the CPU of the ``lrs project`` process, and of the PostgreSQL backends that
  ran the projection's statements (found in ``pg_stat_activity`` by their
  queries), per event,
- the average size of the learners' stored states,

and, with ``--py-spy PATH`` (a py-spy binary; not a dependency of the
project), samples the process with ``py-spy record --nonblocking`` over the
window and reports the share of samples in each of the functions named below
(inclusive) and the top functions by own samples.

    python bench/projection.py --rate 5000 --batch 50 --evidence-share 1.0 --workers 2 \\
        --duration 40 --work-dir /work/benchdata/x &
    python bench/projection_windows.py --work-dir /work/benchdata/x --windows 3:13,28:38 \\
        --py-spy /path/to/py-spy --out bench/results/<file>.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

TICK = os.sysconf("SC_CLK_TCK")
# Functions whose inclusive share is reported (substring of py-spy's frame name).
WATCHED = {
    "interpret": "interpret_stored",
    "message check": "refusal ",
    "refold": "evolve_many",
    "encode state": "encode_state",
    "changed rows": "_rewrite",
    "unit counts": "apply_certification_changes",
    "waiting (event loop idle)": "select (selectors.py",
    "asyncpg copy/execute": "copy_records_to_table",
}


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _find_projection(work_dir: str) -> tuple[int, str] | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            if b"lrs" not in cmd or b"project" not in cmd:
                continue
            env = dict(
                item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item
            )
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        url = env.get(b"LRS_DATABASE_URL", b"").decode()
        if work_dir in url:
            return int(entry.name), url
    return None


async def _projection_backends(conn: asyncpg.Connection, known: set[int]) -> set[int]:
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE query ILIKE '%competency_%' OR query ILIKE '%projection_checkpoints%'"
    )
    return known | {r["pid"] for r in rows if r["pid"] != conn.get_server_pid()}


def _summarise(raw: Path, top: int = 25) -> dict:
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for label, needle in WATCHED.items():
            if any(needle in f for f in frames):
                inclusive[label] += n
    return {
        "samples": total,
        "inclusive_share": {k: round(inclusive[k] / total, 3) for k in WATCHED} if total else {},
        "top_own": [(f, round(n / total, 3)) for f, n in own.most_common(top)] if total else [],
    }


async def main_async(args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + 300
    found = None
    while found is None:
        if time.monotonic() > deadline:
            raise SystemExit("no lrs project process with that work dir")
        found = _find_projection(args.work_dir)
        await asyncio.sleep(0.2)
    pid, url = found
    conn = await asyncpg.connect(url)
    checkpoint = "SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE name = 'competency'"
    while not await conn.fetchval("SELECT to_regclass('projection_checkpoints') IS NOT NULL") or not await conn.fetchval(checkpoint):
        await asyncio.sleep(0.05)
    started = time.monotonic()
    backends: set[int] = set()
    windows = []
    for spec in args.windows.split(","):
        begin, end = (float(x) for x in spec.split(":"))
        while time.monotonic() - started < begin:
            backends = await _projection_backends(conn, backends)
            await asyncio.sleep(0.1)
        spy = None
        raw = Path(tempfile.mkstemp(suffix=".txt")[1])
        if args.py_spy:
            spy = subprocess.Popen(
                [args.py_spy, "record", "--nonblocking", "-r", "97", "-p", str(pid), "-d", str(int(end - begin)),
                 "-f", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        pos0 = await conn.fetchval(checkpoint)
        head0 = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
        py0 = _cpu_s(pid)
        pg0 = {b: _cpu_s(b) for b in backends}
        t0 = time.monotonic()
        while time.monotonic() - started < end:
            backends = await _projection_backends(conn, backends)
            for b in backends:
                pg0.setdefault(b, _cpu_s(b))
            await asyncio.sleep(0.1)
        t1 = time.monotonic()
        pos1 = await conn.fetchval(checkpoint)
        head1 = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
        py = _cpu_s(pid) - py0
        pg = sum(_cpu_s(b) - pg0.get(b, 0.0) for b in backends)
        size = await conn.fetchrow(
            "SELECT count(*) AS learners, avg(octet_length(state))::int AS bytes FROM competency_learners"
        )
        events = max(pos1 - pos0, 1)
        window = {
            "window_s": [begin, end], "events_applied": pos1 - pos0, "events_per_s": round((pos1 - pos0) / (t1 - t0), 1),
            "log_events_per_s": round((head1 - head0) / (t1 - t0), 1), "behind_at_end": head1 - pos1,
            "projection_python_cpu_us_per_event": round(py / events * 1e6, 1),
            "projection_postgres_cpu_us_per_event": round(pg / events * 1e6, 1),
            "projection_cpu_share_of_a_core": round((py + pg) / (t1 - t0), 2),
            "learners": size["learners"], "state_bytes_avg": size["bytes"],
            "statements_per_learner": round(pos1 / max(size["learners"], 1), 2),
        }
        if spy is not None:
            spy.wait(60)
            window["py_spy"] = _summarise(raw) if raw.stat().st_size else {"samples": 0}
        raw.unlink(missing_ok=True)
        windows.append(window)
        print(json.dumps(window), file=sys.stderr)
    await conn.close()
    return {"benchmark": "projection-windows", "windows": windows, "load_average": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", required=True, help="bench/projection.py's --work-dir")
    parser.add_argument("--windows", default="3:13,28:38", help="begin:end seconds after the checkpoint first moves")
    parser.add_argument("--py-spy", default=None, help="a py-spy binary to sample the projection with")
    parser.add_argument("--out", default=None, help="write the result here (JSON)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
