"""GET /statements answers, property-based: small random stores (agents,
identified and anonymous Groups, Agent and OAuth-style Group authorities,
context agents and activities, registrations, SubStatements, StatementRefs
and chains of them, voiding) written by the StatementWriter, and random
queries paged to the end through ``more`` cursors, compared with the xAPI
filter rules (xAPI-Communication 2.1.3) written out here in plain Python:

- ``agent``: the Actor or Object is the Agent or Group, or a Group with it as
  a member; ``related_agents`` adds the authority, instructor, team (and the
  2.0 context agents and groups, stored as 2.0.0), and all of these in a
  SubStatement;
- ``activity``: the Object; ``related_activities`` adds the context
  Activities, and the Object and context Activities of a SubStatement;
- ``verb``, ``registration``; ``since`` exclusive, ``until`` inclusive, on
  ``stored`` of the Statement itself;
- a Statement whose Object is a StatementRef also matches when a Statement
  its chain reaches (voided or not, up to MAX_REF_DEPTH targets) matches the
  filters other than the time bounds;
- voided Statements are never in the answer; the statements/read/mine scope
  keeps only Statements with that authority.

Then hash collisions are planted (other keys' hashes at Statements'
positions, other verbs' and authorities' hashes on their rows) and every
answer must stay the same, whichever walk the mine scope takes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lrs.ingest import stored_keys
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.payload_codec import open_payload
from lrs.store import StatementWriter, reader
from lrs.store import group_write
from lrs.store.reader import MAX_REF_DEPTH, query_statements

HOME = "https://lrs.example.gov"
PEOPLE = [{"mbox": f"mailto:p{i}@example.com"} for i in range(3)] + [
    {"account": {"homePage": HOME, "name": "p3"}}]
GROUPS = [
    {"objectType": "Group", "mbox": "mailto:team0@example.com", "member": [PEOPLE[0], PEOPLE[1]]},
    {"objectType": "Group", "member": [PEOPLE[2], PEOPLE[3]]},  # anonymous
    {"objectType": "Group", "account": {"homePage": HOME, "name": "team2"}},
]
ACTORS = [dict(p, objectType="Agent") for p in PEOPLE] + GROUPS
APP = {"objectType": "Agent", "account": {"homePage": HOME, "name": "app"}}
AUTHORITIES = [
    APP,
    {"objectType": "Agent", "mbox": "mailto:authority@example.com"},
    # an OAuth client and its user (Data 2.4.9.s3.b1), for two users
    {"objectType": "Group", "member": [APP, dict(PEOPLE[0], objectType="Agent")]},
    {"objectType": "Group", "member": [dict(PEOPLE[1], objectType="Agent"), APP]},
]
VERBS = [f"http://example.com/v/{v}" for v in ("did", "passed", "said")]
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
ACTIVITIES = [f"http://example.com/act/{i}" for i in range(4)]
REGISTRATIONS = [uuid.UUID(int=i + 1) for i in range(2)]
UNKNOWN = uuid.UUID(int=999)


# --- the rules, in plain Python -------------------------------------------------

def ifi(actor: dict[str, Any]) -> str | None:
    if "mbox" in actor:
        return "mbox:" + actor["mbox"]
    if "account" in actor:
        return "account:" + actor["account"]["homePage"] + "|" + actor["account"]["name"]
    return None


def identities(actor: dict[str, Any] | None) -> set[str]:
    """The keys an Agent or Group matches: its own IFI and its members'."""
    if actor is None:
        return set()
    keys = {ifi(m) for m in actor.get("member", [])} | {ifi(actor)}
    return {k for k in keys if k is not None}


def authority_of(authority: dict[str, Any]) -> str:
    if authority.get("objectType") == "Group" and ifi(authority) is None:
        return "group:" + "&".join(sorted(ifi(m) for m in authority["member"]))  # type: ignore[misc]
    return ifi(authority)  # type: ignore[return-value]


def context_agents(context: dict[str, Any] | None) -> set[str]:
    if not context:
        return set()
    return identities(context.get("instructor")) | identities(context.get("team")) | {
        k for entry in context.get("contextAgents", []) for k in identities(entry["agent"])} | {
        k for entry in context.get("contextGroups", []) for k in identities(entry["group"])}


