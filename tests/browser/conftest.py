"""Real-browser tests: Debian's headless Chromium driven by Playwright for Python.

Playwright's own browser download is never used (``playwright install`` cannot
reach its CDN from CI): the tests launch ``/usr/bin/chromium`` (Debian's
``chromium`` package; the README's test command installs it when missing).
Without it these tests fail rather than skip, so CI never passes without them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

CHROMIUM = os.environ.get("LRS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator["object"]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(apt-get install chromium fonts-noto-core), as the README's test command does"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each page's screenshot is kept, under pytest's temp dir."""
    return tmp_path_factory.mktemp("screenshots")


async def _npm(*args: str) -> tuple[int, str]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: the browser tests vendor their xAPI client from npm (package-lock.json)")
    process = await asyncio.create_subprocess_exec(
        npm, *args, cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, out.decode()


@pytest.fixture(scope="session")
async def node_modules() -> Path:
    """``npm ci`` from the committed package-lock.json (once per session)."""
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    modules = NODE_DIR / "node_modules"

    def installed() -> bool:
        for name, version in wanted.items():
            manifest = modules / name / "package.json"
            if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
                return False
        return True

    if not installed():
        code, out = await _npm("ci", "--no-audit", "--no-fund")
        if code != 0:
            pytest.fail(f"npm ci failed ({code}):\n{out[-3000:]}")
        assert installed()
    return modules
