"""CPU per request of the request log context and the per-request log line.

Times, in process CPU (``time.process_time``, so other jobs on the machine
inflate it less than wall time), what ``lrs.http.middleware.request_context``
does for logging on every request: set the request's log context, then log
the ``request`` line, at the default level (``info``, a line written) and at
``warning`` (the line filtered out, as ``bench/ingest.py`` runs).  Lowest of
nine repeats of 50,000.  Run it from another checkout with that checkout's
venv to compare builds (the script uses the ``lrs.logs`` it imports)::

    .venv/bin/python bench/request_log_cost.py
    (cd <other checkout> && .venv/bin/python <this checkout>/bench/request_log_cost.py)
"""

from __future__ import annotations

import json
import os
import sys
import time
import timeit

import structlog

import lrs.logs as logs

FIELDS = dict(method="POST", path="/xapi/statements", status=200, duration_ms=3.512, credential="bench",
              tenant="default", statements=1, inserted=1)
REQUEST_ID = "0123456789abcdef0123456789abcdef"


def _set_context():
    if hasattr(logs, "bind_request_context"):
        return lambda: logs.bind_request_context(request_id=REQUEST_ID)

    def older() -> None:  # builds before lrs.logs.bind_request_context
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=REQUEST_ID)

    return older


def measure(number: int = 50_000, repeat: int = 9) -> dict[str, float]:
    context = _set_context()
    result = {}
    with open(os.devnull, "w") as sink:
        for level in ("info", "warning"):
            logs.configure_logging(level, sink)
            log = structlog.get_logger("lrs.http")

            def one() -> None:
                context()
                log.info("request", **FIELDS)

            best = min(timeit.Timer(one, timer=time.process_time).repeat(number=number, repeat=repeat))
            result[level] = round(best / number * 1e6, 2)
    return result


if __name__ == "__main__":
    print(json.dumps({"checkout": os.getcwd(), "cpu_us_per_request": measure(), "load_average": os.getloadavg()}))
    sys.exit(0)
