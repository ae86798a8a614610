"""NATS credentials and TLS for ``lrs forward`` from the LRS's documented
``LRS_NATS_*`` variables (docs/trust.md, "NATS"): user and password, a creds
file, an nkey seed file, a CA and a client certificate and key; and the
inbox prefix its replies arrive on, the only subjects its user may subscribe
to: ``LRS_NATS_INBOX_PREFIX``, else ``_INBOX.<user>`` for the user of the URL
or ``LRS_NATS_USER``."""

from __future__ import annotations

import os
import ssl
from typing import Mapping
from urllib.parse import unquote, urlsplit


def nats_options(env: Mapping[str, str] | None = None, url: str | None = None) -> dict[str, object]:
    env = os.environ if env is None else env
    options: dict[str, object] = {}
    user = _url_user(url) or env.get("LRS_NATS_USER")
    if env.get("LRS_NATS_INBOX_PREFIX"):
        options["inbox_prefix"] = env["LRS_NATS_INBOX_PREFIX"]
    elif user:
        options["inbox_prefix"] = f"_INBOX.{user}"
    if env.get("LRS_NATS_USER"):
        options["user"] = env["LRS_NATS_USER"]
        options["password"] = env.get("LRS_NATS_PASSWORD", "")
    if env.get("LRS_NATS_CREDS"):
        options["user_credentials"] = env["LRS_NATS_CREDS"]
    if env.get("LRS_NATS_NKEY_SEED"):
        options["nkeys_seed"] = env["LRS_NATS_NKEY_SEED"]
    if env.get("LRS_NATS_TLS_CA") or env.get("LRS_NATS_TLS_CERT"):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=env.get("LRS_NATS_TLS_CA") or None)
        if env.get("LRS_NATS_TLS_CERT"):
            context.load_cert_chain(env["LRS_NATS_TLS_CERT"], env.get("LRS_NATS_TLS_KEY") or None)
        options["tls"] = context
    return options


def _url_user(url: str | None) -> str | None:
    if not url:
        return None
    first = url.split(",")[0].strip()
    try:
        user = urlsplit(first if "://" in first else f"nats://{first}").username
    except ValueError:
        return None
    return unquote(user) if user else None
