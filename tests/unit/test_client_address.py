"""The client's address behind trusted proxies (pure)."""

from __future__ import annotations

import pytest

from lrs.config import ConfigError, Settings
from lrs.http.client_address import TrustedProxies, parse_trusted_proxies

PROXIES = TrustedProxies(parse_trusted_proxies("10.0.0.0/8, 127.0.0.1 ::1"))


@pytest.mark.parametrize("peer, forwarded, client", [
    ("192.0.2.5", ["198.51.100.1"], "192.0.2.5"),  # not a proxy: the header is the client's own word
    ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
    ("10.1.2.3", ["203.0.113.9, 198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # right-most not trusted
    ("127.0.0.1", ["203.0.113.9", "198.51.100.1"], "198.51.100.1"),  # several headers, in order
    ("::1", ["[2001:db8::1]:4711"], "2001:db8::1"),
    ("::ffff:10.0.0.1", ["198.51.100.1:80"], "198.51.100.1"),
    ("10.1.2.3", [], "10.1.2.3"),  # a proxy that forwards nothing is the client
    ("10.1.2.3", ["not-an-address, 10.0.0.2"], "10.0.0.2"),  # stops at a hop that is no address
    ("10.1.2.3", ["unknown"], "10.1.2.3"),
    (None, ["198.51.100.1"], "unknown"),
])
def test_the_client_is_the_right_most_address_not_trusted(peer, forwarded, client):
    assert PROXIES.client(peer, forwarded) == client


def test_without_trusted_proxies_the_header_is_ignored():
    assert TrustedProxies(()).client("127.0.0.1", ["198.51.100.1"]) == "127.0.0.1"


def test_a_bad_setting_is_refused_at_start_naming_it():
    with pytest.raises(ConfigError, match="LRS_TRUSTED_PROXIES: 'proxy.local'"):
        Settings.from_env({"LRS_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"})
    assert Settings.from_env({"LRS_TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies == "10.0.0.0/8"
