"""The request log line never holds a learner's identifier from the path.

Learner pages and the competency API name the learner in the path
(``/competency/learners/mbox:mailto:...``); a log line is kept apart from the
store, where an erasure (docs/privacy.md) cannot reach it.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from lrs.http.middleware import request_context

LEARNER = "mbox:mailto:lan@example.org"
SHORT = "l"  # a value that also occurs elsewhere in the path


async def _logged(prefix: str, path: str) -> list[dict]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    sub = web.Application()
    sub.router.add_get("/learners/{learner}", ok)
    sub.router.add_get("/learners/{learner}/trail", ok)
    sub.router.add_get("/units/{unit}/summary", ok)
    app = web.Application(middlewares=[request_context])
    app.add_subapp(prefix, sub)
    async with TestClient(TestServer(app)) as client:
        with capture_logs() as logs:
            response = await client.get(prefix + path)
            assert response.status == 200
    return [entry for entry in logs if entry.get("event") == "request"]


async def test_a_learner_in_the_path_is_not_logged() -> None:
    for prefix in ("/competency", "/console"):
        for path in (f"/learners/{LEARNER}", f"/learners/{LEARNER}/trail"):
            [line] = await _logged(prefix, path)
            assert "lan@example.org" not in repr(line)
            assert line["path"] == prefix + path.replace(LEARNER, "{learner}")
    [line] = await _logged("/competency", f"/learners/{SHORT}/trail")
    assert line["path"] == "/competency/learners/{learner}/trail"


async def test_other_paths_are_logged_as_they_are() -> None:
    [line] = await _logged("/competency", "/units/class-10a/summary")
    assert line["path"] == "/competency/units/class-10a/summary"
