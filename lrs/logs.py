"""Structured JSON logs (structlog), one line per event.

The context of the request being served (its request id) is merged into
every line logged while it is served, from one context variable set per
request (:func:`bind_request_context`).  structlog's own contextvars
processor was used before: it walks every context variable of the task on
every line, and its ``clear_contextvars`` on every request, about half of
the cost of the per-request line.

The per-request lines (:func:`log_request`) are written once per turn of the
event loop, all those of the turn together (:class:`LineWriter`): under
single-statement POSTs a worker answers a group commit's requests in one
turn, and a write system call per line cost more than building the line.
A write holds at most PIPE_BUF bytes, so that the lines of workers sharing a
pipe are never torn.
Every other line, structlog's and stdlib logging's (asyncpg, nats, aiohttp),
is written at once, after the request lines still waiting, so lines keep
their order; what a turn has not written yet is written before
the process exits or forks.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import logging
import os
import select
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, MutableMapping, TextIO

import msgspec
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


_REQUEST_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "lrs_log_request_context", default=None
)


# Whether lines at ``info`` are written, as ``configure_logging`` last set it
# (until then structlog's default writes every level).  Read on every request
# by the request line (lrs.http.middleware), which gathers its fields only then:
# asking the logger itself goes through structlog's lazy proxy, a few
# microseconds a request.
_INFO_WRITTEN = True


def info_written() -> bool:
    """Whether ``configure_logging``'s level writes lines at ``info``."""
    return _INFO_WRITTEN


def bind_request_context(**fields: Any) -> None:
    """Sets the fields every line logged from now on in this task (and the
    tasks it starts) carries, replacing the ones set before."""
    _REQUEST_CONTEXT.set(fields)


def merge_request_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: adds the request's fields (a line's own win)."""
    fields = _REQUEST_CONTEXT.get()
    if fields:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


class _Timestamps:
    """``datetime.now(timezone.utc).isoformat()`` with ``Z`` for ``+00:00``
    (structlog's ``TimeStamper(fmt="iso", utc=True)``), the date and time of
    day formatted once a second: 0.3 instead of 1.3 µs a line."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._text = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        micro = nanoseconds // 1000  # datetime.now rounds down too
        return f"{self._text}.{micro:06d}Z" if micro else f"{self._text}Z"


timestamp = _Timestamps()

_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}


