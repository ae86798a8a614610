"""Opening stored Statements in a command that runs apart from the service
(``lrs export``, ``lrs forward``): the keys resolved as ``lrs serve``
resolves them, the opening itself :meth:`LearnerKeys.open_payloads`, the
one GET /xapi/statements reads with (erased identities in the erased form,
docs/privacy.md).

Such a process does not listen for erasures: :meth:`LearnerKeys.ciphers_for_reading`
checks the database's key epoch before it uses a cached key, so a key
destroyed meanwhile is never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from lrs.privacy import opening
from lrs.privacy.master import PrivacyKeyError, load
from lrs.store.learner_keys import LearnerKeys

__all__ = ["StoredStatementOpener", "keys_for_reading"]


async def keys_for_reading(pool: Any, path: Path | None) -> LearnerKeys:
    """The keys that open what ``pool``'s store sealed, with the master key
    at ``path``.  Raises :class:`PrivacyKeyError` (one line, naming
    LRS_PRIVACY_KEY_FILE) when there is no key file or it is not the
    store's: never a new key, which would open nothing."""
    master = load(path) if path is not None else None
    if master is None:
        raise PrivacyKeyError(
            "the store holds sealed personal data: LRS_PRIVACY_KEY_FILE must name its privacy key file"
            + (f" ({path} does not exist)" if path is not None else "")
        )
    learner_keys = LearnerKeys(pool, master)
    await learner_keys.check_master_key()
    return learner_keys


class StoredStatementOpener:
    """``await opener(tenant, payloads)``: stored Statement payloads opened as
    GET /xapi/statements returns them.  The key is looked for at the first
    sealed payload (``key_file()``, which raises :class:`PrivacyKeyError`
    or :class:`lrs.config.ConfigError` naming the setting): a store kept in
    clear needs none."""

    def __init__(self, pool: Any, key_file: Callable[[], Path]) -> None:
        self._pool = pool
        self._key_file = key_file
        self._keys: LearnerKeys | None = None

    async def __call__(self, tenant: str, payloads: list[bytes]) -> list[bytes]:
        if self._keys is None:
            if not any(opening.is_sealed_payload(payload) for payload in payloads):
                return payloads
            self._keys = await keys_for_reading(self._pool, self._key_file())
        return await self._keys.open_payloads(tenant, payloads)
