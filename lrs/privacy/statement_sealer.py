"""Sealing one request's Statements (pure): :class:`StatementSealer`, the
``seal_agent`` of :func:`lrs.privacy.statement_agents.seal_statement`, with
the sealed forms known before (:class:`KnownForm`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import msgspec

from lrs.privacy.data_key import SealKey
from lrs.privacy.seal import PSEUDONYM_HOME, SEALED, seal_agent
from lrs.privacy.sealed_text import COMPACT_MARK, SHORT, seal_bytes, seal_reference, seal_short
from lrs.privacy.statement_agents import identifier, identities
from lrs.xapi.identity import ifi_key

__all__ = ["KnownForm", "StatementSealer"]

_encode = msgspec.json.Encoder(order="sorted").encode


class KnownForm(msgspec.Struct, frozen=True, gc=False):
    """A sealed form kept for reuse: objectType, pseudonym, generation,
    sealed text (less memory than the form's dicts; never tracked by the
    garbage collector, where a tuple is until a collection sees it, and
    makes the cache it is put in tracked again: every full collection then
    visited each cached form)."""

    object_type: str
    pseudonym: str
    generation: int
    text: str


class StatementSealer:
    """Seals the identities of one request's Statements in the v4 form (v3
    with ``reference_form`` ``"v3"``, as builds before v4 did; v2 with
    ``references`` false; v1 where :func:`seal_agent` writes it),
    pure: :meth:`agent` is the ``seal_agent`` of :func:`seal_statement`.

    ``forms``: sealed forms of Agents sealed before, by the Agent's sorted
    JSON (one tenant's).  ``key_of``: identifier -> live key, raising
    KeyError for one not at hand; such an Agent gets an empty placeholder,
    filled in place by :meth:`finish` once :attr:`missing`'s keys are read,
    so a request with new learners is walked once.  An Agent named alike
    more than once in the request is sealed once, its form shared (sealed
    forms are never modified); one whose form is known gets a dict of its
    own each time (equal, not the same).

    After sealing: :attr:`refs` every (pseudonym, generation) sealed under,
    :attr:`ciphertexts` the v4 (or v3) ciphertexts by row, :attr:`fresh` the
    forms sealed now that may be kept for reuse (single identities, no members)."""

    __slots__ = ("tenant", "_forms", "_key_of", "_references", "_seal_apart", "refs", "ciphertexts",
                 "fresh", "missing", "_made", "_deferred")

    def __init__(
        self,
        tenant: str,
        forms: Mapping[bytes, KnownForm],
        key_of: Callable[[str], SealKey],
        *,
        references: bool = True,
        reference_form: str = SHORT,
    ) -> None:
        self.tenant = tenant
        self._forms = forms
        self._key_of = key_of
        self._references = references
        # The form whose ciphertext lies apart: v4 (written now) or v3 (as builds before v4 wrote).
        self._seal_apart = seal_short if reference_form == SHORT else seal_reference
        self.refs: set[tuple[str, int]] = set()
        self.ciphertexts: dict[bytes, bytes] = {}
        self.fresh: dict[bytes, KnownForm] = {}
        self.missing: set[str] = set()
        self._made: dict[bytes, dict[str, Any]] = {}  # sealed in this request (those with one key)
        self._deferred: dict[bytes, tuple[dict[str, Any], dict[str, Any]]] = {}

    def agent(self, agent: dict[str, Any]) -> dict[str, Any]:
        """The sealed form of one Agent or Group."""
        own = _encode(agent)
        # The known forms first, and a form built from one is not kept for
        # the rest of the request: at batch 100 a request names each learner
        # about once, and the request's own dict of forms was a look-up and a
        # store per Agent for nothing (about 90 ns of its 1.5 us; docs/privacy.md,
        # "A known learner's form (branch seal-forms)").
        known = self._forms.get(own)
        if known is not None:
            pseudonym_ = known.pseudonym
            self.refs.add((pseudonym_, known.generation))
            return {"objectType": known.object_type, "account": {"homePage": PSEUDONYM_HOME, "name": pseudonym_},
                    SEALED: known.text}
        made = self._made.get(own)
        if made is not None:
            return made
        deferred = self._deferred.get(own)
        if deferred is not None:
            return deferred[1]
        try:
            return self._seal(agent, own, self._key_of)
        except KeyError:
            placeholder: dict[str, Any] = {}
            self._deferred[own] = (agent, placeholder)
            self.missing |= identities({"actor": agent})
            return placeholder

    def finish(self, keys: Mapping[str, SealKey]) -> None:
        """Seal the Agents left as placeholders, with ``keys`` (by identifier,
        :attr:`missing` at least)."""
        for own, (agent, placeholder) in self._deferred.items():
            placeholder.update(self._seal(agent, own, keys.__getitem__))
        self._deferred.clear()

    def _seal(self, agent: dict[str, Any], own: bytes, key_of: Callable[[str], SealKey]) -> dict[str, Any]:
        object_type = agent.get("objectType")
        ifi = ifi_key(agent)  # type: ignore[arg-type]
        if self._references and object_type is not None and ifi is not None and "member" not in agent:
            # The common case, as seal_agent seals it in the v3 form, without its detours.
            key = key_of(ifi)
            plaintext = _encode({k: v for k, v in agent.items() if k != "objectType"})
            text = self._apart(key, plaintext)
            form = {"objectType": object_type, "account": {"homePage": PSEUDONYM_HOME, "name": key.pseudonym},
                    SEALED: text}
        else:
            form = seal_agent(agent, _KeysOf(key_of), self._seal_text)
            if "account" not in form or "member" in form:
                return form
            key = key_of(identifier(agent))  # type: ignore[arg-type]
            text = form[SEALED]
        self.refs.add((key.pseudonym, key.generation))
        self.fresh[own] = KnownForm(form["objectType"], key.pseudonym, key.generation, text)
        self._made[own] = form
        return form

    def _seal_text(self, key: SealKey, plaintext: bytes) -> str:
        self.refs.add((key.pseudonym, key.generation))
        if self._references and plaintext.startswith(COMPACT_MARK):
            return self._apart(key, plaintext[len(COMPACT_MARK):])
        return seal_bytes(key, self.tenant, plaintext)

    def _apart(self, key: SealKey, plaintext: bytes) -> str:
        """The text of a ciphertext kept apart, noted in :attr:`ciphertexts`.
        Two namings of one identity sealed in one request whose v4 tags are
        equal (see sealed_text._TAG_BYTES) would share a row: the second is sealed in the
        v3 form, whose reference is its whole ciphertext's."""
        text, row, ciphertext = self._seal_apart(key, self.tenant, plaintext)
        if text.startswith(SHORT + "."):
            held = self.ciphertexts.get(row)
            if held is not None and held != ciphertext:
                text, row, ciphertext = seal_reference(key, self.tenant, plaintext)
        self.ciphertexts[row] = ciphertext
        return text


class _KeysOf:
    """A ``keys`` mapping for :func:`seal_agent` over a look-up function."""

    __slots__ = ("_key_of",)

    def __init__(self, key_of: Callable[[str], SealKey]) -> None:
        self._key_of = key_of

    def __getitem__(self, ident: str) -> SealKey:
        return self._key_of(ident)
