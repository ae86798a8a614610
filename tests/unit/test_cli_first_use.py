"""What someone new to ``lrs`` meets first: the README's table of commands and
the one-line answers to a wrong file name."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lrs.cli import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_the_readme_table_of_commands_names_every_subcommand():
    text = README.read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`lrs ([a-z][a-z-]*)", table))
    assert _subcommands() - named == set(), "subcommands missing from the README's table of commands"


def test_roster_load_of_a_missing_file_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "units.csv"
    assert main(["roster", "load", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err == f"lrs roster load: cannot read {missing}: No such file or directory\n", err
