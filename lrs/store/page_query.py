"""The SQL of one page of GET /xapi/statements (:func:`build_page_query`):
the position bounds (``after``, since/until as positions), the walks of
:mod:`lrs.store.statement_walks` in position order, each candidate checked on
its row, and the page's Statements read from their events.
:mod:`lrs.store.reader` runs it.  All values are bound parameters; only fixed
SQL fragments are assembled.
"""

from __future__ import annotations

from typing import Any

from lrs.batching import AUTHORITY_KEY
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import pair_key
from lrs.store.statement_walks import _authority_walk, _filters, _pair_walked, _walked, _walks

# A statement's stored JSON is the payload of its event (same position),
# fetched for each selected row by a subquery, so that the plans choosing the
# rows stay those of the read model alone.  It may be kept compressed
# (lrs/payload_codec.py): every payload read is opened with open_payload.
_PAYLOAD = "(SELECT e.payload FROM events e WHERE e.position = s.position) AS payload"
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
