"""Round trips with real xAPI client libraries against the in-process server on a real port.

The Node libraries are installed by the test session itself: the session
fixture ``node_clients`` runs ``npm ci`` (exactly the versions in
tests/clients/node/package-lock.json) into tests/clients/node/node_modules,
which git ignores, whenever it is missing or holds other versions. So a fresh
clone runs them with only the machine's Node and npm; a failed install (no
registry, a broken lock) fails the tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import client  # noqa: F401  (re-exported fixture)

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")
NPM = shutil.which("npm")


async def run(*command: str, timeout: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


def missing_packages() -> list[str]:
    """The dependencies of package.json not installed at their pinned version."""
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    missing = []
    for name, version in wanted.items():
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
            missing.append(f"{name}@{version}")
    return missing


@pytest.fixture(scope="session")
async def node_clients() -> str:
    """The path of ``node``, once the client libraries are installed."""
    if NODE is None or NPM is None:
        pytest.fail("node and npm are required for the client round trips (Debian: apt-get install nodejs npm)")
    if missing_packages():
        code, out, err = await run(NPM, "ci", "--no-audit", "--no-fund", timeout=600)
        if code != 0:
            pytest.fail(f"npm ci failed ({code}):\n{out[-2000:]}\n{err[-2000:]}")
        assert missing_packages() == []
    return NODE
