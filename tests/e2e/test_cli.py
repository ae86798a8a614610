"""The ``lrs`` command line: --help everywhere, credentials that work over HTTP."""

from __future__ import annotations

import asyncio
import json
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


# Every subcommand's --help in one interpreter (lrs.service.main, as
# ``python -m lrs`` calls it), output and exit status of each as JSON lines;
# starting an interpreter per subcommand cost most of this file's time.
HELP_ALL = """
import contextlib, io, json, sys
from lrs.service import main
for path in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*path, "--help"])
        except SystemExit as exit_:
            code = exit_.code
        except Exception as exc:  # reported as the subcommand's failure, not the whole run's
            code, err = 1, io.StringIO(repr(exc))
    print(json.dumps([path, code, out.getvalue(), err.getvalue()]), flush=True)
"""


@pytest.fixture(scope="module")
async def helps() -> dict[tuple[str, ...], tuple[int, str, str]]:
    """``--help`` of every subcommand: the top level through ``python -m lrs``
    itself, the subcommands all in one other interpreter."""

    async def run(*argv: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return proc.returncode, out.decode(), err.decode()

    (top, (code, out, err)) = await asyncio.gather(run("-m", "lrs", "--help"),
                                                   run("-c", HELP_ALL, json.dumps(PATHS[1:])))
    assert code == 0, err
    found = {tuple(path): (code, stdout, stderr) for path, code, stdout, stderr in map(json.loads, out.splitlines())}
    return {(): top, **found}


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
