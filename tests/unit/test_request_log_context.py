"""Every line logged while a request is served carries its request id, and
only that request's: the JSON lines as ``configure_logging`` writes them."""

from __future__ import annotations

import io
import json
import logging

import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lrs.http.middleware import request_context
from lrs.logs import configure_logging

log = structlog.get_logger("test")


async def test_lines_logged_during_a_request_carry_its_id_and_no_other() -> None:
    stream = io.StringIO()
    saved, root = structlog.get_config(), logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("info", stream)
    structlog.configure(cache_logger_on_first_use=False)  # module loggers stay free for other tests' capture_logs
    try:
        async def handler(request: web.Request) -> web.Response:
            log.info("inside", note="é")  # a line of the handler's own
            return web.Response(text="ok")

        app = web.Application(middlewares=[request_context])
        app.router.add_get("/", handler)
        async with TestClient(TestServer(app)) as client:  # one connection, kept alive
            for request_id in ("first-id", "second-id"):
                response = await client.get("/", headers={"X-Request-ID": request_id})
                assert response.status == 200
            response = await client.get("/")  # no id given: one is made
            assert response.status == 200
        log.info("outside")
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
        root.handlers[:], root.level = saved_handlers, saved_level
    every_line = [json.loads(line) for line in stream.getvalue().splitlines()]
    # Lines of other tasks still running in this process (the test loop is
    # shared, e.g. a NATS client of an earlier test retrying) may land in the
    # stream too; none of them may carry a request's id.
    ours = {"inside", "request", "outside"}
    assert [line for line in every_line if line["event"] not in ours and line.get("request_id")] == []
    lines = [line for line in every_line if line["event"] in ours]
    by_event = [(line["event"], line.get("request_id")) for line in lines]
    made = by_event[4][1]
    assert by_event[:6] == [
        ("inside", "first-id"), ("request", "first-id"),
        ("inside", "second-id"), ("request", "second-id"),
        ("inside", made), ("request", made),
    ]
    assert made and made not in ("first-id", "second-id")
    assert lines[0]["note"] == "é" and lines[0]["level"] == "info" and lines[0]["timestamp"].endswith("Z")
    # A line logged outside the request's task carries no request id.
    assert ("outside", None) in by_event[6:]
