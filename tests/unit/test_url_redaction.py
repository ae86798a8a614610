"""Database and NATS URLs are shown without their passwords, by one function
for the core's messages and logs and for `lrs forward` (lrs/url_redaction.py)."""

from __future__ import annotations

import pytest

from lrs.url_redaction import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://relay:s3cret@127.0.0.1:4222", "nats://relay:***@127.0.0.1:4222"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://s:p1@a:4222,nats://s:p2@b:4222", "nats://s:***@a:4222,nats://s:***@b:4222"),
        # Servers of a NATS list without a scheme, after one without a user.
        ("nats://a:4222,s:p2@b:4222", "nats://a:4222,s:***@b:4222"),
        ("nats://s:p1@a:4222, s:p2@b:4222", "nats://s:***@a:4222, s:***@b:4222"),
        ("tls://u@a:4222", "tls://u@a:4222"),
        # libpq's multi-host form: one user and password, then the hosts.
        ("postgresql://lrs:pa,ss@db1:5432,db2:5433/lrs", "postgresql://lrs:***@db1:5432,db2:5433/lrs"),
        ("postgresql://lrs:hunter2@db1,db2/lrs?target_session_attrs=read-write",
         "postgresql://lrs:***@db1,db2/lrs?target_session_attrs=read-write"),
        ("postgres://lrs:p@ss@db/lrs", "postgres://lrs:***@db/lrs"),  # an '@' left unencoded: up to the last
        ("postgresql://lrs@db1,db2/lrs", "postgresql://lrs@db1,db2/lrs"),
        ("postgresql:///lrs?host=/run/pg&user=lrs&password=hunter2&sslmode=disable",
         "postgresql:///lrs?host=/run/pg&user=lrs&password=***&sslmode=disable"),
        ("", ""),
    ],
)
def test_passwords_stay_out_of_the_output(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_core_and_lrs_forward_hide_passwords_alike() -> None:
    from connectors.forward import cli as forward_cli
    from lrs import startup
    from lrs.nats import bus

    assert forward_cli.redact_url is startup.redact_url is bus.redact_url is redact_url
