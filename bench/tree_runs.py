"""Run a bench's measurement in several checkouts in turn, alternating.

A bench that compares checkouts in one session (``--tree NAME=PATH``, its
``--one PATH`` measuring one) runs each in a fresh interpreter of that
checkout's own venv (``PATH/.venv/bin/python``), the order reversed every
other round, and reads the JSON its child prints last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from run_record import add_result_options, load_average, write_result


def alternate(script: str | Path, trees: list[str], rounds: int, child_args: list[str]) -> list[dict]:
    """Each round's run of every ``NAME=PATH`` in ``trees``: ``{"side", "round", "load", ...}``
    and what ``script --one PATH *child_args`` printed, each printed as it comes."""
    sides = [t.split("=", 1) for t in trees]
    runs = []
    for round_ in range(rounds):
        for name, path in (sides if round_ % 2 == 0 else sides[::-1]):
            tree = Path(path).resolve()
            done = subprocess.run(
                [str(tree / ".venv" / "bin" / "python"), str(Path(script).resolve()), "--one", str(tree), *child_args],
                capture_output=True, text=True, check=True,
            )
            run = {"side": name, "round": round_ + 1, "load": load_average(), **json.loads(done.stdout.splitlines()[-1])}
            print(json.dumps(run), flush=True)
            runs.append(run)
    return runs


def write_runs(bench: str, args: argparse.Namespace, runs: list[dict]) -> None:
    """Record ``runs`` with the bench's settings (less ``--one``) unless ``--no-write``,
    as bench/results/<bench>-<label>-<UTC time>.json (run_record.py)."""
    if args.no_write:
        return
    write_result({
        "benchmark": bench,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k != "one"},
        "note": args.note,
        "runs": runs,
    }, bench, args.label)


def add_tree_options(parser: argparse.ArgumentParser, *, statements: int, learners: int) -> None:
    """The options of a bench over checkouts and the generator's statements
    (``--tree``, ``--statements``, ``--learners``, ``--evidence-share``,
    ``--repeat``, ``--rounds``, the child's hidden ``--one``) and the result's."""
    parser.add_argument("--tree", action="append", metavar="NAME=PATH",
                        help="a checkout with its own .venv (repeat it; default: this one)")
    parser.add_argument("--statements", type=int, default=statements)
    parser.add_argument("--learners", type=int, default=learners)
    parser.add_argument("--evidence-share", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one", metavar="PATH", help=argparse.SUPPRESS)  # a child: measure PATH and print
    add_result_options(parser)


def generator_args(args: argparse.Namespace) -> list[str]:
    """The child's options for the statements :func:`add_tree_options` added."""
    return ["--statements", str(args.statements), "--learners", str(args.learners),
            "--evidence-share", str(args.evidence_share), "--repeat", str(args.repeat)]
