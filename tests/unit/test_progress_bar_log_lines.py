"""A log line written while a command's progress bar is on a terminal goes
above the bar on a line of its own, not into the bar's line
(lrs.commands.common.progress_bar, lrs.logs.lines_written_by)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from typing import Iterator

import pytest
import structlog

from lrs import logs
from lrs.commands.common import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def _logging_to(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # In the test's body: pytest's capture sets sys.stderr again between a fixture and the test.
    saved = (structlog.get_config(), logging.getLogger().handlers[:], logging.getLogger().level)
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure_logging("info", stream)
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield
    finally:
        config, handlers, level = saved
        structlog.reset_defaults()
        structlog.configure(**config)
        root = logging.getLogger()
        root.handlers[:], root.level = handlers, level


def _shown(output: str, event: str) -> str:
    (line,) = [line for line in output.split("\n") if event in line]
    return line.rsplit("\r", 1)[-1]  # what a terminal shows: the text after the last carriage return


def test_a_log_line_during_a_progress_bar_is_a_line_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    with _logging_to(terminal, monkeypatch):
        with progress_bar("event", "replay competency") as progress:
            progress(1, 10)
            structlog.get_logger("test").info("projection.replayed", position=1)
            logging.getLogger("asyncpg").warning("a library's line")
            progress(10, 10)
        structlog.get_logger("test").info("after.the.bar")  # the stream is given back
    output = terminal.getvalue()
    assert "replay competency: 100%" in output  # the bar was drawn
    assert _shown(output, "projection.replayed").startswith('{"'), output
    assert _shown(output, "a library's line").startswith('{"'), output
    assert output.endswith("\n") and output.rsplit("\n", 2)[-2].startswith('{"event":"after.the.bar"'), output


def test_off_a_terminal_there_is_no_bar_and_lines_are_as_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    with _logging_to(stream, monkeypatch):
        with progress_bar("event", "replay competency") as progress:
            progress(1, 10)
            structlog.get_logger("test").info("projection.replayed", position=1)
    assert stream.getvalue().startswith('{"') and stream.getvalue().count("\n") == 1, stream.getvalue()
