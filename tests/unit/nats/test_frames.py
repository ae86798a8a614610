"""hpub_frame must write exactly what nats-py's own publish writes."""

from __future__ import annotations

import nats.errors
import pytest
from nats.aio.client import Client

from lrs.nats.bus import hpub_frame
from lrs.event_contract import OutgoingMessage


async def _nats_py_frame(message: OutgoingMessage) -> bytes:
    client = Client()
    sent: list[bytes] = []

    async def capture(command: bytes, priority: bool = False) -> None:
        sent.append(command)

    client._send_command = capture  # type: ignore[method-assign]
    await client._send_publish(message.subject, "", message.data, len(message.data), dict(message.headers))
    assert len(sent) == 1
    return sent[0]


@pytest.mark.parametrize(
    "message",
    [
        OutgoingMessage("lrs.events.default.statement", b'{"id":"x"}', {"Nats-Msg-Id": "abc", "Lrs-Position": "7"}),
        OutgoingMessage("lrs.events.t%2E1.statement", b"", {"Lrs-Tenant": " a\r\nb ", " Lrs-Hash ": "00ff"}),
        OutgoingMessage("s", "é".encode(), {"Lrs-Tenant": "tenant é"}),
        OutgoingMessage("s", b"data", {}),
        OutgoingMessage("s", b"data", {"  ": "skipped", "K": "v"}),
    ],
)
async def test_frames_match_nats_py(message: OutgoingMessage) -> None:
    assert hpub_frame(message) == await _nats_py_frame(message)


def test_an_invalid_header_name_is_refused() -> None:
    with pytest.raises(nats.errors.BadHeaderError):
        hpub_frame(OutgoingMessage("s", b"", {"bad key": "v"}))
