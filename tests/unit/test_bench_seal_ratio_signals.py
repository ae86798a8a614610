"""bench/seal_ratio.py stops on Ctrl-C (SIGINT) or SIGTERM between runs, even
when started in the background (a shell's ``&`` leaves SIGINT ignored), and
stops the services it started: here each side's service is a stand-in
process stopped the way bench_target stops ``lrs serve`` (TERM, then wait)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent("""
    import asyncio, contextlib, signal, subprocess, sys
    sys.path.insert(0, {repo!r})
    from bench import seal_ratio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's `&` leaves it

    @contextlib.asynccontextmanager
    async def service(args, side, data_dir):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open({pids!r}, "a") as out:
            out.write(f"{{proc.pid}}\\n")
        try:
            yield "http://127.0.0.1:1", "Basic x", None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    async def run_one(*args, **kwargs):
        await asyncio.sleep(0.02)
        return {{"statements_per_s": 1.0, "service_cpu_us_per_statement": {{}}, "errors": 0,
                "load_average_after": [0.0]}}

    seal_ratio._service = service
    seal_ratio.run_one = run_one
    sys.exit(seal_ratio.main(["--rounds", "100000", "--modes", "worst", "--batch-sizes", "100",
                              "--concurrency", "1", "--data-dir", {data!r}, "--no-write"]))
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_between_runs_stops_the_bench_and_its_services(tmp_path: Path, sig: signal.Signals) -> None:
    pids, data = tmp_path / "pids", tmp_path / "data"
    data.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO), pids=str(pids), data=str(data)))
    bench = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert bench.stdout is not None
        for _ in range(4):  # a few runs done: the rounds are going
            assert bench.stdout.readline().startswith("round ")
        bench.send_signal(sig)
        _, err = bench.communicate(timeout=30)
        assert bench.returncode == 130, err
        assert f"seal_ratio: stopped by {sig.name}" in err and "Traceback" not in err, err
        services = [int(line) for line in pids.read_text().split()]
        assert len(services) == 2 and not any(_alive(pid) for pid in services)
        assert not list(data.iterdir())  # the services' data removed
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for line in (pids.read_text().split() if pids.exists() else []):
            if _alive(int(line)):
                os.kill(int(line), signal.SIGKILL)
