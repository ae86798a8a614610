"""``create_app``: the aiohttp application with one cleanup context per resource.

The service as deployed, with its projections, is assembled by the
composition root (lrs/service.py), which passes them in as ``plugins``."""

from __future__ import annotations

import asyncio
from importlib.resources.abc import Traversable
from typing import AsyncIterator, Callable, Sequence

import asyncpg
import structlog
from aiohttp import web

from lrs.auth import Credential, hash_secret
from lrs.config import ConfigError, Settings
from lrs.http import keys
from lrs.http.about import about, health, ready
from lrs.http.authn import Authenticator
from lrs.http.bearer import bearer_verifier
from lrs.http.cors import add_cors_headers, cors_preflight
from lrs.http.metrics import metrics_handler
from lrs.http.alternate import alternate_syntax
from lrs.http.limits import body_size_limit
from lrs.http.middleware import (
    authentication,
    common_headers,
    error_mapping,
    request_context,
    xapi_version,
)
from lrs.http.openapi import openapi_handler
from lrs.http.ratelimit import SharedRateLimiter, rate_limit
from lrs.http import shedding
from lrs.http.text_guard import refuse_unstorable_text
from lrs.http.throttle import AUTH_THROTTLE, AuthThrottle, SharedFailures
from lrs.http.client_address import TRUSTED_PROXIES, TrustedProxies, parse_trusted_proxies
from lrs.http.statements import get_statements, post_statements, put_statement
from lrs.startup import database_unreachable
import lrs.console.app

log = structlog.get_logger("lrs.http")

SHARED_LOG = web.AppKey("shared_log", bool)
MIGRATIONS = web.AppKey("plugin_migrations", tuple)


