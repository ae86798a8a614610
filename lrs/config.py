"""Service configuration, read once from the environment.

Every setting has a documented default; docs/operations.md lists them.  When neither
``LRS_DATABASE_URL`` nor ``LRS_NATS_URL`` is set, ``lrs serve`` starts its own
PostgreSQL and nats-server under ``LRS_DATA_DIR`` (see ``lrs.runtime``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from lrs.config_values import (
    ConfigError,
    _at_most,
    _bool,
    _credential,
    _float,
    _int,
    _nonnegative,
    _one_of,
    _positive,
)
from lrs.http.concurrency_limit import MAX_LIMIT
from lrs.oidc_settings import ConsoleOidcSettings, OidcSettings

# About 1.3 KB a learner: 5 million is some 6.5 GB per HTTP worker.  A larger
# value is a typing slip that would let a worker grow until the system kills it.
MAX_LEARNER_CACHE_SIZE = 5_000_000
# The competency projection's decoded learner states: about 8 KB a learner
# at 5 statements, 12 KB at 10 (docs/operations.md); a million is some
# 8-12 GB in the process that runs the projection, and more a typing slip.
COMPETENCY_STATE_CACHE_SIZE = 20_000
MAX_COMPETENCY_STATE_CACHE_SIZE = 1_000_000


def _default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    home = env.get("HOME") or str(Path.home())
    base = env.get("XDG_DATA_HOME") or str(Path(home) / ".local" / "share")
    return Path(base) / "lrs"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    nats_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = field(default_factory=_default_data_dir)
    bootstrap_credential: str | None = None
    log_level: str = "info"
    # Group commit: how long the writer waits to gather more statements, and
    # how many statements one transaction may hold.
    group_commit_wait_ms: float = 2.0
    group_commit_max_statements: int = 5000
    db_pool_size: int = 8
    # HTTP worker processes sharing the port; above 1, `lrs serve` supervises
    # them and runs the relay in a process of its own.
    http_workers: int = 1
    relay_enabled: bool = True
    relay_batch_size: int = 1000
    # Run the competency projection inside `lrs serve`.
    projections_enabled: bool = True
    page_size_default: int = 100
    page_size_max: int = 1000
    max_body_bytes: int = 20 * 1024 * 1024
    shutdown_grace_s: float = 10.0
    # The account homePage of the authority Agent the LRS stamps on statements.
    authority_homepage: str | None = None
    credential_cache_ttl_s: float = 60.0
    # Limits (xAPI-Communication 3.2: configurable, high enough for a
    # conformance run).  Statements in one POST (more: 413); per-credential
    # request rate per process (token bucket; 0 turns it off) and its burst.
    max_batch_statements: int = 10_000
    rate_limit_per_s: float = 10_000.0
    rate_limit_burst: int = 20_000
    # Failed authentication (lrs.http.throttle): after this many failures
    # within the window, per credential key or per client address, 429.
    auth_failures_per_key: int = 10
    auth_failures_per_address: int = 50
    auth_failure_window_s: float = 60.0
    # Load shedding (lrs.http.shedding): new requests get 503 at once while
    # the process serves as many requests as its adaptive limit allows (the
    # limit follows the latency of admitted requests plus the event loop's
    # lag towards shed_latency_ms; 0 turns it off; shed_min_in_flight are
    # always admitted), while more statements than shed_queue_statements wait
    # for group commit, while the event loop runs later than shed_loop_lag_ms,
    # or while shed_max_in_flight requests are being served (0 turns a check off).
    shed_latency_ms: float = 200.0
    shed_min_in_flight: int = 32
    shed_queue_statements: int = 50_000
    shed_loop_lag_ms: float = 200.0
    shed_max_in_flight: int = 0
    # Reverse proxies whose X-Forwarded-For names the client (lrs.http.client_address):
    # addresses or networks, e.g. "127.0.0.1,10.0.0.0/8".  Empty: the header is ignored.
    trusted_proxies: str = ""
    # Where `lrs frameworks load` installs framework, programme and alignment
    # documents, live beside the shipped ones (default: <data_dir>/frameworks).
    frameworks_dir: Path | None = None
    # Origins whose pages may call the xAPI API from a browser (CORS); "*" is
    # any origin, then without credentials (the Fetch rules).  Empty: none.
    cors_origins: tuple[str, ...] = ()
    # The web console under /console, and how long a sign-in lasts.
    console_enabled: bool = True
    console_session_ttl_s: float = 8 * 3600.0
    # Copies of the event stream JetStream keeps (its num_replicas): 1 on one
    # nats-server, 3 on a three-node cluster (at most 5).  The relay creates
    # the stream with it, or updates the stream when it differs.
    nats_stream_replicas: int = 1
    # Competency answers are refused (503) when the first event the projection
    # has not applied was stored longer ago than this; how often the service
    # reads the frameworks documents again (a change rebuilds the projection
    # in the background; 0: only at start); whether an outdated projection is
    # rebuilt from the log by the service itself.
    competency_stale_after_s: float = 30.0
    frameworks_poll_s: float = 5.0
    competency_auto_rebuild: bool = True
    # Learners whose competency state the projection keeps decoded between
    # batches (most recently changed), so live apply neither reads nor
    # decodes them again; 0: none (projections/competency/store.py).
    competency_state_cache_size: int = COMPETENCY_STATE_CACHE_SIZE
    # OpenID Connect bearer tokens beside HTTP Basic (docs/oidc.md); off
    # unless an issuer is set.
    oidc: "OidcSettings | None" = None
    # NATS credentials and TLS for an external server (lrs.nats.access).
    nats_user: str | None = None
    nats_password: str | None = None
    nats_creds: str | None = None
    nats_nkey_seed: str | None = None
    nats_tls_ca: str | None = None
    nats_tls_cert: str | None = None
    nats_tls_key: str | None = None
    # Replies to this process arrive under it (default _INBOX.<user>; lrs.nats.permissions).
    nats_inbox_prefix: str | None = None
    # Payloads above this many bytes are relayed by reference (docs/contracts.md).
    relay_inline_max_bytes: int = 512 * 1024
    # Signed anchors of the log head (lrs.anchors): every N events or T
    # seconds, whichever comes first; 0 N and 0 T turn anchoring off.
    anchor_every_events: int = 10_000
    anchor_every_s: float = 60.0
    anchor_key_file: Path | None = None
    anchors_file: Path | None = None
    # Every `lrs audit verify` run is appended here (lrs.verify_runs); the
    # console warns when the last one is older than this many days.
    verify_runs_path: Path | None = None
    audit_verify_stale_days: float = 7.0
    # Sign-in to the console through the OIDC issuer (authorization code + PKCE).
    console_oidc: "ConsoleOidcSettings | None" = None

    @property
    def verify_runs_file(self) -> Path:
        return self.verify_runs_path if self.verify_runs_path is not None else self.data_dir / "verify-runs.jsonl"

    # Personal data sealed per identity (docs/privacy.md), on unless turned
    # off: every Agent and Group of a stored Statement and every agent
    # document is encrypted under its identity's key, wrapped by the master
    # key in privacy_key_file (never in PostgreSQL).
    seal_personal_data: bool = True
    # How many learners' keys and sealed forms each process keeps at hand:
    # a learner beyond it costs a key read and a new encryption per
    # Statement (about 1.3 KB a learner; docs/privacy.md "Cost").
    learner_cache_size: int = 250_000
    privacy_key_file: Path | None = None
    # LRS_DATA_DIR was given (not the default under the home directory).
    data_dir_configured: bool = True
    # Whether an erased learner still counts in the unit totals: drop or count
    # (the competency projection reads the same variable; projections/units/erased.py).
    erased_learners_in_totals: str = "drop"

    @property
    def privacy_master_key_file(self) -> Path:
        """Where the privacy master key is: LRS_PRIVACY_KEY_FILE, else
        ``<LRS_DATA_DIR>/privacy-key``.  With an external PostgreSQL one of
        the two must be given: a key made in a default directory of one
        host would not open what the database holds for the others."""
        if self.privacy_key_file is not None:
            return self.privacy_key_file
        if self.database_url is not None and not self.data_dir_configured:
            raise ConfigError(
                "LRS_PRIVACY_KEY_FILE is required with an external PostgreSQL (LRS_DATABASE_URL) while "
                "LRS_SEAL_PERSONAL_DATA is on: the privacy master key is kept in a file, never in the database "
                "(or set LRS_DATA_DIR, or LRS_SEAL_PERSONAL_DATA=false)"
            )
        return self.data_dir / "privacy-key"

    @property
    def signing_key_file(self) -> Path:
        return self.anchor_key_file if self.anchor_key_file is not None else self.data_dir / "anchor-key.pem"

    @property
    def anchor_log_file(self) -> Path:
        return self.anchors_file if self.anchors_file is not None else self.data_dir / "anchors.jsonl"

    @property
    def installed_frameworks_dir(self) -> Path:
        return self.frameworks_dir if self.frameworks_dir is not None else self.data_dir / "frameworks"

    @property
    def authority_home(self) -> str:
        return self.authority_homepage or f"http://{self.http_host}:{self.http_port}"

    @property
    def embedded(self) -> bool:
        return self.database_url is None or self.nats_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = env.get("LRS_DATA_DIR")
        return cls(
            database_url=env.get("LRS_DATABASE_URL") or None,
            nats_url=env.get("LRS_NATS_URL") or None,
            http_host=env.get("LRS_HTTP_HOST") or "127.0.0.1",
            http_port=_int(env, "LRS_HTTP_PORT", 8080),
            data_dir=Path(data_dir) if data_dir else _default_data_dir(env),
            data_dir_configured=bool(data_dir),
            bootstrap_credential=_credential(env, "LRS_BOOTSTRAP_CREDENTIAL"),
            log_level=(env.get("LRS_LOG_LEVEL") or "info").lower(),
            group_commit_wait_ms=_float(env, "LRS_GROUP_COMMIT_WAIT_MS", 2.0),
            group_commit_max_statements=_int(env, "LRS_GROUP_COMMIT_MAX_STATEMENTS", 5000, 1),
            db_pool_size=_int(env, "LRS_DB_POOL_SIZE", 8, 2),
            http_workers=_int(env, "LRS_HTTP_WORKERS", 1, 1),
            relay_enabled=_bool(env, "LRS_RELAY_ENABLED", True),
            relay_batch_size=_int(env, "LRS_RELAY_BATCH_SIZE", 1000, 1),
            projections_enabled=_bool(env, "LRS_PROJECTIONS_ENABLED", True),
            page_size_default=_int(env, "LRS_PAGE_SIZE_DEFAULT", 100, 1),
            page_size_max=_int(env, "LRS_PAGE_SIZE_MAX", 1000, 1),
            max_body_bytes=_int(env, "LRS_MAX_BODY_BYTES", 20 * 1024 * 1024, 1024),
            shutdown_grace_s=_float(env, "LRS_SHUTDOWN_GRACE_S", 10.0),
            authority_homepage=env.get("LRS_AUTHORITY_HOMEPAGE") or None,
            credential_cache_ttl_s=_float(env, "LRS_CREDENTIAL_CACHE_TTL_S", 60.0),
            max_batch_statements=_int(env, "LRS_MAX_BATCH_STATEMENTS", 10_000, 1),
            rate_limit_per_s=_nonnegative(_float(env, "LRS_RATE_LIMIT_PER_S", 10_000.0), "LRS_RATE_LIMIT_PER_S"),
            rate_limit_burst=_int(env, "LRS_RATE_LIMIT_BURST", 20_000, 1),
            auth_failures_per_key=_int(env, "LRS_AUTH_FAILURES_PER_KEY", 10, 1),
            auth_failures_per_address=_int(env, "LRS_AUTH_FAILURES_PER_ADDRESS", 50, 1),
            auth_failure_window_s=_positive(
                _float(env, "LRS_AUTH_FAILURE_WINDOW_S", 60.0), "LRS_AUTH_FAILURE_WINDOW_S"
            ),
            shed_queue_statements=_int(env, "LRS_SHED_QUEUE_STATEMENTS", 50_000, 0),
            shed_max_in_flight=_int(env, "LRS_SHED_MAX_IN_FLIGHT", 0, 0),
            shed_latency_ms=_nonnegative(_float(env, "LRS_SHED_LATENCY_MS", 200.0), "LRS_SHED_LATENCY_MS"),
            shed_min_in_flight=_at_most(_int(env, "LRS_SHED_MIN_IN_FLIGHT", 32, 1), MAX_LIMIT, "LRS_SHED_MIN_IN_FLIGHT"),
            shed_loop_lag_ms=_nonnegative(_float(env, "LRS_SHED_LOOP_LAG_MS", 200.0), "LRS_SHED_LOOP_LAG_MS"),
            trusted_proxies=_trusted_proxies(env.get("LRS_TRUSTED_PROXIES") or ""),
            frameworks_dir=Path(env["LRS_FRAMEWORKS_DIR"]) if env.get("LRS_FRAMEWORKS_DIR") else None,
            cors_origins=parse_cors_origins(env.get("LRS_CORS_ORIGINS") or ""),
            console_enabled=_bool(env, "LRS_CONSOLE_ENABLED", True),
            console_session_ttl_s=_session_ttl(_float(env, "LRS_CONSOLE_SESSION_TTL_S", 8 * 3600.0)),
            nats_user=env.get("LRS_NATS_USER") or None,
            nats_password=env.get("LRS_NATS_PASSWORD") or None,
            nats_creds=env.get("LRS_NATS_CREDS") or None,
            nats_nkey_seed=env.get("LRS_NATS_NKEY_SEED") or None,
            nats_tls_ca=env.get("LRS_NATS_TLS_CA") or None,
            nats_tls_cert=env.get("LRS_NATS_TLS_CERT") or None,
            nats_tls_key=env.get("LRS_NATS_TLS_KEY") or None,
            nats_inbox_prefix=env.get("LRS_NATS_INBOX_PREFIX") or None,
            relay_inline_max_bytes=_int(env, "LRS_RELAY_INLINE_MAX_BYTES", 512 * 1024, 1024),
            anchor_every_events=_int(env, "LRS_ANCHOR_EVERY_EVENTS", 10_000),
            anchor_every_s=_nonnegative(_float(env, "LRS_ANCHOR_EVERY_S", 60.0), "LRS_ANCHOR_EVERY_S"),
            anchor_key_file=Path(env["LRS_ANCHOR_KEY_FILE"]) if env.get("LRS_ANCHOR_KEY_FILE") else None,
            anchors_file=Path(env["LRS_ANCHORS_FILE"]) if env.get("LRS_ANCHORS_FILE") else None,
            seal_personal_data=_bool(env, "LRS_SEAL_PERSONAL_DATA", True),
            learner_cache_size=_at_most(
                _int(env, "LRS_LEARNER_CACHE_SIZE", 250_000, 1), MAX_LEARNER_CACHE_SIZE, "LRS_LEARNER_CACHE_SIZE"
            ),
            privacy_key_file=Path(env["LRS_PRIVACY_KEY_FILE"]) if env.get("LRS_PRIVACY_KEY_FILE") else None,
            erased_learners_in_totals=_one_of(env, "LRS_ERASED_LEARNERS_IN_TOTALS", ("drop", "count")),
            nats_stream_replicas=_at_most(_int(env, "LRS_NATS_STREAM_REPLICAS", 1, 1), 5, "LRS_NATS_STREAM_REPLICAS"),
            competency_stale_after_s=_nonnegative(
                _float(env, "LRS_COMPETENCY_STALE_AFTER_S", 30.0), "LRS_COMPETENCY_STALE_AFTER_S"
            ),
            frameworks_poll_s=_nonnegative(_float(env, "LRS_FRAMEWORKS_POLL_S", 5.0), "LRS_FRAMEWORKS_POLL_S"),
            competency_auto_rebuild=_bool(env, "LRS_COMPETENCY_AUTO_REBUILD", True),
            competency_state_cache_size=_at_most(
                _int(env, "LRS_COMPETENCY_STATE_CACHE_SIZE", COMPETENCY_STATE_CACHE_SIZE, 0),
                MAX_COMPETENCY_STATE_CACHE_SIZE, "LRS_COMPETENCY_STATE_CACHE_SIZE",
            ),
            oidc=OidcSettings.from_env(env),
            verify_runs_path=Path(env["LRS_VERIFY_RUNS_FILE"]) if env.get("LRS_VERIFY_RUNS_FILE") else None,
            audit_verify_stale_days=_positive(
                _float(env, "LRS_AUDIT_VERIFY_STALE_DAYS", 7.0), "LRS_AUDIT_VERIFY_STALE_DAYS"
            ),
            console_oidc=ConsoleOidcSettings.from_env(env),
        )


def _trusted_proxies(raw: str) -> str:
    from lrs.http.client_address import parse_trusted_proxies

    parse_trusted_proxies(raw)  # refused at start, with the setting named
    return raw


def _session_ttl(value: float) -> float:
    if not 60 <= value <= 30 * 24 * 3600:
        raise ConfigError(f"LRS_CONSOLE_SESSION_TTL_S must be between 60 and 2592000 seconds, got {value:g}")
    return value


def parse_cors_origins(raw: str) -> tuple[str, ...]:
    """``LRS_CORS_ORIGINS``: ``*`` alone, or a comma-separated list of origins
    (``scheme://host[:port]``, as a browser sends them in ``Origin``)."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if "*" in items:
        if len(items) > 1:
            raise ConfigError("LRS_CORS_ORIGINS: '*' stands alone (any origin), not in a list")
        return ("*",)
    origins = []
    for item in items:
        scheme, sep, rest = item.partition("://")
        if (
            not sep
            or scheme not in {"http", "https"}
            or not rest
            or any(c in rest for c in "/?#@ ")
            or item != item.lower()
        ):
            raise ConfigError(
                f"LRS_CORS_ORIGINS: {item!r} is not an origin; write scheme://host[:port] in lower case, "
                "with no path or trailing slash (e.g. https://lms.example.org)"
            )
        origins.append(item)
    return tuple(origins)
def nats_servers(url: str) -> list[str]:
    """The servers of ``LRS_NATS_URL``: one URL, or several separated by commas
    (the members of a cluster; a client connects to any and fails over to the
    others)."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ConfigError(f"LRS_NATS_URL names no server: {url!r}")
    return servers
