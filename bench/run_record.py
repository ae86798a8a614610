"""What a bench writes beside its figures, and where.

A result goes to ``bench/results/<bench>-<label>-<UTC stamp>.json`` (the label,
e.g. the branch, left out when empty) so that runs of several branches do not
collide; it names the machine (:func:`machine`), the commit and the load
average, since figures on a shared machine mean little without them.
:func:`add_result_options` gives every bench the same ``--label``, ``--note``,
``--output`` and ``--no-write`` options.

Importable both as ``run_record`` (``bench/`` on the path, as when a bench
runs as a script) and as ``bench.run_record``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__:
    from .process_cpu import load_average
else:
    from process_cpu import load_average

__all__ = ["RESULTS_DIR", "add_result_options", "branch", "commit", "load_average", "machine", "result_path",
           "stamp", "write_result"]

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"


def _git(*words: str, repo: str | Path | None = None) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo or HERE), *words], capture_output=True, text=True,
                              check=False).stdout.strip()
    except OSError:
        return ""


def commit(repo: str | Path | None = None) -> str:
    """Short commit of ``repo`` (default: this checkout); "" outside git."""
    return _git("rev-parse", "--short", "HEAD", repo=repo)


def branch(repo: str | Path | None = None) -> str:
    """Branch of ``repo`` (default: this checkout); "" outside git."""
    return _git("rev-parse", "--abbrev-ref", "HEAD", repo=repo)


def stamp(when: datetime | None = None) -> str:
    """``when`` (default: now) as the UTC time of a result file's name, e.g. ``20261206T123722Z``."""
    return (when or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        line = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        return 0.0


def machine(repo: str | Path | None = None, *, load_before: list[float] | None = None) -> dict[str, Any]:
    """The machine and code a result comes from: cpu, cores, memory_gib,
    python, os and commit (of ``repo``, default this checkout); given the
    ``load_before`` of a run (:func:`load_average`), also ``loadavg_before``
    and ``loadavg_after`` (now)."""
    out: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "commit": commit(repo),
    }
    if load_before is not None:
        out |= {"loadavg_before": load_before, "loadavg_after": load_average()}
    return out


def result_path(bench: str, *labels: str, when: datetime | None = None) -> Path:
    """``bench/results/<bench>-<labels...>-<stamp>.json``; empty labels are
    left out, and a slash (a branch such as ``fix/x``) becomes a dash."""
    words = [bench, *(label.replace("/", "-") for label in labels if label), stamp(when)]
    return RESULTS_DIR / ("-".join(words) + ".json")


def write_result(record: Any, bench: str, *labels: str, output: str | Path | None = None, indent: int = 2) -> Path:
    """Write ``record`` as JSON to ``output`` or else to :func:`result_path`,
    say where on stdout and return the path."""
    path = Path(output) if output else result_path(bench, *labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)
    return path


def add_result_options(parser: argparse.ArgumentParser, *, label: bool = True, note: bool = True,
                       output: bool = False) -> argparse.ArgumentParser:
    """The options of a bench's result: ``--no-write`` (alias ``--no-save``),
    and as asked ``--label``, ``--note``, ``--output``."""
    group = parser.add_argument_group("result file")
    if label:
        group.add_argument("--label", default="", help="a word for the result file name (e.g. the branch)")
    if note:
        group.add_argument("--note", default="", help="free text stored with the result")
    if output:
        group.add_argument("--output", type=Path, default=None,
                           help="the result file (default: bench/results/<bench>-<label>-<UTC time>.json)")
    group.add_argument("--no-write", "--no-save", dest="no_write", action="store_true",
                       help="print only; do not write bench/results/")
    return parser
