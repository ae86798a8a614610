"""How this process authenticates to NATS (docs/trust.md, "NATS").

The embedded nats-server hands each role a URL with its user and password
(lrs.runtime.nats).  An external server takes what ``LRS_NATS_*`` give:
user and password (also accepted inside ``LRS_NATS_URL``), a creds file
(JWT and nkey seed), an nkey seed file, and TLS (a CA to trust, and a client
certificate and key for mutual TLS).  :func:`connect_options` turns them into
``nats.connect`` keyword arguments; every NATS client of the LRS uses it.

Replies to a client arrive on its own inbox prefix, the only subjects its
user may subscribe to (lrs.nats.permissions): ``LRS_NATS_INBOX_PREFIX``,
else ``_INBOX.<user>`` for the user named in the URL or ``LRS_NATS_USER``,
else nats-py's ``_INBOX`` (a creds file or nkey: set the prefix).
"""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

from lrs.config import Settings
from lrs.nats.permissions import inbox_prefix

def connect_options(settings: Settings | None = None, url: str | None = None) -> dict[str, object]:
    """``nats.connect`` keyword arguments for the credentials, TLS and inbox
    prefix of ``settings`` (default: read from the environment), connecting
    to ``url``."""
    settings = Settings.from_env() if settings is None else settings
    options: dict[str, object] = {}
    user = url_user(url) or settings.nats_user
    if settings.nats_inbox_prefix:
        options["inbox_prefix"] = settings.nats_inbox_prefix
    elif user:
        options["inbox_prefix"] = inbox_prefix(user)
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


def url_user(url: str | None) -> str | None:
    """The user named in (the first of) ``url``, if any."""
    if not url:
        return None
    first = url.split(",")[0].strip()
    try:
        user = urlsplit(first if "://" in first else f"nats://{first}").username
    except ValueError:
        return None
    return unquote(user) if user else None
