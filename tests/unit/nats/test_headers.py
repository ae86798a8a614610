"""The fast parse of plain NATS header blocks gives what nats-py's own parse gives."""

from __future__ import annotations

import random
import string

import pytest
from nats.aio.client import Client as NatsClient

from lrs.event_contract import (
    EVENT_TYPE_HEADER,
    HASH_HEADER,
    MSG_ID_HEADER,
    POSITION_HEADER,
    STORED_HEADER,
    TENANT_HEADER,
)
from lrs.nats.headers import parse_plain_headers, use_fast_header_parse

RELAY_BLOCK = (
    f"NATS/1.0\r\n{MSG_ID_HEADER}: 6f1c1e9e-5d7b-4c55-9d3c-1c2f3b4a5d6e\r\n{POSITION_HEADER}: 123456\r\n"
    f"{TENANT_HEADER}: default\r\n{EVENT_TYPE_HEADER}: statement\r\n"
    f"{STORED_HEADER}: 2026-11-22T03:11:10.287760Z\r\n{HASH_HEADER}: {'ab' * 32}\r\n\r\n"
).encode()

ODD_BLOCKS = [
    b"NATS/1.0 404 No Messages\r\n\r\n",  # the end of a pull request
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1016\r\nNats-Last-Stream: 1024\r\n\r\n",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0\r\nName:Value\r\n\r\n",
    b"NATS/1.0\r\nName:\tValue\t\r\n\r\n",
    b"NATS/1.0\r\n  Padded : value\r\n\r\n",
    b"NATS/1.0\r\nNo colon here\r\nKey: v\r\n\r\n",
    b"NATS/1.0\r\nBad Name: v\r\n\r\n",
    b"NATS/1.0\r\n: empty name\r\n\r\n",
    b"NATS/1.0\r\nKey: caf\xc3\xa9\r\n\r\n",
    b"NATS/1.0\r\nKey: a\x1fb\x1f\r\n\r\n",
    b"NATS/1.0\r\nK\x01ey: v\r\n\r\n",
    b"NATS/1.0\r\nKey: a: b: c\r\nKey: again\r\n\r\n",
]


async def nats_py(block: bytes) -> dict[str, str] | None:
    return await NatsClient()._process_headers(block)


async def fast(block: bytes) -> dict[str, str] | None:
    client = NatsClient()
    use_fast_header_parse(client)
    return await client._process_headers(block)


async def test_the_relays_headers_parse_the_same_and_by_the_fast_path() -> None:
    assert parse_plain_headers(RELAY_BLOCK) is not None
    assert await fast(RELAY_BLOCK) == await nats_py(RELAY_BLOCK)
    assert (await fast(RELAY_BLOCK))[POSITION_HEADER] == "123456"


@pytest.mark.parametrize("block", ODD_BLOCKS)
async def test_other_blocks_parse_as_nats_py_parses_them(block: bytes) -> None:
    assert await fast(block) == await nats_py(block)


async def test_status_blocks_are_left_to_nats_py() -> None:
    for block in ODD_BLOCKS[:3]:
        assert parse_plain_headers(block) is None
        assert (await fast(block))["Status"] == block[9:12].decode()


async def test_random_blocks_parse_as_nats_py_parses_them() -> None:
    rng = random.Random(3)
    alphabet = string.ascii_letters + string.digits + " \t:-_.é\x01\x1f"
    plain = 0
    for _ in range(2000):
        lines = [
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
            + rng.choice([": ", ":", " : ", ""])
            + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
            for _ in range(rng.randrange(0, 5))
        ]
        block = ("NATS/1.0\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode()
        assert await fast(block) == await nats_py(block), block
        plain += parse_plain_headers(block) is not None
    assert 200 < plain < 1800  # both paths taken often