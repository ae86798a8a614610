"""Who a pseudonym key is, as the learner's own Statements say (docs/privacy.md).

A learner the roster never named (Statements only, or an identifier linked
to a person) has no sealed reference of the roster to open
(lrs/store/learner_refs.py).  Their Statements have one: the latest
Statements (not voided) that name the key themselves, as actor or object
(the direct part of the ``agent`` filter of GET /xapi/statements; a
Statement that only refers to one of theirs, an instructor's comment on it,
does not name them), are opened exactly as that GET opens them
(:meth:`lrs.store.learner_keys.LearnerKeys.open_payloads`), and the
identity with that pseudonym read from them: its IFI key and ``name``, or,
once the learner's key is destroyed, only that it was erased.

One query for every key asked (a page of learners): each key's range of
``statement_keys`` is walked from its latest position, so the cost does not
grow with the store.  A Statement that refers to one of the learner's holds
their key as well (lrs/store/ref_keys.py) and is passed over: the walk goes
on behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec

from lrs.batching import AGENT_KEY
from lrs.ingest.stored_keys import statement_keys
from lrs.payload_codec import open_payload
from lrs.privacy import opening, seal
from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX
from lrs.xapi.identity import ifi_key

__all__ = ["END_OF_LOG", "SELECT_LATEST_NAMING", "StatementIdentity", "identities_in_statements"]

_decode = msgspec.json.Decoder().decode

# For each filter key ($2), the payloads of the latest $3 Statements (not voided)
# holding its hash before the position $4 (pairwise with $2).
# (statement_keys holds hashes: the opened Statement decides, opening.agent_named; OFFSET 0 keeps each check a lookup.
# DISTINCT: a Statement two of whose keys share the hash holds its row twice, lrs.store.group_commit_sql.INSERT_GROUP.)
SELECT_LATEST_NAMING = """
SELECT w.filter_key, m.position, (SELECT e.payload FROM events e WHERE e.position = m.position) AS payload
FROM unnest($2::text[], $4::bigint[]) AS w(filter_key, before)
CROSS JOIN LATERAL (
    SELECT DISTINCT k.position FROM statement_keys k
    WHERE k.key = statement_key($1, w.filter_key) AND k.position < w.before AND EXISTS (
        SELECT 1 FROM statements s WHERE s.tenant = $1 AND s.position = k.position AND NOT s.voided OFFSET 0
    )
    ORDER BY k.position DESC LIMIT $3
) AS m
ORDER BY w.filter_key, m.position DESC
"""
# No position is beyond this: the first round of SELECT_LATEST_NAMING.
END_OF_LOG = 2**63 - 1
# Each further round reads this many times as many rows (up to ROUND_MAX) for
# the keys still short of their Statements.
ROUND_GROWTH, ROUND_MAX = 4, 1000


@dataclass(slots=True)
class StatementIdentity:
    """``identifier``: the clear IFI key (None: not found, or erased);
    ``agent``: the Agent (or identified Group) it was found as, in clear;
    ``names``: the ``name`` values the Statements gave; ``erased``: the
    Statements hold the identity in the erased form."""

    identifier: str | None = None
    agent: dict[str, Any] | None = None
    names: list[str] = field(default_factory=list)
    erased: bool = False


async def identities_in_statements(
    pool: Any, learner_keys: Any, tenant: str, pseudonym_keys: Iterable[str], *, statements: int = 1
) -> dict[str, StatementIdentity]:
    """For each pseudonym key, what its latest ``statements`` Statements
    (not voided, naming it themselves) say of it, in one query (more only
    when Statements referring to theirs come first, :func:`_latest_naming`)."""
    found = {key: StatementIdentity() for key in sorted(set(pseudonym_keys))}
    asked = [key for key in found if key.startswith(PSEUDONYM_KEY_PREFIX)]
    if not asked:
        return found
    rows = await _latest_naming(pool, tenant, [AGENT_KEY + key for key in asked], statements)
    opened_all = await learner_keys.open_payloads(tenant, [open_payload(row["payload"]) for row in rows])

    def pseudonym_of(ifi: str) -> str:
        return learner_keys.pseudonym(tenant, ifi)

    for row, opened in zip(rows, opened_all):
        key = row["filter_key"].removeprefix(AGENT_KEY)
        seen = found[key]
        agent, erased = opening.agent_named(seal.decode(opened), key.removeprefix(PSEUDONYM_KEY_PREFIX), pseudonym_of)
        if agent is None:
            seen.erased = seen.erased or erased
            continue
        if seen.identifier is None:
            seen.identifier, seen.agent = ifi_key(agent), agent  # type: ignore[arg-type]
        name = agent.get("name")
        if isinstance(name, str) and name not in seen.names:
            seen.names.append(name)
    return found


async def _latest_naming(pool: Any, tenant: str, filter_keys: list[str], statements: int) -> list[Any]:
    """For each filter key, the rows of :data:`SELECT_LATEST_NAMING` of its
    latest ``statements`` Statements whose own keys hold it (by key, newest first).

    A Statement that refers to one of the learner's holds the learner's key
    too (lrs/store/ref_keys.py) without naming them: such rows are passed
    over and the walk goes on behind them, each round for the keys still
    short and reading more rows than the last."""
    kept: dict[str, list[Any]] = {key: [] for key in filter_keys}
    before = dict.fromkeys(filter_keys, END_OF_LOG)
    limit = statements
    while before:
        rows = await pool.fetch(SELECT_LATEST_NAMING, tenant, list(before), limit, list(before.values()))
        read: dict[str, list[Any]] = {key: [] for key in before}
        for row in rows:
            read[row["filter_key"]].append(row)
        for key, found in read.items():
            for row in found:
                payload = row["payload"]
                if payload is not None and key in statement_keys(_decode(open_payload(payload))):
                    kept[key].append(row)
            if len(found) < limit or len(kept[key]) >= statements:
                del before[key]
            else:
                before[key] = found[-1]["position"]
        limit = min(limit * ROUND_GROWTH, max(ROUND_MAX, statements))
    return [row for key in sorted(kept) for row in kept[key][:statements]]
