"""The ``lrs`` command line: --help everywhere, credentials that work over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from lrs.cli import build_parser
from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import statement


def _subcommand_paths(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommand_paths(sub, (*prefix, name))


PATHS = [(), *_subcommand_paths(build_parser())]


@pytest.fixture(scope="module")
async def helps() -> dict[tuple[str, ...], tuple[int, str, str]]:
    """``python -m lrs ... --help`` for every subcommand, each in its own
    interpreter, a few side by side: each run is mostly the interpreter
    importing the CLI, one core's worth of work."""
    side_by_side = asyncio.Semaphore(3)

    async def run(path: tuple[str, ...]) -> tuple[int, str, str]:
        async with side_by_side:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lrs", *path, "--help",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            return proc.returncode, out.decode(), err.decode()

    return dict(zip(PATHS, await asyncio.gather(*(run(path) for path in PATHS))))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "lrs")
def test_every_subcommand_has_help(path, helps):
    returncode, stdout, stderr = helps[path]
    assert returncode == 0, stderr
    assert "usage: lrs" in stdout


async def _lrs(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_created_credential_works_and_revoked_one_does_not(database_url, client):
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning"}
    code, out, err = await _lrs(env, "credentials", "create", "--tenant", "agency-1",
                                "--scope", "statements/write", "--name", "platform-a")
    assert code == 0, err
    fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
    key, secret = fields["key"], fields["secret"]
    assert fields["tenant"] == "agency-1"

    ok = await client.post("/xapi/statements", json=statement(), headers=xapi_headers(key=key, secret=secret))
    assert ok.status == 200, await ok.text()
    # Write-only scope: reading is forbidden.
    forbidden = await client.get("/xapi/statements", headers=xapi_headers(key=key, secret=secret))
    assert forbidden.status == 403

    code, out, _ = await _lrs(env, "credentials", "list")
    assert code == 0 and key in out and secret not in out

    code, _, err = await _lrs(env, "credentials", "create", "--scope", "everything")
    assert code == 2 and "unknown scope" in err

    code, _, _ = await _lrs(env, "credentials", "revoke", key)
    assert code == 0
    code, _, _ = await _lrs(env, "credentials", "revoke", key)
    assert code == 1


async def test_migrate_is_idempotent(database_url):
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning"}
    code, first, err = await _lrs(env, "migrate")
    assert code == 0, err
    assert not first.startswith("applied 0")
    code, second, _ = await _lrs(env, "migrate")
    assert code == 0 and second.startswith("applied 0")
