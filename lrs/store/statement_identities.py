"""Who a pseudonym key is, as the learner's own Statements say (docs/privacy.md).

A learner the roster never named (Statements only, or an identifier linked
to a person) has no sealed reference of the roster to open
(lrs/store/learner_refs.py).  Their Statements have one: the latest
Statements naming the key (the ``agent`` filter of GET /xapi/statements,
:func:`lrs.store.reader.query_statements`) are opened exactly as that GET
opens them (:meth:`lrs.store.learner_keys.LearnerKeys.open_payloads`), and
the identity with that pseudonym read from them: its IFI key and ``name``,
or, once the learner's key is destroyed, only that it was erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from lrs.ingest.query import StatementQuery
from lrs.privacy import seal
from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX
from lrs.store.reader import query_statements
from lrs.xapi.identity import ifi_key

__all__ = ["StatementIdentity", "identities_in_statements"]


@dataclass(slots=True)
class StatementIdentity:
    """``identifier``: the clear IFI key (None: not found, or erased);
    ``names``: the ``name`` values the Statements gave; ``erased``: the
    Statements hold the identity in the erased form."""

    identifier: str | None = None
    names: list[str] = field(default_factory=list)
    erased: bool = False


async def identities_in_statements(
    pool: Any, learner_keys: Any, tenant: str, pseudonym_keys: Iterable[str], *, statements: int = 1
) -> dict[str, StatementIdentity]:
    """For each pseudonym key, what its latest ``statements`` Statements
    (not voided) say of it.  One query per key: callers ask only for the
    few learners the roster cannot name."""
    found: dict[str, StatementIdentity] = {}
    for key in sorted(set(pseudonym_keys)):
        seen = found[key] = StatementIdentity()
        if not key.startswith(PSEUDONYM_KEY_PREFIX):
            continue
        pseudonym = key.removeprefix(PSEUDONYM_KEY_PREFIX)
        payloads, _, _ = await query_statements(
            pool, tenant, StatementQuery(agent=key, limit=statements), limit=statements
        )
        for opened in await learner_keys.open_payloads(tenant, payloads):
            agent, erased = seal.agent_named(seal.decode(opened), pseudonym, lambda k: learner_keys.pseudonym(tenant, k))
            if agent is None:
                seen.erased = seen.erased or erased
                continue
            if seen.identifier is None:
                seen.identifier = ifi_key(agent)  # type: ignore[arg-type]
            name = agent.get("name")
            if isinstance(name, str) and name not in seen.names:
                seen.names.append(name)
    return found