def context_activities(context: dict[str, Any] | None) -> set[str]:
    if not context:
        return set()
    return {a["id"] for value in context.get("contextActivities", {}).values() for a in value}


def is_agent(obj: dict[str, Any]) -> bool:
    return obj.get("objectType") in ("Agent", "Group")


def is_activity(obj: dict[str, Any]) -> bool:
    return obj.get("objectType", "Activity") == "Activity"


def matches_itself(query: StatementQuery, body: dict[str, Any]) -> bool:
    obj = body["object"]
    if query.verb is not None and body["verb"]["id"] != query.verb:
        return False
    if query.registration is not None:
        registration = (body.get("context") or {}).get("registration")
        if registration is None or uuid.UUID(registration) != query.registration:
            return False
    if query.agent is not None:
        agents = identities(body["actor"]) | (identities(obj) if is_agent(obj) else set())
        if query.related_agents:
            agents |= identities(body["authority"]) | context_agents(body.get("context"))
            if obj.get("objectType") == "SubStatement":
                agents |= identities(obj["actor"]) | context_agents(obj.get("context"))
                agents |= identities(obj["object"]) if is_agent(obj["object"]) else set()
        if query.agent not in agents:
            return False
    if query.activity is not None:
        activities = {obj["id"]} if is_activity(obj) else set()
        if query.related_activities:
            activities |= context_activities(body.get("context"))
            if obj.get("objectType") == "SubStatement":
                inner = obj["object"]
                activities |= ({inner["id"]} if is_activity(inner) else set()) | context_activities(
                    obj.get("context"))
        if query.activity not in activities:
            return False
    return True


def expected_ids(store: list[dict[str, Any]], query: StatementQuery, mine: str | None) -> list[str]:
    """``store``: every Statement with its ``stored``, ``voided`` and ``authority``, in commit order."""
    by_id = {s["id"]: s for s in store}

    def matches(body: dict[str, Any]) -> bool:
        if matches_itself(query, body):
            return True
        for _ in range(MAX_REF_DEPTH):
            if body["object"].get("objectType") != "StatementRef":
                return False
            target = by_id.get(body["object"]["id"])
            if target is None:
                return False
            if matches_itself(query, target):
                return True
            body = target
        return False

    chosen = [
        s["id"] for s in store
        if not s["voided"]
        and (query.since is None or s["stored"] > query.since)
        and (query.until is None or s["stored"] <= query.until)
        and (mine is None or authority_of(s["authority"]) == mine)
        and matches(s)
    ]
    return chosen if query.ascending else chosen[::-1]


# --- stores and queries ------------------------------------------------------------

def agent_or_group() -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(ACTORS)


def contexts() -> st.SearchStrategy[dict[str, Any]]:
    activities = st.lists(st.sampled_from(ACTIVITIES).map(lambda a: {"id": a}), min_size=1, max_size=2,
                          unique_by=lambda a: a["id"])
    return st.fixed_dictionaries({}, optional={
        "registration": st.sampled_from(REGISTRATIONS).map(str),
        "instructor": agent_or_group(),
        "team": st.sampled_from(GROUPS),
        # xAPI 2.0 only (stored as 2.0.0, :func:`write_store`)
        "contextAgents": st.lists(st.sampled_from(ACTORS[:4]).map(
            lambda a: {"objectType": "contextAgent", "agent": a}), min_size=1, max_size=2),
        "contextGroups": st.lists(st.sampled_from(GROUPS).map(
            lambda g: {"objectType": "contextGroup", "group": g}), min_size=1, max_size=2),
        "contextActivities": st.fixed_dictionaries({}, optional={
            "parent": activities, "grouping": activities, "category": activities, "other": activities}),
    })


