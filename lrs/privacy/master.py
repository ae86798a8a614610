"""The privacy master key: a file outside PostgreSQL (docs/privacy.md).

``LRS_PRIVACY_KEY_FILE`` (default ``<LRS_DATA_DIR>/privacy-key``, mode
0600, made on first use) holds 32 random bytes, base64-encoded on one line.
Two keys are derived from it with HKDF-SHA256: the *wrapping key* that
encrypts every learner's data key in the ``learner_keys`` table, and the
*pseudonym key* of :func:`lrs.privacy.seal.pseudonym`.  The database alone
holds neither: a copy of it (a backup, a replica) shows ciphertext and
pseudonyms only.  Losing the file loses every sealed identity, as an
erasure of all of them would: back it up apart from the database.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
import structlog

__all__ = ["MasterKey", "PrivacyKeyError", "load", "load_or_create"]

log = structlog.get_logger("lrs.privacy")

_WRAP_INFO = b"lrs.privacy.wrap.v1"
_PSEUDONYM_INFO = b"lrs.privacy.pseudonym.v1"
_KEY_ID_INFO = b"lrs.privacy.key-id.v1"


class PrivacyKeyError(ValueError):
    """A privacy key file that cannot be used; the message says why."""


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


class MasterKey:
    """The derived keys; wraps and unwraps data keys (AES-256-GCM, random
    nonce, the tenant, pseudonym and generation as associated data)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise PrivacyKeyError(f"a privacy key is 32 bytes, got {len(secret)}")
        self._wrap = AESGCM(_derive(secret, _WRAP_INFO))
        self.pseudonym_key = _derive(secret, _PSEUDONYM_INFO)
        # Names the key (in PostgreSQL, table privacy_key_id) without revealing it.
        self.key_id = _derive(secret, _KEY_ID_INFO).hex()[:32]

    @staticmethod
    def _aad(tenant: str, pseudonym: str, generation: int) -> bytes:
        return f"lrs.learner-key.v1\x00{tenant}\x00{pseudonym}\x00{generation}".encode()

    def wrap(self, data_key: bytes, tenant: str, pseudonym: str, generation: int) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._wrap.encrypt(nonce, data_key, self._aad(tenant, pseudonym, generation))

    def unwrap(self, wrapped: bytes, tenant: str, pseudonym: str, generation: int) -> bytes:
        return self._wrap.decrypt(wrapped[:12], wrapped[12:], self._aad(tenant, pseudonym, generation))


def load_or_create(path: Path) -> MasterKey:
    """The master key at ``path``, made (mode 0600) when missing; processes
    starting together agree on one: each writes its key to a file of its own
    (a draft, ``.<name>.XXXXXXXX``) and links it to ``path``, which fails for
    all but the first, so no process ever reads a key file still being
    written.  Where the file system has no hard links the key is written to
    ``path`` created exclusively, and a process that finds it there waits for
    its line.  Drafts a killed process left are removed (:func:`remove_stale_drafts`)."""
    remove_stale_drafts(path)
    try:
        text = path.read_text()
        if not text:  # made exclusively (no hard links) a moment ago, not written yet
            text = _read_written(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(secret).decode() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(draft, path)
            except FileExistsError:
                text = path.read_text()
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                made = _create_exclusive(path, secret)
                if made:
                    return MasterKey(secret)
                text = _read_written(path)
            else:
                _sync_directory(path.parent)  # the name too: learner keys wrapped with it commit next
                return MasterKey(secret)
        finally:
            os.unlink(draft)
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PrivacyKeyError(f"{path} does not hold a base64 privacy key") from None
    if len(secret) != 32:
        raise PrivacyKeyError(f"{path} holds {len(secret)} bytes, not a 32-byte privacy key")
    return MasterKey(secret)


# A draft lives for the few milliseconds of writing it and linking it (or
# not) to the key file; one older than this was left by a process killed
# meanwhile.  Age, not whether its maker's process id is alive: processes
# on other hosts or in other containers may share the directory.
STALE_DRAFT_AGE = 60.0  # seconds


def remove_stale_drafts(path: Path, now: float | None = None) -> list[str]:
    """Remove the drafts of ``path``'s key file (:func:`load_or_create`)
    older than :data:`STALE_DRAFT_AGE`: a ``kill -9`` during a first start
    leaves one, holding a secret (the key itself, once linked) next to the
    key.  Never raises (a command that only reads may not write there);
    the names removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}")
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > STALE_DRAFT_AGE:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue  # removed meanwhile by another process starting, or not ours to remove
    if removed:
        log.warning("privacy.stale_key_drafts_removed", directory=str(path.parent), drafts=removed)
    return removed


# What a file system without hard links answers os.link with.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _create_exclusive(path: Path, secret: bytes) -> bool:
    """Write the key to ``path`` unless it exists (False then): the way
    where files cannot be linked."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(secret).decode() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    _sync_directory(path.parent)
    return True


def _read_written(path: Path) -> str:
    """``path``'s text once its writer ended the line (another process
    made it exclusively a moment ago and may still be writing it)."""
    deadline = time.monotonic() + 5
    text = path.read_text()
    while not text.endswith("\n") and time.monotonic() < deadline:
        time.sleep(0.01)
        text = path.read_text()
    return text


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path) -> MasterKey | None:
    """The master key at ``path``, or None when there is no file (a command
    that only reads must never make a key: it would open nothing)."""
    if not path.exists():
        return None
    return load_or_create(path)