def create_app(
    settings: Settings,
    *,
    database_url: str,
    nats_url: str | None,
    shared_log: bool = False,
    embedded: Callable[[], dict[str, str]] | None = None,
    plugins: Sequence[Callable[[web.Application], None]] = (),
    migrations: Sequence[Traversable] = (),
) -> web.Application:
    """The service.  ``shared_log``: other processes append to the same event log.
    ``embedded``: the states of the embedded servers this process supervises
    (``/ready`` is not ready while one is restarting).  ``plugins``: each
    mounts what it adds (routes, a sub-application, a cleanup context that
    needs the pool, the writer and the relay, so runs after them);
    ``migrations``: their SQL directories, applied with the core's at start."""
    from lrs.store.rate_limits import take_lease

    def lease(key: str, want: int):
        return take_lease(
            app[keys.POOL], key, rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst, want=want
        )

    app = web.Application(
        middlewares=[
            shedding.load_shedding,  # first: refusing costs least before anything is read or logged
            request_context,
            cors_preflight,  # before authentication: a preflight carries no credentials and no version header
            error_mapping,
            refuse_unstorable_text,
            body_size_limit,
            alternate_syntax,  # before authentication: the form may carry Authorization
            authentication,
            rate_limit(SharedRateLimiter.from_settings(settings, lease)),
            xapi_version,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[AUTH_THROTTLE] = AuthThrottle.from_settings(settings, _shared_failures(app, settings))
    app[TRUSTED_PROXIES] = TrustedProxies(parse_trusted_proxies(settings.trusted_proxies))
    app[keys.SETTINGS] = settings
    app[SHARED_LOG] = shared_log
    app[keys.DATABASE_URL] = database_url
    app[MIGRATIONS] = tuple(migrations)
    if nats_url is not None:
        app[keys.NATS_URL] = nats_url
    app[keys.LIFECYCLE] = keys.Lifecycle()
    if embedded is not None:
        app[keys.EMBEDDED] = embedded
    app.cleanup_ctx.extend([_database, _credential_changes, _learner_keys, bearer_verifier, _writer, _relay, _anchors])
    shedding.install(app, settings)
    for plugin in plugins:  # /competency/... and the projection runner (lrs/service.py)
        plugin(app)
    lrs.console.app.register(app)  # /console (LRS_CONSOLE_ENABLED)
    app.on_shutdown.append(_stop_accepting)
    app.on_response_prepare.append(common_headers)
    app.on_response_prepare.append(add_cors_headers)

    app.router.add_get("/xapi/about", about)
    app.router.add_get("/xapi/openapi.json", openapi_handler)
    app.router.add_get("/xapi/statements", get_statements)
    app.router.add_post("/xapi/statements", post_statements)
    app.router.add_put("/xapi/statements", put_statement)
    from lrs.http.documents import add_routes as add_document_routes  # documents, /activities, /agents

    add_document_routes(app)
    from lrs.http.admin import post_erasure

    app.router.add_post("/admin/erasures", post_erasure)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics_handler)
    return app


def _shared_failures(app: web.Application, settings: Settings) -> SharedFailures:
    """Failed-authentication counts in PostgreSQL, shared by every process; names
    whose window has ended are deleted at most once a window by each process."""
    from lrs.store import auth_failures

    window_s = settings.auth_failure_window_s
    pruned_at = [float("-inf")]

    async def admit(limits: dict[bytes, int]):
        now = asyncio.get_running_loop().time()
        if now - pruned_at[0] >= window_s:
            pruned_at[0] = now
            await auth_failures.prune(app[keys.POOL], window_s=window_s)
        admission = await auth_failures.admit(app[keys.POOL], limits, window_s=window_s)
        return admission.refused, admission.counted

    async def withdraw(counted):
        await auth_failures.withdraw(app[keys.POOL], counted)

    return SharedFailures(admit=admit, withdraw=withdraw, digest=auth_failures.name_digest)


def parse_bootstrap_credential(value: str) -> tuple[str, str]:
    key, sep, secret = value.partition(":")
    if not sep or not key or not secret:
        raise ConfigError("LRS_BOOTSTRAP_CREDENTIAL must look like key:secret")
    return key, secret


async def _stop_accepting(app: web.Application) -> None:
    app[keys.LIFECYCLE].accepting = False


async def _database(app: web.Application) -> AsyncIterator[None]:
    from lrs.store import credentials, secrets
    from lrs.store.activities import catch_up_definitions
    from lrs.store.migrations import apply_migrations
    from lrs.store.pool import close_pool, create_pool
    from lrs.store.pair_keys import PairKeysEverywhere
    from lrs.store.reader import create_read_pool

    settings = app[keys.SETTINGS]
    try:
        pool = await create_pool(app[keys.DATABASE_URL], min_size=2, max_size=settings.db_pool_size)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise database_unreachable(app[keys.DATABASE_URL], exc) from exc
    try:
        await apply_migrations(pool, also=app[MIGRATIONS])
        # Canonical Activity definitions are kept by the statement writer; fold
        # what an older version of the LRS left behind, once, before it starts.
        await catch_up_definitions(pool, settings.authority_home)
    except BaseException:
        await pool.close()
        raise
    if settings.bootstrap_credential:
        key, secret = parse_bootstrap_credential(settings.bootstrap_credential)
        await credentials.ensure_credential(
            pool, key=key, secret_hash=hash_secret(secret), tenant="default", scopes=["all"], name=key
        )
    app[keys.POOL] = pool
    app[keys.CURSOR_SECRET] = await secrets.get_or_create(pool, "cursor", 32)
    # Half the shared pool's size (pages are CPU-bound: more at once only
    # queue in PostgreSQL); opens no connection until a page is read.
    app[keys.STATEMENT_READS] = await create_read_pool(app[keys.DATABASE_URL],
                                                       max_size=max(2, settings.db_pool_size // 2))
    app[keys.PAIR_KEYS] = PairKeysEverywhere()

    async def fetch(key: str) -> tuple[str, Credential] | None:
        record = await credentials.fetch_credential(pool, key)
        if record is None or not record.active:
            return None
        return record.secret_hash, record.credential()

    app[keys.AUTHENTICATOR] = Authenticator(fetch, cache_ttl=settings.credential_cache_ttl_s)
    try:
        yield
    finally:
        await close_pool(app[keys.STATEMENT_READS])
        await close_pool(pool)


async def _credential_changes(app: web.Application) -> AsyncIterator[None]:
    """Revocations made anywhere reach this process's cache of verified secrets."""
    from lrs.store.credential_changes import credential_changes

    authenticator = app[keys.AUTHENTICATOR]

    def lost() -> None:
        authenticator.trust_cache = False
        authenticator.forget_all()

    def listening() -> None:
        authenticator.forget_all()  # changes made while nobody listened
        authenticator.trust_cache = True

    async with credential_changes(
        app[keys.DATABASE_URL], on_change=authenticator.forget, on_lost=lost, on_listening=listening
    ):
        yield


async def _learner_keys(app: web.Application) -> AsyncIterator[None]:
    """LRS_SEAL_PERSONAL_DATA: the keys that seal and open personal data,
    their cache emptied of an identity erased by any process."""
    settings = app[keys.SETTINGS]
    if not settings.seal_personal_data:
        yield
        return
    from lrs.privacy.master import load_or_create
    from lrs.store.credential_changes import credential_changes
    from lrs.store.learner_key_sql import CHANGES_CHANNEL
    from lrs.store.learner_keys import LearnerKeys
    from lrs.store.pool import close_pool, create_statement_pool

    # The statements that read or make learners' keys for writing run on a
    # connection of their own, not reset after each: one transaction and one
    # round trip for a batch of first sights, not two.
    key_pool = await create_statement_pool(app[keys.DATABASE_URL], application_name="lrs-learner-keys")
    try:
        keyring = LearnerKeys(
            app[keys.POOL], load_or_create(settings.privacy_master_key_file), key_pool=key_pool,
            wait_ms=settings.group_commit_wait_ms, capacity=settings.learner_cache_size,
        )
        await keyring.check_master_key()

        def lost() -> None:
            keyring.not_listening()

        def listening() -> None:
            keyring.forget_all()
            keyring.trust_cache = True

        app[keys.LEARNER_KEYS] = keyring
        async with credential_changes(
            app[keys.DATABASE_URL], on_change=keyring.heard, on_lost=lost, on_listening=listening,
            on_alive=keyring.listener_alive, channel=CHANGES_CHANNEL, application_name="lrs-learner-keys",
        ):
            await keyring.load_epoch()  # erasures from before are not heard of again
            yield
    finally:
        await close_pool(key_pool)


async def _writer(app: web.Application) -> AsyncIterator[None]:
    from lrs.store.pool import close_pool, create_statement_pool
    from lrs.store.writer import StatementWriter

    settings = app[keys.SETTINGS]
    # The groups' connections are not reset after each group (a group leaves
    # nothing in the session): one PostgreSQL transaction and one round trip
    # a group fewer.  One group runs at a time; the second connection is slack.
    group_pool = await create_statement_pool(app[keys.DATABASE_URL], application_name="lrs-writer", max_size=2)
    try:
        writer = StatementWriter(
            app[keys.POOL],
            wait_ms=settings.group_commit_wait_ms,
            max_statements=settings.group_commit_max_statements,
            shared_log=app[SHARED_LOG],
            group_pool=group_pool,
        )
        await writer.start()
        app[keys.WRITER] = writer
        try:
            yield
        finally:
            # Everything already handed to the writer is committed (or failed) before the pools close.
            await writer.close()
    finally:
        await close_pool(group_pool)


async def _relay(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    nats_url = app.get(keys.NATS_URL)
    if not settings.relay_enabled or nats_url is None:
        log.info("relay disabled", reason="LRS_RELAY_ENABLED=false" if nats_url else "no NATS URL")
        yield
        return
    from lrs.relay import Relay

    relay = Relay(
        app[keys.POOL], nats_url, batch_size=settings.relay_batch_size,
        inline_max_bytes=settings.relay_inline_max_bytes, stream_replicas=settings.nats_stream_replicas,
    )
    app[keys.WRITER].committed.append(relay.notify)
    await relay.start()
    app[keys.RELAY] = relay
    try:
        yield
    finally:
        await relay.stop()


async def _anchors(app: web.Application) -> AsyncIterator[None]:
    """Signed anchors of the log head (lrs.anchor_writer), where the relay runs:
    one process per deployment."""
    settings = app[keys.SETTINGS]
    if not settings.relay_enabled or not (settings.anchor_every_events or settings.anchor_every_s):
        yield
        return
    from lrs.anchor_writer import AnchorWriter

    writer = AnchorWriter(
        app[keys.POOL], settings.signing_key_file, settings.anchor_log_file,
        every_events=settings.anchor_every_events, every_s=settings.anchor_every_s,
    )
    app[keys.WRITER].committed.append(writer.notify)
    app[keys.ANCHOR_WRITER] = writer
    relay = app.get(keys.RELAY)
    if relay is not None:
        relay.read_hooks.append(writer.observe)  # the events it reads are checked once, not read again
    await writer.start()
    try:
        yield
    finally:
        await writer.stop()