@st.composite
def statement_specs(draw: Any) -> dict[str, Any]:
    """One Statement, its object drawn as a kind; StatementRefs and voiding
    get their targets when the store is drawn (:func:`stores`)."""
    kind = draw(st.sampled_from(["activity", "activity", "agent", "ref", "ref", "sub", "void"]))
    body: dict[str, Any] = {"actor": draw(agent_or_group()), "verb": {"id": draw(st.sampled_from(VERBS))}}
    if kind == "activity":
        body["object"] = {"id": draw(st.sampled_from(ACTIVITIES))}
    elif kind == "agent":
        body["object"] = draw(agent_or_group())
    elif kind == "sub":
        inner = draw(st.one_of(st.sampled_from(ACTIVITIES).map(lambda a: {"id": a}), agent_or_group()))
        sub: dict[str, Any] = {"objectType": "SubStatement", "actor": draw(agent_or_group()),
                               "verb": {"id": draw(st.sampled_from(VERBS))}, "object": inner}
        if draw(st.booleans()):
            sub["context"] = draw(contexts())
        body["object"] = sub
    if draw(st.booleans()):
        body["context"] = draw(contexts())
    return {"kind": kind, "body": body, "authority": draw(st.sampled_from(AUTHORITIES)),
            "target": draw(st.integers(min_value=0, max_value=10_000))}


@st.composite
def stores(draw: Any) -> list[dict[str, Any]]:
    specs = draw(st.lists(statement_specs(), min_size=30, max_size=60))
    ids = [str(uuid.uuid4()) for _ in specs]  # the rules do not depend on them
    voiding: set[int] = set()
    for i, spec in enumerate(specs):
        spec["body"]["id"] = ids[i]
        if spec["kind"] == "void" and i > 0:
            # a voiding Statement voids an earlier one that is no voiding Statement itself
            candidates = [j for j in range(i) if j not in voiding]
            if candidates:
                voiding.add(i)
                spec["body"]["verb"] = {"id": VOIDED}
                spec["body"]["object"] = {"objectType": "StatementRef",
                                          "id": ids[candidates[spec["target"] % len(candidates)]]}
                spec["body"].pop("context", None)
                continue
            spec["kind"] = "ref"
        if spec["kind"] in ("ref", "void"):
            # a target stored before or after, this Statement itself, or none stored
            choices = ids + [str(UNKNOWN)]
            spec["body"]["object"] = {"objectType": "StatementRef", "id": choices[spec["target"] % len(choices)]}
    return specs


@st.composite
def queries(draw: Any) -> tuple[StatementQuery, str | None, int, int, int]:
    """A query, the mine scope's authority or None, and since/until as drawn
    (indexes into the stored times, and a shift of -1, 0 or 1 microsecond)."""
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["agent"] = draw(st.sampled_from(sorted(
            {k for a in ACTORS for k in identities(a)} | {authority_of(a) for a in AUTHORITIES[:2]})))
        fields["related_agents"] = draw(st.booleans())
    if draw(st.integers(0, 2)) == 0:
        fields["verb"] = draw(st.sampled_from(VERBS + [VOIDED]))
    if draw(st.booleans()):
        fields["activity"] = draw(st.sampled_from(ACTIVITIES))
        fields["related_activities"] = draw(st.booleans())
    if draw(st.booleans()):
        fields["registration"] = draw(st.sampled_from(REGISTRATIONS))
    limit = draw(st.integers(1, 6))
    query = StatementQuery(limit=limit, ascending=draw(st.booleans()), **fields)
    mine = draw(st.one_of(st.none(), st.sampled_from([authority_of(a) for a in AUTHORITIES])))
    since = draw(st.integers(-1, 80))
    until = draw(st.integers(-1, 80))
    return query, mine, since, until, draw(st.integers(-1, 1))


def with_times(query: StatementQuery, times: list[datetime], since: int, until: int, shift: int) -> StatementQuery:
    step = timedelta(microseconds=shift)
    fields = msgspec.structs.asdict(query)
    fields["since"] = None if since < 0 else times[since % len(times)] + step
    fields["until"] = None if until < 0 else times[until % len(times)] + step
    return StatementQuery(**fields)


