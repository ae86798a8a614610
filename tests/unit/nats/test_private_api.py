"""Canary: the private parts of nats-py and asyncpg the service relies on are
there and shaped as relied on.

Two speed choices and one close reach into nats-py (lrs.nats.bus writes protocol frames
through ``Client._send_command``; lrs.nats.headers replaces
``Client._process_headers``; lrs.nats.closing stops ``Client._subs``' tasks and
``Client._transport`` after a failed close) and two into asyncpg (lrs.store.ids builds UUIDs
with ``asyncpg.pgproto.pgproto.UUID``; lrs.store.unconfirmed_keys reads the
session under a pool's lease from ``PoolConnectionProxy._con``).  pyproject pins the ranges they were
tested with; a release outside them that moved its internals fails here, by
name, instead of silently losing the speed or breaking the relay.
"""

from __future__ import annotations

import inspect
import uuid

from nats.aio import client as nats_client
from nats.aio.client import Client
from nats.aio.subscription import Subscription


def test_nats_py_writes_commands_through_send_command() -> None:
    send = getattr(Client, "_send_command", None)
    assert send is not None, "nats-py has no Client._send_command: lrs.nats.bus.frame_writer must change"
    assert inspect.iscoroutinefunction(send)
    assert list(inspect.signature(send).parameters) == ["self", "cmd", "priority"]
    publish = getattr(Client, "_send_publish", None)  # what tests/unit/nats/test_frames.py compares with
    assert publish is not None and list(inspect.signature(publish).parameters) == [
        "self", "subject", "reply", "payload", "payload_size", "headers",
    ]
    assert isinstance(Client.is_draining_pubs, property)


def test_nats_py_parses_headers_through_process_headers() -> None:
    process = getattr(Client, "_process_headers", None)
    assert process is not None, "nats-py has no Client._process_headers: lrs.nats.headers must change"
    assert inspect.iscoroutinefunction(process)
    assert list(inspect.signature(process).parameters) == ["self", "headers"]
    assert hasattr(Client, "_parse_header_lines"), "nats-py parses headers another way now"
    assert getattr(nats_client, "parse_email", None) is None, "fast_mail_parser is installed: headers parse otherwise"


async def test_the_fast_header_parse_is_installed() -> None:
    from lrs.nats.headers import use_fast_header_parse

    client = Client()
    assert use_fast_header_parse(client) is True
    block = b"NATS/1.0\r\nLrs-Position: 7\r\n\r\n"
    assert await client._process_headers(block) == {"Lrs-Position": "7"}
    assert await client._process_headers(block) == await Client()._process_headers(block)


def test_asyncpg_uuid_is_a_uuid() -> None:
    from asyncpg.pgproto.pgproto import UUID

    text = "6f1c1e9e-5d7b-4c55-9d3c-1c2f3b4a5d6e"
    fast = UUID(text)
    assert isinstance(fast, uuid.UUID)
    assert fast == uuid.UUID(text) and hash(fast) == hash(uuid.UUID(text))
    assert str(fast) == text and fast.bytes == uuid.UUID(text).bytes
    assert UUID(uuid.UUID(text).bytes) == fast
    assert UUID(text.replace("-", "")) == fast


def test_asyncpg_pool_lease_holds_its_connection_in_con() -> None:
    """lrs.store.unconfirmed_keys.session_known_since knows a pooled
    connection's session by the connection object under its lease, which
    the lease keeps in ``_con`` (``None`` once released)."""
    import asyncpg.pool

    class Connection:
        def _set_proxy(self, proxy: object) -> None:
            self.proxy = proxy

    assert "_con" in asyncpg.pool.PoolConnectionProxy.__slots__
    con = Connection()
    lease = asyncpg.pool.PoolConnectionProxy(None, con)  # type: ignore[arg-type]
    assert lease._con is con and con.proxy is lease


def test_nats_py_hands_each_message_to_process_msg() -> None:
    """lrs.nats.pull wraps ``Client._process_msg`` (on its client) to take its
    consumer's messages as the parser meets them."""
    from nats.protocol import parser

    process = getattr(Client, "_process_msg", None)
    assert process is not None, "nats-py has no Client._process_msg: lrs.nats.pull must change"
    assert inspect.iscoroutinefunction(process)
    assert list(inspect.signature(process).parameters) == ["self", "sid", "subject", "reply", "data", "headers"]
    assert "await self.nc._process_msg(sid, subject, reply, payload, hdr)" in inspect.getsource(parser.Parser.parse)
    build = getattr(Client, "_build_message", None)
    assert build is not None and list(inspect.signature(build).parameters) == [
        "self", "sid", "subject", "reply", "data", "headers",
    ]
    assert "self._id = id" in inspect.getsource(Subscription.__init__)  # the sid the parser passes


def test_nats_py_keeps_the_subscriptions_and_transport_close_client_stops() -> None:
    # lrs.nats.closing.close_client stops what a failed close left: each of
    # Client._subs's subscriptions by Subscription._stop_processing, and Client._transport.
    client = Client()
    assert isinstance(getattr(client, "_subs", None), dict), "nats-py has no Client._subs: lrs/nats/closing.py must change"
    assert hasattr(client, "_transport"), "nats-py has no Client._transport: lrs/nats/closing.py must change"
    stop = getattr(Subscription, "_stop_processing", None)
    assert callable(stop) and list(inspect.signature(stop).parameters) == ["self"], (
        "nats-py's Subscription._stop_processing moved: lrs/nats/closing.py must change")
