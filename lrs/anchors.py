"""Signed anchors of the log head, kept outside the database (docs/trust.md).

A hash chain proves order and integrity only to someone who trusts whoever
can rewrite it: a database superuser can change a payload and recompute every
later hash and the head.  An anchor is the log head (position and hash) at a
moment, signed with an Ed25519 key that PostgreSQL never sees, and appended to
a file the database does not control.  A log whose hash at an anchor's
position differs from the anchor's was rewritten at or before that position.

* The signing key is a PKCS#8 PEM file (``LRS_ANCHOR_KEY_FILE``, default
  ``<LRS_DATA_DIR>/anchor-key.pem``, mode 0600), made by the anchor writer
  (:func:`load_or_create_key`: the relay's first start, ``lrs audit
  anchor``); the commands that only read or replace it refuse when it is
  missing (:func:`load_key`).  Its key id is the first 16 hex digits of
  SHA-256 over the raw public key.
* Every public key ever used is kept in ``<key file>.public.pem`` (PEM blocks,
  oldest first): ``lrs audit public-key`` prints it, and rotating the key
  (``lrs audit rotate-key``) adds the new one, so old anchors stay verifiable.
* Anchors are JSON lines (``LRS_ANCHORS_FILE``, default
  ``<LRS_DATA_DIR>/anchors.jsonl``), appended and fsynced, each
  ``{"position", "hash", "signed_at", "key_id", "signature"}`` (hash hex,
  signature base64).  The signed bytes are :func:`signed_bytes`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lrs import jsonlines

DOMAIN = b"lrs.anchor.v1"


class AnchorError(ValueError):
    """An anchors or key file that cannot be used; the message says why."""


class Anchor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    position: int
    hash: str  # hex SHA-256 of the event at ``position`` (the log head when signed)
    signed_at: str  # ISO 8601 UTC
    key_id: str
    signature: str  # base64 Ed25519 signature over signed_bytes(...)


def signed_bytes(position: int, hash_hex: str, signed_at: str, key_id: str) -> bytes:
    return b"\n".join((DOMAIN, str(position).encode(), hash_hex.encode(), signed_at.encode(), key_id.encode()))


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: Ed25519PrivateKey, position: int, hash_: bytes, at: datetime) -> Anchor:
    signed_at = at.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    kid = key_id(key.public_key())
    signature = key.sign(signed_bytes(position, hash_.hex(), signed_at, kid))
    return Anchor(position, hash_.hex(), signed_at, kid, base64.b64encode(signature).decode())


def signature_holds(anchor: Anchor, keys: dict[str, Ed25519PublicKey]) -> bool:
    """Raises AnchorError when no key has the anchor's key id."""
    public_key = keys.get(anchor.key_id)
    if public_key is None:
        raise AnchorError(f"anchor at position {anchor.position} names key {anchor.key_id}, which is not among the public keys")
    try:
        public_key.verify(
            base64.b64decode(anchor.signature), signed_bytes(anchor.position, anchor.hash, anchor.signed_at, anchor.key_id)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


# -- files --------------------------------------------------------------------


def public_keys_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".public.pem")


class NoSigningKey(AnchorError):
    """No signing key at the path: this is not the LRS's machine, or not its
    data dir, or nothing has signed an anchor there yet."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no signing key at {path}: the relay makes it when it first starts (`lrs serve` or `lrs relay`), "
            "`lrs audit anchor` makes it and signs the log head now"
        )


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``, made (mode 0600) when missing: only the
    anchor writer, which signs with it, makes one."""
    try:
        return load_key(path)
    except NoSigningKey:
        return _new_key(path)


def load_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``; :class:`NoSigningKey` when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NoSigningKey(path) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise AnchorError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError(f"{path} is not an Ed25519 key")
    return key


def rotate_key(path: Path) -> tuple[str, str]:
    """A new signing key at ``path``; the old one is kept beside it as
    ``<name>.<key id>.retired`` and its public key stays in the public keys
    file.  Returns (old key id, new key id); :class:`NoSigningKey` when
    there is no key to replace."""
    old = load_key(path)
    old_id = key_id(old.public_key())
    os.replace(path, path.with_name(f"{path.name}.{old_id}.retired"))
    new = _new_key(path)
    return old_id, key_id(new.public_key())


def _new_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    with open(public_keys_path(path), "ab") as keys:
        keys.write(public_pem(key.public_key()))
    return key


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """key id -> public key, from PEM files holding one or more public keys."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise AnchorError(f"cannot read public keys from {path}: {exc.strerror}") from None
        blocks = [b for b in text.split(b"-----END PUBLIC KEY-----") if b.strip()]
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block.strip() + b"\n-----END PUBLIC KEY-----\n")
            except ValueError:  # cryptography's own words (a URL, "MalformedFraming") tell an auditor nothing
                raise AnchorError(
                    f"{path} holds something that is not a PEM public key: expected the "
                    "'-----BEGIN PUBLIC KEY-----' blocks that `lrs audit public-key` prints"
                ) from None
            if not isinstance(key, Ed25519PublicKey):
                raise AnchorError(f"{path} holds a public key that is not Ed25519")
            keys[key_id(key)] = key
    return keys


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append one line and fsync it."""
    jsonlines.append_record(path, anchor)


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors of ``path`` in position order; raises AnchorError naming a bad line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise AnchorError(f"cannot read anchors from {path}: {exc.strerror}") from None
    anchors = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            anchors.append(msgspec.json.decode(line, type=Anchor))
        except msgspec.DecodeError as exc:
            raise AnchorError(f"{path}, line {number}: not an anchor ({exc})") from None
    return sorted(anchors, key=lambda a: a.position)


def last_anchor(path: Path, tail_bytes: int = 64 * 1024) -> Anchor | None:
    """The last anchor appended to ``path``, reading only the file's tail (the
    file gains a line a minute for years); None when there is none.  A torn
    last line (a crash mid-append) is passed over for the one before it."""
    try:
        return jsonlines.last_record(path, Anchor, tail_bytes)
    except OSError as exc:
        raise AnchorError(f"cannot read anchors from {path}: {exc.strerror}") from None


def last_anchored_position(path: Path) -> int:
    with contextlib.suppress(AnchorError):
        anchors = read_anchors(path)
        return anchors[-1].position if anchors else 0
    return 0


# -- checking a log against anchors ---------------------------------------------


class AnchorReport(msgspec.Struct, frozen=True):
    checked: int  # anchors whose signatures hold
    last_matching: int  # position of the last anchor the log still matches, before any mismatch (0: none)
    first_mismatch: Anchor | None  # the first anchor the log does not match
    bad_signatures: tuple[int, ...]  # positions of anchors whose signature does not hold

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None and not self.bad_signatures


def compare(anchors: list[Anchor], keys: dict[str, Ed25519PublicKey], log_hashes: dict[int, bytes]) -> AnchorReport:
    """Check each anchor's signature and its hash against ``log_hashes``
    (position -> the log's hash; an anchored position missing from it was
    removed from the log)."""
    last_matching, first_mismatch, bad = 0, None, []
    checked = 0
    for anchor in anchors:
        if not signature_holds(anchor, keys):
            bad.append(anchor.position)
            continue
        checked += 1
        actual = log_hashes.get(anchor.position)
        if first_mismatch is None:
            if actual is not None and actual.hex() == anchor.hash:
                last_matching = anchor.position
            else:
                first_mismatch = anchor
    return AnchorReport(checked, last_matching, first_mismatch, tuple(bad))
