"""Reads of the statements read model for GET /xapi/statements.

Pages are ordered by position (the commit order; ``stored`` rises with it),
newest first unless ``ascending``.  ``after_position`` continues a page
sequence in the query's own direction.  Filters follow xAPI-Communication
2.1.3, including "Filter Conditions for StatementRefs": a statement whose
object is a StatementRef also matches when its target (recursively) does.
Such a statement holds the keys of its chain's Statements in statement_keys
(lrs/store/ref_keys.py), so the walks that find matches find it too.
A related_agents query also walks the Statements whose authority is the
agent (``statements.authority_key``): an Agent authority's related agent key
has no row of its own (lrs.store.group_columns.key_literal).
An activity + verb query walks the key of the pair (schemas/postgres/0141)
over the Statements stored since its low-water, the activity's before
(:func:`_split_matches`).
Voided statements are never in a filtered result.  ``authority`` (the
statements/read/mine scope) limits every read to Statements with that
authority IFI key; it is not part of the query the client sent, so it is
applied to every page and every single fetch.  All values are bound
parameters; only fixed SQL fragments are assembled.
"""

from __future__ import annotations

from typing import Any, Callable

import asyncpg

import msgspec

from lrs.batching import ACTIVITY_KEY, AGENT_KEY, AUTHORITY_KEY, RELATED_ACTIVITY_KEY, RELATED_AGENT_KEY
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import (
    REGISTRATION_KEY, has_authority, meets_filters, pair_key, statement_ref_target,
)
from lrs.payload_codec import open_payload
from lrs.store.page_check import narrow_check
from lrs.store.pair_keys import PairKeysEverywhere
from lrs.store.pool import create_statement_pool
from lrs.store.ref_keys import MAX_REF_DEPTH

# A statement's stored JSON is the payload of its event (same position),
# fetched for each selected row by a subquery, so that the plans choosing the
# rows stay those of the read model alone.  It may be kept compressed
# (lrs/payload_codec.py): every payload read is opened with open_payload.
_PAYLOAD = "(SELECT e.payload FROM events e WHERE e.position = s.position) AS payload"
SELECT_ONE = f"""
SELECT {_PAYLOAD} FROM statements s
WHERE s.tenant = $1 AND s.statement_id = $2 AND s.voided = $3
"""
SELECT_ONE_WITH_AUTHORITY = f"""
SELECT {_PAYLOAD} FROM statements s
WHERE s.tenant = $1 AND s.statement_id = $2 AND s.voided = $3 AND s.authority_key = statement_key($1, $4::text)
"""
# Stored Statements by id, voided or not (a request's statements sent again).
SELECT_BY_IDS = f"""
SELECT s.statement_id, {_PAYLOAD} FROM unnest($2::uuid[]) AS w(id)
JOIN statements s ON s.tenant = $1 AND s.statement_id = w.id
"""
# A StatementRef chain's next Statement, voided or not (the filters' rule).
SELECT_REF_TARGET = f"SELECT {_PAYLOAD} FROM statements s WHERE s.tenant = $1 AND s.statement_id = $2"
SELECT_PAGE = f"""{{times}}
SELECT s.position, {_PAYLOAD} FROM statements s
WHERE {{where}}
ORDER BY s.position {{direction}}
LIMIT {{limit}}
"""
# since/until as positions: the first position of the log stored after a
# time, by binary search over the events' primary key (``stored`` rises
# strictly with ``position`` over the whole log, and positions are gapless
# from 1 to the head), about 25 index lookups at 10 million events.  As
# ``stored`` alone, a time bound is a filter on the walk of the position
# index, which read every statement after ``until`` first (1.5 s at
# 1,000,000 statements for a window in the middle of the log).
FIRST_STORED_AFTER = """(
    WITH RECURSIVE halves(lo, hi) AS (
        SELECT 0::bigint, (SELECT h.position + 1 FROM log_head h WHERE h.singleton)
        UNION ALL
        SELECT CASE WHEN e.stored > {time}::timestamptz THEN b.lo ELSE e.position END,
               CASE WHEN e.stored > {time}::timestamptz THEN e.position ELSE b.hi END
        FROM halves b JOIN events e ON e.position = (b.lo + b.hi) / 2
        WHERE b.hi - b.lo > 1
    )
    SELECT min(hi) FROM halves
)"""
Pool = asyncpg.Pool | asyncpg.Connection

