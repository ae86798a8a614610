"""A start that cannot succeed says why in one line and exits non-zero within 10 s.

The 10 s are the command's own: its wall time less the time the machine kept
it waiting for a CPU (``tests/e2e/unstarved_time.py``), so a loaded machine
does not fail it and a command that sleeps or retries does.

Each case runs the real ``lrs serve`` (``python -m lrs serve``) with
``LRS_LOG_LEVEL=warning``, so the line naming the cause is all it prints; no
traceback unless ``LRS_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Iterator

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import KEY, SECRET, ServiceProcess, free_port
from tests.e2e.unstarved_time import run_to_exit

EXIT_WITHIN_S = 10.0


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("startup") / "data"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LRS_")}
    return {**env, "LRS_DATA_DIR": str(data_dir), "LRS_HTTP_PORT": str(free_port()), "LRS_LOG_LEVEL": "warning",
            "LRS_BOOTSTRAP_CREDENTIAL": f"{KEY}:{SECRET}", **extra}


async def _failed_start(env: dict[str, str]) -> tuple[int, list[str]]:
    """Exit status and output lines of an ``lrs serve`` expected to give up."""
    exited = await run_to_exit([sys.executable, "-m", "lrs", "serve"], env, EXIT_WITHIN_S)
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode != 0
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    return exited.returncode, lines


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port someone else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_port_in_use(data_dir: Path, squatter: int) -> None:
    code, lines = await _failed_start(_env(data_dir, LRS_HTTP_PORT=str(squatter)))
    assert (code, lines) == (1, [f"lrs serve: port {squatter} on 127.0.0.1 is already in use; stop whatever "
                                 "listens there, or choose another port with LRS_HTTP_PORT (or --port)"])
    assert not (data_dir / "postgres").exists(), "servers were started before the port was checked"


async def test_port_in_use_with_debug_logging_shows_the_traceback(data_dir: Path, squatter: int) -> None:
    env = _env(data_dir, LRS_HTTP_PORT=str(squatter), LRS_LOG_LEVEL="debug")
    exited = await run_to_exit([sys.executable, "-m", "lrs", "serve"], env, EXIT_WITHIN_S, stderr_only=True)
    assert exited.returncode == 1
    assert "Traceback" in exited.output.decode() and "is already in use" in exited.output.decode()


async def test_data_dir_held_by_another_serve(data_dir: Path, tmp_path: Path) -> None:
    first = ServiceProcess(_env(data_dir, LRS_LOG_LEVEL="info"), tmp_path / "first.log")
    await first.start()
    try:
        code, lines = await _failed_start(_env(data_dir))
        assert code == 1 and len(lines) == 1, lines
        assert lines[0] == (f"lrs serve: LRS_DATA_DIR {data_dir} is in use by another lrs process "
                            f"(pid {first.process.pid}: lrs serve); stop that one, or give this one another "
                            "LRS_DATA_DIR")
        async with aiohttp.ClientSession() as session:  # the first one is untouched
            async with session.get(first.base_url + "/ready") as response:
                assert response.status == 200
    finally:
        assert await first.stop() == 0


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("LRS_HTTP_WORKERS", "0", "LRS_HTTP_WORKERS must be >= 1, got 0"),
    ("LRS_BOOTSTRAP_CREDENTIAL", "no-colon", "LRS_BOOTSTRAP_CREDENTIAL must look like key:secret"),
    ("LRS_HTTP_PORT", "eighty", "LRS_HTTP_PORT must be an integer, got 'eighty'"),
    ("LRS_COMPETENCY_STATE_CACHE_SIZE", "20k", "LRS_COMPETENCY_STATE_CACHE_SIZE must be an integer, got '20k'"),
])
async def test_bad_configuration(data_dir: Path, variable: str, value: str, message: str) -> None:
    code, lines = await _failed_start(_env(data_dir, **{variable: value}))
    assert (code, lines) == (2, [f"lrs serve: configuration error: {message}"])


async def test_listen_address_that_is_not_ours(data_dir: Path) -> None:
    code, lines = await _failed_start(_env(data_dir, LRS_HTTP_HOST="192.0.2.1"))  # TEST-NET-1
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("lrs serve: cannot listen on 192.0.2.1:") and "LRS_HTTP_HOST" in lines[0]


async def test_migration_error(database_url: str, nats_url: str, data_dir: Path) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE events (x int)")  # in the way of 0001_event_log
    finally:
        await conn.close()
    code, lines = await _failed_start(_env(data_dir, LRS_DATABASE_URL=database_url, LRS_NATS_URL=nats_url))
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith('lrs serve: migration 0001_event_log failed: DuplicateTableError: relation "events" '
                               "already exists; the database stays at the migrations before it")


async def test_database_unreachable(nats_url: str, data_dir: Path) -> None:
    url = f"postgresql://lrs:hunter2@127.0.0.1:{free_port()}/lrs"
    code, lines = await _failed_start(_env(data_dir, LRS_DATABASE_URL=url, LRS_NATS_URL=nats_url))
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("lrs serve: cannot use the database postgresql://lrs:***@127.0.0.1:")
    assert "Connection refused" in lines[0] and "LRS_DATABASE_URL" in lines[0] and "hunter2" not in lines[0]


@pytest.mark.parametrize(("variable", "expected"), [
    ("LRS_NATS_SERVER_BIN", "lrs serve: LRS_NATS_SERVER_BIN={missing} is not an executable file; point it at "
                            "nats-server, or unset it to use the one from the nats-server-bin package"),
    ("LRS_POSTGRES_BIN_DIR", "lrs serve: no PostgreSQL binaries found (tried {missing}); install the 'pgserver' "
                             "package or set LRS_POSTGRES_BIN_DIR"),
])
async def test_server_binary_missing(data_dir: Path, tmp_path: Path, variable: str, expected: str) -> None:
    missing = tmp_path / "no-such-binary"
    code, lines = await _failed_start(_env(data_dir, **{variable: str(missing)}))
    assert (code, lines) == (1, [expected.format(missing=missing)])
    assert not (data_dir / "postgres" / "pgdata").exists(), "a server was started before the binaries were found"


async def test_lrs_migrate_says_which_migration_failed_in_one_line(database_url: str, data_dir: Path) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE events (x int)")
    finally:
        await conn.close()
    exited = await run_to_exit([sys.executable, "-m", "lrs", "migrate"], _env(data_dir, LRS_DATABASE_URL=database_url),
                               EXIT_WITHIN_S)
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("lrs migrate: migration 0001_event_log failed: DuplicateTableError")


@pytest.mark.parametrize("command", [["migrate"], ["report", "mic"], ["replay", "competency"], ["export"], ["relay"],
                                     ["project"]])
async def test_other_commands_say_the_database_is_unreachable_in_one_line(data_dir: Path, command: list[str]) -> None:
    url = f"postgresql://lrs:hunter2@127.0.0.1:{free_port()}/lrs"
    exited = await run_to_exit([sys.executable, "-m", "lrs", *command], _env(data_dir, LRS_DATABASE_URL=url),
                               EXIT_WITHIN_S)
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"lrs {command[0]}: cannot use the database postgresql://lrs:***@127.0.0.1:")
    assert "Connection refused" in lines[0] and "hunter2" not in lines[0]


async def test_lrs_forward_waiting_for_an_unreachable_nats_stops_on_sigterm(database_url: str, data_dir: Path) -> None:
    # A daemon waits for its NATS server for as long as it is away, but a
    # SIGTERM meanwhile stops it (exit status 0: stopped) like any other time.
    nats = f"nats://lrs:hunter2@127.0.0.1:{free_port()}"
    env = _env(data_dir, LRS_DATABASE_URL=database_url, LRS_NATS_URL=nats)
    assert (await run_to_exit([sys.executable, "-m", "lrs", "migrate"], env, EXIT_WITHIN_S)).returncode == 0
    exited = await run_to_exit([sys.executable, "-m", "lrs", "forward", "--name", "nowhere",
                                "--to", "http://127.0.0.1:9/xapi", "--key", "k", "--secret", "s"], env, EXIT_WITHIN_S,
                               terminate_after=b"lrs forward: NATS: ")
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode == 0, lines
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert lines[-1].endswith(f"lrs forward: nowhere: stopped before NATS at {nats.replace('hunter2', '***')} "
                              "answered; nothing forwarded"), lines


FORWARD = ["forward", "--name", "nowhere", "--to", "http://127.0.0.1:9/xapi", "--key", "k", "--secret", "s"]


async def test_lrs_forward_says_its_database_is_unreachable_in_one_line(data_dir: Path) -> None:
    url = f"postgresql://lrs:hunter2@127.0.0.1:{free_port()}/lrs"
    env = _env(data_dir, LRS_DATABASE_URL=url, LRS_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    exited = await run_to_exit([sys.executable, "-m", "lrs", *FORWARD], env, EXIT_WITHIN_S)
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode == 1 and not any("Traceback" in line for line in lines), "\n".join(lines)
    assert "lrs forward: nowhere: stopped: cannot use the database postgresql://lrs:***@127.0.0.1:" in lines[-1], lines
    assert "Connect call failed" in lines[-1] and "hunter2" not in exited.output.decode()


async def test_lrs_forward_on_a_database_not_migrated_says_to_migrate_it(database_url: str, data_dir: Path) -> None:
    env = _env(data_dir, LRS_DATABASE_URL=database_url, LRS_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    exited = await run_to_exit([sys.executable, "-m", "lrs", *FORWARD], env, EXIT_WITHIN_S)
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode == 1 and not any("Traceback" in line for line in lines), "\n".join(lines)
    assert "lrs forward: nowhere: stopped: the database " in lines[-1], lines
    assert lines[-1].endswith("run `lrs migrate` with LRS_DATABASE_URL naming it"), lines


async def test_lrs_relay_until_caught_up_says_nats_is_unreachable_in_one_line(database_url: str,
                                                                               data_dir: Path) -> None:
    # A one-shot relay gives up on a NATS server away for RELAY_NATS_WAIT_S
    # (docs/operations.md); the long-running one waits for it.
    nats = f"nats://relay:hunter2@127.0.0.1:{free_port()}"
    env = _env(data_dir, LRS_DATABASE_URL=database_url, LRS_NATS_URL=nats)
    exited = await run_to_exit([sys.executable, "-m", "lrs", "relay", "--until-caught-up"], env, EXIT_WITHIN_S)
    lines = exited.output.decode().strip().splitlines()
    assert exited.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"lrs relay: cannot reach NATS at {nats.replace('hunter2', '***')} within 5 s ("), lines
    assert lines[0].endswith("); check that nats-server runs and that LRS_NATS_URL names it, its user and password")
