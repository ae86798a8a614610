"""``lrs export`` opens a page of sealed statements at a time, one call of
the opener per tenant and page (each call reads the learners' keys and the
stored ciphertexts from PostgreSQL), and writes the same bytes as opening
them one by one: two tenants interleaved, a learner erased, pages that cut
through both."""

from __future__ import annotations

import argparse
import io
import os
import uuid
from typing import Any

import asyncpg

from lrs.commands.export import _copy
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.log_reader import last_position, read_events_after
from tests.integration.test_sealed_every_place import _append


class CountingKeys:
    """The keys' opener, counting its calls."""

    def __init__(self, keys: LearnerKeys) -> None:
        self.keys = keys
        self.calls = 0

    async def open_payloads(self, tenant: str, payloads: list[bytes]) -> list[bytes]:
        self.calls += 1
        return await self.keys.open_payloads(tenant, payloads)


def _statement(n: int) -> dict[str, Any]:
    actor: dict[str, Any] = {"mbox": f"mailto:learner{n % 4}@example.gov.vn", "name": f"Học viên {n % 4}"}
    if n % 2:
        actor["objectType"] = "Agent"  # the v3 form, its ciphertext kept apart
    return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"objectType": "Activity", "id": f"https://mooc.example.gov.vn/units/{n}"}}


async def test_a_page_is_opened_per_tenant_and_the_bytes_are_those_of_opening_one_by_one(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    keys = LearnerKeys(pool, master)
    await keys.load_epoch()
    for n in range(24):
        await _append(writer, keys, ("default", "other")[n % 3 == 0], [_statement(n)])
    await erase_learner(pool, LearnerKeys(pool, master), "default", {"mbox": "mailto:learner1@example.gov.vn"},
                        reason="request 3", by="test")
    head = await last_position(pool)
    args = argparse.Namespace(tenant=None, page_size=10, no_progress=True)

    one_by_one = LearnerKeys(pool, master)
    expected = b"".join([
        (await one_by_one.open_payloads(event.tenant, [event.payload]))[0] + b"\n"
        for event in await read_events_after(pool, 0, head) if event.event_type == "statement"
    ])
    paged, out = CountingKeys(LearnerKeys(pool, master)), io.BytesIO()
    assert await _copy(pool, out, 1, head, args, paged) == 24
    assert out.getvalue() == expected
    # learner1 erased in "default" (n = 1, 5, 13, 17), still in "other" (n = 9, 21)
    assert expected.count(b"lrs.invalid/erased") == 4 and expected.count(b"learner1@") == 2
    pages = -(-head // args.page_size)
    assert paged.calls <= 2 * pages, paged.calls  # one a tenant a page, not one a statement
