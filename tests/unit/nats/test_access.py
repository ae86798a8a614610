"""LRS_NATS_* become nats.connect options, in the LRS and in lrs forward alike."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lrs.config import Settings
from lrs.nats.access import connect_options


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lrs-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_nothing_configured_means_no_options() -> None:
    assert connect_options(Settings.from_env({})) == {}


def test_user_password_creds_nkey_and_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {
        "LRS_NATS_USER": "relay", "LRS_NATS_PASSWORD": "s3cret", "LRS_NATS_CREDS": "/etc/lrs/relay.creds",
        "LRS_NATS_NKEY_SEED": "/etc/lrs/relay.nk", "LRS_NATS_TLS_CA": str(cert),
        "LRS_NATS_TLS_CERT": str(cert), "LRS_NATS_TLS_KEY": str(key),
    }
    options = connect_options(Settings.from_env(env))
    assert options["user"] == "relay" and options["password"] == "s3cret"
    assert options["user_credentials"] == "/etc/lrs/relay.creds"
    assert options["nkeys_seed"] == "/etc/lrs/relay.nk"
    assert isinstance(options["tls"], ssl.SSLContext)
    assert options["tls"].verify_mode == ssl.CERT_REQUIRED
    assert options["inbox_prefix"] == "_INBOX.relay"


def test_replies_arrive_on_the_users_own_inbox_prefix() -> None:
    for url, expected in (("nats://projection:pw@127.0.0.1:4222", "_INBOX.projection"),
                          ("nats://forward-crm:p%40w@a:4222,nats://forward-crm:p%40w@b:4222", "_INBOX.forward-crm"),
                          ("nats://127.0.0.1:4222", None)):
        options = connect_options(Settings.from_env({}), url=url)
        assert options.get("inbox_prefix") == expected, (url, options)
    chosen = {"LRS_NATS_INBOX_PREFIX": "_INBOX.crm", "LRS_NATS_CREDS": "/etc/lrs/crm.creds"}
    assert connect_options(Settings.from_env(chosen), url="nats://x:y@h")["inbox_prefix"] == "_INBOX.crm"
