"""The per-request line: the same JSON as structlog wrote it, written once per
turn of the event loop, in order with every other line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import datetime, timedelta, timezone

import structlog
from structlog.testing import capture_logs

from lrs import logs

FIELDS = {"method": "POST", "path": "/xapi/statements", "status": 200, "duration_ms": 1.5,
          "credential": "k", "tenant": "default", "statements": 1}


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _configured(level: str = "info") -> tuple[CountingStream, object]:
    stream = CountingStream()
    saved = (structlog.get_config(), logging.getLogger().handlers[:], logging.getLogger().level)
    logs.configure_logging(level, stream)
    structlog.configure(cache_logger_on_first_use=False)  # module loggers stay free for other tests' capture_logs
    return stream, saved


def _restore(saved) -> None:
    config, handlers, level = saved
    structlog.reset_defaults()
    structlog.configure(**config)
    root = logging.getLogger()
    root.handlers[:], root.level = handlers, level


async def test_request_lines_of_one_turn_are_one_write_and_keep_their_order() -> None:
    stream, saved = _configured()
    try:
        logs.bind_request_context(request_id="r1")
        for status in (200, 201, 202):
            logs.log_request({**FIELDS, "status": status})
        assert stream.getvalue() == ""  # not before the turn ends
        await asyncio.sleep(0)
        assert stream.writes == 1 and len(stream.getvalue().splitlines()) == 3
        logs.log_request(dict(FIELDS))
        structlog.get_logger("other").warning("now")  # written at once, after the request line before it
        assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
            "request", "request", "request", "request", "now"]
        logs.log_request(dict(FIELDS))
        logs.flush_lines()  # as at exit and before a fork
        assert len(stream.getvalue().splitlines()) == 6
    finally:
        _restore(saved)


async def test_the_request_line_is_the_line_structlog_writes() -> None:
    stream, saved = _configured()
    try:
        logs.bind_request_context(request_id="r2")
        structlog.get_logger("lrs.http").info("request", **FIELDS)
        logs.log_request(dict(FIELDS))
        await asyncio.sleep(0)
    finally:
        _restore(saved)
    by_structlog, ours = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(ours) == list(by_structlog)  # the same fields, in the same order
    assert {k: v for k, v in ours.items() if k != "timestamp"} == {
        k: v for k, v in by_structlog.items() if k != "timestamp"}
    assert ours["request_id"] == "r2" and ours["level"] == "info"
    stamp = datetime.fromisoformat(ours["timestamp"].replace("Z", "+00:00"))
    assert abs((stamp - datetime.fromisoformat(by_structlog["timestamp"].replace("Z", "+00:00"))).total_seconds()) < 1


def test_capture_logs_sees_the_request_line_and_warning_writes_none() -> None:
    stream, saved = _configured("warning")
    try:
        logs.log_request(dict(FIELDS))
        logs.flush_lines()
        assert stream.getvalue() == ""
        logs.configure_logging("info", stream)
        with capture_logs() as captured:
            logs.log_request(dict(FIELDS))
        assert [entry["event"] for entry in captured] == ["request"]
        logs.flush_lines()
        assert stream.getvalue() == ""
    finally:
        _restore(saved)


def test_timestamps_read_as_structlogs_iso_utc(monkeypatch) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    stamps = logs._Timestamps()
    for ns in (1_796_000_000_000_000_000, 1_796_000_000_123_456_789, 1_796_000_000_999_999_999,
               1_796_000_001_000_000_500, 1_796_086_399_000_001_000):
        monkeypatch.setattr(logs.time, "time_ns", lambda ns=ns: ns)
        expected = (epoch + timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")
        assert stamps() == expected


async def test_a_library_line_comes_after_the_request_lines_logged_before_it() -> None:
    stream, saved = _configured()
    try:
        logs.log_request(dict(FIELDS))
        logging.getLogger("aiohttp.server").error("Error handling request")  # stdlib logging, as libraries log
        await asyncio.sleep(0)
    finally:
        _restore(saved)
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "request", "Error handling request"]


class WritesStream(io.StringIO):
    """Keeps every write's text: what reaches the file descriptor in one system call."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def write(self, text: str) -> int:
        self.texts.append(text)
        return super().write(text)


async def test_a_turn_of_many_lines_goes_out_in_writes_no_other_process_can_tear() -> None:
    # The workers of `lrs serve` share the supervisor's stderr, often a pipe:
    # a write of up to PIPE_BUF bytes is never interleaved with another
    # process's write (POSIX), a larger one may be, in the middle of a line.
    import select

    stream = WritesStream()
    saved = (structlog.get_config(), logging.getLogger().handlers[:], logging.getLogger().level)
    logs.configure_logging("info", stream)
    structlog.configure(cache_logger_on_first_use=False)
    try:
        for number in range(60):
            logs.log_request({**FIELDS, "path": f"/xapi/statements/{number}", "note": "Nguyễn Văn Ân"})
        await asyncio.sleep(0)
        written = sum(len(text.encode()) for text in stream.texts)
        assert written > 3 * select.PIPE_BUF
        assert all(len(text.encode()) <= select.PIPE_BUF and text.endswith("\n") for text in stream.texts)
        assert len(stream.texts) < 60 // 4  # still several lines a write
        paths = [json.loads(line)["path"] for line in stream.getvalue().splitlines()]
        assert paths == [f"/xapi/statements/{number}" for number in range(60)]
    finally:
        _restore(saved)


class FinalizerStream(io.StringIO):
    """Logs through stdlib logging in the middle of the first write, as a
    finalizer run by the garbage collector there does (asyncio's "Task was
    destroyed but it is pending!")."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = False

    def write(self, text: str) -> int:
        written = super().write(text)
        if not self.logged:
            self.logged = True
            logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        return written


def test_a_line_logged_while_lines_are_being_written_is_written_after_them() -> None:
    import threading

    stream = FinalizerStream()
    saved = (structlog.get_config(), logging.getLogger().handlers[:], logging.getLogger().level)
    logs.configure_logging("info", stream)
    structlog.configure(cache_logger_on_first_use=False)
    try:
        writing = threading.Thread(target=logs.log_request, args=(dict(FIELDS),), daemon=True)  # no loop: at once
        writing.start()
        writing.join(5)
        assert not writing.is_alive(), "the writer waits for itself"
    finally:
        _restore(saved)
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "request", "Task was destroyed but it is pending!"]
