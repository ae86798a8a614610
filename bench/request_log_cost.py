"""CPU per request of the request log context and the per-request log line.

Times, in process CPU (``time.process_time``, so other jobs on the machine
inflate it less than wall time), what ``lrs.http.middleware.request_context``
does for logging on every request: set the request's log context, then log
the ``request`` line (``lrs.logs.log_request`` where the build has it, else
``structlog.get_logger("lrs.http").info``), at the default level (``info``,
a line written) and at ``warning`` (the line filtered out).  The lines are
logged inside a running event loop, 16 a turn (a group commit's answers at
batch 1, 32 clients, 2 workers), and written to a real file (``--to``: a
file, ``devnull`` or ``pipe``, a pipe read by ``cat`` as a log collector
would), since the write system call is part of the cost.  Lowest of nine
repeats of 32,000.  Run it from another checkout with that checkout's venv
to compare builds (the script uses the ``lrs.logs`` it imports)::

    .venv/bin/python bench/request_log_cost.py
    (cd <other checkout> && .venv/bin/python <this checkout>/bench/request_log_cost.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

import structlog

sys.path.insert(0, os.getcwd())  # the checkout run from, not this script's

import lrs.logs as logs  # noqa: E402

FIELDS = dict(method="POST", path="/xapi/statements", status=200, duration_ms=3.512, credential="bench",
              tenant="default", statements=1, inserted=1)
REQUEST_ID = "0123456789abcdef0123456789abcdef"
PER_TURN = 16


def _set_context():
    if hasattr(logs, "bind_request_context"):
        return lambda: logs.bind_request_context(request_id=REQUEST_ID)

    def older() -> None:  # builds before lrs.logs.bind_request_context
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=REQUEST_ID)

    return older


def _line():
    if hasattr(logs, "log_request"):
        return lambda: logs.log_request(dict(FIELDS))
    log = structlog.get_logger("lrs.http")
    return lambda: log.info("request", **FIELDS)


async def _turns(context, line, number: int) -> None:
    for _ in range(number // PER_TURN):
        for _ in range(PER_TURN):
            context()
            line()
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # the last turn's lines written


def measure(to: str = "file", number: int = 32_000, repeat: int = 9) -> dict[str, float]:
    context = _set_context()
    result = {}
    with tempfile.TemporaryDirectory() as scratch:
        cat = None
        if to == "pipe":
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            sink = cat.stdin
        else:
            sink = open(os.devnull if to == "devnull" else os.path.join(scratch, "lines.log"), "w")
        try:
            for level in ("info", "warning"):
                logs.configure_logging(level, sink)
                line = _line()
                best = float("inf")
                for _ in range(repeat):
                    started = time.process_time()
                    asyncio.run(_turns(context, line, number))
                    best = min(best, time.process_time() - started)
                result[level] = round(best / number * 1e6, 2)
        finally:
            sink.close()
            if cat is not None:
                cat.wait()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", choices=("file", "devnull", "pipe"), default="file")
    args = parser.parse_args()
    print(json.dumps({"checkout": os.getcwd(), "to": args.to, "cpu_us_per_request": measure(args.to),
                      "load_average": os.getloadavg()}))
    sys.exit(0)
