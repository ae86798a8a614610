"""A learner's data key as this process holds it (:class:`DataKey`, masked by
a pad of this process) and an identity's current key (:class:`SealKey`);
the sealed form they make is :mod:`lrs.privacy.seal`'s."""

from __future__ import annotations

import os
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

__all__ = ["DataKey", "SealKey", "new_data_key_cipher"]


# A pad drawn at this process's start, kept only in its memory: a DataKey
# holds its key XORed with it, never the key itself.
_PAD = int.from_bytes(os.urandom(32), "big")


class DataKey(msgspec.Struct, frozen=True, gc=False, eq=False):
    """One identity's data key as a cipher (``encrypt``, ``decrypt`` as
    AES-GCM-SIV's) that keeps only the key's 32 bytes and makes the cipher
    for each use (about a microsecond).  A process caches the keys of as many
    learners as it serves (``LRS_LEARNER_CACHE_SIZE``): a cipher object
    kept for each took about 1.5 KB, most of a cached learner's memory,
    while a known learner's Statement needs no encryption at all (its
    sealed form is cached).  :meth:`cipher` makes one to reuse, as a
    read of many Statements does.  Not tracked by the cyclic garbage
    collector (it holds only an int): one tracked object per cached learner
    made every full collection of a worker visit them all.

    The key is held masked (XOR a pad of this process, :data:`_PAD`), not
    as it is: a msgspec Struct's fields are what msgspec writes, so a
    DataKey (or a :class:`SealKey`) given to ``msgspec.json.encode``, or to a
    log line (:mod:`lrs.logs` encodes with msgspec), wrote the raw key in
    base64, whatever :meth:`__repr__` hides.  Now it writes a number that is
    no key outside this process.  Pickling is refused: a masked key
    unpickled in another process would be another key, and Statements
    sealed under it could never be opened."""

    _masked: int

    def __repr__(self) -> str:
        return "DataKey(...)"  # never the key

    def __reduce__(self) -> Any:
        raise TypeError("a data key is not pickled: it is only valid in the process that holds it")

    def _key(self) -> bytes:
        return (self._masked ^ _PAD).to_bytes(32, "big")

    def cipher(self) -> AESGCMSIV:
        return AESGCMSIV(self._key())

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        return AESGCMSIV(self._key()).encrypt(nonce, data, associated_data)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        return AESGCMSIV(self._key()).decrypt(nonce, data, associated_data)


class SealKey(msgspec.Struct, frozen=True, gc=False):
    """An identity's current data key: its pseudonym, the key's generation
    (a new one after an erasure) and the cipher (a :class:`DataKey`)."""

    pseudonym: str
    generation: int
    cipher: "DataKey | AESGCMSIV"


def new_data_key_cipher(data_key: bytes) -> DataKey:
    """The cached form of a 32-byte data key (any other is refused, as AES-GCM-SIV refuses keys)."""
    if len(data_key) != 32:
        raise ValueError("a data key is 32 bytes")
    return DataKey(int.from_bytes(data_key, "big") ^ _PAD)
