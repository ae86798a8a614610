"""The statement_keys rows of a group INSERT, against the form they had
before the pair key was derived by a function scan and the authority's key
('U:') left the key list the writer sends (merge abe913a): for every shape
of Statement, in one group of several tenants and authorities, sent with its
form worked out ahead of the lock and without, the same rows, but for the
related agent row ('a:') of an Agent authority, which the writer leaves out
since branch b100-rows."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

import asyncpg

from lrs.batching import AppendRequest, LogHead, filter_keys, plan_group, statement_form
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.stored_keys import pair_key
from lrs.service import migrate
from lrs.store.group_columns import array_literal, group_columns, key_literal
from lrs.store.group_commit_sql import INSERT_GROUP

# main before abe913a: the whole key list, 'U:' included, filtered in SQL,
# and the pair key derived through a correlated VALUES list.
BEFORE = """
    SELECT DISTINCT statement_key(coalesce(u.tenant, $3[1]), x.key), $1::bigint + u.n - 1
    FROM unnest($3::text[], $11::text[], $10::text[]) WITH ORDINALITY AS u(tenant, keys, verb_id, n),
         unnest(u.keys::text[]) AS k,
         LATERAL (VALUES (k), (CASE WHEN left(k, 2) = 'O:' THEN 'P:' || substr(k, 3) || chr(31) || u.verb_id END)) AS x(key)
    WHERE left(k, 2) <> 'U:' AND x.key IS NOT NULL
"""
# INSERT_GROUP's own: the SELECT of its new_keys.
NOW_SENT = re.search(r"INSERT INTO statement_keys \(key, position\)\n(.*?)\n\), new_head AS",
                     INSERT_GROUP, re.S).group(1)
_NUMBERS = {"1": "1", "3": "2", "10": "3", "11": "4"}


def _alone(select: str) -> str:
    """The key rows' SELECT with only its own parameters ($1, $3, $10, $11 as $1-$4)."""
    assert set(re.findall(r"\$(\d+)", select)) == set(_NUMBERS)
    return re.sub(r"\$(\d+)", lambda m: "$" + _NUMBERS[m.group(1)], select)


VERB = {"id": "http://example.com/v/did"}
VOIDED = {"id": "http://adlnet.gov/expapi/verbs/voided"}
ANN = {"mbox": "mailto:ann@example.com"}
BOB = {"objectType": "Agent", "mbox": "mailto:bob@example.com"}
TEAM = {"objectType": "Group", "name": "team",
        "member": [ANN, {"account": {"homePage": "http://x.example", "name": "c"}}]}
NAMED_TEAM = {"objectType": "Group", "mbox": "mailto:team@example.com", "member": [BOB]}
CONTEXT = {"registration": "6fbd600f-d17c-4c74-801a-2ec2e53231c8", "instructor": BOB, "team": NAMED_TEAM,
           "contextActivities": {"parent": [{"id": "http://example.com/course"}],
                                 "grouping": [{"id": "http://example.com/unit/1"}],
                                 "category": [{"id": "http://example.com/profile"}],
                                 "other": [{"id": "http://example.com/other?q=a%22b"}]}}


def _sid(n: int, batch: int = 0) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"group-keys-{batch}-{n}"))


def _statement(n: int, batch: int = 0, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": _sid(n, batch), "actor": ANN, "verb": VERB,
                            "object": {"id": f"http://example.com/unit/{n}"}}
    body.update(fields)
    return body


def _shapes(b: int) -> list[dict[str, Any]]:
    return [
        _statement(1, b),  # an Activity Object, its verb
        _statement(2, b, context=CONTEXT),  # ... with every related key
        # the Object also a grouping activity
        _statement(3, b, object={"id": "http://example.com/unit/1"}, context=CONTEXT),
        _statement(4, b, object=BOB),  # an Agent Object
        _statement(5, b, object=NAMED_TEAM, actor=TEAM),  # Group actor and Object
        _statement(6, b, object={"objectType": "Agent", **ANN}),  # the actor as the Object too
        _statement(7, b, object={"objectType": "SubStatement", "actor": BOB, "verb": VERB,
                              "object": {"id": "http://example.com/sub"}, "context": CONTEXT}),
        _statement(8, b, object={"objectType": "SubStatement", "actor": TEAM, "verb": VERB, "object": BOB}),
        _statement(9, b, object={"objectType": "StatementRef", "id": _sid(1, b)}),  # refers to one of the group
        _statement(10, b, object={"objectType": "StatementRef", "id": _sid(99, b)}),  # to one not stored
        # voids one of the group
        _statement(11, b, verb=VOIDED, object={"objectType": "StatementRef", "id": _sid(2, b)}),
        _statement(12, b, verb={"id": "http://example.com/v/other"}, object={"id": "http://example.com/unit/1"}),
        _statement(13, b, object={"id": "http://example.com/unit/1", "objectType": "Activity"}, context=CONTEXT),
    ]


AUTHORITIES = [
    {"objectType": "Agent", "mbox": "mailto:authority@example.com"},
    {"objectType": "Group", "member": [{"account": {"homePage": "http://auth.example", "name": "client"}},
                                        {"mbox": "mailto:user@example.com"}]},
]


