"""A faster parse of plain NATS message headers, for clients that read many messages.

nats-py parses each message's header block line by line in Python, checking
every name with a generator: about 7 µs for the relay's six headers, the
largest single cost of a projection's reading (lrs/relay.py writes them).
A block in the plain form (``NATS/1.0`` without a status, then ``Name:
value`` lines of printable ASCII) is parsed here with a few splits, into
the same dict nats-py makes of it; any other block (a status
message such as a heartbeat or the end of a pull request, other bytes) goes
to nats-py's own parse.  tests/unit/nats/test_headers.py holds the two to the
same results.

A reader that knows the names its messages carry, in their order (the
relay's, lrs.event_contract.HEADER_LAYOUTS), parses a block of that layout
with one compiled pattern (:func:`layout_parse`): 2.9 against 4.9 µs for the
relay's seven headers under ``timeit``, where the line-by-line parse checks
every name and value on its own.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Sequence

from nats.aio import client as nats_client
from nats.aio.client import Client as NatsClient

__all__ = ["layout_parse", "parse_plain_headers", "use_fast_header_parse"]

_PLAIN_START = "NATS/1.0\r\n"  # no status: a status follows the version after a space
_PLAIN_NAME = re.compile(r"[!-9;-~]+")  # a header name a plain block may hold: visible ASCII but ':'


def parse_plain_headers(block: bytes) -> dict[str, str] | None:
    """The headers of a plain block as nats-py gives them ({} for none), or
    None when the block is not plain: not ASCII, a status line, a line
    without a colon, a name that is empty or holds a space or a control
    character, or a value with a control character (where ``str.strip`` and
    ``bytes.strip`` differ)."""
    if not block.isascii():
        return None
    text = block.decode("ascii")
    if not text.startswith(_PLAIN_START):
        return None
    headers = {}
    for line in text[len(_PLAIN_START):].split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name or not name.isprintable() or not value.isprintable():
            return None
        headers[name] = value.strip()
    return headers


def layout_parse(*layouts: Sequence[str]) -> Callable[[bytes], dict[str, str] | None]:
    """A parse of plain header blocks that gives what :func:`parse_plain_headers`
    gives, quicker for a block holding exactly the names of one of
    ``layouts``, in that order, each once with a value of visible ASCII
    without spaces (``Name: value``, as nats-py writes a header): one
    pattern matches the whole block.  Any other block goes to
    :func:`parse_plain_headers`."""
    for names in layouts:
        if not names or len(set(names)) != len(names) or not all(_PLAIN_NAME.fullmatch(n) for n in names):
            raise ValueError(f"a layout names at least one header, each once, of visible ASCII but ':': {names!r}")
    compiled = [
        (tuple(names), re.compile(
            re.escape(_PLAIN_START) + "".join(f"{re.escape(n)}: ([!-~]+)\r\n" for n in names) + "\r\n"))
        for names in layouts
    ]

    def parse(block: bytes) -> dict[str, str] | None:
        if block.isascii():
            text = block.decode("ascii")
            for names, pattern in compiled:
                match = pattern.fullmatch(text)
                if match is not None:
                    return dict(zip(names, match.groups()))
        return parse_plain_headers(block)

    return parse


def use_fast_header_parse(nc: NatsClient) -> bool:
    """Make ``nc`` parse plain header blocks with :func:`parse_plain_headers`
    (nats-py calls ``Client._process_headers`` for every message); True when
    it does.  Nothing changes with a nats-py that has no such method, or that
    parses headers another way (with ``fast_mail_parser`` installed, or
    before its own ``_parse_header_lines``): then False, and
    tests/integration/nats/test_private_api.py fails."""
    original: Callable[[Any], Awaitable[dict[str, str] | None]] | None = getattr(nc, "_process_headers", None)
    if original is None or not hasattr(NatsClient, "_parse_header_lines"):
        return False  # pragma: no cover - a nats-py that parses otherwise
    if getattr(nats_client, "parse_email", None) is not None:
        return False  # nats-py parses with fast_mail_parser, whose results may differ in odd cases

    async def process_headers(block: Any) -> dict[str, str] | None:
        if block:
            parsed = parse_plain_headers(bytes(block))
            if parsed is not None:
                return parsed or None
        return await original(block)

    nc._process_headers = process_headers  # type: ignore[method-assign]
    return True
