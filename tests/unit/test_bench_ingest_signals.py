"""bench/ingest.py (and every bench on its bench_target) stops on Ctrl-C or
SIGTERM with one line, stopping the ``lrs serve`` it started: here a stand-in
service run as bench_target runs one (``--service-tree``'s ``python -m lrs
serve``) that records the signals it gets.  A terminal's Ctrl-C is SIGINT to
its foreground process group: the service, in a session of its own, must get
only the bench's SIGTERM."""

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

STAND_IN = textwrap.dedent("""
    import os, signal, sys, time
    record = os.environ["STAND_IN_RECORD"]
    def stop(sig, frame):
        with open(record, "a") as out:
            out.write(signal.Signals(sig).name + "\\n")
        sys.exit(0)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with open(record, "a") as out:
        out.write(f"pid {os.getpid()}\\n")
    for _ in range(120):  # a stand-in a failed test leaves behind ends by itself
        time.sleep(1)
""")

DRIVER = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, {repo!r})
    from bench import ingest

    async def wait_ready(url, proc):  # until the stand-in has written its pid
        record = os.environ["STAND_IN_RECORD"]
        while not (os.path.exists(record) and "pid" in open(record).read()):
            await asyncio.sleep(0.02)

    class NoLog:
        @staticmethod
        async def connect(url):
            return None

    async def run_one(*args, **kwargs):
        print("run", flush=True)
        await asyncio.sleep(3600)

    ingest._wait_ready = wait_ready
    ingest.LogSampler = NoLog
    ingest.ServiceCpu = lambda pid: None
    ingest.run_one = run_one
    sys.exit(ingest.main(["--start-service", "--service-tree", {tree!r}, "--batch-sizes", "100", "--no-save"]))
""")


@pytest.mark.parametrize(("sig", "to_group"), [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["Ctrl-C", "SIGTERM"])
def test_a_signal_stops_the_bench_and_the_service_it_started(tmp_path: Path, sig: signal.Signals,
                                                             to_group: bool) -> None:
    tree = tmp_path / "tree"  # a checkout whose `python -m lrs serve` is the stand-in
    (tree / "lrs").mkdir(parents=True)
    (tree / "lrs" / "__init__.py").write_text("")
    (tree / "lrs" / "__main__.py").write_text(STAND_IN)
    (tree / ".venv" / "bin").mkdir(parents=True)
    python = tree / ".venv" / "bin" / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    record, scratch = tmp_path / "record", tmp_path / "scratch"
    scratch.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO), tree=str(tree)))
    env = {**os.environ, "STAND_IN_RECORD": str(record), "TMPDIR": str(scratch)}
    # In a session of its own, as a terminal's foreground job is its own group.
    bench = subprocess.Popen([sys.executable, str(driver)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        assert bench.stdout is not None
        assert bench.stdout.readline() == "run\n"  # the service is up, a run is going
        os.killpg(bench.pid, sig) if to_group else bench.send_signal(sig)
        _, err = bench.communicate(timeout=30)
        assert bench.returncode == 130, err
        assert err == f"ingest: stopped by {sig.name}; the services it started are stopped\n", err
        lines = record.read_text().split("\n")
        service = int(lines[0].removeprefix("pid "))
        assert lines[1:] == ["SIGTERM", ""]  # the bench's TERM, not the terminal's INT
        deadline = time.monotonic() + 10
        while pid_alive(service) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(service)
        assert not list(scratch.iterdir())  # the service's data dir removed
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
        first = record.read_text().split("\n")[0] if record.exists() else ""
        if first.startswith("pid ") and pid_alive(left := int(first.removeprefix("pid "))):
            os.kill(left, signal.SIGKILL)  # in a session of its own
