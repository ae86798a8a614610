"""How long `read_shares.hear_arrived`'s synchronous ``recv_bytes`` of one hint
message takes once ``poll()`` says the pipe is readable: the copy (CPU) and
the wait for a writer still writing the rest (wall), a writer that is a
thread of another process, as ``share_pipes.HintSender``; the pipe widened as
``Links`` widens it.  A message larger than the pipe (1 MB) can only be read
whole after the writer has run again.

    .venv/bin/python bench/hint_read_wait.py --bytes 1900000 --label NAME
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from projections.competency.parallel_replay import _widen  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _write(conn, size: int, count: int, judging_s: float) -> None:
    message = b"h" + os.urandom(size - 1)

    def run() -> None:
        for _ in range(count):
            conn.send_bytes(message)
            time.sleep(judging_s)  # the writer's process judges its next page

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def _quantile(values: list[float], q: float) -> float:
    return sorted(values)[max(0, int(len(values) * q) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1_900_000, help="one message's size (default: 1,900,000)")
    parser.add_argument("--count", type=int, default=200, help="messages (default: 200)")
    parser.add_argument("--label", required=True, help="the branch, in the result file's name")
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    _widen(receiving)
    writer = context.Process(target=_write, args=(sending, args.bytes, args.count, 0.002))
    writer.start()
    sending.close()
    waits, cpus = [], []
    for _ in range(args.count):
        while not receiving.poll():
            time.sleep(0.0002)  # the reader judges its own page meanwhile
        wall, cpu = time.perf_counter(), time.thread_time()
        receiving.recv_bytes()
        waits.append(time.perf_counter() - wall)
        cpus.append(time.thread_time() - cpu)
    writer.join()
    record = {
        "bench": "hint_read_wait", "label": args.label, "bytes": args.bytes, "messages": args.count,
        "wall_ms_median": round(statistics.median(waits) * 1e3, 3), "wall_ms_p90": round(_quantile(waits, 0.9) * 1e3, 3),
        "wall_ms_max": round(max(waits) * 1e3, 3), "cpu_ms_median": round(statistics.median(cpus) * 1e3, 3),
        "load_average": os.getloadavg()[0], "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"hint_read_wait-{args.label}.jsonl", "a") as out:
        out.write(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
