"""Several HTTP worker processes on one port, and the relay in its own process.

One Python process is bound to one core, so ``LRS_HTTP_WORKERS=N`` (N > 1)
turns ``lrs serve`` into a supervisor: it starts the embedded servers if no
URLs are configured, then N copies of ``lrs serve`` that share the listening
port (SO_REUSEPORT) and append to the same log, plus one ``lrs relay`` and,
when projections are enabled and NATS is configured, one ``lrs project`` (the
workers then run no projection, so folding never slows their requests).  Each
child dies with the supervisor (parent-death signal SIGTERM: a graceful stop,
so nothing already acknowledged is lost); a Ctrl-C is the supervisor's
alone (the children ignore SIGINT), so it too stops them in order.  If any child exits on its own the
supervisor stops the others and exits non-zero, so that whatever runs it
(systemd, Kubernetes) restarts the whole service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import structlog

from lrs.runtime._process import child_setup, terminate

log = structlog.get_logger("lrs.workers")

# Set in a worker's environment: the supervisor's pid.  A worker reuses the
# port and treats the event log as shared with other processes.
WORKER_ENV = "LRS_WORKER_OF"
PROJECT_RESTART_S = 5.0


def is_worker() -> bool:
    return bool(os.environ.get(WORKER_ENV))


def leave_ctrl_c_to_the_supervisor() -> None:
    """In a supervised child, SIGINT ignored from its start (lrs/__main__.py).
    A Ctrl-C on the terminal reaches the whole process group; the supervisor
    alone acts on it and stops its children in order (workers first, then
    the relay, then the projection), and a child starting up would otherwise
    stop with a line of its own.  (Set here, not in the spawn's
    ``preexec_fn``: on uvloop, libuv resets the child's signals after it.)
    A child keeps it ignored: lrs.commands.common.stop_signals."""
    if is_worker():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _projections_enabled() -> bool:
    from lrs.config import Settings

    return Settings.from_env().projections_enabled


async def _start(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *argv, env=env, preexec_fn=child_setup(signal.SIGTERM, None)
    )


async def supervise(
    *, workers: int, database_url: str, nats_url: str | None, relay: bool, stop: asyncio.Event, grace_s: float
) -> int:
    """Run the children until ``stop`` is set or one of them exits; return an exit code."""
    env = {**os.environ, WORKER_ENV: str(os.getpid()), "LRS_DATABASE_URL": database_url,
           "LRS_HTTP_WORKERS": "1", "LRS_RELAY_ENABLED": "false"}
    if nats_url is not None:
        env["LRS_NATS_URL"] = nats_url
    project = nats_url is not None and _projections_enabled()
    if project:
        env["LRS_PROJECTIONS_ENABLED"] = "false"
    children: dict[str, asyncio.subprocess.Process] = {}
    # The first worker applies migrations alone, so the others start on a ready schema.
    children["worker-0"] = await _start(["serve"], env)
    for index in range(1, workers):
        children[f"worker-{index}"] = await _start(["serve"], env)
    if relay and nats_url is not None:
        children["relay"] = await _start(["relay"], {**env, "LRS_RELAY_ENABLED": "true"})
    if project:
        children["project"] = await _start(["project"], {**env, "LRS_PROJECTIONS_ENABLED": "true"})
    log.info("supervising", children={name: proc.pid for name, proc in children.items()})

    waits = {asyncio.ensure_future(proc.wait()): name for name, proc in children.items()}
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({*waits, stopping}, return_when=asyncio.FIRST_COMPLETED)
    while stopping not in done and {waits[f] for f in done} == {"project"}:
        # A projection that stops (a crash, or state that needs `lrs replay`)
        # never stops ingest: it is started again a little later.
        (future,) = done
        log.error("projection exited; ingest continues", child="project", exit_code=future.result(), alert=True)
        del waits[future]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(stopping), PROJECT_RESTART_S)
        if not stop.is_set():
            children["project"] = await _start(["project"], {**env, "LRS_PROJECTIONS_ENABLED": "true"})
            waits[asyncio.ensure_future(children["project"].wait())] = "project"
        done, _ = await asyncio.wait({*waits, stopping}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0
    if stopping not in done:
        for future in done:
            name = waits[future]
            log.error("child exited; stopping the service", child=name, exit_code=future.result())
        exit_code = 1
    stopping.cancel()
    # Workers first (they drain in-flight requests), then the relay, then the projection.
    names = [n for n in children if n.startswith("worker")] + [n for n in ("relay", "project") if n in children]
    for name in names:
        code = await terminate(children[name], signal.SIGTERM, grace_s=grace_s + 5)
        log.info("child stopped", child=name, exit_code=code)
    return exit_code
