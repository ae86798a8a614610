"""A private PostgreSQL server under a data directory (the embedded default).

Layout under ``data_dir``::

    pgdata/         the cluster (initdb on first start)
    run/            the unix socket directory (or a short dir under /tmp when
                    the path would exceed the 107-byte sun_path limit)
    postgres.log    server output

The server listens only on its unix socket, and only the socket is trusted:
the socket directory is mode 0700, so the account that owns the server (and
root) is all that can connect.  The postmaster is a direct child of the
process that started it and receives SIGINT (fast shutdown) if that process
dies.  PostgreSQL refuses to run as root; when we are root it runs as the
system user ``lrs-postgres`` (created if missing).

Binaries: ``LRS_POSTGRES_BIN_DIR``, else the PyPI package ``pgserver``'s
``pginstall/bin``, else ``pg_config --bindir``, else
``/usr/lib/postgresql/*/bin`` (newest).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

import asyncpg
import structlog

from lrs.runtime._process import (
    RunAs,
    chown_tree,
    ensure_system_user,
    log_tail,
    make_traversable,
    pid_alive,
    process_command,
    run_to_completion,
    spawn,
    terminate,
)

log = structlog.get_logger(__name__)

SYSTEM_USER = "lrs-postgres"
SUPERUSER = "postgres"
PORT = 5432  # names the socket file only; there is no TCP listener
_SUN_PATH_MAX = 107

DEFAULT_SETTINGS: Mapping[str, str] = {
    "shared_buffers": "256MB",
    "max_connections": "100",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "listen_addresses": "",
    "unix_socket_permissions": "0700",
    "max_wal_size": "2GB",
}


def wal_compression(bin_dir: Path) -> str:
    """The best ``wal_compression`` the server in ``bin_dir`` supports: lz4
    (cheap on CPU) when it was built with it, else pglz (the PyPI server's
    build has neither lz4 nor zstd).  Full-page images are most of the WAL a
    busy store writes after each checkpoint (bench/storage.py --checkpoint-every)."""
    try:
        configure = subprocess.run([str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True,
                                   check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "pglz"
    return "lz4" if "--with-lz4" in configure else "pglz"


def find_bin_dir() -> Path:
    """Locate a directory holding ``initdb`` and ``postgres``."""
    candidates: list[Path] = []
    override = os.environ.get("LRS_POSTGRES_BIN_DIR")
    if override:
        candidates.append(Path(override))
    else:
        spec = importlib.util.find_spec("pgserver")
        if spec is not None and spec.origin is not None:
            candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                out = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True)
                candidates.append(Path(out.stdout.strip()))
        candidates.extend(
            sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True)
        )
    for candidate in candidates:
        if (candidate / "postgres").is_file() and (candidate / "initdb").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates) or "nothing"
    raise RuntimeError(
        f"no PostgreSQL binaries found (tried {tried}); install the 'pgserver' package "
        "or set LRS_POSTGRES_BIN_DIR"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def database_url(socket_dir: Path, database: str, port: int = PORT) -> str:
    return f"postgresql://{SUPERUSER}@/{quote(database)}?host={quote(str(socket_dir))}&port={port}"


class EmbeddedPostgres:
    """Start and stop a private PostgreSQL server; data persists across restarts."""

    def __init__(
        self,
        data_dir: Path,
        *,
        settings: Mapping[str, str] | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_path = self.data_dir / "postgres.log"
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.socket_dir: Path | None = None
        self._private_socket_dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._run_as: RunAs | None = None

    @property
    def url(self) -> str:
        if self.socket_dir is None:
            raise RuntimeError("postgres is not running")
        return database_url(self.socket_dir, SUPERUSER)

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def url_for(self, database: str) -> str:
        if self.socket_dir is None:
            raise RuntimeError("postgres is not running")
        return database_url(self.socket_dir, database)

    async def start(self) -> str:
        """Start the server (initdb first if needed); return the URL of db ``postgres``."""
        if self._proc is not None and self._proc.returncode is None:
            return self.url
        bin_dir = find_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run_as = ensure_system_user(SYSTEM_USER) if os.geteuid() == 0 else None
        if self._run_as is not None:
            make_traversable(bin_dir)
            make_traversable(self.data_dir)
        if not (self.pgdata / "PG_VERSION").is_file():
            await self._initdb(bin_dir)
        elif self._run_as is not None and self.pgdata.stat().st_uid != self._run_as.uid:
            chown_tree(self.pgdata, self._run_as)  # e.g. a cluster made by a non-root run
        await self._deal_with_running_postmaster()
        self.socket_dir = self._prepare_socket_dir()

        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-k", str(self.socket_dir), "-p", str(PORT)]
        settings = self.settings if "wal_compression" in self.settings else {
            **self.settings, "wal_compression": wal_compression(bin_dir)}
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log.info("postgres_starting", data_dir=str(self.pgdata), socket_dir=str(self.socket_dir), bin_dir=str(bin_dir))
        self._proc = await spawn(argv, log_path=self.log_path, death_signal=signal.SIGINT, run_as=self._run_as)
        try:
            await self._wait_ready()
        except BaseException:
            await self._stop_postmaster()  # the socket directory stays: a retry keeps the URL
            raise
        log.info("postgres_ready", pid=self._proc.pid, url=self.url)
        return self.url

    async def stop(self) -> None:
        """Fast shutdown (SIGINT); escalate to immediate (SIGQUIT), then SIGKILL."""
        await self._stop_postmaster()
        if self._private_socket_dir is not None:
            shutil.rmtree(self._private_socket_dir, ignore_errors=True)
            self._private_socket_dir = None
        self.socket_dir = None

    async def __aenter__(self) -> "EmbeddedPostgres":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- internals -------------------------------------------------------

    async def _stop_postmaster(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            code = await terminate(
                proc, signal.SIGINT, grace_s=self.stop_timeout_s, escalate=(signal.SIGQUIT, signal.SIGKILL)
            )
            log.info("postgres_stopped", pid=proc.pid, exit_code=code)

    async def _initdb(self, bin_dir: Path) -> None:
        staging = self.data_dir / "pgdata.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if self._run_as is not None:
            chown_tree(staging, self._run_as)
        log.info("postgres_initdb", data_dir=str(self.pgdata))
        await run_to_completion(
            [
                str(bin_dir / "initdb"),
                "-D", str(staging),
                "-U", SUPERUSER,
                "-E", "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            log_path=self.log_path,
            run_as=self._run_as,
            env={**os.environ, "LC_ALL": "C"},
        )
        # Only a complete cluster ever appears under the final name.
        staging.rename(self.pgdata)

    def _prepare_socket_dir(self) -> Path:
        socket_dir = self.data_dir / "run"
        if self._private_socket_dir is not None and self._private_socket_dir.is_dir():
            socket_dir = self._private_socket_dir  # a restart after a crash: same URL
        elif len(str(socket_dir / f".s.PGSQL.{PORT}")) > _SUN_PATH_MAX:
            socket_dir = Path(tempfile.mkdtemp(prefix="lrs-pg-", dir="/tmp"))
            self._private_socket_dir = socket_dir
        else:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        socket_dir.chmod(0o700)
        if self._run_as is not None:
            os.chown(socket_dir, self._run_as.uid, self._run_as.gid)
            make_traversable(socket_dir.parent)
        return socket_dir

    async def _deal_with_running_postmaster(self) -> None:
        """A postmaster left on this cluster: stop it if orphaned, else refuse.

        With the parent-death signal a leftover postmaster is normally already
        in fast shutdown, so we wait for it; one whose parent is alive belongs
        to another running process and we do not touch it.
        """
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return
        if not lines or not lines[0].strip().isdigit():
            return
        pid = int(lines[0])
        if not pid_alive(pid) or "postgres" not in process_command(pid):
            return  # stale pid file; postgres itself removes it
        status = lines[7].strip() if len(lines) > 7 else ""
        orphan = _parent_pid(pid) == 1
        if not orphan and status != "stopping":
            raise RuntimeError(
                f"PostgreSQL pid {pid} is already running on {self.pgdata} (parent pid {_parent_pid(pid)}); "
                "stop it or use another data directory"
            )
        log.warning("postgres_leftover_postmaster", pid=pid, status=status, orphan=orphan)
        if orphan:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + self.stop_timeout_s
        while pid_alive(pid) and "postgres" in process_command(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"leftover PostgreSQL pid {pid} on {self.pgdata} did not stop")
            await asyncio.sleep(0.1)

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise RuntimeError(
                    f"postgres exited with {self._proc.returncode} during start:\n{log_tail(self.log_path)}"
                )
            try:
                conn = await asyncpg.connect(self.url, timeout=2)
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                last_error = exc
                await asyncio.sleep(0.05)
                continue
            await conn.close()
            return
        raise RuntimeError(
            f"postgres did not accept connections within {self.start_timeout_s}s ({last_error!r}):\n"
            f"{log_tail(self.log_path)}"
        )


def _parent_pid(pid: int) -> int | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields resume after ')'.
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def running_server_url(data_dir: Path, database: str) -> str | None:
    """URL of the embedded server already running on ``data_dir``, if any.

    Lets commands such as ``lrs credentials create`` reach the private
    database of a running ``lrs serve`` instead of starting a second server.
    """
    pid_file = Path(data_dir).absolute() / "pgdata" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit() or lines[7].strip() != "ready":
        return None
    if not pid_alive(int(lines[0])):
        return None
    port, socket_dir = lines[3].strip(), lines[4].strip()
    if not port.isdigit() or not socket_dir:
        return None
    return database_url(Path(socket_dir), database, int(port))