def add_level_and_time(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the request's fields (:func:`merge_request_context`),
    ``level`` and ``timestamp``, as structlog's ``add_log_level`` and
    ``TimeStamper(fmt="iso", utc=True)`` add them, in one call."""
    merge_request_context(_logger, method, event_dict)
    event_dict["level"] = _LEVEL_OF_METHOD.get(method, method)
    event_dict["timestamp"] = timestamp()
    return event_dict


_stack_info = structlog.processors.StackInfoRenderer()


def render_exceptions(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog's ``StackInfoRenderer`` and ``format_exc_info``, asked only
    when the line carries what they render."""
    if "stack_info" in event_dict:
        event_dict = _stack_info(logger, method, event_dict)
    if "exc_info" in event_dict:
        event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
    return event_dict


# The processors and the writer ``configure_logging`` last gave structlog:
# :func:`log_request` runs them itself while they are still structlog's.
_PROCESSORS: list[Any] | None = None
_LINES: LineWriter | None = None
_request_log = structlog.get_logger("lrs.http")


def log_request(fields: dict[str, Any]) -> None:
    """Logs the per-request line at ``info``: ``event`` ``request`` with
    ``fields``, the line ``structlog.get_logger("lrs.http").info("request",
    **fields)`` writes.  While structlog still has the processors
    ``configure_logging`` set (``structlog.testing.capture_logs`` swaps the
    ones in that list, and is honoured), they are run here directly: the
    lazy logger's lookup and its bound logger's dispatch cost 2.7 µs a
    request, twice the processors' own work.  Otherwise through structlog."""
    processors, lines = _PROCESSORS, _LINES
    if processors is None or lines is None or structlog.get_config()["processors"] is not processors:
        _request_log.info("request", **fields)
        return
    if not _INFO_WRITTEN:
        return
    event_dict: Any = fields
    event_dict["event"] = "request"
    try:
        for processor in processors:
            event_dict = processor(lines, "info", event_dict)
    except structlog.DropEvent:
        return
    if isinstance(event_dict, str):
        lines.later(event_dict)


def _unencodable(value: Any) -> Any:
    """What structlog's JSONRenderer writes for a value JSON has no form for."""
    to_log = getattr(value, "__structlog__", None)
    return to_log() if callable(to_log) else repr(value)


_encode_line = msgspec.json.Encoder(enc_hook=_unencodable).encode


def _serialize(event_dict: Any, **_json_dumps_options: Any) -> str:
    # msgspec instead of json.dumps: 7.1 instead of 10.5 µs for the
    # per-request line.  Text is written as UTF-8 rather than \u escapes.
    return _encode_line(event_dict).decode()


def render_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: the line's JSON (``JSONRenderer(serializer=_serialize)``
    without its keyword arguments, which msgspec does not take)."""
    return _encode_line(event_dict).decode()


class LineWriter:
    """structlog's logger (``PrintLogger``'s interface): writes each rendered
    line to ``stream`` at once, after the request lines still waiting.
    :meth:`later` keeps a request line for the end of the event loop's turn
    (a callback of the loop's), where all the lines of the turn are written
    together; with no event loop running in the thread it writes at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._scheduled = False
        # Reentrant: a finalizer the garbage collector runs in the middle of
        # a flush may log (asyncio's "Task was destroyed but it is pending!").
        self._lock = threading.RLock()
        self._flushing = False
        _WRITERS.append(self)

    def msg(self, message: str) -> None:
        with self._lock:
            self._pending.append(message)
            if self._flushing:  # logged during a flush in this thread: that flush writes it next
                return
        self.flush()

    log = debug = info = warn = warning = err = error = critical = exception = failure = fatal = msg

    def later(self, message: str) -> None:
        """Writes ``message`` with the other lines of this turn of the event loop."""
        if self._scheduled:  # a write is due at the end of this turn: no loop lookup (a getpid call)
            self._pending.append(message)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.msg(message)
            return
        with self._lock:
            self._pending.append(message)
            if self._scheduled:
                return
            self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Writes the lines still waiting."""
        with self._lock:
            self._scheduled = False
            if self._flushing:
                return
            self._flushing = True
            try:
                while self._pending:  # and the lines logged while writing
                    lines, self._pending = self._pending, []
                    for text in _whole_writes(lines):
                        self._stream.write(text)
                        self._stream.flush()  # one system call each
            except (OSError, ValueError):  # a closed stream: as print would, nothing more to do
                pass
            finally:
                self._flushing = False


# A write of at most PIPE_BUF bytes to a pipe is never interleaved with another
# process's (POSIX); a larger one may be, in the middle of a line.  The workers
# of `lrs serve` share the supervisor's stderr, often a pipe to a collector.
_WHOLE_WRITE = select.PIPE_BUF


def _whole_writes(lines: list[str]) -> list[str]:
    """``lines`` joined into texts of at most PIPE_BUF bytes each (a longer
    line alone), in order."""
    text = "\n".join(lines) + "\n"
    if len(text) <= _WHOLE_WRITE and (text.isascii() or len(text.encode()) <= _WHOLE_WRITE):
        return [text]  # most turns: isascii and len cost nothing
    texts: list[str] = []
    start, size = 0, 0
    for index, line in enumerate(lines):
        length = (len(line) if line.isascii() else len(line.encode())) + 1
        if size + length > _WHOLE_WRITE and index > start:
            texts.append("\n".join(lines[start:index]) + "\n")
            start, size = index, 0
        size += length
    texts.append("\n".join(lines[start:]) + "\n")
    return texts


_WRITERS: list[LineWriter] = []


class _LibraryLines(logging.Handler):
    """stdlib logging's handler (asyncpg, nats, aiohttp): their lines go through
    the same :class:`LineWriter`, so they too come after the request lines
    logged before them."""

    def __init__(self, lines: LineWriter) -> None:
        super().__init__()
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.msg(self.format(record))
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as logging.StreamHandler: reported, never raised
            self.handleError(record)


def flush_lines() -> None:
    """Writes every line logged but not written yet (at exit, before a fork)."""
    for writer in list(_WRITERS):
        writer.flush()


atexit.register(flush_lines)


@contextlib.contextmanager
def lines_written_by(write: Callable[[str], None]) -> Iterator[None]:
    """Log lines go to ``write`` instead of their stream meanwhile (a
    progress bar's writer, which clears the bar, writes the line and draws
    the bar again below it)."""

    class Through:
        def write(self, text: str) -> None:
            write(text)

        def flush(self) -> None:
            pass

    flush_lines()
    streams = [(writer, writer._stream) for writer in _WRITERS]
    for writer, _ in streams:
        writer._stream = Through()
    try:
        yield
    finally:
        flush_lines()
        for writer, stream in streams:
            writer._stream = stream
os.register_at_fork(before=flush_lines)


def configure_logging(level: str = "info", stream=None) -> None:
    """Route structlog and stdlib logging to JSON lines on ``stream`` (stderr)."""
    global _INFO_WRITTEN
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    _INFO_WRITTEN = numeric <= logging.INFO
    global _PROCESSORS, _LINES
    flush_lines()
    _WRITERS.clear()
    lines = LineWriter(stream or sys.stderr)
    processors: list[Any] = [add_level_and_time, render_exceptions, render_line]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_args: lines,
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (asyncpg, nats, aiohttp) join the same stream.
    handler = _LibraryLines(lines)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(serializer=_serialize),
            foreign_pre_chain=[add_level_and_time, structlog.stdlib.add_logger_name],
        )
    )
    _PROCESSORS, _LINES = processors, lines
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric > logging.DEBUG else numeric)
    # aiohttp's access log would duplicate our one line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
