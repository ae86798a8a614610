"""A learner erased after ``lrs forward`` sent their statements: sent again
(another forwarder, a replay), they go in the erased form, which the target
refuses (409: it holds the earlier form under the same id).  The parked
statement says so in one line, for the operator to erase the learner at the
target too."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import nats
import pytest

from connectors.fakelrs import FakeLrs
from connectors.forward.deadletters import dead_letters
from connectors.forward.forwarder import Forwarder
from connectors.forward.logcheck import LogCheck
from connectors.forward.model import ForwardFilter
from connectors.forward.run import ForwardOptions
from connectors.framework.sink import LrsSink
from lrs.privacy.master import load_or_create
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.statement_opener import StoredStatementOpener
from tests.integration.test_sealed_every_place import _append

pytestmark = pytest.mark.slow

PASSED = {"id": "http://adlnet.gov/expapi/verbs/passed"}


def _statement(mbox: str, unit: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": mbox}, "verb": PASSED,
            "object": {"objectType": "Activity", "id": f"https://mooc.example.gov.vn/units/{unit}"}}


async def test_a_statement_refused_after_its_learners_erasure_is_parked_saying_so(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str, tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "privacy-key"
    keys = LearnerKeys(pool, load_or_create(key_file))
    await keys.load_epoch()
    gone, kept = _statement("mailto:gone@example.gov.vn", 1), _statement("mailto:kept@example.gov.vn", 2)
    await _append(writer, keys, "default", [gone, kept])
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        async with (LrsSink(target.url, "target", "target-secret") as sink, LogCheck(database_url) as log_check):
            async def forward(name: str) -> Any:
                await relay.run(until_caught_up=True)
                forwarder = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                      ForwardOptions(name=name, until_caught_up=True, fetch_timeout=0.2), log_check,
                                      open_stored=StoredStatementOpener(log_check.pool, lambda: key_file))
                return await asyncio.wait_for(forwarder.run(), 60)

            assert (await forward("first")).forwarded == 2
            assert target.statements[gone["id"]]["actor"]["mbox"] == "mailto:gone@example.gov.vn"
            await erase_learner(pool, LearnerKeys(pool, load_or_create(key_file)), "default",
                                {"mbox": "mailto:gone@example.gov.vn"}, reason="request 7", by="test")
            capsys.readouterr()
            stats = await forward("second")  # the same statements again, to the same target
    finally:
        await relay.stop()
        await target.close()
    assert (stats.forwarded, stats.parked) == (1, 1)
    nc = await nats.connect(nats_control.url)
    try:
        [letter] = [letter async for letter in dead_letters(nc.jetstream(), "second")]
    finally:
        await nc.close()
    assert (letter.statement_id, letter.status) == (gone["id"], 409)
    assert "erased" in letter.error and "target" in letter.error, letter.error
    [parked] = [line for line in capsys.readouterr().err.splitlines() if "parked statement" in line]
    assert "erased" in parked, parked