async def paged_ids(pool: asyncpg.Pool, tenant: str, query: StatementQuery, mine: str | None,
                    pair_keys: Any = None) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        bodies, after, more = await query_statements(pool, tenant, query, after_position=after, limit=query.limit,
                                                     authority=mine, pair_keys=pair_keys)
        pages.append([msgspec.json.decode(b)["id"] for b in bodies])
        if not more:
            return pages
        assert len(pages) < 100, "the pages never end"


def chunks(ids: list[str], limit: int) -> list[list[str]]:
    return [ids[i:i + limit] for i in range(0, len(ids), limit)] or [[]]


# AUTHORITY_HAS_FEW stand-in (same parameters): the filters' walks for every authority
WALK_FILTERS = "SELECT $1::text IS NULL AND $2::text IS NULL"


# Hash collisions, planted: in tenants named "c...", statement_key hashes only
# a key's kind and the parity of its last character, so that most agents,
# activities, verbs and authorities share their hash with another (the
# verb and authority columns too, which a planted row cannot fake).  Other
# tenants keep the real hash.
COLLIDING_KEYS = """
CREATE OR REPLACE FUNCTION statement_key(tenant text, filter_key text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN left(tenant, 1) = 'c'
    THEN hashtextextended(tenant || chr(31) || left(filter_key, 2) || ascii(right(filter_key, 1)) % 2, 0)
    ELSE hashtextextended(tenant || chr(31) || filter_key, 0) END $$
"""


async def migrate_here(pool: asyncpg.Pool) -> int:
    """What a store written before schemas/postgres/0141 is, once migrated
    now: none of the Statements stored so far (of any tenant) has a pair key
    (activity + verb), and the low-water is the log head.  Returns it."""
    head = await pool.fetchval("SELECT position FROM log_head WHERE singleton")
    pairs = [stored_keys.pair_key(a, v) for a in ACTIVITIES for v in VERBS + [VOIDED]]
    await pool.execute(
        "DELETE FROM statement_keys WHERE position <= $1 AND key IN ("
        " SELECT statement_key(t.tenant, p) FROM (SELECT DISTINCT tenant FROM statements) AS t,"
        " unnest($2::text[]) AS p)", head, pairs)
    await pool.execute("UPDATE pair_keys_low_water SET position = $1", head)
    return head


async def write_store(pool: asyncpg.Pool, tenant: str, specs: list[dict[str, Any]], *, together: int = 1,
                      reached_keys: bool = True, migrated_at: int | None = None) -> list[dict[str, Any]]:
    """Each Statement stored with its authority, ``together`` to a request
    (one group: a StatementRef and its target, before or after it, may share
    one); they, in commit order, with ``stored`` and ``voided`` (told by the
    voiding Statements, and checked).  Without ``reached_keys`` the writer
    leaves out the keys referring Statements hold for their chains (a store
    written before schemas/postgres/0097, or loaded in bulk), and
    add_statement_ref_keys() fills them afterwards.  ``migrated_at``: the
    store is migrated to the pair keys (:func:`migrate_here`) before the
    request of that Statement (the ones before it have none)."""
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    adds = group_write.add_reached_keys
    if not reached_keys:
        group_write.add_reached_keys = _nothing_reached  # type: ignore[assignment]
    try:
        for first in range(0, len(specs), together):
            if migrated_at is not None and first >= migrated_at:
                await migrate_here(pool)
                migrated_at = None
            for authority in {str(s["authority"]): s["authority"] for s in specs[first:first + together]}.values():
                chunk = [s for s in specs[first:first + together] if s["authority"] == authority]
                encoded = msgspec.json.encode([s["body"] for s in chunk])
                version = "2.0.0" if b'"contextAgents"' in encoded or b'"contextGroups"' in encoded else "1.0.3"
                await writer.append(tenant, prepare_statements([s["body"] for s in chunk], version=version,
                                                               authority=authority, new_id=uuid.uuid4))
    finally:
        group_write.add_reached_keys = adds
        await writer.close()
    if not reached_keys:
        await pool.execute("SELECT add_statement_ref_keys()")
    rows = await pool.fetch("SELECT statement_id, stored, voided FROM statements WHERE tenant = $1 ORDER BY position",
                            tenant)
    voided_ids = {s["body"]["object"]["id"] for s in specs if s["body"]["verb"]["id"] == VOIDED}
    by_id = {s["body"]["id"]: s for s in specs}
    store = [dict(by_id[str(r["statement_id"])]["body"], authority=by_id[str(r["statement_id"])]["authority"],
                  stored=r["stored"], voided=str(r["statement_id"]) in voided_ids) for r in rows]
    assert [r["voided"] for r in rows] == [s["voided"] for s in store]
    return store


