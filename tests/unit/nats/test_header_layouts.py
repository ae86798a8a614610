"""The runner's parse of the relay's header blocks by their layout gives what
nats-py's own parse gives, takes the pattern for the relay's frames, and
leaves every other block to the line-by-line parse."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone

from typing import Callable

import pytest
from nats.aio.client import Client as NatsClient

from lrs.event_contract import HEADER_LAYOUTS, HEADERS, PAYLOAD_REFERENCE_HEADER, POSITION_HEADER
from lrs.eventlog import EventRecord, stored_texts_of
from lrs.nats import headers as nats_headers
from lrs.nats.event_frames import EventBatch
from lrs.nats.headers import layout_parse, parse_plain_headers
from projections import jetstream_loop


def relay_blocks(tenants: list[str], inline_max: int = 1000) -> list[bytes]:
    """The header blocks of the relay's own frames (lrs.nats.event_frames)."""
    records, prev = [], b"\x01" * 32
    for i, tenant in enumerate(tenants):
        digest = uuid.uuid4().bytes * 2
        payload = b"x" * (10 if i % 2 == 0 else 2000)  # every second one by reference
        records.append(EventRecord(7 + i, uuid.uuid4(), tenant, "statement", None,
                                   datetime(2026, 3, 1, 12, 0, 59, i, tzinfo=timezone.utc), payload, prev, digest))
        prev = digest
    blocks = []
    for frame in EventBatch(records, stored_texts_of(records), inline_max).frames():
        start = frame.index(b"NATS/1.0\r\n")
        blocks.append(frame[start:frame.index(b"\r\n\r\n", start) + 4])
    return blocks


async def nats_py(block: bytes) -> dict[str, str] | None:
    return await NatsClient()._process_headers(block)


async def as_read(parse: Callable[[bytes], dict[str, str] | None], block: bytes) -> dict[str, str] | None:
    """What the pull consumer makes of ``block`` with ``parse``: its dict, or
    nats-py's when it leaves the block to nats-py (None)."""
    parsed = parse(block)
    assert parsed == parse_plain_headers(block)
    return parsed if parsed is not None else await nats_py(block)


def parsed_without_fallback(block: bytes, monkeypatch: pytest.MonkeyPatch) -> dict[str, str] | None:
    """What the relay's layout parse gives for ``block``; fails if it had to
    fall back on the line-by-line parse."""
    def refuse(_block: bytes) -> None:
        raise AssertionError("the block went to the line-by-line parse")

    with monkeypatch.context() as patch:
        patch.setattr(nats_headers, "parse_plain_headers", refuse)
        return layout_parse(*HEADER_LAYOUTS)(block)


async def test_the_relays_frames_parse_by_their_layout_as_nats_py_parses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = relay_blocks(["default", "t-1", "default", "other_tenant"])
    assert any(PAYLOAD_REFERENCE_HEADER.encode() in b for b in blocks)
    assert any(PAYLOAD_REFERENCE_HEADER.encode() not in b for b in blocks)
    for block in blocks:
        assert parsed_without_fallback(block, monkeypatch) == await nats_py(block)


async def test_the_runner_reads_the_relays_headers_by_their_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    pull = jetstream_loop.relay_consumer(NatsClient(), "projection-test")
    calls = []
    monkeypatch.setattr(nats_headers, "parse_plain_headers", lambda block: calls.append(block))
    (block,) = relay_blocks(["default"])
    assert pull._parse_headers(block) == await nats_py(block)
    assert calls == []


ODD_RELAY_BLOCKS = [
    # a tenant with a space (its value is not one visible word), trailing blanks, a tab, a missing or an
    # extra header, another order, a name in other case, no space after the colon, not ASCII
    lambda b: b.replace(b"Lrs-Tenant: default", b"Lrs-Tenant: a b"),
    lambda b: b.replace(b"Lrs-Tenant: default", b"Lrs-Tenant: default  "),
    lambda b: b.replace(b"Lrs-Tenant: default", b"Lrs-Tenant:  default"),
    lambda b: b.replace(b"Lrs-Tenant: default", b"Lrs-Tenant: def\tault"),
    lambda b: b.replace(b"Lrs-Tenant: default\r\n", b""),
    lambda b: b.replace(b"Lrs-Tenant: default\r\n", b"Lrs-Tenant: default\r\nX-Other: 1\r\n"),
    lambda b: b.replace(b"Lrs-Tenant: default\r\n", b"Lrs-Tenant: default\r\nLrs-Tenant: again\r\n"),
    lambda b: b.replace(b"\r\n\r\n", b"\r\nX-Last: 1\r\n\r\n"),
    lambda b: b.replace(b"Lrs-Tenant", b"lrs-tenant"),
    lambda b: b.replace(b"Lrs-Tenant: ", b"Lrs-Tenant:"),
    lambda b: b.replace(b"Lrs-Tenant: default", b"Lrs-Tenant: d\xc3\xa9fault"),
    lambda b: b.replace(b"NATS/1.0\r\n", b"NATS/1.0 408 Request Timeout\r\n"),
    lambda b: b.replace(b"NATS/1.0", b"NATS/1x0"),
    lambda b: b.replace(b"\r\n\r\n", b"\r\n\r\n\r\n"),
    lambda b: b[:-2],
]


@pytest.mark.parametrize("change", range(len(ODD_RELAY_BLOCKS)))
async def test_other_blocks_parse_as_nats_py_parses_them(change: int) -> None:
    (block,) = relay_blocks(["default"])
    odd = ODD_RELAY_BLOCKS[change](block)
    assert odd != block
    assert layout_parse(*HEADER_LAYOUTS)(odd) == parse_plain_headers(odd)
    assert await as_read(layout_parse(*HEADER_LAYOUTS), odd) == await nats_py(odd)


async def test_random_changes_to_a_relay_block_parse_as_nats_py_parses_them() -> None:
    (block,) = relay_blocks(["default"])
    parse = layout_parse(*HEADER_LAYOUTS)
    rng = random.Random(5)
    alphabet = b" \t:-_.\r\nAZaz09\x01\xc3"
    for _ in range(3000):
        odd = bytearray(block)
        for _ in range(rng.randrange(1, 3)):
            at = rng.randrange(len(odd))
            choice = rng.randrange(3)
            if choice == 0:
                odd[at:at + 1] = b""
            elif choice == 1:
                odd[at:at] = bytes([rng.choice(alphabet)])
            else:
                odd[at] = rng.choice(alphabet)
        assert parse(bytes(odd)) == parse_plain_headers(bytes(odd)), bytes(odd)
        assert await as_read(parse, bytes(odd)) == await nats_py(bytes(odd)), bytes(odd)


def test_a_layout_names_each_header_once_as_a_plain_block_may() -> None:
    for names in [(), ("A", "A"), ("A B",), ("A:B",), ("",), ("é",)]:
        with pytest.raises(ValueError):
            layout_parse(names)
    assert layout_parse(HEADERS)(b"NATS/1.0\r\n" + POSITION_HEADER.encode() + b": 1\r\n\r\n") == {POSITION_HEADER: "1"}
