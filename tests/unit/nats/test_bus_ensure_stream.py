"""ensure_stream asks again when a JetStream API request gets no answer, as a
clustered stream electing its leader drops requests, and only within the
patience it is given (the relay's resync gives none: its own loop retries)."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest
from nats.js import api
from structlog.testing import capture_logs

from lrs.nats import bus as bus_module
from lrs.nats.bus import Bus, load_stream_config


class _JetStream:
    """Answers from a script: an exception to raise or a config to report."""

    def __init__(self, infos: list[object], updates: list[object] | None = None) -> None:
        self.infos = infos
        self.updates = updates or []
        self.calls: list[str] = []
        self.stream: api.StreamConfig | None = None

    async def stream_info(self, name: str) -> api.StreamInfo:
        self.calls.append("info")
        step = self.infos.pop(0)
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, api.StreamConfig)
        return api.StreamInfo(config=step, state=None)  # type: ignore[arg-type]

    async def update_stream(self, config: api.StreamConfig) -> api.StreamInfo:
        self.calls.append("update")
        if self.updates:
            raise self.updates.pop(0)  # type: ignore[misc]
        return api.StreamInfo(config=config, state=None)  # type: ignore[arg-type]

    async def add_stream(self, config: api.StreamConfig) -> api.StreamInfo:
        self.calls.append("add")
        return api.StreamInfo(config=config, state=None)  # type: ignore[arg-type]


def _bus(js: _JetStream, replicas: int = 1) -> Bus:
    bus = Bus("nats://127.0.0.1:1", stream_config=load_stream_config(replicas=replicas))
    bus._js = js  # type: ignore[assignment]
    return bus


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "UNANSWERED_RETRY_S", 0.01)


async def test_unanswered_requests_are_asked_again_within_the_patience() -> None:
    wanted = load_stream_config(replicas=1)
    js = _JetStream([nats.errors.TimeoutError(), nats.js.errors.ServiceUnavailableError(), wanted])
    with capture_logs() as logs:
        info = await _bus(js).ensure_stream(patience_s=30)
    assert info.config.num_replicas == wanted.num_replicas
    assert js.calls == ["info", "info", "info"]
    unanswered = [entry for entry in logs if entry["event"] == "bus.stream_request_unanswered"]
    assert len(unanswered) == 2 and unanswered[0]["stream"] == "LRS_EVENTS"


async def test_an_update_whose_answer_was_lost_is_checked_again_and_not_repeated_once_applied() -> None:
    applied = load_stream_config(replicas=3)
    js = _JetStream([load_stream_config(replicas=1), applied], updates=[nats.errors.TimeoutError()])
    info = await _bus(js, replicas=3).ensure_stream(patience_s=30)
    assert info.config.num_replicas == 3
    assert js.calls == ["info", "update", "info"]


async def test_without_patience_the_first_unanswered_request_is_raised() -> None:
    js = _JetStream([nats.errors.TimeoutError(), load_stream_config()])
    with pytest.raises(nats.errors.TimeoutError):
        await _bus(js).ensure_stream()
    assert js.calls == ["info"]


async def test_patience_runs_out() -> None:
    js = _JetStream([nats.errors.TimeoutError() for _ in range(1000)])
    with pytest.raises(nats.errors.TimeoutError):
        await _bus(js).ensure_stream(patience_s=0.2)
    assert 2 <= len(js.calls) < 1000


async def test_other_errors_are_not_retried() -> None:
    js = _JetStream([nats.js.errors.BadRequestError(), load_stream_config()])
    with pytest.raises(nats.js.errors.BadRequestError):
        await _bus(js).ensure_stream(patience_s=30)
    assert js.calls == ["info"]
