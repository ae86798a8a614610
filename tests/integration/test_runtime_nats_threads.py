"""The embedded nats-server runs its Go runtime on one thread unless the
environment sets GOMAXPROCS (lrs.runtime.nats.server_environment)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nats
import pytest

from lrs.runtime.nats import EmbeddedNats, server_environment


def _environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_one_thread_unless_the_environment_says_otherwise() -> None:
    assert server_environment({"PATH": "/bin"}) == {"PATH": "/bin", "GOMAXPROCS": "1"}
    assert server_environment({"GOMAXPROCS": "4"}) == {"GOMAXPROCS": "4"}


@pytest.mark.parametrize("operator_setting", [None, "2"])
async def test_the_started_server_gets_the_setting(
    operator_setting: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if operator_setting is None:
        monkeypatch.delenv("GOMAXPROCS", raising=False)
    else:
        monkeypatch.setenv("GOMAXPROCS", operator_setting)
    data_dir = Path(tempfile.mkdtemp(prefix="lrs-test-gmp-", dir="/tmp"))
    try:
        async with EmbeddedNats(data_dir) as server:
            assert server.pid is not None
            assert _environment_of(server.pid)["GOMAXPROCS"] == (operator_setting or "1")
            nc = await nats.connect(server.url)  # and it serves
            await nc.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
