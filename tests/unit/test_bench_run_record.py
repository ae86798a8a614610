"""bench/run_record.py: where a bench's result goes and what it says of the
machine; bench/process_cpu.py's readers of several processes and of ended ones."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import process_cpu, run_record  # noqa: E402

WHEN = datetime(2026, 12, 6, 12, 37, 22, tzinfo=timezone.utc)


def test_the_result_path_names_the_bench_its_labels_and_the_utc_time() -> None:
    assert run_record.result_path("growth", "main", when=WHEN).name == "growth-main-20261206T123722Z.json"
    assert run_record.result_path("growth", "", when=WHEN).name == "growth-20261206T123722Z.json"
    assert run_record.result_path("overload", "fix/shed", when=WHEN).name == "overload-fix-shed-20261206T123722Z.json"
    assert run_record.result_path("x", when=WHEN).parent == Path(run_record.__file__).resolve().parent / "results"
    assert run_record.stamp(WHEN.astimezone(timezone(timedelta(hours=7)))) == "20261206T123722Z"


def test_write_result_writes_json_where_asked_and_says_where(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "deep" / "r.json"
    assert run_record.write_result({"ok": "lớp học"}, "bench", "label", output=out) == out
    assert json.loads(out.read_text(encoding="utf-8")) == {"ok": "lớp học"}
    assert "lớp học" in out.read_text(encoding="utf-8")  # not escaped
    assert capsys.readouterr().out.strip() == f"wrote {out}"


def test_machine_names_the_commit_and_with_a_load_before_the_load_after() -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent, check=True).stdout.strip()
    machine = run_record.machine()
    assert set(machine) == {"cpu", "cores", "memory_gib", "python", "os", "commit"}
    assert machine["commit"] == head and machine["cores"] == os.cpu_count() and machine["cpu"]
    with_load = run_record.machine(load_before=[9.0, 8.0, 7.0])
    assert with_load["loadavg_before"] == [9.0, 8.0, 7.0] and len(with_load["loadavg_after"]) == 3
    assert run_record.commit("/") == ""  # outside git: no commit, no error


def test_the_common_options() -> None:
    parser = run_record.add_result_options(argparse.ArgumentParser(), output=True)
    args = parser.parse_args(["--label", "main", "--note", "busy", "--output", "x.json", "--no-save"])
    assert (args.label, args.note, args.output, args.no_write) == ("main", "busy", Path("x.json"), True)
    args = parser.parse_args([])
    assert (args.label, args.note, args.output, args.no_write) == ("", "", None, False)
    bare = run_record.add_result_options(argparse.ArgumentParser(), label=False, note=False)
    assert vars(bare.parse_args(["--no-write"])) == {"no_write": True}


def test_tree_cpu_counts_several_roots_and_with_ended_the_children_that_ended() -> None:
    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()  # ended and waited for: its time is in this process's cutime/cstime
    me = os.getpid()
    without, with_ended = process_cpu.tree_cpu_s(me), process_cpu.tree_cpu_s(me, ended=True)
    assert with_ended - without >= 0.25
    sleeper = subprocess.Popen([sys.executable, "-c", code + "time.sleep(30)\n"])
    try:
        deadline = time.monotonic() + 30
        while process_cpu.cpu_s(sleeper.pid) < 0.3:  # it has burnt its CPU and sleeps
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # a root below another counts once
        assert process_cpu.tree_cpu_s(me, sleeper.pid) == pytest.approx(process_cpu.tree_cpu_s(me), abs=0.05)
        assert process_cpu.tree_cpu_s(sleeper.pid) == pytest.approx(process_cpu.cpu_s(sleeper.pid), abs=0.02)
        assert process_cpu.cpu_s(me, sleeper.pid) == pytest.approx(process_cpu.cpu_s(me) + process_cpu.cpu_s(sleeper.pid), abs=0.05)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert process_cpu.cpu_s(2**22 + 12345) == 0.0  # gone (or never was): counts nothing


def test_service_cpu_with_ended_counts_what_a_process_below_the_root_waited_for() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    # root -> middle -> a child that burns 0.3 s and ends; middle waits for it, then both sleep
    middle = ("import subprocess, sys, time\n"
              f"subprocess.run([sys.executable, '-c', {burn!r}])\nprint('done', flush=True)\ntime.sleep(30)\n")
    root = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {middle!r}])\n"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert root.stdout is not None and root.stdout.readline().strip() == "done"
        without = process_cpu.ServiceCpu(root.pid).sample()
        with_ended = process_cpu.ServiceCpu(root.pid, ended=True).sample()
        assert with_ended["other"] - without["other"] >= 0.25
    finally:
        for pid in process_cpu._descendants(root.pid, process_cpu._children())[::-1]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        root.wait()


def test_seal_ratio_statistics() -> None:
    from bench import seal_ratio

    middle, low, high = seal_ratio.median_interval([1.0, 1.1, 1.2, 1.05, 0.95, 1.3, 1.02], 2000)
    assert middle == 1.05 and low <= middle <= high and 0.95 <= low and high <= 1.3
    # CPU ratio 1.05 at equal rates, and 10% more CPU for each halving of the sealed side's rate
    points = [(r, 1.05 * r ** -0.1375) for r in (0.4, 0.6, 0.9, 1.2, 1.6)]
    level, low, high = seal_ratio.at_equal_rate(points, 500)
    assert level == pytest.approx(1.05) and low == pytest.approx(1.05) and high == pytest.approx(1.05)
