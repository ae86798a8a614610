"""The built wheel is the whole product: installed outside the checkout it serves.

The wheel is built from a clean copy of this tree with the locked setuptools
(no network),
installed into a fresh virtual environment in a temporary directory together
with the locked dependency set (``uv export --frozen``), and ``lrs serve`` is
started from there with its embedded PostgreSQL and nats-server.  Migrations,
NATS definitions, OpenAPI and frameworks must come from the wheel's package
data: nothing of the checkout is reachable from that process.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.conftest import free_port
from tests.e2e.statements import new_id, statement

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "wheel-key", "wheel-secret-value"
_NOT_SOURCES = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
                "node_modules", "lrs-data")
HEADERS = {
    "Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode(),
    "X-Experience-API-Version": "1.0.3",
    "Content-Type": "application/json",
}


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to build and install the wheel (README: Installing)"
    return found


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _outside_env(venv: Path, **extra: str) -> dict[str, str]:
    """An environment that knows nothing of the checkout or its .venv."""
    keep = {name: os.environ[name] for name in ("HOME", "LANG", "TMPDIR", "UV_CACHE_DIR") if name in os.environ}
    return {**keep, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", **extra}


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A venv under /tmp holding the wheel and the locked dependencies; its directory."""
    workdir = Path(tempfile.mkdtemp(prefix="lrs-wheel-", dir="/tmp"))
    try:
        uv = _uv()
        dist = workdir / "dist"
        # From a copy of the sources without build output: a stale build/ or
        # *.egg-info would hide a file that pyproject.toml fails to ship.
        source = workdir / "source"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
        _run(uv, "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "--out-dir", dist,
             cwd=source)
        (wheel,) = dist.glob("lrs-*.whl")
        requirements = workdir / "requirements.txt"
        _run(uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-dev", "--output-file",
             requirements, cwd=ROOT)
        venv = workdir / "venv"
        _run(uv, "venv", "--python", sys.executable, venv, cwd=workdir)
        _run(uv, "pip", "install", "--python", venv / "bin" / "python", "-r", requirements, "--no-deps", wheel,
             cwd=workdir)
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _request(method: str, url: str, body: object = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed: Path) -> None:
    venv = installed / "venv"
    out = _run(venv / "bin" / "python", "-c",
               "import lrs, lrs_schemas, projections, connectors; "
               "from lrs.contracts import POSTGRES_MIGRATIONS; "
               "print(lrs.__file__); print(lrs_schemas.__file__); "
               "print(sorted(f.name for f in POSTGRES_MIGRATIONS.iterdir() if f.name.endswith('.sql'))); "
               "from lrs.service import MIGRATIONS; "
               "print(sorted(f.name for d in MIGRATIONS for f in d.iterdir() if f.name.endswith('.sql')))",
               cwd=installed, env=_outside_env(venv))
    lrs_file, schemas_file, migrations, projection_migrations = out.splitlines()
    assert Path(lrs_file).is_relative_to(venv) and Path(schemas_file).is_relative_to(venv)
    shipped = sorted(p.name for p in (ROOT / "schemas" / "postgres").glob("*.sql"))
    assert json.loads(migrations.replace("'", '"')) == shipped
    # Each projection's own SQL (0100 and up) ships as its package's data.
    owned = sorted(p.name for p in (ROOT / "projections").glob("*/migrations/*.sql"))
    assert owned and json.loads(projection_migrations.replace("'", '"')) == owned


def test_frameworks_ship_in_the_wheel(installed: Path) -> None:
    venv = installed / "venv"
    out = _run(venv / "bin" / "lrs", "frameworks", "list", cwd=installed,
               env=_outside_env(venv, LRS_DATA_DIR=str(installed / "data-frameworks")))
    listed = [line.rsplit("\t", 1)[1] for line in out.splitlines()]
    assert len(listed) == len(list((ROOT / "schemas" / "frameworks").glob("*.json")))
    assert all(Path(name).is_relative_to(venv) for name in listed)


def test_lrs_serve_from_the_wheel_stores_and_returns_a_statement(installed: Path) -> None:
    venv = installed / "venv"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = installed / "serve.log"
    env = _outside_env(venv, LRS_DATA_DIR=str(installed / "data"), LRS_HTTP_PORT=str(port),
                       LRS_BOOTSTRAP_CREDENTIAL=f"{KEY}:{SECRET}", LRS_LOG_LEVEL="warning")
    with open(log_path, "wb") as log:
        serve = subprocess.Popen([str(venv / "bin" / "lrs"), "serve"], cwd=installed, env=env,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, f"lrs serve exited with {serve.returncode}:\n{log_path.read_text()[-3000:]}"
            try:
                if _request("GET", base + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready in 60 s:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.2)

        statement_id = new_id()
        sent = statement(statement_id=statement_id)
        status, body = _request("POST", base + "/xapi/statements", sent)
        assert (status, json.loads(body)) == (200, [statement_id])
        status, body = _request("GET", f"{base}/xapi/statements?statementId={statement_id}")
        assert status == 200
        stored = json.loads(body)
        assert stored["id"] == statement_id
        assert (stored["actor"], stored["verb"], stored["object"]) == (sent["actor"], sent["verb"], sent["object"])

        status, body = _request("GET", base + "/xapi/openapi.json")  # package data, served
        assert status == 200 and "Statement" in json.loads(body)["components"]["schemas"]
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
            raise
    assert code == 0, log_path.read_text()[-3000:]
