"""Typed application keys for the resources the HTTP layer shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

import asyncpg
from aiohttp import web

from lrs.config import Settings

if TYPE_CHECKING:
    from lrs.console.ports import ConsoleCompetency
    from lrs.http.authn import Authenticator
    from lrs.oidc import BearerVerifier
    from lrs.store.learner_keys import LearnerKeys
    from lrs.store.pair_keys import PairKeysEverywhere
    from lrs.store.writer import StatementWriter

SETTINGS = web.AppKey("settings", Settings)
DATABASE_URL = web.AppKey("database_url", str)
NATS_URL = web.AppKey("nats_url", str)
POOL = web.AppKey("pool", asyncpg.Pool)
# GET /xapi/statements' reads (lrs.store.reader.create_read_pool): generic plans, no reset.
STATEMENT_READS = web.AppKey("statement_reads", asyncpg.Pool)
# Whether every Statement has its activity + verb pair keys (lrs.store.pair_keys.PairKeysEverywhere).
PAIR_KEYS: web.AppKey["PairKeysEverywhere"] = web.AppKey("pair_keys")
WRITER: web.AppKey["StatementWriter"] = web.AppKey("writer")
AUTHENTICATOR: web.AppKey["Authenticator"] = web.AppKey("authenticator")
# Present only when LRS_OIDC_ISSUER is set.
BEARER_VERIFIER: web.AppKey["BearerVerifier"] = web.AppKey("bearer_verifier")
CURSOR_SECRET = web.AppKey("cursor_secret", bytes)
# Present only when LRS_SEAL_PERSONAL_DATA is on (docs/privacy.md).
LEARNER_KEYS: web.AppKey["LearnerKeys"] = web.AppKey("learner_keys")
RELAY: web.AppKey[Any] = web.AppKey("relay")
ANCHOR_WRITER: web.AppKey[Any] = web.AppKey("anchor_writer")  # lrs.anchor_writer.AnchorWriter
LIFECYCLE: web.AppKey["Lifecycle"] = web.AppKey("lifecycle")
# The states of the embedded servers this process supervises ("running", "restarting").
EMBEDDED: web.AppKey[Callable[[], dict[str, str]]] = web.AppKey("embedded")
# Each projection's state, lag and parked count (projections/http.py), for
# /ready and /metrics.
PROJECTIONS_STATUS: web.AppKey[Callable[[web.Application], Awaitable[dict[str, Any]]]] = web.AppKey("projections_status")

# What the console reads from the competency projection (lrs/console/ports.py),
# put here by the composition root (lrs/service.py).
CONSOLE_COMPETENCY: web.AppKey["ConsoleCompetency"] = web.AppKey("console_competency")


class Lifecycle:
    """Whether the service is accepting work (False once shutdown began)."""

    def __init__(self) -> None:
        self.accepting = True
