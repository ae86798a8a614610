"""Round trips with the Node xAPI libraries, run by the machine's Node against the LRS on a real port:
``@xapi/xapi``, TinCanJS (``tincanjs``) and ADL's xAPI Wrapper for Node (``adl-xapiwrapper``).
Each script exits non-zero on its first failed assertion and prints a JSON summary last."""

from __future__ import annotations

import json

import pytest

from tests.clients.conftest import run
from tests.e2e.conftest import KEY, SECRET


async def round_trip(node: str, client, script: str) -> dict:
    endpoint = str(client.make_url("/xapi/"))
    code, out, err = await run(node, script, endpoint, KEY, SECRET, timeout=120)
    assert code == 0, f"{script} failed:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


async def test_xapi_js_sends_reads_pages_and_voids(client, node_clients):
    summary = await round_trip(node_clients, client, "roundtrip.js")
    assert summary["stored"] == 5 and summary["seen"] == 5 and summary["pages"] == 3


async def test_tincanjs_statements_documents_and_activities(client, node_clients):
    summary = await round_trip(node_clients, client, "tincanjs_roundtrip.js")
    assert summary == {"stored": 4, "seen": 4, "pages": 2}


async def test_adl_xapiwrapper_statements_documents_activities_and_agents(client, node_clients):
    summary = await round_trip(node_clients, client, "xapiwrapper_roundtrip.js")
    assert summary == {"stored": 3, "seen": 3, "pages": 2}


@pytest.mark.parametrize("script", ["roundtrip.js", "tincanjs_roundtrip.js", "xapiwrapper_roundtrip.js"])
async def test_a_wrong_secret_fails_each_script(client, node_clients, script):
    endpoint = str(client.make_url("/xapi/"))
    code, _, err = await run(node_clients, script, endpoint, KEY, "wrong-secret", timeout=120)
    assert code != 0 and ("401" in err or "authentication" in err.lower()), err[-2000:]