# The plans of a page are chosen for every value of their parameters: each
# walks an index in position order and stops at the page, whatever the key
# (bench/queries.py --buffers counts their reads under these plans).  Left to
# itself PostgreSQL planned some pages again on every run (a generic plan
# whose estimated cost is above that of the first five custom ones is never
# used): about 1 ms of planning, 0.2-0.65 ms of PostgreSQL's CPU a page more
# for verb + since + until, an agent + verb and an activity at 10 million
# statements (docs/scaling.md, "queries-16b").
READ_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


async def create_read_pool(database_url: str, *, max_size: int) -> asyncpg.Pool:
    """The pool GET /xapi/statements reads pages and Statements on: its
    connections keep :data:`READ_SETTINGS` and are not reset after each use
    (the reads change nothing in the session): the reset's round trip and
    PostgreSQL transaction (``RESET ALL``...) a page fewer
    (:func:`lrs.store.pool.create_statement_pool`)."""
    return await create_statement_pool(database_url, application_name="lrs-statement-reads", max_size=max_size,
                                       settings=READ_SETTINGS)


async def get_statement(
    pool: Pool, tenant: str, statement_id: Any, *, voided: bool, authority: str | None = None
) -> bytes | None:
    """The stored JSON of one statement: ``voided=False`` (statementId) finds
    only statements that are not voided, ``voided=True`` (voidedStatementId)
    only voided ones; with ``authority`` (an IFI key) only one with that authority."""
    if authority is not None:
        stored = await pool.fetchval(
            SELECT_ONE_WITH_AUTHORITY, tenant, statement_id, voided, AUTHORITY_KEY + authority
        )
        if stored is None:
            return None
        payload = open_payload(stored)
        # the authority's hash matched; the Statement's own authority decides
        return payload if has_authority(_decode(payload), authority) else None
    stored = await pool.fetchval(SELECT_ONE, tenant, statement_id, voided)
    return None if stored is None else open_payload(stored)


async def stored_statements(pool: Pool, tenant: str, statement_ids: list[Any]) -> dict[Any, bytes]:
    """The stored JSON of each of ``statement_ids`` stored, voided or not, by id."""
    rows = await pool.fetch(SELECT_BY_IDS, tenant, statement_ids)
    return {row["statement_id"]: open_payload(row["payload"]) for row in rows}


def _key_match(
    alias: str, direct: str, related: str, value: str, include_related: bool,
    bind: Callable[[Any], str], *, authority: bool = False,
) -> str:
    """The key condition a candidate row must meet: statement_keys holds the
    hash of the direct key, or (related_*) of the direct or related-only key,
    at its position (the Statement's JSON decides, :func:`query_statements`).
    ``authority`` (related agents): or the row's authority has the key, whose
    'a:' row the writer leaves out (:func:`lrs.store.group_columns.key_literal`)."""
    keys = f"statement_key($1, {bind(direct + value)}::text)"
    if include_related:
        keys = f"{keys}, statement_key($1, {bind(related + value)}::text)"
    if not (include_related and authority):
        return f"EXISTS (SELECT 1 FROM statement_keys c WHERE c.key IN ({keys}) AND c.position = {alias}.position)"
    # the 'U:' key is also a referring Statement's row for its chain's
    # authorities when add_statement_ref_keys() gave them (schemas/postgres/0142)
    mine = f"statement_key($1, {bind(AUTHORITY_KEY + value)}::text)"
    return (f"({alias}.authority_key = {mine} OR EXISTS (SELECT 1 FROM statement_keys c"
            f" WHERE c.key IN ({keys}, {mine}) AND c.position = {alias}.position))")


def _reached(alias: str, key: str) -> str:
    """A referring Statement holds ``key`` (a hash) for a Statement its chain
    reaches (lrs/store/ref_keys.py): the verb and registration conditions of a
    row that is not a match itself."""
    return (f"{alias}.statement_ref IS NOT NULL AND EXISTS (SELECT 1 FROM statement_keys c"
            f" WHERE c.key = {key} AND c.position = {alias}.position)")


