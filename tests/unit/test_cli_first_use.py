"""What someone new to ``lrs`` meets first: the README's table of commands and
the one-line answers to a wrong file name."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from lrs.cli import build_parser, main
from lrs.runtime._process import free_port

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
    with pytest.raises(SystemExit) as exited:
        main(["roster", "load", str(missing)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"lrs roster load: argument FILE: cannot read {missing}: No such file or directory "
                   "(see `lrs roster load --help`)\n"), err


# Every command that reads a file named on its command line: a path that names
# no file it can read is a usage error (2), as a wrong argument or a bad
# setting is; the file's content refused is the command's finding (1).
@pytest.mark.parametrize(
    "argv",
    [
        ["frameworks", "load", "{missing}"],
        ["frameworks", "load", "{missing}", "--check"],
        ["roster", "load", "{missing}"],
        ["audit", "verify", "--anchors", "{missing}"],
        ["audit", "verify", "--anchors", "{present}", "--public-key", "{missing}"],
        ["import", "{missing}", "--to", "http://127.0.0.1:9", "--key", "k", "--secret", "s"],
        ["import", "--from", "openedx", "{present}", "--platform-url", "http://lms", "--actor-map", "{missing}",
         "--to", "http://127.0.0.1:9", "--key", "k", "--secret", "s"],
    ],
    ids=lambda argv: " ".join(a for a in argv if not a.startswith(("{", "http")) and a not in ("k", "s")),
)
def test_a_missing_input_file_exits_2_naming_it(argv, tmp_path, capsys):
    missing, present = tmp_path / "missing.json", tmp_path / "present.jsonl"
    present.write_text("")
    argv = [a.format(missing=missing, present=present) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exited:  # the parser's usage error
        status = exited.code
    assert status == 2
    err = capsys.readouterr().err
    command = re.escape(f"lrs {' '.join(argv[:2]) if argv[0] != 'import' else 'import'}")
    # One wording for every command (lrs.cli_arguments.input_file): `lrs import`'s own check said
    # "no such file: ..." without the argument.
    assert re.fullmatch(rf"{command}: argument \S+: cannot read {re.escape(str(missing))}: No such file or directory "
                        rf"\(see `{command} --help`\)\n", err), err


@pytest.mark.parametrize(
    ("argv", "prefix", "words"),
    [
        (["serve", "--bogus"], "lrs serve: ", "unrecognized arguments: --bogus"),
        (["frameworks", "list", "--bogus"], "lrs frameworks list: ", "unrecognized arguments: --bogus"),
        (["credentials", "create", "--scopes", "x"], "lrs credentials create: ", "unrecognized arguments"),
        (["export", "--since", "yesterday"], "lrs export: ", "not an ISO 8601 time"),
        (["report", "u", "--format", "pdf"], "lrs report: ", "invalid choice: 'pdf'"),
        (["erase", "learner", "x"], "lrs erase learner: ", "required: --tenant, --reason"),
        (["replay"], "lrs replay: ", "required: projection"),
        (["nothing"], "lrs: ", "invalid choice: 'nothing'"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_bad_argument_is_one_line_naming_the_command(argv, prefix, words, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(prefix) and words in err and err.count("\n") == 1, err
    assert err.endswith(f"(see `{prefix[:-2]} --help`)\n"), err


# A count below 1 is a wrong argument too, refused before anything runs:
# `lrs import --concurrency 0` used to wait for ever with nothing in flight,
# and `lrs audit verify --batch-size 0` or `lrs replay --processes 0` exited 1,
# the status of a command that ran and found a problem.
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["audit", "verify", "--batch-size", "0"], "--batch-size"),
        (["relay", "--batch-size", "0"], "--batch-size"),
        (["project", "--batch-size", "0"], "--batch-size"),
        (["project", "--max-batch-size", "0"], "--max-batch-size"),
        (["project", "--max-attempts", "0"], "--max-attempts"),
        (["replay", "competency", "--batch-size", "0"], "--batch-size"),
        (["replay", "competency", "--processes", "0"], "--processes"),
        (["replay", "competency", "--readers", "-2"], "--readers"),
        (["import", "{present}", "--to", "http://127.0.0.1:9", "--key", "k", "--secret", "s", "--batch-size", "0"],
         "--batch-size"),
        (["import", "{present}", "--to", "http://127.0.0.1:9", "--key", "k", "--secret", "s", "--concurrency", "0"],
         "--concurrency"),
        (["import", "{present}", "--to", "http://127.0.0.1:9", "--key", "k", "--secret", "s", "--max-attempts", "0"],
         "--max-attempts"),
        (["pull", "http://127.0.0.1:9", "--key", "k", "--secret", "s", "--concurrency", "zero"], "--concurrency"),
        (["pull", "http://127.0.0.1:9", "--key", "k", "--secret", "s", "--batch-size", "²"], "--batch-size"),
    ],
    ids=lambda v: " ".join(a for a in v if not a.startswith(("{", "http")) and a not in ("k", "s", "--key", "--secret", "--to"))
    if isinstance(v, list) else None,
)
def test_a_count_below_one_is_a_usage_error_naming_the_option(argv, option, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # where an import that does run keeps its checkpoint
    present = tmp_path / "present.ndjson"
    present.write_text("")
    argv = [a.format(present=present) for a in argv]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    command = "lrs " + " ".join(argv[:2] if argv[0] == "audit" else argv[:1])
    assert err.startswith(f"{command}: argument {option}: must be a whole number of at least 1"), err
    assert err.count("\n") == 1, err


def test_an_invalid_roster_file_is_one_line_naming_the_command(tmp_path, capsys):
    wrong = tmp_path / "roster.txt"
    wrong.write_text("x")
    assert main(["roster", "load", str(wrong)]) == 1
    assert capsys.readouterr().err == f"lrs roster load: invalid roster: {wrong}: expected a .json or .csv file\n"


# Commands that read the settings and open the database.
DATABASE_COMMANDS = [["credentials", "create"], ["credentials", "list"], ["audit", "verify"]]


@pytest.mark.parametrize("argv", [*DATABASE_COMMANDS, ["frameworks", "list"]], ids=" ".join)
def test_a_bad_setting_is_one_line_naming_the_command(argv, monkeypatch, capsys):
    prefix = f"lrs {' '.join(argv)}: "
    monkeypatch.setenv("LRS_HTTP_PORT", "eighty")
    monkeypatch.delenv("LRS_LOG_LEVEL", raising=False)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"{prefix}configuration error: LRS_HTTP_PORT must be an integer, got 'eighty'\n"


@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_line_naming_the_command(argv, monkeypatch, capsys):
    prefix = f"lrs {' '.join(argv)}: "
    url = f"postgresql://lrs@127.0.0.1:{free_port()}/lrs"
    monkeypatch.setenv("LRS_DATABASE_URL", url)
    monkeypatch.delenv("LRS_LOG_LEVEL", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{prefix}cannot use the database {url}: ") and err.count("\n") == 1, err


# An auditor checks a restored copy on their own machine, where the LRS's
# default files are not: the one line says which option names their copy, in
# the words and with the exit status of a missing FILE named on the command
# line (the default anchors file used to exit 1, a named one 2).
@pytest.mark.parametrize(
    ("argv", "option", "missing", "hint"),
    [
        (["--anchors"], "--anchors", "anchors.jsonl", "; name a copy of the LRS's anchors file with --anchors FILE"),
        (["--anchors", "{anchors}"], "--public-key", "anchor-key.pem.public.pem",
         "; name the published public keys with --public-key PEM (`lrs audit public-key` prints them)"),
    ],
    ids=["anchors", "public key"],
)
def test_audit_verify_away_from_the_lrs_names_the_option_for_a_missing_default_file(
    argv, option, missing, hint, tmp_path, monkeypatch, capsys
):
    anchors = tmp_path / "anchors-copy.jsonl"
    anchors.write_text("")
    monkeypatch.setenv("LRS_DATA_DIR", str(tmp_path / "auditor"))
    monkeypatch.setenv("LRS_DATABASE_URL", f"postgresql://lrs@127.0.0.1:{free_port()}/lrs")
    monkeypatch.delenv("LRS_ANCHORS_FILE", raising=False)
    monkeypatch.delenv("LRS_ANCHOR_KEY_FILE", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", *[a.format(anchors=anchors) for a in argv], "--no-record"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"lrs audit verify: argument {option}: cannot read {tmp_path / 'auditor' / missing}: "
        f"No such file or directory{hint} (see `lrs audit verify --help`)\n"
    )


def test_audit_verify_of_a_file_that_is_no_public_key_says_what_it_expected(tmp_path, monkeypatch):
    anchors, not_a_key = tmp_path / "anchors.jsonl", tmp_path / "keys.pem"
    anchors.write_text("")
    not_a_key.write_text("garbage\n")
    monkeypatch.setenv("LRS_DATA_DIR", str(tmp_path / "auditor"))
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", "--anchors", str(anchors), "--public-key", str(not_a_key), "--no-record"])
    assert str(exited.value.code) == (
        f"lrs audit verify: {not_a_key} holds something that is not a PEM public key: expected the "
        "'-----BEGIN PUBLIC KEY-----' blocks that `lrs audit public-key` prints"
    )


# Run on an auditor's machine, or with the wrong data dir, `public-key` used
# to make a signing key there and print its public key (exit 0): a key that
# verifies nothing the LRS ever signed.  `rotate-key` made one only to retire it.
@pytest.mark.parametrize("action", ["public-key", "rotate-key"])
def test_audit_key_commands_without_a_signing_key_refuse_and_make_none(action, tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "auditor"
    monkeypatch.setenv("LRS_DATA_DIR", str(data_dir))
    monkeypatch.delenv("LRS_ANCHOR_KEY_FILE", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["audit", action])
    assert str(exited.value.code) == (  # a SystemExit with a message: printed, exit status 1
        f"lrs audit {action}: no signing key at {data_dir / 'anchor-key.pem'}: the relay makes it when it first "
        "starts (`lrs serve` or `lrs relay`), `lrs audit anchor` makes it and signs the log head now"
    )
    assert capsys.readouterr().out == ""
    assert not data_dir.exists() or sorted(p.name for p in data_dir.iterdir() if "anchor-key" in p.name) == []


def test_erase_learner_given_the_rosters_key_form_shows_the_agent_it_wants(capsys):
    # Rosters, the console and /competency name learners as mbox:mailto:...; erasure takes an xAPI Agent.
    assert main(["erase", "learner", "mbox:mailto:lan@example.org", "--tenant", "t", "--reason", "request 1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrs erase learner: Invalid `AGENT` parameter: not JSON") and err.count("\n") == 1, err
    assert err.endswith("""; give the learner as an xAPI Agent in JSON, e.g. '{"mbox": "mailto:lan@example.org"}'\n"""), err


def test_ctrl_c_in_any_command_is_one_line_and_exit_status_130(monkeypatch, capsys):
    """KeyboardInterrupt out of a command (SIGINT while it runs) is named by
    the command, not shown as a traceback; 130 as a shell gives for SIGINT."""
    from lrs.commands import audit

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit, "_anchor", interrupted)
    assert main(["audit", "anchor"]) == 130
    assert capsys.readouterr() == ("", "lrs audit anchor: interrupted\n")
