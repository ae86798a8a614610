"""A bounded schemathesis run against /xapi/openapi.json: no server error, and
every response as the document describes it.

The service runs as ``lrs serve`` in a child process; schemathesis (its CLI,
the way an outside team would run it) generates requests from the served
OpenAPI document, valid and invalid, a bounded number per operation with a
fixed seed (bounded by count, not by time, so that a slow machine runs the
same cases, only later).
Failure-throttling and rate limits are raised so that the run tests the
routes, not the limits (both are tested in test_abuse_api.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.e2e.conftest import KEY, SECRET

MAX_EXAMPLES = 10  # per operation and phase
TIMEOUT_S = 600  # a guard only: the run ends when its cases are done
SEED = 20261206
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


async def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    service_factory, nats_url, tmp_path: Path
):
    service = service_factory(
        nats_url,
        LRS_AUTH_FAILURES_PER_ADDRESS="1000000",
        LRS_AUTH_FAILURES_PER_KEY="1000000",
        LRS_PROJECTIONS_ENABLED="false",
    )
    await service.start()
    schemathesis = Path(sys.executable).with_name("schemathesis")
    process = await asyncio.create_subprocess_exec(
        str(schemathesis), "run", f"{service.base_url}/xapi/openapi.json",
        "--url", service.base_url,
        "--auth", f"{KEY}:{SECRET}",
        "--header", "X-Experience-API-Version: 1.0.3",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "10",
        "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,
    )
    output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    # Drop the warnings that quote whole regular expressions, to keep the failures readable.
    text = "\n".join(line for line in output.decode("utf-8", "replace").splitlines()
                     if "Dropped `" not in line)
    assert process.returncode == 0, text[-12000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", text)
    assert summary is not None and summary.group(1) == summary.group(2), text[-3000:]
    assert int(summary.group(1)) >= 200, summary.group(0)  # the run did reach the routes
    assert "Server error" not in text, text[-3000:]