def _requests() -> list[AppendRequest]:
    requests = []
    for batch, (tenant, authority, with_forms) in enumerate((
            ("t", AUTHORITIES[0], True), ("u", AUTHORITIES[1], False),
            ("t", AUTHORITIES[1], False), ("u", AUTHORITIES[0], True))):
        prepared = prepare_statements(_shapes(batch), version="1.0.3", authority=authority, new_id=uuid.uuid4)
        forms = tuple(statement_form(s, key_literal) for s in prepared) if with_forms else ()
        requests.append(AppendRequest(tenant, tuple(prepared), forms))
    # the first Statement again, and one of another tenant with the same id:
    # the first has no row of its own
    for tenant in ("t", "w"):
        prepared = prepare_statements([_statement(1, 0)], version="1.0.3", authority=AUTHORITIES[0], new_id=uuid.uuid4)
        requests.append(AppendRequest(tenant, tuple(prepared), tuple(statement_form(s, key_literal) for s in prepared)))
    # one request alone in its tenant, so a group also has tenants of one statement
    prepared = prepare_statements([_statement(20, context=CONTEXT)], version="1.0.3", authority=AUTHORITIES[0],
                                  new_id=uuid.uuid4)
    requests.append(AppendRequest("v", tuple(prepared), tuple(statement_form(s, key_literal) for s in prepared)))
    return requests


def _less_folded(keys: list[str]) -> list[str]:
    """Filter keys less the related agent key ('a:') of the authority's IFI
    key ('U:'), which the writer no longer sends (statements.authority_key
    finds those Statements, lrs.store.group_columns.key_literal)."""
    authority = [k[2:] for k in keys if k.startswith("U:")]
    return [k for k in keys if not (k.startswith("a:") and k[2:] in authority)]


async def test_the_group_writes_the_key_rows_it_wrote_before(database_url: str) -> None:
    await migrate(database_url)
    plan = plan_group(_requests(), [], LogHead(40, b"\0" * 32, None), datetime.now(timezone.utc), uuid.uuid4)
    columns = group_columns(plan)
    position, tenants, verbs, keys = columns[0], columns[2], columns[9], columns[10]
    before_keys = [array_literal(_less_folded(filter_keys(n.statement))) for n in plan.new]
    assert len(plan.new) == 4 * len(_shapes(0)) + 2 and len(tenants) == len(plan.new)
    conn = await asyncpg.connect(database_url)
    try:
        before = await conn.fetch(_alone(BEFORE), position, tenants, verbs, before_keys)
        now = await conn.fetch(_alone(NOW_SENT), position, tenants, verbs, keys)
        assert sorted(map(tuple, now)) == sorted(map(tuple, before))
        # and what both say is each Statement's filter keys, less the
        # authority's and the related agent key of that IFI (an Agent
        # authority's), with its Activity Object's pair key
        expected = set()
        for offset, new in enumerate(plan.new):
            keys = filter_keys(new.statement)
            authority = [k[2:] for k in keys if k.startswith("U:")]
            wanted = [k for k in keys if not k.startswith("U:") and not (k.startswith("a:") and k[2:] in authority)]
            wanted += [pair_key(k[2:], new.statement.verb_id) for k in wanted if k.startswith("O:")]
            for key in wanted:
                expected.add((await conn.fetchval("SELECT statement_key($1, $2)", new.event.tenant, key),
                              position + offset))
        assert set(map(tuple, now)) == expected and len(now) == len(expected)
        assert any(k.startswith("U:") for n in plan.new for k in filter_keys(n.statement))
        # both authorities' shapes: an Agent's related agent row left out, an OAuth Group's members' kept
        held = {k for k, _ in map(tuple, now)}
        for tenant in ("t", "u"):
            agent = await conn.fetchval("SELECT statement_key($1, 'a:mbox:mailto:authority@example.com')", tenant)
            member = await conn.fetchval("SELECT statement_key($1, 'a:mbox:mailto:user@example.com')", tenant)
            assert agent not in held and member in held
    finally:
        await conn.close()


async def test_the_writer_writes_those_rows_and_no_authority_row(database_url: str) -> None:
    """Through the writer (requests gathered into groups, referring
    Statements then given their targets' keys): every Statement holds the
    rows the former SQL gave it from its stored JSON, a referring one those
    and its targets' (lrs/store/ref_keys.py), and no Statement a row of its
    own authority's key."""
    import asyncio

    import msgspec

    from lrs.ingest.prepare import prepared_from_stored
    from lrs.payload_codec import open_payload
    from lrs.store import StatementWriter, create_pool

    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        writer = StatementWriter(pool, wait_ms=20.0)
        await writer.start()
        await asyncio.gather(*(writer.append(r.tenant, r.statements) for r in _requests()))
        await writer.close()
        rows = await pool.fetch(
            "SELECT s.tenant, s.position, s.statement_ref, e.payload FROM statements s"
            " JOIN events e USING (position) ORDER BY s.position")
        assert len(rows) == 4 * len(_shapes(0)) + 2
        referring = 0
        for row in rows:
            prepared = prepared_from_stored(msgspec.json.decode(open_payload(row["payload"])))
            before = {r[0] for r in await pool.fetch(
                _alone(BEFORE), row["position"], [row["tenant"]], [prepared.verb_id],
                [array_literal(_less_folded(filter_keys(prepared)))])}
            held = {r[0] for r in await pool.fetch("SELECT key FROM statement_keys WHERE position = $1",
                                                   row["position"])}
            authority = [k for k in filter_keys(prepared) if k.startswith("U:")]
            assert len(authority) == 1
            if row["statement_ref"] is None:
                # (a referring Statement holds its chain's authority keys, lrs/store/ref_keys.py)
                assert await pool.fetchval("SELECT statement_key($1, $2)", row["tenant"], authority[0]) not in held
                assert held == before
            else:
                referring += 1
                assert held >= before
        assert referring == 4 * 3
    finally:
        await pool.close()
