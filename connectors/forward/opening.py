"""How ``lrs forward`` opens sealed statements before they leave (pure port).

With personal data sealed (LRS_SEAL_PERSONAL_DATA, docs/privacy.md) the log
holds every Agent and Group of a statement sealed; another LRS refuses that
form.  The forwarder is given an :data:`OpenStored`: the LRS's own opener,
the one GET /xapi/statements reads with, plugged in by the composition root
(lrs/service.py), so connectors never hold keys nor know how statements are
sealed.  It opens the stored payloads of one tenant as GET returns them: an
erased learner in the erased form, a statement stored in clear unchanged.
It raises :class:`CannotOpen` when sealed statements arrive and their key
is not available: the forwarder stops then, and never sends the sealed form.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

__all__ = ["CannotOpen", "OpenStored", "OpenerFactory"]

# (tenant, stored payloads) -> the payloads opened, in the same order; a
# payload with nothing sealed comes back as the same object.
OpenStored = Callable[[str, list[bytes]], Awaitable[list[bytes]]]

# (the source's PostgreSQL pool, the database URL given with --database-url or
# LRS_DATABASE_URL, None for the embedded one of a running `lrs serve`) -> opener.
OpenerFactory = Callable[[Any, "str | None"], OpenStored]


class CannotOpen(Exception):
    """Sealed statements cannot be opened; the message is one line and names
    the setting to fix (LRS_PRIVACY_KEY_FILE)."""
