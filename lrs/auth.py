"""Credentials: secret hashing, verification and xAPI scopes (pure).

Secrets are stored only as scrypt hashes.  A slow hash on every request would
cap throughput, so :class:`VerifiedCache` remembers, per process, a keyed
HMAC of a secret that has already passed the slow check; later requests with
the same key compare HMACs in constant time.  Unknown keys are checked against
a dummy hash so that "no such key" and "wrong secret" cost the same and end in
the same 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

# The xAPI scopes (xAPI-Communication.md, "OAuth 1.0 Authorization Scope").
SCOPES: frozenset[str] = frozenset(
    {
        "statements/write",
        "statements/read/mine",
        "statements/read",
        "state",
        "define",
        "profile",
        "all/read",
        "all",
        "erase",
    }
)
# Scopes "all" does not include: granted only by name.  "erase" lets a
# credential erase learners of its tenant (POST /admin/erasures,
# docs/privacy.md): destroying data for good is not part of "everything".
EXPLICIT_SCOPES: frozenset[str] = frozenset({"erase"})
# Routes open only to their explicit scope, whatever else a credential holds.
EXPLICIT_ROUTES: dict[str, str] = {"/admin/erasures": "erase"}

_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_DKLEN = 32


class AuthError(Exception):
    """Authentication failed; always answered with the same 401."""

    # The WWW-Authenticate challenge of the 401.
    challenge = 'Basic realm="lrs"'


@dataclass(frozen=True, slots=True)
class Credential:
    key: str
    tenant: str
    scopes: frozenset[str]
    name: str | None = None
    # The authority stamped on statements sent with this credential, when it
    # is not the LRS's own account Agent for the key (bearer tokens: lrs.oidc).
    authority: Mapping[str, Any] | None = field(default=None, compare=False)
    # Every scope the scopes imply, worked out once: ``allows`` is asked on
    # every write (``define``) and read (``statements/read``).
    _granted: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_granted", frozenset(
            granted for scope in self.scopes for granted in _IMPLIED.get(scope, (scope,))
        ))

    def allows(self, needed: str) -> bool:
        """Whether this credential's scopes cover the scope ``needed``."""
        return needed in self._granted

    def may(self, method: str, resource: str) -> bool:
        """Whether a ``method`` request to the route ``resource`` is within this
        credential's scopes (see :data:`RESOURCE_SCOPES`)."""
        explicit = EXPLICIT_ROUTES.get(resource)
        if explicit is not None:
            return explicit in self.scopes
        if "all" in self.scopes:
            return True
        reading = method in READ_METHODS
        if reading and "all/read" in self.scopes:
            return True
        rule = resource_scopes(resource)
        if rule is None:
            return False
        return any(self.allows(scope) for scope in (rule.read if reading else rule.write))


def scopes_needed(method: str, resource: str) -> list[str]:
    """The scopes of which any one lets a ``method`` request to the route
    ``resource`` through, for a refusal to name them."""
    explicit = EXPLICIT_ROUTES.get(resource)
    if explicit is not None:
        return [explicit]
    reading = method in READ_METHODS
    needed = ["all", "all/read"] if reading else ["all"]
    rule = resource_scopes(resource)
    if rule is not None:
        needed += sorted((rule.read if reading else rule.write) - set(needed))
    return needed


# What each scope grants, after the spec's scope table (Communication 4.2):
# "all" is unrestricted, "all/read" is unrestricted read access, and reading
# any Statement includes reading one's own.  "state" and "profile" are
# read/write on their document resources.
_IMPLIED: dict[str, tuple[str, ...]] = {
    "all": tuple(SCOPES - EXPLICIT_SCOPES),
    "all/read": ("statements/read", "statements/read/mine", "all/read"),
    "statements/read": ("statements/read", "statements/read/mine"),
    "statements/read/mine": ("statements/read/mine",),
    "statements/write": ("statements/write",),
    "state": ("state",),
    "define": ("define",),
    "profile": ("profile",),
    "erase": ("erase",),
}

READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """Scopes of which one lets a read (GET, HEAD) or a write (anything else) through."""

    read: frozenset[str]
    write: frozenset[str]


_NONE: frozenset[str] = frozenset()
_LOOKUPS = frozenset({"statements/read/mine", "define", "profile", "state"})

