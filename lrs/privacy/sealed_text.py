"""The sealed texts (pure; :mod:`lrs.privacy.seal` describes the forms):
v1 ``v1.<pseudonym>.<generation>.<ciphertext>``, v2
``v2.<generation>.<ciphertext>``, v3 ``v3.<generation>.<reference>`` and v4
``v4.<generation>.<tag>``, each an AES-GCM-SIV encryption with a fixed
nonce under associated data of its own (version, tenant, pseudonym,
generation); the references and rows by which v3 and v4 ciphertexts are
stored apart (``sealed_identities``); and reading a text back."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from lrs.privacy.data_key import DataKey, SealKey

__all__ = [
    "COMPACT",
    "COMPACT_MARK",
    "Ciphers",
    "NONCE",
    "REFERENCE",
    "SHORT",
    "VERSION",
    "b64_unpadded",
    "compact_aad",
    "open_text",
    "parse_sealed",
    "reference_aad",
    "reference_of",
    "seal_bytes",
    "seal_compact_bytes",
    "seal_reference",
    "seal_short",
    "sealed_ref",
    "short_aad",
    "short_row",
    "short_tag",
    "v1_aad",
]


VERSION = "v1"
COMPACT = "v2"
REFERENCE = "v3"
SHORT = "v4"
# Of a v4 text: 12 base64url characters (short_row).  Two namings of one
# identity whose tags were equal would share a row, the second's Statements
# showing the first naming: at 72 bits that is about 1 in 4.7 x 10^21 a pair
# of namings (some 10^-13 for a store of 10 million learners named ten ways
# each), where 6 bytes (1 in 2.8 x 10^14 a pair) needed a read of the store
# per new naming to rule it out.
_TAG_BYTES = 9
NONCE = b"\x00" * 12  # AES-GCM-SIV: a fixed nonce makes it deterministic, nothing worse


def v1_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{VERSION}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


# seal_text callers that cache by plaintext get the compact form's
# plaintext behind this mark (never the start of JSON), so one cache holds both.
COMPACT_MARK = b"\x00v2"


def seal_bytes(key: SealKey, tenant: str, plaintext: bytes) -> str:
    """The v1 sealed text of ``plaintext`` (or v2, for a plaintext that
    :func:`seal_agent` marked compact)."""
    if plaintext.startswith(COMPACT_MARK):
        return seal_compact_bytes(key, tenant, plaintext[len(COMPACT_MARK):])
    ciphertext = key.cipher.encrypt(NONCE, plaintext, v1_aad(tenant, key.pseudonym, key.generation))
    text = base64.urlsafe_b64encode(ciphertext).rstrip(b"=").decode("ascii")
    return f"{VERSION}.{key.pseudonym}.{key.generation}.{text}"


def compact_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{COMPACT}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


def seal_compact_bytes(key: SealKey, tenant: str, plaintext: bytes) -> str:
    """The v2 sealed text: the pseudonym is the form's account name (bound
    through the associated data), not repeated here."""
    ciphertext = key.cipher.encrypt(NONCE, plaintext, compact_aad(tenant, key.pseudonym, key.generation))
    return f"{COMPACT}.{key.generation}.{base64.urlsafe_b64encode(ciphertext).rstrip(b'=').decode('ascii')}"


def reference_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{REFERENCE}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


def reference_of(ciphertext: bytes) -> bytes:
    """The v3 reference of a ciphertext: the first 16 bytes of its SHA-256."""
    return hashlib.sha256(ciphertext).digest()[:16]


def seal_reference(key: SealKey, tenant: str, plaintext: bytes) -> tuple[str, bytes, bytes]:
    """(v3 sealed text, reference, ciphertext) of a compact plaintext: the
    ciphertext is stored apart, by its reference (``sealed_identities``)."""
    ciphertext = key.cipher.encrypt(NONCE, plaintext, reference_aad(tenant, key.pseudonym, key.generation))
    ref = reference_of(ciphertext)
    return f"{REFERENCE}.{key.generation}.{base64.urlsafe_b64encode(ref).rstrip(b'=').decode('ascii')}", ref, ciphertext


def short_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{SHORT}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


def short_tag(ciphertext: bytes) -> bytes:
    """The v4 tag of a ciphertext: the first 9 bytes of its SHA-256."""
    return hashlib.sha256(ciphertext).digest()[:_TAG_BYTES]


def short_row(pseudonym_: str, generation: int, tag: bytes) -> bytes:
    """The ``sealed_identities`` row of a v4 text: the first 16 bytes of the
    SHA-256 of its pseudonym, generation and tag.  The tag alone tells apart
    only the ciphertexts of one identity's generation (how the identity was
    named: its name, its IFI), so it can be short; the pseudonym, which the
    form carries anyway, makes the row the identity's own."""
    return hashlib.sha256(f"{SHORT}\x00{pseudonym_}\x00{generation}\x00".encode() + tag).digest()[:16]


def seal_short(key: SealKey, tenant: str, plaintext: bytes) -> tuple[str, bytes, bytes]:
    """(v4 sealed text, row, ciphertext) of a compact plaintext: the text is
    ``v4.<generation>.<tag>``, the tag the first 9 bytes of the ciphertext's
    SHA-256 (12 characters, where v3's reference takes 22); the ciphertext is
    stored apart, by :func:`short_row` (``sealed_identities``, as v3's)."""
    ciphertext = key.cipher.encrypt(NONCE, plaintext, short_aad(tenant, key.pseudonym, key.generation))
    tag = short_tag(ciphertext)
    text = f"{SHORT}.{key.generation}.{base64.urlsafe_b64encode(tag).decode('ascii')}"
    return text, short_row(key.pseudonym, key.generation, tag), ciphertext


def b64_unpadded(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def parse_sealed(text: str, form: Mapping[str, Any] | None = None) -> tuple[str, int, bytes]:
    """(pseudonym, generation, ciphertext) of a sealed text; a v2, v3 or v4
    text takes its pseudonym from its ``form``'s account; for v3 the third is
    the reference, for v4 the tag, not the ciphertext."""
    if text.startswith(COMPACT + ".") or text.startswith(REFERENCE + ".") or text.startswith(SHORT + "."):
        _, generation, data = text.split(".", 2)
        account = (form or {}).get("account")
        if not isinstance(account, dict) or not isinstance(account.get("name"), str):
            raise ValueError("a v2 sealed form without its account")
        return account["name"], int(generation), b64_unpadded(data)
    version, pseudonym_, generation, data = text.split(".", 3)
    if version != VERSION:
        raise ValueError(f"unknown sealed form {version!r}")
    return pseudonym_, int(generation), b64_unpadded(data)


def sealed_ref(text: str, form: Mapping[str, Any] | None = None) -> tuple[str, int]:
    """(pseudonym, generation) of a sealed text."""
    pseudonym_, generation, _ = parse_sealed(text, form)
    return pseudonym_, generation


def open_text(text: str, ciphers: "Ciphers", tenant: str) -> bytes | None:
    """The plaintext of a sealed text (:func:`seal_bytes`); None once erased."""
    pseudonym_, generation, data = parse_sealed(text)
    cipher = ciphers.get((pseudonym_, generation))
    if cipher is None:
        return None
    try:
        return cipher.decrypt(NONCE, data, v1_aad(tenant, pseudonym_, generation))
    except InvalidTag:
        return None


Ciphers = Mapping[tuple[str, int], "AESGCMSIV | DataKey | None"]