def _filters(query: StatementQuery, alias: str, params: list[Any], skip: str | None = None) -> list[str]:
    """Conditions for the non-time filters on ``alias``, met by the row itself
    or (as hashes) by a Statement its StatementRef chain reaches; appends
    their values.  ``skip``: the filter a walk's range already holds to
    (:func:`_walked`)."""

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    conditions = []
    if query.agent is not None and skip != "agent":
        conditions.append(_key_match(alias, AGENT_KEY, RELATED_AGENT_KEY, query.agent,
                                     query.related_agents, bind, authority=True))
    if query.verb is not None and skip != "verb":
        verb = f"statement_key($1, 'V:' || {bind(query.verb)}::text)"
        conditions.append(f"({alias}.verb_key = {verb} OR {_reached(alias, verb)})")
    if query.activity is not None and skip != "activity":
        conditions.append(_key_match(alias, ACTIVITY_KEY, RELATED_ACTIVITY_KEY, query.activity,
                                     query.related_activities, bind))
    if query.registration is not None and skip != "registration":
        registration = bind(query.registration)
        key = f"statement_key($1, '{REGISTRATION_KEY}' || {registration}::uuid::text)"
        conditions.append(f"({alias}.registration = {registration}::uuid OR {_reached(alias, key)})")
    return conditions


def _walked(query: StatementQuery) -> str | None:
    """The filter whose hashes :func:`_walks` walks: its candidates hold to it
    already (as hashes), so the row's own check of it would repeat the walk."""
    if query.agent is not None:
        return "agent"
    if query.registration is not None:
        return "registration"
    if query.activity is not None:
        return "activity"
    if query.verb is not None:
        return "verb"
    return None


def _walks(
    query: StatementQuery, bind: Callable[[Any], str], row_alias: str = "v",
) -> list[tuple[str, str]] | None:
    """The index ranges a filtered query walks in position order, as (FROM and
    WHERE, position column): the agent's statement_keys, else the
    registration's (its own index is narrower than any key's), else the
    activity's, else the verb's; None for none of them.  The verb and the
    registration are columns of the read model, and keys in statement_keys
    only of referring Statements (for the Statements their chain reaches):
    both ranges are walked; related agents also walk the Statements whose
    authority is the agent.  ``row_alias``: the verb's walk over the read
    model under the alias of the checked row, so that :func:`_matches` checks
    the walked row itself (``"s"``) instead of looking it up again (``"v"``)."""
    if query.agent is not None:
        if not query.related_agents:
            return _key_walks([AGENT_KEY + query.agent], bind)
        # and the Statements whose authority is the agent (their 'a:' row is
        # left out, lrs.store.group_columns.key_literal), and those holding
        # its 'U:' key for their chain's (schemas/postgres/0142)
        authority = bind(AUTHORITY_KEY + query.agent)
        return (_key_walks([AGENT_KEY + query.agent, RELATED_AGENT_KEY + query.agent], bind)
                + _authority_walk(authority)
                + [(f"statement_keys u WHERE u.key = statement_key($1, {authority}::text)", "u.position")])
    elif query.registration is not None:
        registration = bind(query.registration)
        key = f"statement_key($1, '{REGISTRATION_KEY}' || {registration}::uuid::text)"
        return [(f"statements g WHERE g.tenant = $1 AND g.registration = {registration}::uuid", "g.position"),
                (f"statement_keys r WHERE r.key = {key}", "r.position")]
    elif query.activity is not None:
        keys = [ACTIVITY_KEY + query.activity] + (
            [RELATED_ACTIVITY_KEY + query.activity] if query.related_activities else [])
    elif query.verb is not None:
        verb = f"statement_key($1, 'V:' || {bind(query.verb)}::text)"
        return [(f"statements {row_alias} WHERE {row_alias}.verb_key = {verb}", f"{row_alias}.position"),
                (f"statement_keys r WHERE r.key = {verb}", "r.position")]
    else:
        return None
    return _key_walks(keys, bind)


def _key_walks(keys: list[str], bind: Callable[[Any], str]) -> list[tuple[str, str]]:
    """The walk of each key's rows of statement_keys (:func:`_walks`)."""
    return [(f"statement_keys k WHERE k.key = statement_key($1, {bind(key)}::text)", "k.position") for key in keys]


