"""``lrs import`` / ``lrs pull`` on the command line (against an in-process fake LRS)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import pytest

from connectors.fakelrs import FakeLrs
from lrs.cli import build_parser, main


def test_import_and_pull_are_registered_with_help(capsys):
    for command in ("import", "pull"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "LRS_TARGET_URL" in out and "--checkpoint" in out


def test_target_defaults_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LRS_TARGET_URL", "http://lrs.example:8080")
    monkeypatch.setenv("LRS_TARGET_KEY", "k")
    monkeypatch.setenv("LRS_TARGET_SECRET", "s")
    (tmp_path / "a.ndjson").write_text("")
    args = build_parser().parse_args(["import", str(tmp_path / "a.ndjson")])
    assert (args.to, args.target_key, args.target_secret) == ("http://lrs.example:8080", "k", "s")


def test_usage_errors_exit_2(monkeypatch, tmp_path, capsys):
    for name in ("LRS_TARGET_URL", "LRS_TARGET_KEY", "LRS_TARGET_SECRET"):
        monkeypatch.delenv(name, raising=False)
    log = tmp_path / "tracking.log"
    log.write_text("")
    assert main(["import", str(log)]) == 2
    assert "missing --to" in capsys.readouterr().err
    assert main(["import", "--from", "openedx", str(log), "--to", "http://x", "--key", "k", "--secret", "s"]) == 2
    assert "--platform-url" in capsys.readouterr().err


async def run_cli(*args: str, cwd) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    out, _ = await process.communicate()
    return process.returncode, out.decode()


async def test_import_reports_rejections_and_skips_then_exits_3(tmp_path):
    fake = FakeLrs()
    await fake.start()
    try:
        good = [{"id": str(uuid.UUID(int=n + 1)), "actor": {"mbox": "mailto:a@example.org"},
                 "verb": {"id": "http://example.org/v"}, "object": {"id": "http://example.org/o"}}
                for n in range(5)]
        fake.reject_ids = {good[3]["id"]: "verb display must be a language map"}
        path = tmp_path / "in.ndjson"
        path.write_text("\n".join(json.dumps(s) for s in good) + "\nnot json\n")
        code, output = await run_cli("import", str(path), "--to", fake.url, "--key", fake.key,
                                     "--secret", fake.secret, cwd=tmp_path)
        assert code == 3, output
        assert "sent      4" in output and "skipped   1" in output and "invalid JSON" in output
        assert f"in.ndjson:4 id={good[3]['id']} HTTP 400: verb display must be a language map" in output
        assert len(fake.statements) == 4
        checkpoints = list((tmp_path / ".lrs-checkpoints").iterdir())
        assert len(checkpoints) == 1

        fake.reject_ids = {}
        code, output = await run_cli("import", str(path), "--to", fake.url, "--key", fake.key,
                                     "--secret", fake.secret, "--restart", cwd=tmp_path)
        assert code == 0, output
        assert len(fake.statements) == 5
    finally:
        await fake.close()


async def test_import_stops_with_exit_1_when_the_lrs_stays_down(tmp_path):
    fake = FakeLrs()
    await fake.start()
    url = fake.url
    await fake.close()  # nothing listens there any more
    path = tmp_path / "in.ndjson"
    path.write_text(json.dumps({"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://e/v"},
                                "object": {"id": "http://e/o"}}) + "\n")
    code, output = await run_cli("import", str(path), "--to", url, "--key", "k", "--secret", "s",
                                 "--max-attempts", "1", cwd=tmp_path)
    assert code == 1, output
    assert "unreachable" in output
