"""The index ranges a filtered page of GET /xapi/statements walks and the
conditions each candidate row is checked on (:mod:`lrs.store.page_query`
builds the page's SQL from them; :mod:`lrs.store.reader` runs it).  All
values are bound parameters; only fixed SQL fragments are assembled.
"""

from __future__ import annotations

from typing import Any, Callable

from lrs.batching import ACTIVITY_KEY, AGENT_KEY, AUTHORITY_KEY, RELATED_ACTIVITY_KEY, RELATED_AGENT_KEY
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import REGISTRATION_KEY


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


def _pair_walked(query: StatementQuery) -> bool:
    """Whether the query's walk is of its activity + verb pair key
    (:func:`_split_matches`): the activity would be walked (no agent, no
    registration) and the verb checked on each of its candidates."""
    return (query.agent is None and query.registration is None and query.activity is not None
            and query.verb is not None and not query.related_activities)


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
