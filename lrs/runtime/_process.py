"""Child-process plumbing shared by the embedded servers.

Each embedded server runs as a direct child of the process that started it and
dies with it: the child asks the kernel for a "parent death signal".  Three
details matter and are easy to get wrong:

* The kernel clears the parent death signal when the child changes its
  credentials, so ``prctl(PR_SET_PDEATHSIG)`` must come *after* setuid.
* The signal fires when the *thread* that forked the child exits, so children
  are started from the event loop thread (``asyncio.create_subprocess_exec``),
  never from a worker thread.
* The parent may already be gone by the time the child calls prctl; the child
  then kills itself rather than run unowned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import signal
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import structlog

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class RunAs:
    """An unprivileged account to run a server as (used when we are root)."""

    name: str
    uid: int
    gid: int


def _set_parent_death_signal(sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def child_setup(death_signal: int, run_as: RunAs | None) -> Callable[[], None]:
    """Return a ``preexec_fn``: drop privileges, then arm the death signal."""
    parent_pid = os.getpid()

    def preexec() -> None:
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)
        _set_parent_death_signal(death_signal)
        if os.getppid() != parent_pid:  # parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def spawn(
    argv: list[str],
    *,
    log_path: Path,
    death_signal: int,
    run_as: RunAs | None = None,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """Start ``argv`` as a child of the calling (event loop) thread.

    stdout and stderr go to ``log_path`` (appended).  The child gets its own
    session, so a Ctrl-C on the terminal reaches us, and we shut it down in
    order, instead of reaching the server directly.
    """
    with open(log_path, "ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=child_setup(death_signal, run_as),
            env=env,
        )


async def run_to_completion(
    argv: list[str], *, log_path: Path, run_as: RunAs | None = None, env: dict[str, str] | None = None
) -> None:
    """Run a short-lived helper (e.g. initdb); raise with its log tail on failure."""
    proc = await spawn(argv, log_path=log_path, death_signal=signal.SIGKILL, run_as=run_as, env=env)
    code = await proc.wait()
    if code != 0:
        raise RuntimeError(f"{Path(argv[0]).name} exited with {code}:\n{log_tail(log_path)}")


async def terminate(
    proc: asyncio.subprocess.Process,
    first_signal: int,
    *,
    grace_s: float,
    escalate: tuple[int, ...] = (signal.SIGKILL,),
) -> int:
    """Send ``first_signal``, wait up to ``grace_s``; then escalate; return exit code."""
    signals = (first_signal, *escalate)
    for index, sig in enumerate(signals):
        if proc.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        last = index == len(signals) - 1
        try:
            await asyncio.wait_for(proc.wait(), timeout=None if last else grace_s)
        except asyncio.TimeoutError:
            log.warning("process_did_not_stop", pid=proc.pid, signal=signal.Signals(sig).name, waited_s=grace_s)
    return await proc.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ensure_system_user(name: str) -> RunAs:
    """Return the account ``name``, creating it as a system user if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        log.info("creating_system_user", user=name)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def make_traversable(path: Path) -> None:
    """Give "others" search (x) permission on ``path`` and each of its ancestors.

    Only the execute bit is added: other accounts can pass through the
    directories, not list them.
    """
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("making_directory_traversable", path=str(directory))
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def chown_tree(root: Path, run_as: RunAs) -> None:
    os.chown(root, run_as.uid, run_as.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), run_as.uid, run_as.gid, follow_symlinks=False)
