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
grow with the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from lrs.batching import AGENT_KEY
from lrs.payload_codec import open_payload
from lrs.privacy import seal
from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX
from lrs.xapi.identity import ifi_key

__all__ = ["SELECT_LATEST_NAMING", "StatementIdentity", "identities_in_statements"]

# For each filter key ($2), the payloads of the latest $3 Statements (not voided) naming it directly.
# (statement_keys holds hashes: the opened Statement decides, seal.agent_named; OFFSET 0 keeps each check a lookup.)
SELECT_LATEST_NAMING = """
SELECT w.filter_key, (SELECT e.payload FROM events e WHERE e.position = m.position) AS payload
FROM unnest($2::text[]) AS w(filter_key)
CROSS JOIN LATERAL (
    SELECT k.position FROM statement_keys k
    WHERE k.key = statement_key($1, w.filter_key) AND EXISTS (
        SELECT 1 FROM statements s WHERE s.tenant = $1 AND s.position = k.position AND NOT s.voided OFFSET 0
    )
    ORDER BY k.position DESC LIMIT $3
) AS m
ORDER BY w.filter_key, m.position DESC
"""


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
    (not voided, naming it themselves) say of it, in one query."""
    found = {key: StatementIdentity() for key in sorted(set(pseudonym_keys))}
    asked = [key for key in found if key.startswith(PSEUDONYM_KEY_PREFIX)]
    if not asked:
        return found
    rows = await pool.fetch(SELECT_LATEST_NAMING, tenant, [AGENT_KEY + key for key in asked], statements)
    rows = [row for row in rows if row["payload"] is not None]
    opened_all = await learner_keys.open_payloads(tenant, [open_payload(row["payload"]) for row in rows])

    def pseudonym_of(ifi: str) -> str:
        return learner_keys.pseudonym(tenant, ifi)

    for row, opened in zip(rows, opened_all):
        key = row["filter_key"].removeprefix(AGENT_KEY)
        seen = found[key]
        agent, erased = seal.agent_named(seal.decode(opened), key.removeprefix(PSEUDONYM_KEY_PREFIX), pseudonym_of)
        if agent is None:
            seen.erased = seen.erased or erased
            continue
        if seen.identifier is None:
            seen.identifier, seen.agent = ifi_key(agent), agent  # type: ignore[arg-type]
        name = agent.get("name")
        if isinstance(name, str) and name not in seen.names:
            seen.names.append(name)
    return found