def _select(
    alias: str, source: str, position: str, bounds: list[str], conditions: str, direction: str, limit: str,
    more: str = "", *, voided_only: bool = False,
) -> str:
    """The first ``limit`` positions, in position order, of one walk (:func:`_matches`).

    A walk of ``statement_keys`` reads each position once: a Statement whose
    two keys share a 64-bit hash holds that hash's row twice (the group's
    INSERT does not sort its key rows to drop such a repeat,
    lrs.store.group_commit_sql.INSERT_GROUP).  The walk's rows come in
    position order, so the repeat is dropped as it is read."""
    where = "".join(f" AND {b.format(p=position)}" for b in bounds)
    distinct = "DISTINCT " if source.startswith("statement_keys ") else ""
    if position == f"{alias}.position":
        # the walk is of the checked rows themselves (:func:`_walks`'
        # ``row_alias``): each is checked as it is read, no second lookup
        return (f"SELECT {position} AS position FROM {source}{where}{more} AND {conditions}"
                f" ORDER BY {position} {direction} LIMIT {limit}")
    if voided_only:
        return (f"SELECT {distinct}{position} AS position FROM {source}{where}{more} AND NOT EXISTS ("
                f"SELECT 1 FROM statements x WHERE x.tenant = $1 AND x.position = {position} AND x.voided"
                f" OFFSET 0) ORDER BY {position} {direction} LIMIT {limit}")
    return (
        f"SELECT {distinct}{position} AS position FROM {source}{where}{more} AND EXISTS ("
        f"SELECT 1 FROM statements {alias} WHERE {alias}.tenant = $1 AND {alias}.position = {position}"
        f" AND {conditions} OFFSET 0) ORDER BY {position} {direction} LIMIT {limit}"
    )


def _matches(
    alias: str, walks: list[tuple[str, str]], bounds: list[str], conditions: str, direction: str, limit: str,
    *, voided_only: bool = False,
) -> str:
    """A SELECT of the positions of the statements ``alias`` meeting
    ``conditions`` (within ``bounds``, templates on ``{p}``), the first
    ``limit`` in position order.

    Each of ``walks`` (:func:`_walks`) is walked in position order and every
    candidate checked on its row: the subquery, kept apart by OFFSET 0, is a
    lookup by position per candidate, so the walk stops at the limit.
    (Planned as one query, the conditions' combined selectivity made the
    planner expect a handful of matches and collect and sort all of them:
    1.2 s for a common verb at 1,000,000 statements.)  The first ``limit`` of
    each range together hold the first ``limit`` of all.  The ranges are of
    hashes, and so are the conditions on keys and the verb: the Statement's
    JSON decides (:func:`query_statements`).

    ``voided_only``: ``conditions`` are only the tenant, NOT voided and the
    bounds (a key's walk and nothing else to check on the row).  The key's
    hash holds the tenant, which the page checks again on the event it reads
    (:data:`_PAGE_PAYLOAD`), and the bounds are the walk's own; so a
    candidate is checked by a probe of the small index of voided Statements
    (schemas/postgres/0098_voided_positions.sql) instead of a lookup of its
    row (about 3 buffers a candidate fewer)."""
    def select(source: str, position: str, more: str = "") -> str:
        return _select(alias, source, position, bounds, conditions, direction, limit, more, voided_only=voided_only)

    (source, position), others = walks[0], walks[1:]
    if not others:
        return select(source, position)
    # The other ranges are read only as far as the first one's last match when
    # it filled the page: nothing beyond it can be on the page.  (A verb's or
    # registration's referring Statements are few and spread over the log: each
    # of them read to the page's limit cost a row lookup, 400 buffers a verb
    # page at 3,000,000 statements.)
    op, last, none = (">=", "min", "0") if direction == "DESC" else ("<=", "max", "9223372036854775807")
    edge = f"(SELECT coalesce(CASE WHEN count(*) = {limit} THEN {last}(position) END, {none}) FROM first)"
    rest = " UNION ".join(f"({select(s, p, f' AND {p} {op} {edge}')})" for s, p in others)
    return (f"WITH first AS MATERIALIZED ({select(source, position)}) SELECT position FROM ("
            f"SELECT position FROM first UNION {rest}) AS u ORDER BY position {direction} LIMIT {limit}")


# The position at and below which Statements may lack their pair keys (stored
# before schemas/postgres/0141_activity_verb_pair_keys.sql); none recorded:
# every Statement may (the activity's walk everywhere is always right).
PAIR_LOW = ("pair_low AS MATERIALIZED (SELECT coalesce((SELECT w.position FROM pair_keys_low_water w),"
            " 9223372036854775807) AS low)")
_LOW = "(SELECT low FROM pair_low)"