async def _nothing_reached(*_: Any) -> int:
    return 0


async def key_rows(pool: asyncpg.Pool, tenant: str) -> set[tuple[int, int]]:
    """The (position, key hash) rows statement_keys holds for the tenant's Statements."""
    rows = await pool.fetch("SELECT k.position, k.key FROM statements s"
                            " JOIN statement_keys k ON k.position = s.position WHERE s.tenant = $1", tenant)
    return {(r["position"], r["key"]) for r in rows}


async def own_and_reached_key_rows(pool: asyncpg.Pool, tenant: str) -> set[tuple[int, int]]:
    """The rows :func:`key_rows` should be: each Statement's own keys (not
    its authority's, nor the related agent key of that same IFI, with its activity + verb pair) and the keys
    of the Statements of the same tenant its chain reaches (MAX_REF_DEPTH targets)."""
    rows = await pool.fetch("SELECT s.statement_id, s.position, e.payload FROM statements s"
                            " JOIN events e ON e.position = s.position WHERE s.tenant = $1", tenant)
    bodies = {r["statement_id"]: (r["position"], msgspec.json.decode(open_payload(r["payload"]))) for r in rows}
    pairs: list[tuple[int, str]] = []
    for position, body in bodies.values():
        own = stored_keys.statement_keys(body) | stored_keys.pair_keys(body)
        authority = {key for key in own if key.startswith("U:")}
        pairs += [(position, key) for key in own - authority - {"a:" + key[2:] for key in authority}]
        target = stored_keys.statement_ref_target(body)
        for _ in range(MAX_REF_DEPTH):
            if target not in bodies:
                break
            reached = bodies[target][1]
            pairs += [(position, key) for key in stored_keys.reached_keys(reached)]
            target = stored_keys.statement_ref_target(reached)
    hashed = await pool.fetch("SELECT u.p, statement_key($1, u.k) AS key"
                              " FROM unnest($2::bigint[], $3::text[]) AS u(p, k)",
                              tenant, [p for p, _ in pairs], [k for _, k in pairs])
    return {(r["p"], r["key"]) for r in hashed}


