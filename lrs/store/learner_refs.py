"""Learners named by key outside Statements (roster memberships, identity
links), sealed like the identities of Statements (docs/privacy.md).

With personal data sealed, a roster or identity event names a learner by
the *pseudonym key* (:meth:`lrs.store.learner_keys.LearnerKeys.pseudonym_key`,
``account:https://lrs.invalid/pseudonym|<pseudonym>``): the key the sealed
Statements' actors have, so the projections join the roster to the evidence
on it.  The clear identifier, which an official may need to see, travels
beside it only as a *sealed text* (:func:`lrs.privacy.sealed_text.seal_bytes` under
the learner's data key)::

    "sealed": {"<pseudonym key>": "v1.<pseudonym>.<generation>.<ciphertext>", ...}

Erasing the learner destroys that key: the text can no longer be opened, the
event's bytes (and so the hash chain and the anchors) stay as they were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from lrs.privacy import seal, sealed_text

__all__ = ["PSEUDONYM_KEY_PREFIX", "SealedRefs", "open_refs", "seal_refs"]

PSEUDONYM_KEY_PREFIX = f"account:{seal.PSEUDONYM_HOME}|"
_PSEUDONYM_KEY = re.compile(re.escape(PSEUDONYM_KEY_PREFIX) + r"[0-9a-f]{32}")


@dataclass(slots=True)
class SealedRefs:
    """Clear key -> pseudonym key, and pseudonym key -> sealed clear key."""

    keys: dict[str, str] = field(default_factory=dict)
    sealed: dict[str, str] = field(default_factory=dict)

    def key(self, clear: str) -> str:
        return self.keys.get(clear, clear)

    def reveal(self, text: str) -> str:
        """``text`` (a message for the caller who gave the clear keys) with
        each pseudonym key of theirs written back in clear."""
        clear_of = {pseudonym_key: clear for clear, pseudonym_key in self.keys.items()}
        return _PSEUDONYM_KEY.sub(lambda m: clear_of.get(m.group(0), m.group(0)), text)

    def subset(self, pseudonym_keys: Iterable[str]) -> dict[str, str]:
        """The sealed texts of ``pseudonym_keys`` (for one event's payload)."""
        return {k: self.sealed[k] for k in sorted(set(pseudonym_keys)) if k in self.sealed}


async def seal_refs(learner_keys: Any, tenant: str, clear_keys: Iterable[str]) -> SealedRefs:
    """Pseudonym keys and sealed texts of ``clear_keys`` (IFI keys, as the
    roster names learners); a key already in pseudonym form stays as it is.
    Makes a data key for a learner who has none yet."""
    refs = SealedRefs()
    wanted = sorted({k for k in clear_keys if not k.startswith(PSEUDONYM_KEY_PREFIX)})
    if not wanted:
        return refs
    data_keys = await learner_keys.keys_for_writing(tenant, wanted)
    for clear in wanted:
        pseudonym_key = learner_keys.pseudonym_key(tenant, clear)
        refs.keys[clear] = pseudonym_key
        refs.sealed[pseudonym_key] = sealed_text.seal_bytes(data_keys[clear], tenant, clear.encode())
    return refs


async def open_refs(learner_keys: Any, tenant: str, sealed: Mapping[str, str]) -> dict[str, str | None]:
    """Pseudonym key -> the clear key its sealed text holds, or None once the
    learner was erased (or the text is not one of theirs)."""
    parsed = {k: sealed_text.sealed_ref(text) for k, text in sealed.items()}
    ciphers = await learner_keys.ciphers_for_reading(tenant, set(parsed.values()))
    opened: dict[str, str | None] = {}
    for pseudonym_key, text in sealed.items():
        plain = sealed_text.open_text(text, ciphers, tenant)
        clear = None if plain is None else plain.decode()
        # The text must be this learner's (not another's copied in beside the key).
        opened[pseudonym_key] = clear if clear and learner_keys.pseudonym_key(tenant, clear) == pseudonym_key else None
    return opened
