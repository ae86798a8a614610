"""The young generation's threshold lies above what a worker's requests in
flight allocate, sealed or clear (docs/privacy.md, "Where sealing's cost goes
in the whole service (branch seal-gap)").

The threshold counts objects of collected types allocated less those freed.
Requests waiting for their group commit hold theirs, so while the requests
in flight hold fewer than the threshold a young collection is rare; once they
hold about as many, collections run every few requests, each visiting every
object in flight.  At 20,000, 16 clients at batch 100 on two workers held
about that many clear and more sealed: the sealed workers collected 17 times
in a run where the clear ones collected once or twice.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import uuid

import msgspec

from lrs.batching import statement_form
from lrs.commands.common import SERVICE_GC_THRESHOLDS
from lrs.ingest.prepare import prepare_statements
from lrs.privacy import statement_agents
from lrs.privacy.data_key import new_data_key_cipher
from lrs.privacy.master import MasterKey
from lrs.store.group_columns import array_literal
from lrs.store.learner_keys import LearnerKeys

TENANT = "default"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://127.0.0.1:8080", "name": "client"}}
BATCH = 100
IN_FLIGHT = 16  # requests a worker holds while its group commit runs: every client of a 16-client run


def _body(batch: int) -> bytes:
    statements = [
        {
            "id": str(uuid.uuid4()),
            "actor": {"objectType": "Agent", "name": f"Learner {n}", "mbox": f"mailto:learner{n}@agency.example.gov"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en-US": "passed"}},
            "object": {"objectType": "Activity", "id": f"https://mooc.example.gov/courses/digcomp/unit-{n % 40}",
                       "definition": {"name": {"en-US": f"Unit {n % 40}"},
                                      "type": "http://adlnet.gov/expapi/activities/lesson"}},
            "result": {"score": {"scaled": 0.5, "raw": 50, "min": 0, "max": 100}, "success": True,
                       "completion": True, "duration": "PT5M"},
            "context": {"registration": str(uuid.uuid4()), "platform": "test", "language": "vi-VN",
                        "contextActivities": {"parent": [{"id": "https://mooc.example.gov/courses/digcomp"}]}},
            "timestamp": "2026-11-01T08:00:00Z",
        }
        for n in range(batch)
    ]
    return msgspec.json.encode(statements)


async def _held_in_flight(sealing: bool) -> int:
    """What ``IN_FLIGHT`` requests of ``BATCH`` Statements add to the young
    generation's count while they wait: decoded, sealed (every learner's key
    and sealed form known), prepared with their stored forms."""
    body = _body(BATCH)
    keyring = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=10 * BATCH)  # type: ignore[arg-type]
    first = msgspec.json.decode(body)
    idents = statement_agents.identities({"actor": AUTHORITY})
    for one in first:
        idents |= statement_agents.identities(one)
    for ident in idents:
        keyring._remember(TENANT, keyring.pseudonym(TENANT, ident), 1,
                          new_data_key_cipher(secrets.token_bytes(32)), keyring._version)
    keyring.stored(await keyring.seal_statements(TENANT, first, AUTHORITY))

    async def request() -> list:
        statements = msgspec.json.decode(body)
        held: list = [statements]
        bodies, authority = statements, AUTHORITY
        if sealing:
            sealed = await keyring.seal_statements(TENANT, statements, AUTHORITY)
            held.append(sealed)
            bodies, authority = sealed.statements, sealed.authority
        prepared = prepare_statements(bodies, version="1.0.3", authority=authority, new_id=uuid.uuid4)
        held.append([statement_form(p, array_literal) for p in prepared])
        return held

    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        held = [await request() for _ in range(IN_FLIGHT)]
        counted = gc.get_count()[0] - before
        del held
    finally:
        gc.enable()
    return counted


def test_requests_in_flight_stay_below_the_young_threshold_sealed_and_clear() -> None:
    clear = asyncio.run(_held_in_flight(sealing=False))
    sealed = asyncio.run(_held_in_flight(sealing=True))
    assert sealed > clear > IN_FLIGHT * BATCH * 10  # the count is of these requests' objects
    # room for the group commit's own objects (a group of up to 400 Statements) as well
    assert 2 * sealed < SERVICE_GC_THRESHOLDS[0], (sealed, SERVICE_GC_THRESHOLDS)
