"""Opening stored Statements (pure): the sealed identities a stored
Statement holds (their keys' pseudonyms and generations, the rows of their
ciphertexts kept apart), each sealed Agent or Group opened or in its erased
form (:mod:`lrs.privacy.seal` describes both), and an opened Statement's
Agent of a pseudonym."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import msgspec
from cryptography.exceptions import InvalidTag

from lrs.privacy.seal import ERASED_HOME, SEALED
from lrs.privacy.sealed_text import (
    COMPACT, NONCE, REFERENCE, SHORT, Ciphers, b64_unpadded, compact_aad, parse_sealed, reference_aad, reference_of,
    short_aad, short_row, short_tag, v1_aad)
from lrs.privacy.statement_agents import agent_slots, copy_path
from lrs.xapi.identity import ifi_key

__all__ = [
    "agent_named",
    "is_sealed_payload",
    "open_agent",
    "open_statement",
    "open_statement_by",
    "sealed_refs",
    "stored_references",
]

_decode = msgspec.json.Decoder().decode


_MARKER = b'"sealed":"v'  # v1., v2., v3. or v4.


def is_sealed_payload(payload: bytes) -> bool:
    """Whether a stored Statement holds sealed identities (a cheap byte test;
    a client cannot send a ``sealed`` property on an Agent)."""
    return _MARKER in payload


def _sealed_texts(statement: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(sealed text, sealed form) of every sealed identity in a stored
    Statement, Group members included."""

    def visit(agent: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        text = agent.get(SEALED)
        if isinstance(text, str):
            yield text, agent
        for member in agent.get("member", ()):
            yield from visit(member)

    for container, name in agent_slots(statement):
        agent = container.get(name)
        if isinstance(agent, dict):
            yield from visit(agent)


def stored_references(statement: dict[str, Any]) -> set[bytes]:
    """The ``sealed_identities`` rows of every v3 and v4 sealed identity in a
    stored Statement, whose ciphertexts :func:`open_statement` needs."""
    rows: set[bytes] = set()
    for text, agent in _sealed_texts(statement):
        if text.startswith(SHORT + "."):
            pseudonym_, generation, tag = parse_sealed(text, agent)
            rows.add(short_row(pseudonym_, generation, tag))
        elif text.startswith(REFERENCE + "."):
            rows.add(b64_unpadded(text.split(".", 2)[2]))
    return rows


def sealed_refs(statement: dict[str, Any]) -> set[tuple[str, int]]:
    """(pseudonym, generation) of every sealed identity in a stored Statement."""
    refs: set[tuple[str, int]] = set()
    for text, agent in _sealed_texts(statement):
        pseudonym_, generation, _ = parse_sealed(text, agent)
        refs.add((pseudonym_, generation))
    return refs


_NO_CIPHERTEXTS: Mapping[bytes, bytes] = {}


def open_agent(
    agent: dict[str, Any], ciphers: Ciphers, tenant: str, ciphertexts: Mapping[bytes, bytes] = _NO_CIPHERTEXTS
) -> dict[str, Any]:
    """The original of a sealed Agent/Group, or its erased form
    (``ciphertexts``: by reference, those of its v3 forms)."""
    text = agent.get(SEALED)
    members = agent.get("member")
    if text is None:
        opened = {k: v for k, v in agent.items() if k != "member"}
    else:
        pseudonym_, generation, data = parse_sealed(text, agent)
        cipher = ciphers.get((pseudonym_, generation))
        opened = None
        referenced = text.startswith(REFERENCE + ".")
        short = not referenced and text.startswith(SHORT + ".")
        if referenced:
            # The reference commits to the ciphertext: one that does not hash to it is not this one.
            stored = ciphertexts.get(data)
            data = stored if stored is not None and reference_of(stored) == data else None  # type: ignore[assignment]
        elif short:
            # So does the tag, for the ciphertexts of this identity's generation (short_row).
            stored = ciphertexts.get(short_row(pseudonym_, generation, data))
            ok = stored is not None and short_tag(stored) == data
            data = stored if ok else None  # type: ignore[assignment]
        if cipher is not None and data is not None:
            compact = referenced or short or text.startswith(COMPACT + ".")
            aad = (reference_aad if referenced else short_aad if short else compact_aad if compact else v1_aad)(
                tenant, pseudonym_, generation)
            try:
                opened = _decode(cipher.decrypt(NONCE, data, aad))
            except InvalidTag:
                opened = None
            if opened is not None and compact:
                opened = {"objectType": agent.get("objectType", "Agent"), **opened}
        if opened is None:
            opened = {"objectType": agent.get("objectType", "Agent")}
            if "account" in agent:
                opened["account"] = {"homePage": ERASED_HOME, "name": pseudonym_}
    if members is not None:
        opened["member"] = [open_agent(m, ciphers, tenant, ciphertexts) for m in members]
    return opened


def open_statement(
    statement: dict[str, Any], ciphers: Ciphers, tenant: str, ciphertexts: Mapping[bytes, bytes] = _NO_CIPHERTEXTS
) -> dict[str, Any]:
    """A stored Statement with every sealed identity opened (or erased)."""
    return open_statement_by(statement, lambda agent: open_agent(agent, ciphers, tenant, ciphertexts))


def open_statement_by(statement: dict[str, Any], open_: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """A stored Statement with each Agent or Group replaced by ``open_`` of
    it (:func:`open_agent`, or a form of it opened before)."""
    opened = copy_path(statement)
    for container, name in agent_slots(opened):
        agent = container.get(name)
        if isinstance(agent, dict):
            container[name] = open_(agent)
    return opened


def agent_named(statement: dict[str, Any], pseudonym_: str, pseudonym_of: Callable[[str], str]) -> tuple[dict[str, Any] | None, bool]:
    """In an *opened* Statement (:func:`open_statement`), the Agent or
    identified Group whose IFI has the pseudonym ``pseudonym_``
    (``pseudonym_of``: IFI key -> pseudonym), and whether the Statement holds
    that identity in the erased form instead."""
    erased = False

    def visit(agent: Any) -> dict[str, Any] | None:
        nonlocal erased
        if not isinstance(agent, dict):
            return None
        account = agent.get("account")
        if isinstance(account, dict) and account.get("homePage") == ERASED_HOME:
            erased = erased or account.get("name") == pseudonym_
        else:
            key = ifi_key(agent)  # type: ignore[arg-type]
            if key is not None and pseudonym_of(key) == pseudonym_:
                return agent
        for member in agent.get("member", ()):
            found = visit(member)
            if found is not None:
                return found
        return None

    for container, name in agent_slots(statement):
        found = visit(container.get(name))
        if found is not None:
            return found, False
    return None, erased