def _pair_walked(query: StatementQuery) -> bool:
    """Whether the query's walk is of its activity + verb pair key
    (:func:`_split_matches`): the activity would be walked (no agent, no
    registration) and the verb checked on each of its candidates."""
    return (query.agent is None and query.registration is None and query.activity is not None
            and query.verb is not None and not query.related_activities)


def _split_matches(
    alias: str, pair: tuple[str, str], activity: tuple[str, str], bounds: list[str],
    pair_conditions: str, activity_conditions: str, direction: str, limit: str, *, voided_only: bool,
) -> str:
    """:func:`_matches` for an activity + verb query: above the low-water
    (:data:`PAIR_LOW`) the pair key's rows, whose candidates hold to both
    filters already (as hashes); at or below it, where Statements may lack
    that key, the activity's rows with the verb checked on each candidate's
    row, as before the key.  The two ranges do not overlap: the one in the
    page's direction first, the other read only when it did not fill the page
    (a one-time condition: not even its index is entered)."""
    newer = _select(alias, *pair, bounds + [f"{{p}} > {_LOW}"], pair_conditions, direction, limit,
                    voided_only=voided_only)
    older_bounds = bounds + [f"{{p}} <= {_LOW}"]
    if direction == "DESC":
        first = newer
        rest = _select(alias, *activity, older_bounds, activity_conditions, direction, limit,
                       f" AND (SELECT count(*) FROM first) < {limit}")
    else:
        first = _select(alias, *activity, older_bounds, activity_conditions, direction, limit)
        rest = _select(alias, *pair, bounds + [f"{{p}} > {_LOW}"], pair_conditions, direction, limit,
                       f" AND (SELECT count(*) FROM first) < {limit}", voided_only=voided_only)
    return (f"WITH first AS MATERIALIZED ({first}) SELECT position FROM ("
            f"SELECT position FROM first UNION ALL ({rest})) AS u ORDER BY position {direction} LIMIT {limit}")


# The statements/read/mine scope walks its authority's own Statements (the
# index on (authority_key, position), schemas/postgres/0094_authority_position.sql)
# when it has no more than this many in all, checking the query's filters on
# each: at most this many rows read, however common the filters are.  An
# authority with more walks the filters' index ranges as any query does and
# checks the authority on each candidate, as many of them are its own.
AUTHORITY_WALK_MAX = 2000
# Whether the authority has no more than AUTHORITY_WALK_MAX Statements: a walk
# of its index entries (ORDER BY position: no plan without that index keeps
# to the authority's range, so none reads the table).
AUTHORITY_HAS_FEW = f"""
SELECT count(*) <= {AUTHORITY_WALK_MAX} FROM (
    SELECT 1 FROM statements a WHERE a.authority_key = statement_key($1, $2::text)
    ORDER BY a.position DESC LIMIT {AUTHORITY_WALK_MAX + 1}
) AS a
"""


def _authority_walk(key: str) -> list[tuple[str, str]]:
    """The walk of an authority's Statements in position order (:func:`_matches`):
    without a tenant condition of its own (the key includes the tenant; the
    candidate's row checks it), so that the tenant's position index is no plan."""
    return [(f"statements a WHERE a.authority_key = statement_key($1, {key}::text)", "a.position")]


# A filtered page's Statement: its event's payload when the event is the
# tenant's, else NULL (a candidate found by a key's hash that no row lookup
# checked, :func:`_matches`' ``voided_only``), which the page drops.
_PAGE_PAYLOAD = "(SELECT e.payload FROM events e WHERE e.position = s.position AND e.tenant = $1) AS payload"


def _page(time_bounds: str, positions: str, direction: str) -> str:
    """A page of the positions ``positions`` selects (:func:`_matches`), with
    the since/until positions searched first when the query has them."""
    with_times = f"WITH {time_bounds} " if time_bounds else ""
    return f"{with_times}SELECT s.position, {_PAGE_PAYLOAD} FROM ({positions}) AS s ORDER BY s.position {direction}"


