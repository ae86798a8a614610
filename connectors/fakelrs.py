"""A tiny in-memory xAPI LRS for exercising connectors (tests, dry runs).

It is not the LRS: it checks just enough (Basic auth, the version header, ids,
409 on the same id with other content) and can be scripted to misbehave:
answer given statuses first (``script`` for POSTs, ``get_script`` for
statement GETs), refuse chosen statement ids with a
400 (``reject_ids``) or fail batches holding chosen ids with a 500
(``fail_ids``), delay every POST (``post_delay``), or expire ``more``
links.  Statements are served back by GET oldest first with ``more`` paging.

tests/e2e/test_fakelrs_contract.py runs the behaviour the connectors' tests
take from it against this fake and against the real service alike.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass
class Scripted:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


class FakeLrs:
    def __init__(self, key: str = "key", secret: str = "secret") -> None:
        self.key = key
        self.secret = secret
        self.statements: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, str] = {}
        self.script: list[Scripted] = []
        self.get_script: list[Scripted] = []
        self.reject_ids: dict[str, str] = {}
        self.fail_ids: set[str] = set()
        self.name_path_in_errors = True
        self.post_delay = 0.0
        self.expired_more: set[str] = set()  # more tokens answered with 400
        self.page_size = 100
        self.posts: list[int] = []  # batch sizes of every POST that reached the handler
        self.received: Counter[str] = Counter()  # statement id -> how many POSTs carried it
        self.post_versions: list[str] = []  # their X-Experience-API-Version headers
        self.gets: list[str] = []
        self.get_versions: list[str] = []  # the X-Experience-API-Version of every statements GET
        self.about_versions: list[str] | None = ["1.0.3"]  # None: no About resource (404)
        self.post_received = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/xapi/statements", self._post)
        app.router.add_get("/xapi/statements", self._get)
        app.router.add_get("/xapi/about", self._about)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ---------------------------------------------------------------------

    def _check(self, request: web.Request) -> web.Response | None:
        expected = "Basic " + base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "bad credentials"}, status=401)
        if not request.headers.get("X-Experience-API-Version", "").startswith(("1.0", "2.0")):
            return web.json_response({"message": "missing X-Experience-API-Version"}, status=400)
        return None

    async def _post(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        body = await request.json()
        statements = body if isinstance(body, list) else [body]
        self.posts.append(len(statements))
        self.received.update(s.get("id") for s in statements if isinstance(s, dict) and isinstance(s.get("id"), str))
        self.post_versions.append(request.headers["X-Experience-API-Version"])
        self.post_received.set()
        if self.post_delay:
            await asyncio.sleep(self.post_delay)
        if self.script:
            scripted = self.script.pop(0)
            return web.Response(status=scripted.status, headers=scripted.headers, text=scripted.body)
        if any(statement.get("id") in self.fail_ids for statement in statements):
            return web.json_response({"message": "internal error"}, status=500)
        seen: set[str] = set()
        for index, statement in enumerate(statements):
            sid = statement.get("id")
            if not isinstance(sid, str):
                return self._error(400, "statement without id", index)
            if sid in self.reject_ids:
                return self._error(400, self.reject_ids[sid], index)
            if sid in seen:
                return self._error(400, f"duplicate statement id {sid}", index)
            seen.add(sid)
            if sid in self.statements and self.statements[sid] != statement:
                return web.json_response(
                    {"message": f"statement {sid} already exists with different content"}, status=409
                )
        for statement in statements:
            sid = statement["id"]
            if sid not in self.statements:
                self.statements[sid] = statement
                self.stored[sid] = (_EPOCH + timedelta(milliseconds=len(self.stored))).isoformat()
        return web.json_response([s["id"] for s in statements])

    def _error(self, status: int, message: str, index: int) -> web.Response:
        if self.name_path_in_errors:
            message = f"{message} (at $[{index}])"
        return web.json_response({"message": message}, status=status)

    async def _about(self, request: web.Request) -> web.Response:
        if self.about_versions is None:
            return web.json_response({"message": "no about resource"}, status=404)
        return web.json_response({"version": self.about_versions})

    async def _get(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        self.gets.append(str(request.rel_url))
        self.get_versions.append(request.headers["X-Experience-API-Version"])
        if self.get_script:
            scripted = self.get_script.pop(0)
            return web.Response(status=scripted.status, headers=scripted.headers, text=scripted.body)
        ordered = sorted(self.statements, key=lambda sid: self.stored[sid])
        more = request.query.get("more")
        if more is not None:
            if more in self.expired_more:
                return web.json_response({"message": "more link expired"}, status=400)
            start = int(more)
        else:
            since = request.query.get("since")
            start = 0
            if since:
                after = datetime.fromisoformat(since)
                start = sum(1 for sid in ordered if datetime.fromisoformat(self.stored[sid]) <= after)
        limit = min(int(request.query.get("limit", self.page_size)), self.page_size)
        page_ids = ordered[start : start + limit]
        next_start = start + len(page_ids)
        page = [dict(self.statements[sid], stored=self.stored[sid]) for sid in page_ids]
        more_link = f"/xapi/statements?more={next_start}" if next_start < len(ordered) else ""
        return web.Response(
            text=json.dumps({"statements": page, "more": more_link}),
            content_type="application/json",
        )
