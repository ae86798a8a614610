"""bench/overload.py stops on Ctrl-C or SIGTERM with one line and nothing
else, its load-generator processes too: they are forked from the bench's
running event loop, and a terminal's Ctrl-C is SIGINT to the whole
foreground group, generators included.  Here the service is a URL nobody
serves and each generator's clients only record their process and wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lrs.runtime._process import pid_alive

REPO = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent("""
    import asyncio, contextlib, os, sys
    sys.path.insert(0, {repo!r})
    from bench import overload

    @contextlib.asynccontextmanager
    async def target(args):
        yield "http://127.0.0.1:1", "k", "s"

    async def client(conn, bodies, deadline, warmup_end, ok, statuses):
        os.write(1, f"generator {{os.getpid()}}\\n".encode())  # one write: the two generators share the pipe
        await asyncio.sleep(3600)

    overload.bench_target = target
    overload._client = client
    overload._Bodies = lambda *args: None
    overload._Connection = lambda *args: None
    overload._histograms = lambda url, auth: {{"request": {{}}, "loop_lag": {{}}, "shed": {{}}, "limit": {{}}}}
    overload._service_pids = lambda port: []
    overload.BUILD_BODIES_S = 0.0
    sys.exit(overload.main(["--duration", "3600", "--warmup", "0", "--connections", "2", "--client-processes", "2",
                            "--no-save"]))
""")


@pytest.mark.parametrize(("sig", "to_group"), [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["Ctrl-C", "SIGTERM"])
def test_a_signal_stops_the_bench_and_its_load_generators_quietly(tmp_path: Path, sig: signal.Signals,
                                                                  to_group: bool) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO)))
    # In a session of its own, as a terminal's foreground job is its own group.
    bench = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    generators: list[int] = []
    try:
        assert bench.stdout is not None
        while len(generators) < 2:  # both generator processes are running their clients
            line = bench.stdout.readline()
            assert line.startswith("generator "), line
            generators.append(int(line.split()[1]))
        os.killpg(bench.pid, sig) if to_group else bench.send_signal(sig)
        _, err = bench.communicate(timeout=30)
        assert bench.returncode == 130, err
        assert err == f"overload: stopped by {sig.name}; the services it started are stopped\n", err
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in generators) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(pid_alive(pid) for pid in generators)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
        for pid in generators:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
