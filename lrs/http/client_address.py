"""The client's address, behind trusted reverse proxies.

Per-address limits (failed authentication) need the address of the client,
not of the proxy in front of the service: behind one proxy every client
would otherwise share one address and one limit.  ``X-Forwarded-For`` is
honoured only when the connection comes from an address listed in
``LRS_TRUSTED_PROXIES`` (addresses or networks, e.g. ``127.0.0.1,10.0.0.0/8``):
the header is read from its right end, skipping the trusted proxies, and the
first address not trusted is the client.  A client that is not a trusted
proxy cannot choose its address by sending the header; with no trusted
proxies (the default) the header is ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from aiohttp import web

from lrs.config import ConfigError

__all__ = ["TrustedProxies", "client_address", "parse_trusted_proxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(raw: str) -> tuple[Network, ...]:
    """``LRS_TRUSTED_PROXIES``: addresses or networks, separated by commas or spaces."""
    networks = []
    for item in raw.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"LRS_TRUSTED_PROXIES: {item!r} is not an IP address or network (like 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: list[str]) -> str:
        """The client's address (pure): ``peer`` unless it is a trusted proxy, then
        the right-most address of the ``X-Forwarded-For`` values not trusted."""
        peer_ip = _ip(peer) if peer else None
        if not self.networks or not self.trusts(peer_ip):
            return str(peer_ip) if peer_ip is not None else (peer or "unknown")
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        client = str(peer_ip)
        for hop in reversed(hops):
            hop_ip = _ip(hop)
            if hop_ip is None:
                break  # a hop that is no address: stop at the last one known
            client = str(hop_ip)
            if not self.trusts(hop_ip):
                break
        return client


TRUSTED_PROXIES = web.AppKey("trusted_proxies", TrustedProxies)


def client_address(request: web.Request) -> str:
    """The address of the client that sent ``request`` (see the module)."""
    proxies = request.config_dict.get(TRUSTED_PROXIES)
    if proxies is None:
        return request.remote or "unknown"
    return proxies.client(request.remote, request.headers.getall("X-Forwarded-For", []))