# Every authenticated route and the scopes it needs, besides "all" (always
# enough) and "all/read" (enough for every read).  A route missing here is
# open to "all" (and, for reads, "all/read") only: new routes are closed
# until someone decides.
RESOURCE_SCOPES: dict[str, ScopeRule] = {
    # statements/read/mine passes here; the handler then limits the results
    # to Statements whose authority is this credential's.
    "/xapi/statements": ScopeRule(frozenset({"statements/read/mine"}), frozenset({"statements/write"})),
    "/xapi/activities/state": ScopeRule(frozenset({"state"}), frozenset({"state"})),
    "/xapi/activities/profile": ScopeRule(frozenset({"profile"}), frozenset({"profile"})),
    "/xapi/agents/profile": ScopeRule(frozenset({"profile"}), frozenset({"profile"})),
    # The canonical Activity definition and the Person object: open to any
    # credential that reads something (statements/read implies read/mine),
    # not to a write-only one.
    "/xapi/activities": ScopeRule(_LOOKUPS, _NONE),
    "/xapi/agents": ScopeRule(_LOOKUPS, _NONE),
    # Competency state is derived from every Statement of the tenant: read
    # with all/read, changed (rosters) with all.  The handlers keep the admin
    # reads under /competency/admin/ to "all".
    "/competency/": ScopeRule(_NONE, _NONE),
    # Operational metrics count every tenant's traffic: operators only.
    "/metrics": ScopeRule(_NONE, _NONE),
}


def resource_scopes(resource: str) -> ScopeRule | None:
    """The rule for a route (its canonical path, e.g. ``/competency/{learner}``);
    a key ending in "/" covers every route below it."""
    rule = RESOURCE_SCOPES.get(resource)
    if rule is not None:
        return rule
    for prefix, prefix_rule in RESOURCE_SCOPES.items():
        if prefix.endswith("/") and resource.startswith(prefix):
            return prefix_rule
    return None


def validate_scopes(scopes: list[str]) -> frozenset[str]:
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}")
    if not scopes:
        raise ValueError("at least one scope is required")
    return frozenset(scopes)


def validate_tenant(tenant: str) -> str:
    """Tenants appear in NATS subjects, so they are restricted to a safe alphabet."""
    if not tenant or len(tenant) > 64 or not all(c.isalnum() or c in "-_" for c in tenant) or not tenant.isascii():
        raise ValueError(f"tenant {tenant!r} must be 1-64 ASCII letters, digits, '-' or '_'")
    return tenant


def new_key_and_secret() -> tuple[str, str]:
    return secrets.token_hex(10), secrets.token_urlsafe(30)


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_DKLEN
    )
    return "$".join(
        (
            "scrypt",
            str(_SCRYPT_N),
            str(_SCRYPT_R),
            str(_SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


# A hash of a random secret nobody knows: unknown keys are checked against it.
_DUMMY_HASH = hash_secret(secrets.token_urlsafe(30))


def verify_secret(secret: str, stored_hash: str | None) -> bool:
    """Slow check of ``secret`` against ``stored_hash``; ``None`` means unknown key."""
    encoded = stored_hash if stored_hash is not None else _DUMMY_HASH
    try:
        scheme, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            secret.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected) and stored_hash is not None


def parse_basic_auth(header: str | None) -> tuple[str, str]:
    """Split an ``Authorization: Basic`` header into key and secret."""
    if not header:
        raise AuthError("missing Authorization header")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise AuthError("Authorization must use the Basic scheme")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("malformed Basic credentials") from None
    key, sep, secret = decoded.partition(":")
    if not sep or not key or not key.isprintable():
        raise AuthError("malformed Basic credentials")
    return key, secret


class VerifiedCache:
    """Per-process memory of secrets that passed the slow check.

    Entries expire after ``ttl`` seconds so that a revoked credential stops
    working within that time in every process.
    """

    def __init__(self, ttl: float, clock: Callable[[], float], pepper: bytes | None = None) -> None:
        self._ttl = ttl
        self._clock = clock
        self._pepper = pepper if pepper is not None else secrets.token_bytes(32)
        self._entries: dict[str, tuple[bytes, Credential, float]] = {}

    def _mac(self, key: str, secret: str) -> bytes:
        # Keyed BLAKE2b (a MAC by design, RFC 7693): the same protection as
        # HMAC-SHA-256 of the pair, at a third of the cost, paid by every request.
        return hashlib.blake2b(f"{key}\x00{secret}".encode("utf-8"), key=self._pepper, digest_size=32).digest()

    def lookup(self, key: str, secret: str) -> Credential | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        mac, credential, expires = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        if hmac.compare_digest(mac, self._mac(key, secret)):
            return credential
        return None

    def remember(self, key: str, secret: str, credential: Credential) -> None:
        self._entries[key] = (self._mac(key, secret), credential, self._clock() + self._ttl)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
