"""Learners as officials see them: the clear identifier behind a pseudonym key.

With personal data sealed (docs/privacy.md) the competency projection and the
roster know a learner by the *pseudonym key*
(``account:https://lrs.invalid/pseudonym|<hex>``).  The clear identifier the
roster was given travels beside it in the roster event, sealed under the
learner's data key (lrs/store/learner_refs.py); :class:`DisplayIds` opens
those texts for a page of learners at once (one query for the sealed texts,
one for the data keys) so learner lists, reports and the console show the
identifier the programme knows, never the pseudonym in its place.

An identifier linked to a person that the roster does not name has its
text in the identity event that linked it.  A learner named by neither
(Statements only) has no such text: the identifier is read from their latest Statement,
opened as GET /xapi/statements opens it
(:mod:`lrs.store.statement_identities`), one query for all such learners.

An erased learner's text can no longer be opened: the answer is ``None``
with :data:`ERASED` as the shown text.  A key that is not a pseudonym key
(personal data not sealed) is shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import asyncpg

from lrs.payload_codec import open_payload
from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX, open_refs
from lrs.store.statement_identities import identities_in_statements
from projections.units.history import sealed_of

__all__ = ["ERASED", "DisplayIds", "Shown", "learner_view_keys", "shown_learner_view"]

ERASED = "(erased)"

# The roster events that last recorded each wanted learner (the sealed text is in each of them).
SELECT_SEALED_ROSTER_PAYLOADS = """
SELECT payload FROM events
WHERE event_type = 'roster' AND position IN (
    SELECT max(recorded_position) FROM roster_memberships
    WHERE tenant = $1 AND learner = ANY($2::text[]) AND recorded_position > 0
    GROUP BY learner
)
"""

# The identity events that last linked each wanted identifier, or person (each carries the sealed texts).
SELECT_SEALED_LINK_PAYLOADS = """
SELECT payload FROM events
WHERE event_type = 'identity' AND position IN (
    SELECT max(linked_position) FROM identity_links WHERE tenant = $1 AND identifier = ANY($2::text[]) GROUP BY identifier
    UNION ALL
    SELECT max(linked_position) FROM identity_links
    WHERE tenant = $1 AND person = ANY($2::text[]) AND unlinked_position IS NULL GROUP BY person
)
"""


@dataclass(frozen=True, slots=True)
class Shown:
    """One learner as shown: ``identifier`` the clear key (None: erased, or
    never given in clear), ``key`` the key the projection knows it by."""

    key: str
    identifier: str | None
    erased: bool

    @property
    def text(self) -> str:
        """For a cell or a page: the identifier, :data:`ERASED`, or empty
        (nothing in clear to show; the key is shown beside it)."""
        if self.identifier is not None:
            return self.identifier
        return ERASED if self.erased else ""

    def json(self) -> dict[str, Any]:
        return {"learner": self.identifier, "key": self.key, **({"erased": True} if self.erased else {})}


NAMED_BY_KEY = "account:https://lrs.invalid/"  # a pseudonym key or an erased form's, in a path


def learner_view_keys(view: dict[str, Any], stored: str) -> list[str]:
    """Every learner key a learner or trail answer names."""
    return [stored, view["person"], *view["merged"]]


def shown_learner_view(view: dict[str, Any], asked: str, stored: str, shown: dict[str, Shown]) -> dict[str, Any]:
    """A learner or trail answer (queries.learner_view, read by its key
    ``stored`` for the learner named ``asked``) as officials see it:

    * ``learner``: the identifier asked for (named by its pseudonym key: the
      identifier held for it), None once erased, with ``"erased": true``;
      ``key``: the projection's key;
    * ``person``, ``identifiers``, ``merged``: the identifiers shown (None
      for an erased one), the projection's keys beside them in
      ``person_key``, ``identifier_keys``, ``merged_keys``.

    Nothing of an erased learner is shown in clear, not even the identifier
    the path gave."""
    by_key = asked.startswith(NAMED_BY_KEY)
    asked_one = shown.get(stored, Shown(stored, None, False))

    def clear(key: str) -> str | None:
        found = shown.get(key)
        if found is not None and (found.identifier is not None or found.erased):
            return found.identifier
        return asked if key == stored and not by_key else None  # nothing opened: the caller's own words

    person, merged = view["person"], list(view["merged"])
    view.update(learner=clear(stored), key=stored)
    if asked_one.erased:
        view["erased"] = True
    view.update(
        person=clear(person), person_key=person,
        identifiers=[clear(k) for k in (person, *merged)], identifier_keys=[person, *merged],
        merged=[clear(k) for k in merged], merged_keys=merged,
    )
    return view


class DisplayIds:
    """Resolves pseudonym keys to the identifiers to show, for one tenant and
    a batch of keys.  ``learner_keys`` is the service's
    :class:`lrs.store.learner_keys.LearnerKeys` (None: personal data is not
    sealed, every key is shown as it is)."""

    async def shown(
        self, conn: asyncpg.Connection | asyncpg.Pool, learner_keys: Any, tenant: str, keys: Iterable[str]
    ) -> dict[str, Shown]:
        wanted = sorted(set(keys))
        pseudonyms = [k for k in wanted if k.startswith(PSEUDONYM_KEY_PREFIX)]
        opened: dict[str, str | None] = {}
        if pseudonyms and learner_keys is not None:
            sealed = await self._sealed(conn, SELECT_SEALED_ROSTER_PAYLOADS, tenant, pseudonyms)
            # Linked identifiers (and persons) the roster does not name: the identity events that linked them.
            unrostered = [k for k in pseudonyms if k not in sealed]
            if unrostered:
                sealed.update(await self._sealed(conn, SELECT_SEALED_LINK_PAYLOADS, tenant, unrostered))
            opened = await open_refs(learner_keys, tenant, sealed) if sealed else {}
            # Not rostered, or erased in the roster (a learner who came back has new Statements): their Statements.
            unopened = [k for k in pseudonyms if opened.get(k) is None]
            from_statements = await identities_in_statements(conn, learner_keys, tenant, unopened) if unopened else {}
            for key, seen in from_statements.items():
                if seen.identifier is not None or seen.erased:
                    opened[key] = seen.identifier  # None: erased (the roster's answer otherwise stands)
        answer: dict[str, Shown] = {}
        for key in wanted:
            if not key.startswith(PSEUDONYM_KEY_PREFIX):
                answer[key] = Shown(key, key, False)
            elif key in opened:
                answer[key] = Shown(key, opened[key], opened[key] is None)
            else:  # nothing holds it in clear (personal data not readable here): the key only
                answer[key] = Shown(key, None, False)
        return answer

    @staticmethod
    async def _sealed(conn: Any, query: str, tenant: str, keys: list[str]) -> dict[str, str]:
        """Pseudonym key -> sealed clear key, from the events ``query`` selects."""
        wanted = set(keys)
        sealed: dict[str, str] = {}
        for row in await conn.fetch(query, tenant, keys):
            for learner, text in sealed_of(open_payload(row["payload"])).items():
                if learner in wanted:
                    sealed[learner] = text
        return sealed
