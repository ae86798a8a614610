"""bench/ingest.py --count-ended-backends: beside its usual CPU per
statement, which leaves out the processes that end during a run (PostgreSQL
backends, autovacuum workers), the same counting them.  Here the service is
stood in for by a process whose child keeps starting and waiting for
short-lived children (as the postmaster, a child of ``lrs serve``, its
backends), behind an HTTP server that answers every POST with 200."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ingest import parse_args, run_one  # noqa: E402
from process_cpu import ServiceCpu, _children, _descendants  # noqa: E402

# Each child burns some CPU and ends; the parent waits for it (its cutime grows).
_PARENT = (
    "import subprocess, sys\n"
    "while True:\n"
    "    subprocess.run([sys.executable, '-c', 'sum(range(3_000_000))'])\n"
)
_ROOT = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {_PARENT!r}])\n"


async def test_ended_children_are_counted_only_when_asked() -> None:
    async def stored(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_post("/xapi/statements", stored)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    parent = subprocess.Popen([sys.executable, "-c", _ROOT])
    try:
        result = await run_one(f"http://127.0.0.1:{port}", "Basic x", 1, 2, 2.0, 0.2,
                               ServiceCpu(parent.pid), count_ended=True)
        plain = await run_one(f"http://127.0.0.1:{port}", "Basic x", 1, 2, 0.3, 0.1, ServiceCpu(parent.pid))
    finally:
        for pid in _descendants(parent.pid, _children()):  # the stand-in and its child (a burner ends by itself)
            os.kill(pid, signal.SIGKILL)
        parent.wait()
        await runner.cleanup()
    usual, ended = result["service_cpu_us_per_statement"], result["service_cpu_us_per_statement_ended_counted"]
    # 2 s of children that each end within a second or so: only the second figure has them
    assert ended["all"] > usual["all"], (usual, ended)
    assert ended["other system"] == usual["other system"]  # one reading: the rest is the same
    assert plain["service_cpu_us_per_statement_ended_counted"] is None  # not asked: as before


def test_the_option_is_off_by_default() -> None:
    assert parse_args([]).count_ended_backends is False
    assert parse_args(["--count-ended-backends"]).count_ended_backends is True