def build_page_query(
    tenant: str, query: StatementQuery, after_position: int | None, limit: int,
    authority: str | None = None, *, walk_authority: bool = True, pair_keys_everywhere: bool = False,
) -> tuple[str, list[Any]]:
    """The SQL and parameters for one page (``limit`` + 1 rows, to see if more follow).

    With ``authority`` (statements/read/mine), a page without filters walks
    the authority's Statements; with filters, it walks them too when
    ``walk_authority`` (the authority has few, :data:`AUTHORITY_HAS_FEW`),
    else the filters' index ranges.  ``pair_keys_everywhere``: every
    Statement has its pair keys (the low-water is 0,
    :class:`lrs.store.pair_keys.PairKeysEverywhere`): an activity + verb page
    walks the pair key alone."""
    params: list[Any] = [tenant]

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    # bounds on the position, as templates on {p}: the read model's and a key walk's
    bounds = []
    where = ["s.tenant = $1", "NOT s.voided"]
    if after_position is not None:
        op = ">" if query.ascending else "<"
        bounds.append(f"{{p}} {op} {bind(after_position)}::bigint")
    # since/until as positions, each searched once per query in ``time_bounds``
    # (as a subquery in each bound, a filtered page searched them up to a
    # dozen times, 82 buffers each)
    searches = []
    if query.since is not None:
        since = bind(query.since)
        searches.append(f"{FIRST_STORED_AFTER.format(time=since)} AS since_at")
        bounds.append("{p} >= (SELECT since_at FROM time_bounds)")
    if query.until is not None:
        until = bind(query.until)
        searches.append(f"{FIRST_STORED_AFTER.format(time=until)} AS until_at")
        bounds.append("{p} < (SELECT until_at FROM time_bounds)")
    time_bounds = f"time_bounds AS MATERIALIZED (SELECT {', '.join(searches)})" if searches else ""
    where += [b.format(p="s.position") for b in bounds]
    authority_walk = None
    if authority is not None:
        key = bind(AUTHORITY_KEY + authority)
        where.append(f"s.authority_key = statement_key($1, {key}::text)")
        authority_walk = _authority_walk(key)
    direction = "ASC" if query.ascending else "DESC"
    if all(value is None for value in (query.agent, query.verb, query.activity, query.registration)):
        # By the position bounds alone: without statistics on ``stored`` (a
        # store just loaded in bulk) the planner took the two time conditions
        # for a handful of rows and collected and sorted the whole window
        # (3,958 buffers against 579 at 1,000,000 statements, growing with it).
        if authority_walk is not None:
            mine = _matches("s", authority_walk, bounds, " AND ".join(where), direction, str(int(limit) + 1))
            return _page(time_bounds, mine, direction), params
        sql = SELECT_PAGE.format(times=f"WITH {time_bounds}" if time_bounds else "", where=" AND ".join(where),
                                 direction=direction, limit=int(limit) + 1)
        return sql, params
    if authority_walk is not None and walk_authority:
        # The authority's few Statements, each checked against the filters:
        # no walk of the filters' matches (those of a common filter are most
        # of the tenant).
        walks, walked = authority_walk, None
    elif _pair_walked(query):
        # activity + verb: the pair key's rows above the low-water, the
        # activity's, the verb checked on each row, below (:func:`_split_matches`)
        assert query.activity is not None and query.verb is not None
        pair = f"statement_key($1, {bind(pair_key(query.activity, query.verb))}::text)"
        pair_walk = (f"statement_keys k WHERE k.key = {pair}", "k.position")
        if pair_keys_everywhere:
            # the pair key's candidates hold to both filters (as hashes): a key's walk like any other
            positions = _matches("s", [pair_walk], bounds, " AND ".join(where), direction, str(int(limit) + 1),
                                 voided_only=authority is None)
            return _page(time_bounds, positions, direction), params
        activity_walk = _walks(query, bind)
        assert activity_walk is not None and len(activity_walk) == 1
        verb = _filters(query, "s", params, "activity")
        pair_bounds = f"{time_bounds}, {PAIR_LOW}" if time_bounds else PAIR_LOW
        positions = _split_matches("s", pair_walk, activity_walk[0], bounds, " AND ".join(where),
                                   " AND ".join(where + verb), direction, str(int(limit) + 1),
                                   voided_only=authority is None)
        return _page(pair_bounds, positions, direction), params
    else:
        # a walk's candidates hold to its filter already: not checked again on the row
        # The verb's walk checks its own rows (a lookup a candidate less:
        # about 4 of a page's 8 buffers a row), not beside the authority's
        # condition, whose index the planner could walk instead.  Beside a
        # since/until window too, now that ``stored`` is not checked on the
        # rows (the position bounds hold it, FIRST_STORED_AFTER): with the
        # two time conditions the planner took the window for a few rows,
        # read every row of the verb in it and sorted them.
        direct = authority is None
        walks, walked = _walks(query, bind, "s" if direct else "v"), _walked(query)
    assert walks is not None  # a filter is given
    filters = _filters(query, "s", params, walked)
    conditions = " AND ".join(where + filters)
    return _page(time_bounds, _matches("s", walks, bounds, conditions, direction, str(int(limit) + 1),
                                       voided_only=authority is None and not filters), direction), params


