"""bench/run_record.py: where a bench's result goes and what it says of the
machine; bench/process_cpu.py's readers of several processes and of ended ones."""

from __future__ import annotations

import argparse
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
