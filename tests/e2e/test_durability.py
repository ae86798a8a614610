"""Failure injection through the real service: kill -9 and a NATS outage.

A 200 means the statement is durably committed: after the service is killed
mid-stream and restarted, every statement that got a 200 is in the log and on
JetStream exactly once.  While NATS is down, ingest keeps answering 200 and
the backlog reaches JetStream after NATS returns.
"""

from __future__ import annotations

import asyncio
import collections
import inspect

import pytest

from lrs.eventlog import verify_chain
from lrs.nats.bus import Bus
from tests.e2e.history import assert_exactly_once as _assert_exactly_once
from tests.e2e.history import log_rows as _log_rows
from tests.e2e.history import post_loop as _post_loop
from tests.e2e.jetstream import wait_for_stream

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_kill_9_mid_stream_loses_no_acknowledged_statement(service_factory, nats_control, database_url, workers):
    # With 2 workers the supervisor, both workers and the relay process die together.
    service = service_factory(nats_control.url, LRS_HTTP_WORKERS=workers, LRS_PROJECTIONS_ENABLED="false")
    await service.start()
    acked: list[str] = []
    errors: list[str] = []
    stop = asyncio.Event()
    writers = [asyncio.create_task(_post_loop(service.base_url, acked, errors, stop)) for _ in range(8)]
    # Let the stream run, then kill without warning while requests are in flight.
    while len(acked) < 2000:
        await asyncio.sleep(0.05)
    service.kill()
    await service.wait()
    stop.set()
    await asyncio.gather(*writers)
    assert acked, "no statement was acknowledged before the kill"

    await service.start()  # same database, NATS and port
    rows = await _log_rows(database_url)
    assert verify_chain(rows) is None
    streamed = await wait_for_stream(nats_control.url, len(rows))
    _assert_exactly_once(acked, rows, streamed)
    await service.stop()


# Longer than the relay's JetStream ack timeout (lrs/nats/bus.py): in its last
# LATE_S seconds the publishes in flight when NATS went have timed out and the
# relay is retrying, so ingest is shown to keep going past that point too.
LATE_S = 2.0
OUTAGE_S = inspect.signature(Bus).parameters["ack_timeout"].default + LATE_S


async def _acked_at_least(acked: list[str], count: int, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(acked) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(acked)} of {count} statements acknowledged"
        await asyncio.sleep(0.05)


async def test_ingest_keeps_answering_while_nats_is_down(service_factory, nats_control, database_url):
    service = service_factory(nats_control.url)
    await service.start()
    acked: list[str] = []
    errors: list[str] = []
    stop = asyncio.Event()
    writers = [asyncio.create_task(_post_loop(service.base_url, acked, errors, stop, batch=5)) for _ in range(4)]
    await _acked_at_least(acked, 100)  # the stream runs (and the relay publishes) before the outage
    await nats_control.stop()
    during_outage_start = len(acked)
    await asyncio.sleep(OUTAGE_S - LATE_S)
    late_start = len(acked)
    await asyncio.sleep(LATE_S)
    during_outage, late = len(acked) - during_outage_start, len(acked) - late_start
    await nats_control.start()
    await _acked_at_least(acked, len(acked) + 100)  # and keeps running once NATS is back
    stop.set()
    await asyncio.gather(*writers)

    assert errors == [], errors[:5]
    assert during_outage > 100, "ingest stalled while NATS was down"
    assert late > 0, "ingest stalled once the relay's publishes had timed out"
    rows = await _log_rows(database_url)
    streamed = await wait_for_stream(nats_control.url, len(rows))
    _assert_exactly_once(acked, rows, streamed)
    await service.stop()


async def test_sigterm_mid_stream_answers_200_only_for_committed(service_factory, nats_control, database_url):
    service = service_factory(nats_control.url)
    await service.start()
    acked: list[str] = []
    errors: list[str] = []
    stop = asyncio.Event()
    writers = [asyncio.create_task(_post_loop(service.base_url, acked, errors, stop)) for _ in range(8)]
    while len(acked) < 1000:
        await asyncio.sleep(0.05)
    exit_code = await service.stop()  # SIGTERM while requests are in flight
    stop.set()
    await asyncio.gather(*writers)
    assert exit_code == 0
    rows = await _log_rows(database_url)
    logged = collections.Counter(str(row.statement_id) for row in rows)
    assert all(logged[sid] == 1 for sid in acked)
    # Whatever was refused during shutdown was refused with 503 or a closed connection, never a 5xx crash.
    assert all(e.split(":")[0] in {"503", "ClientConnectorError", "ServerDisconnectedError",
                                    "ClientOSError"} for e in errors), set(errors)