async def query_statements(
    pool: Pool,
    tenant: str,
    query: StatementQuery,
    *,
    after_position: int | None = None,
    limit: int,
    authority: str | None = None,
    pair_keys: PairKeysEverywhere | None = None,
) -> tuple[list[bytes], int | None, bool]:
    """One page: (stored JSON of each statement, position of the last one
    returned or None if none, whether more statements follow).  ``authority``
    (an IFI key) keeps only Statements with that authority.  ``pair_keys``:
    the process's knowledge of whether every Statement has its pair keys
    (:func:`build_page_query`; None: the page's SQL asks the low-water).

    The SQL selects by hashes of the keys; each Statement it returns is then
    checked on its own JSON (:mod:`lrs.ingest.stored_keys`), and one that
    only shared a hash is dropped.  Should that leave the page short, the
    next candidates after the last one read fill it."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if isinstance(pool, asyncpg.Pool):
        # one connection for the page's statements: one acquire (and, on a
        # pool that resets its connections, one reset) a page, not one a statement
        async with pool.acquire() as conn:
            return await query_statements(conn, tenant, query, after_position=after_position, limit=limit,
                                          authority=authority, pair_keys=pair_keys)
    checked = authority is not None or any(
        value is not None for value in (query.agent, query.verb, query.activity, query.registration)
    )
    walk_authority = True
    if authority is not None and any(
        value is not None for value in (query.agent, query.verb, query.activity, query.registration)
    ):
        walk_authority = await pool.fetchval(AUTHORITY_HAS_FEW, tenant, AUTHORITY_KEY + authority)
    narrow = narrow_check(query, authority) if checked else None
    everywhere = pair_keys is not None and _pair_walked(query) and await pair_keys.everywhere(pool)
    kept: list[tuple[int, bytes]] = []
    cursor = after_position
    while True:
        sql, params = build_page_query(tenant, query, cursor, limit, authority, walk_authority=walk_authority,
                                       pair_keys_everywhere=everywhere)
        rows = await pool.fetch(sql, *params)
        for position, stored in rows:
            if stored is None:  # another tenant's event (a shared hash, :data:`_PAGE_PAYLOAD`)
                continue
            payload = open_payload(stored)
            if not checked:
                kept.append((position, payload))
                continue
            found = narrow(payload) if narrow is not None else None
            if found is None:
                meets = await _meets(pool, tenant, query, authority, payload)
            else:
                meets, target = found
                if not meets and target is not None:
                    meets = await _chain_meets(pool, tenant, query, target)
            if meets:
                kept.append((position, payload))
        if len(rows) <= limit or len(kept) > limit:
            break
        cursor = rows[-1]["position"]
    has_more = len(kept) > limit
    kept = kept[:limit]
    last = kept[-1][0] if kept else None
    return [payload for _, payload in kept], last, has_more


_decode = msgspec.json.Decoder().decode


async def _meets(pool: Pool, tenant: str, query: StatementQuery, authority: str | None, payload: bytes) -> bool:
    """Whether a candidate the SQL chose by hashes is in the result: its
    authority, and it meets the filters itself or through its StatementRef
    chain (up to MAX_REF_DEPTH targets; the keys it holds for them made it a candidate)."""
    body = _decode(payload)
    if authority is not None and not has_authority(body, authority):
        return False
    if meets_filters(query, body):
        return True
    return await _chain_meets(pool, tenant, query, statement_ref_target(body))


async def _chain_meets(pool: Pool, tenant: str, query: StatementQuery, target: Any) -> bool:
    """Whether a Statement of the StatementRef chain from ``target`` (an id,
    or None for none) meets the filters (:func:`_meets`)."""
    for _ in range(MAX_REF_DEPTH):
        if target is None:
            return False
        stored = await pool.fetchval(SELECT_REF_TARGET, tenant, target)
        if stored is None:
            return False
        body = _decode(open_payload(stored))
        if meets_filters(query, body):
            return True
        target = statement_ref_target(body)
    return False
