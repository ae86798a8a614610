"""A page on one loopback origin uses TinCanJS (npm) to send statements and
store state in the LRS on another origin: CORS as browsers enforce it.

The LRS lists only the page's origin in LRS_CORS_ORIGINS; the same page served
from a third origin must be refused by the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from lrs.config import Settings
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>xAPI content</title>
<script src="/tincan.js"></script></head>
<body><p>content</p>
<script>
function call(fn) {
  return new Promise(function (resolve) { fn(function (err, result) { resolve([err, result]); }); });
}
window.runXapi = async function (endpoint, key, secret, runId) {
  try { return await runSteps(endpoint, key, secret, runId); }
  catch (e) { return {thrown: String(e && (e.stack || e.message) || JSON.stringify(e))}; }
};
async function runSteps(endpoint, key, secret, runId) {
  var lrs = new TinCan.LRS({endpoint: endpoint, username: key, password: secret, allowFail: false});
  var actor = new TinCan.Agent({mbox: "mailto:browser-" + runId + "@example.org", name: "Browser Learner"});
  var activity = new TinCan.Activity({id: "http://example.org/browser-course/" + runId});
  var out = {};
  var statement = new TinCan.Statement({actor: actor, verb: {id: "http://adlnet.gov/expapi/verbs/completed"},
                                        target: activity, result: {completion: true}});
  var saved = await call(function (cb) { lrs.saveStatement(statement, {callback: function (e, xhr) { cb(e, xhr && xhr.status); }}); });
  out.saveError = saved[0] ? String(saved[0]) : null;
  out.saveStatus = saved[1];
  out.statementId = statement.id;
  var queried = await call(function (cb) {
    lrs.queryStatements({params: {agent: actor, activity: activity}, callback: function (e, result) { cb(e, result); }});
  });
  out.queryError = queried[0] ? String(queried[0]) : null;
  out.queriedIds = queried[1] ? queried[1].statements.map(function (s) { return s.id; }) : [];
  var put = await call(function (cb) {
    lrs.saveState("bookmark", {page: 7}, {activity: activity, agent: actor, contentType: "application/json",
      callback: function (e, xhr) { cb(e, xhr && xhr.status); }});
  });
  out.stateSaveError = put[0] ? String(put[0]) : null;
  var got = await call(function (cb) {
    lrs.retrieveState("bookmark", {activity: activity, agent: actor, callback: function (e, state) { cb(e, state); }});
  });
  out.stateError = got[0] ? String(got[0]) : null;
  out.state = got[1] ? got[1].contents : null;
  out.etag = got[1] ? got[1].etag : null;
  return out;
}
</script></body></html>
"""


def page_app(tincan_js: Path) -> web.Application:
    app = web.Application()

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(tincan_js)

    app.router.add_get("/", index)
    app.router.add_get("/tincan.js", script)
    return app


async def run_page(browser: Any, page_url: str, endpoint: str, run_id: str) -> dict[str, Any]:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(page_url)
        return await page.evaluate(
            "([endpoint, key, secret, runId]) => window.runXapi(endpoint, key, secret, runId)",
            [endpoint, KEY, SECRET, run_id],
        )
    finally:
        await context.close()


async def test_tincanjs_in_a_page_of_another_origin(browser, node_modules, database_url: str, tmp_path: Path) -> None:
    tincan_js = node_modules / "tincanjs" / "build" / "tincan.js"
    async with TestServer(page_app(tincan_js), host="127.0.0.1") as allowed_page, \
            TestServer(page_app(tincan_js), host="127.0.0.1") as other_page:
        page_origin = str(allowed_page.make_url("/")).rstrip("/")
        settings = Settings(
            database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None,
            relay_enabled=False, projections_enabled=False, bootstrap_credential=f"{KEY}:{SECRET}",
            cors_origins=(page_origin,), console_enabled=False,
        )
        lrs_app = create_app(settings, database_url=database_url, nats_url=None)
        async with TestServer(lrs_app, host="127.0.0.1") as lrs_server:
            endpoint = str(lrs_server.make_url("/xapi/"))
            assert endpoint.split("/xapi/")[0] != page_origin  # two origins (ports differ)

            result = await run_page(browser, page_origin + "/", endpoint, "allowed")
            assert "thrown" not in result, result["thrown"] if "thrown" in result else ""
            assert result["saveError"] is None and result["saveStatus"] in (200, 204), result
            assert result["queryError"] is None, result
            assert result["queriedIds"] == [result["statementId"]]
            assert result["stateSaveError"] is None and result["stateError"] is None, result
            assert result["state"] == '{"page":7}' or result["state"] == {"page": 7}, result
            assert result["etag"], "ETag must be readable by the script (Access-Control-Expose-Headers)"

            refused = await run_page(browser, str(other_page.make_url("/")), endpoint, "refused")
            # TinCanJS reports the blocked request (allowFail: false makes it throw).
            assert refused.get("thrown") or refused.get("saveError"), refused
            async with aiohttp.ClientSession() as session:
                async with session.get(
                    endpoint + "statements",
                    params={"agent": '{"mbox":"mailto:browser-refused@example.org"}'},
                    headers=xapi_headers(),
                ) as response:
                    assert (await response.json())["statements"] == []  # the preflight stopped the POST
