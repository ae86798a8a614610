"""Round trip with ``@xapi/xapi`` (npm), run by the machine's Node against the LRS on a real port.

The package is installed by the test itself (``npm ci`` into
tests/clients/node/node_modules, which git ignores), so a fresh clone needs
only Node and npm. Without them the test is skipped; with them, a failed
install (no network, registry down) fails the test.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import KEY, SECRET

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are not installed")


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


def installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "@xapi" / "xapi" / "package.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text())["version"]


async def ensure_installed() -> None:
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["@xapi/xapi"]
    if installed_version() == wanted:
        return
    code, out, err = await run(NPM, "ci", "--no-audit", "--no-fund", timeout=300)
    if code != 0:
        pytest.fail(f"npm ci failed ({code}):\n{out[-2000:]}\n{err[-2000:]}")
    assert installed_version() == wanted


async def test_xapi_js_sends_reads_pages_and_voids(client):
    await ensure_installed()
    endpoint = str(client.make_url("/xapi/"))
    code, out, err = await run(NODE, "roundtrip.js", endpoint, KEY, SECRET, timeout=120)
    assert code == 0, f"roundtrip.js failed:\n{err[-3000:]}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stored"] == 5 and summary["seen"] == 5 and summary["pages"] == 3
