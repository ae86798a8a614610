"""How this process authenticates to NATS (docs/trust.md, "NATS").

The embedded nats-server hands each role a URL with its user and password
(lrs.runtime.nats).  An external server takes what ``LRS_NATS_*`` give:
user and password (also accepted inside ``LRS_NATS_URL``), a creds file
(JWT and nkey seed), an nkey seed file, and TLS (a CA to trust, and a client
certificate and key for mutual TLS).  :func:`connect_options` turns them into
``nats.connect`` keyword arguments; every NATS client of the LRS uses it.
"""

from __future__ import annotations

import re
import ssl

from lrs.config import Settings

_PASSWORD = re.compile(r"://([^:/@,]*):[^@/,]*@")


def connect_options(settings: Settings | None = None) -> dict[str, object]:
    """``nats.connect`` keyword arguments for the credentials and TLS of
    ``settings`` (default: read from the environment)."""
    settings = Settings.from_env() if settings is None else settings
    options: dict[str, object] = {}
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password or ""
    if settings.nats_creds:
        options["user_credentials"] = str(settings.nats_creds)
    if settings.nats_nkey_seed:
        options["nkeys_seed"] = str(settings.nats_nkey_seed)
    if settings.nats_tls_ca or settings.nats_tls_cert:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.nats_tls_ca or None)
        if settings.nats_tls_cert:
            context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key or None)
        options["tls"] = context
    return options


def redact_url(url: str) -> str:
    """``url`` (or a comma-separated list of URLs) without passwords, for logs."""
    return _PASSWORD.sub(r"://\1:***@", url)
