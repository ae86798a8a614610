"""Round trip with ``tincan`` (Rustici's Python xAPI client, from PyPI) against the LRS on a real port.

tincan's RemoteLRS is synchronous (http.client), so it runs in a worker
thread while the test's event loop serves the requests.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tincan import (
    Activity,
    ActivityDefinition,
    Agent,
    Context,
    LanguageMap,
    RemoteLRS,
    Result,
    Score,
    Statement,
    StatementRef,
    Verb,
)

from tests.e2e.conftest import KEY, SECRET

LEARNER = Agent(name="Nguyễn Văn A", mbox="mailto:learner@example.org")
COMPLETED = Verb(id="http://adlnet.gov/expapi/verbs/completed", display=LanguageMap({"en-US": "completed"}))
VOIDED = Verb(id="http://adlnet.gov/expapi/verbs/voided", display=LanguageMap({"en-US": "voided"}))


def lrs_for(client) -> RemoteLRS:
    return RemoteLRS(endpoint=str(client.make_url("/xapi/")), version="1.0.3", username=KEY, password=SECRET)


def course(n: int) -> Activity:
    return Activity(
        id=f"http://example.org/courses/digital-literacy/unit-{n}",
        definition=ActivityDefinition(name=LanguageMap({"en-US": f"Unit {n}", "vi-VN": f"Bài {n}"}),
                                      type="http://adlnet.gov/expapi/activities/lesson"),
    )


def round_trip(lrs: RemoteLRS, registration: str) -> dict:
    # PUT with a client id, then POST without one (the LRS assigns it).
    given = Statement(id=str(uuid.uuid4()), actor=LEARNER, verb=COMPLETED, object=course(1),
                      result=Result(score=Score(scaled=0.9, raw=9, min=0, max=10), success=True, completion=True,
                                    duration="PT12M30S"),
                      context=Context(registration=registration))
    saved = lrs.save_statement(given)
    assert saved.success, saved.data
    assigned = Statement(actor=LEARNER, verb=COMPLETED, object=course(2), context=Context(registration=registration))
    saved = lrs.save_statement(assigned)
    assert saved.success, saved.data
    assert assigned.id is not None

    batch = [Statement(actor=LEARNER, verb=COMPLETED, object=course(n), context=Context(registration=registration))
             for n in range(3, 8)]
    saved = lrs.save_statements(batch)
    assert saved.success, saved.data
    assert all(s.id is not None for s in saved.content)

    fetched = lrs.retrieve_statement(given.id)
    assert fetched.success, fetched.data
    statement = fetched.content
    assert str(statement.id) == str(given.id)
    assert statement.actor.mbox == LEARNER.mbox and statement.actor.name == LEARNER.name
    assert statement.object.definition.name["vi-VN"] == "Bài 1"
    assert statement.result.score.raw == 9 and statement.result.success is True
    assert statement.authority is not None and statement.stored is not None

    # Query with filters, then page through with more.
    query = lrs.query_statements({"agent": LEARNER, "verb": COMPLETED, "registration": registration, "limit": 3})
    assert query.success, query.data
    seen = [str(s.id) for s in query.content.statements]
    more = query.content.more
    pages = 1
    while more:
        page = lrs.more_statements(more)
        assert page.success, page.data
        seen += [str(s.id) for s in page.content.statements]
        more = page.content.more
        pages += 1
    expected = {str(given.id), str(assigned.id), *(str(s.id) for s in saved.content)}
    assert set(seen) == expected and len(seen) == 7 and pages == 3

    # Void one and read it back as voided.
    voiding = Statement(actor=LEARNER, verb=VOIDED, object=StatementRef(id=assigned.id))
    assert lrs.save_statement(voiding).success
    assert not lrs.retrieve_statement(assigned.id).success
    voided = lrs.retrieve_voided_statement(assigned.id)
    assert voided.success and str(voided.content.id) == str(assigned.id)
    return {"seen": len(seen)}


async def test_tincan_saves_queries_pages_and_voids(client):
    result = await asyncio.to_thread(round_trip, lrs_for(client), str(uuid.uuid4()))
    assert result == {"seen": 7}


@pytest.mark.xfail(strict=True, raises=ValueError, reason=(
    "tincan 1.0.0's About object accepts only 1.0.x versions and raises on the '2.0.0' that /xapi/about "
    "lists (issue 3 requires both versions); statements work, only RemoteLRS.about() fails"))
async def test_tincan_reads_about(client):
    about = await asyncio.to_thread(lrs_for(client).about)
    assert about.success and "1.0.3" in about.content.version


async def test_tincan_sees_conflicts_as_failures(client):
    def conflict(lrs: RemoteLRS) -> tuple[int, int]:
        statement_id = str(uuid.uuid4())
        first = lrs.save_statement(Statement(id=statement_id, actor=LEARNER, verb=COMPLETED, object=course(1)))
        second = lrs.save_statement(Statement(id=statement_id, actor=LEARNER, verb=COMPLETED, object=course(2)))
        return first.response.status, second.response.status

    assert await asyncio.to_thread(conflict, lrs_for(client)) == (204, 409)