@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(specs=stores(), drawn=st.lists(queries(), min_size=12, max_size=12))
async def test_every_filter_combination_answers_as_the_rules_say(
    pool: asyncpg.Pool, specs: list[dict[str, Any]], drawn: list[tuple[StatementQuery, str | None, int, int, int]],
) -> None:
    await pool.execute(COLLIDING_KEYS)
    stores = {}
    # The same Statements in a store of exact hashes, one of colliding hashes
    # written five to a request (a StatementRef and its target in one group),
    # and one of colliding hashes whose referring Statements got the keys of
    # their chains from add_statement_ref_keys() after it was written
    # (schemas/postgres/0097).  Targets come before or after their referrers.
    # First, a store migrated to the activity + verb pair keys halfway
    # (schemas/postgres/0141): the Statements before have none, and the
    # pages walk the activity's entries below the low-water, the pair's above.
    # StatementRefs reach targets on either side of it.
    migrated = "m" + uuid.uuid4().hex[:12]
    stores[migrated] = await write_store(pool, migrated, specs, together=5, migrated_at=len(specs) // 2)
    for kind, together, reached_keys in (("p", 1, True), ("c", 5, True), ("cb", 1, False)):
        tenant = kind + uuid.uuid4().hex[:12]
        stores[tenant] = await write_store(pool, tenant, specs, together=together, reached_keys=reached_keys)
    # Then a tenant holding only the referring Statements: their targets are
    # in the other tenants only, whose keys they must never take (a filter on
    # a target's agent finds nothing there).
    referring = [s for s in specs if s["body"]["object"].get("objectType") == "StatementRef"]
    apart = "x" + uuid.uuid4().hex[:12]
    apart_store = await write_store(pool, apart, referring)
    probe = reader.AUTHORITY_HAS_FEW
    try:
        # plans on the statistics of earlier stores, then on fresh ones
        # (the first failures above showed on one and not the other)
        for (tenant, store), analyze in zip(list(stores.items()) * 2,
                                            (False, False, False, False, True, False, False, False)):
            if analyze:
                await pool.execute("ANALYZE statements, statement_keys, events")
            times = [s["stored"] for s in store]
            cases = [(with_times(q, times, since, until, shift), mine) for q, mine, since, until, shift in drawn]
            cases += [(StatementQuery(limit=4, activity=a, related_activities=True), m)
                      for a in ACTIVITIES[:2] for m in (None, authority_of(AUTHORITIES[2]))]
            # activity + verb (the pair key's walk above the low-water), both directions
            cases += [(with_times(StatementQuery(limit=2, activity=a, verb=v, ascending=i % 2 == 1), times,
                                  -1 if i < 4 else 3, -1 if i < 6 else 50, 0), m)
                      for i, (a, v) in enumerate((a, v) for a in ACTIVITIES[:2] for v in VERBS[:2] + [VOIDED])
                      for m in (None, authority_of(AUTHORITIES[0]))]
            for query, mine in cases:
                pages = chunks(expected_ids(store, query, mine), query.limit)
                for walk in (probe, WALK_FILTERS):
                    reader.AUTHORITY_HAS_FEW = walk
                    assert await paged_ids(pool, tenant, query, mine) == pages, (tenant, query, mine, walk)
        times = [s["stored"] for s in apart_store] or [datetime.now().astimezone()]
        for query, mine, since, until, shift in drawn:
            query = with_times(query, times, since, until, shift)
            for walk in (probe, WALK_FILTERS):
                reader.AUTHORITY_HAS_FEW = walk
                assert await paged_ids(pool, apart, query, mine) == chunks(
                    expected_ids(apart_store, query, mine), query.limit), (apart, query, mine, walk)
    finally:
        reader.AUTHORITY_HAS_FEW = probe
    assert await key_rows(pool, apart) == await own_and_reached_key_rows(pool, apart)
    exact = next(t for t in stores if t.startswith("p"))  # the pair keys too, as the writer makes them
    assert await key_rows(pool, exact) == await own_and_reached_key_rows(pool, exact)
    colliding = next(t for t in stores if t.startswith("c"))
    assert await pool.fetchval("SELECT count(DISTINCT verb_key) FROM statements WHERE tenant = $1", colliding) == 1


async def test_a_chain_through_a_statement_without_registration_reaches_its_match(pool: asyncpg.Pool) -> None:
    """Found by the test above: a StatementRef chain whose middle Statement has
    no registration stopped there (its check was NULL, not false) on the ways
    that follow chains forward (the mine scope's walk, a full page's window),
    so the Statement at its start was missing from a registration's pages."""
    ids = [str(uuid.uuid4()) for _ in range(5)]
    bodies = [
        {"id": ids[0], "actor": PEOPLE[0], "verb": {"id": VERBS[0]}, "object": {"id": ACTIVITIES[0]},
         "context": {"registration": str(REGISTRATIONS[0])}},
        {"id": ids[1], "actor": PEOPLE[0], "verb": {"id": VERBS[0]}, "object": {"objectType": "StatementRef",
                                                                                "id": ids[0]}},
        {"id": ids[2], "actor": PEOPLE[1], "verb": {"id": VERBS[1]}, "object": {"objectType": "StatementRef",
                                                                                "id": ids[1]}},
    ] + [{"id": ids[n], "actor": PEOPLE[1], "verb": {"id": VERBS[1]}, "object": {"id": ACTIVITIES[1]},
          "context": {"registration": str(REGISTRATIONS[0])}} for n in (3, 4)]
    specs = [{"body": body, "authority": APP} for body in bodies]
    store = await write_store(pool, "t", specs)
    probe = reader.AUTHORITY_HAS_FEW
    try:
        for walk in (probe, WALK_FILTERS):
            reader.AUTHORITY_HAS_FEW = walk
            for limit, mine in ((2, None), (2, authority_of(APP)), (10, authority_of(APP))):
                query = StatementQuery(limit=limit, registration=REGISTRATIONS[0])
                assert expected_ids(store, query, mine) == ids[::-1]
                pages = await paged_ids(pool, "t", query, mine)
                assert pages == chunks(ids[::-1], limit), (walk, limit, mine)
    finally:
        reader.AUTHORITY_HAS_FEW = probe


def ref(target: str) -> dict[str, str]:
    return {"objectType": "StatementRef", "id": target}


async def test_chains_whose_targets_come_later_find_their_match(pool: asyncpg.Pool) -> None:
    """A chain of StatementRefs longer than MAX_REF_DEPTH, stored from its
    end to its match (every target after its referrers), a loop of two
    Statements and one referring into it: each filter of the match's finds
    the chain's first MAX_REF_DEPTH referrers and nothing else, whether each
    Statement was its own group, the whole chain one request, or the keys were
    added afterwards (schemas/postgres/0097)."""
    await pool.execute(COLLIDING_KEYS)
    chain = [str(uuid.uuid4()) for _ in range(MAX_REF_DEPTH + 2)]
    loop = [str(uuid.uuid4()) for _ in range(3)]
    match = {"id": chain[0], "actor": PEOPLE[0], "verb": {"id": VERBS[0]}, "object": {"id": ACTIVITIES[0]},
             "context": {"registration": str(REGISTRATIONS[0]),
                         "contextActivities": {"parent": [{"id": ACTIVITIES[1]}]}}}
    referrers = [{"id": chain[n], "actor": PEOPLE[1], "verb": {"id": VERBS[1]}, "object": ref(chain[n - 1])}
                 for n in range(1, len(chain))]
    looping = [{"id": loop[0], "actor": PEOPLE[2], "verb": {"id": VERBS[2]}, "object": ref(loop[1])},
               {"id": loop[1], "actor": PEOPLE[2], "verb": {"id": VERBS[2]}, "object": ref(loop[0])},
               {"id": loop[2], "actor": PEOPLE[2], "verb": {"id": VERBS[2]}, "object": ref(loop[0])}]
    specs = [{"body": body, "authority": APP} for body in referrers[::-1] + looping + [match]]
    found = chain[:MAX_REF_DEPTH + 1]
    queries = [StatementQuery(limit=3, agent=ifi(PEOPLE[0])), StatementQuery(limit=3, verb=VERBS[0]),
               StatementQuery(limit=3, activity=ACTIVITIES[0]), StatementQuery(limit=20, registration=REGISTRATIONS[0]),
               StatementQuery(limit=3, activity=ACTIVITIES[1], related_activities=True, ascending=True),
               StatementQuery(limit=4, verb=VERBS[0], agent=ifi(PEOPLE[0]), registration=REGISTRATIONS[0]),
               StatementQuery(limit=2, verb=VERBS[2]), StatementQuery(limit=2, agent=ifi(PEOPLE[2]))]
    probe = reader.AUTHORITY_HAS_FEW
    try:
        for kind, together, reached_keys in (("p", 1, True), ("c", 1, True), ("c", len(specs), True),
                                             ("c", 1, False)):
            tenant = kind + uuid.uuid4().hex[:12]
            store = await write_store(pool, tenant, specs, together=together, reached_keys=reached_keys)
            for query in queries:
                expected = expected_ids(store, query, None)
                if query.verb != VERBS[2] and query.agent != ifi(PEOPLE[2]):
                    assert sorted(expected) == sorted(found), query
                for walk, mine in ((probe, None), (probe, authority_of(APP)), (WALK_FILTERS, authority_of(APP))):
                    reader.AUTHORITY_HAS_FEW = walk
                    assert await paged_ids(pool, tenant, query, mine) == chunks(expected, query.limit), (
                        tenant, together, reached_keys, query, mine)
    finally:
        reader.AUTHORITY_HAS_FEW = probe
