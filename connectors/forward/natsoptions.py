"""NATS credentials and TLS for ``lrs forward`` from the LRS's documented
``LRS_NATS_*`` variables (docs/trust.md, "NATS"): user and password, a creds
file, an nkey seed file, a CA and a client certificate and key."""

from __future__ import annotations

import os
import ssl
from typing import Mapping


def nats_options(env: Mapping[str, str] | None = None) -> dict[str, object]:
    env = os.environ if env is None else env
    options: dict[str, object] = {}
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
