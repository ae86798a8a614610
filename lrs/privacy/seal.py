"""Sealing the personal data of Statements (pure; docs/privacy.md).

Every Agent and Group in a Statement (actor, an Agent/Group object,
authority, context instructor and team, 2.0 ``contextAgents`` and
``contextGroups``, the same inside a SubStatement, and each Group member)
is one *identity*, named by its canonical identifier
(:func:`identifier`: the IFI key, or for an Anonymous Group ``group:`` and
its members' IFI keys in sorted order).  Each identity of a tenant has a
*pseudonym* (:func:`pseudonym`: HMAC-SHA256 under a key kept outside
PostgreSQL) and a data key of its own.

In the stored Statement an identity's own properties (IFI, ``name``,
``objectType``) are replaced by its *sealed form*::

    {"objectType": "Agent",
     "account": {"homePage": "https://lrs.invalid/pseudonym", "name": "<pseudonym>"},
     "sealed": "v2.<generation>.<base64url AES-GCM-SIV ciphertext>"}

(a Group keeps ``member``, each member sealed on its own).  ``v2``: the
pseudonym is the account's name and the ciphertext holds the IFI and
``name`` (``objectType`` is the form's own); written for every identity
sent with an ``objectType`` that has an account.  ``v1``
(``"v1.<pseudonym>.<generation>.<ciphertext>"``, the ciphertext holding
``objectType`` too) is written for the others (an Anonymous Group, which has
no ``account``; an Agent sent without ``objectType``) and for documents, and
read wherever it was written before.  ``v3`` (``"v3.<generation>.<reference>"``,
written by the Statement writer for what v2 would be) keeps the ciphertext
out of the Statement: the reference is the first 16 bytes of the ciphertext's
SHA-256 (base64url), and the ciphertext is stored once per distinct sealed
identity beside the log (``sealed_identities``, :func:`seal_reference`).
The hash chain covers the reference and the reference commits to the
ciphertext, which :func:`open_agent` checks before decrypting.  A Statement
naming the same identity as many before it then costs 27 characters for it,
not the ~120 of a v2 ciphertext.  ``v4`` (``"v4.<generation>.<tag>"``, what the
Statement writer writes now) is v3 with a 12-character tag for its 22: the
first 9 bytes of the ciphertext's SHA-256, which need tell apart only the
ciphertexts of one identity's generation, since the row is found by the
pseudonym, generation and tag together (:func:`short_row`).  Each character
of a reference is random and costs about a byte once compressed: v4 keeps
about 20 bytes of every sealed Statement (actor and authority) out of the
log, its WAL and the stream.  Stores hold v3 and v4 side by side; both are read.  The sealed form is itself an Agent with an
account, so filters, duplicate checks and projections work on it unchanged
and see only the pseudonym.  Encryption is deterministic (AES-GCM-SIV with a
fixed nonce; the tenant, pseudonym and generation are the associated data):
the same identity sealed twice gives the same bytes, so "same Statement"
still compares stored forms, and the cost of a repeated actor is one cache
look-up.  It reveals only what the pseudonym already does: that two
Statements name the same identity.

Opening replaces each sealed form by the original object; when the data key
is gone (the identity was erased) by the *erased form*
``{"objectType": ..., "account": {"homePage": "https://lrs.invalid/erased", "name": "<pseudonym>"}}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any, Callable, Iterator, Mapping

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from lrs.xapi.identity import ifi_key

__all__ = [
    "ERASED_HOME",
    "PSEUDONYM_HOME",
    "DataKey",
    "KnownForm",
    "SealKey",
    "StatementSealer",
    "agent_named",
    "identifier",
    "identities",
    "is_sealed_payload",
    "open_statement",
    "pseudonym",
    "pseudonym_key",
    "seal_reference",
    "seal_short",
    "seal_statement",
    "sealed_refs",
    "short_row",
    "stored_references",
    "with_identities_of",
]

PSEUDONYM_HOME = "https://lrs.invalid/pseudonym"
ERASED_HOME = "https://lrs.invalid/erased"
SEALED = "sealed"
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
_NONCE = b"\x00" * 12  # AES-GCM-SIV: a fixed nonce makes it deterministic, nothing worse
_AGENT_TYPES = ("Agent", "Group")
_MARKER = b'"sealed":"v'  # v1., v2., v3. or v4.
_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode


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


def pseudonym(key: bytes, tenant: str, ident: str) -> str:
    """32 hex digits of HMAC-SHA256(key, tenant NUL identifier)."""
    return hmac.digest(key, tenant.encode() + b"\x00" + ident.encode(), "sha256").hex()[:32]


def pseudonym_key(key: bytes, tenant: str, ident: str) -> str:
    """The IFI key (:func:`lrs.xapi.identity.ifi_key`) of the identity's sealed form."""
    return f"account:{PSEUDONYM_HOME}|{pseudonym(key, tenant, ident)}"


def identifier(agent: Mapping[str, Any]) -> str | None:
    """The canonical identifier of an Agent or Group; None for an Anonymous
    Group without identified members (which the validator does not let in)."""
    key = ifi_key(agent)  # type: ignore[arg-type]
    if key is not None:
        return key
    members = [ifi_key(m) for m in agent.get("member", ())]
    if not members or None in members:
        return None
    return "group:" + "&".join(sorted(members))  # type: ignore[arg-type]


def _agent_slots(statement: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(container, property) of every Agent/Group in a Statement (not members)."""
    yield statement, "actor"
    obj = statement.get("object")
    if isinstance(obj, dict):
        if obj.get("objectType") in _AGENT_TYPES:
            yield statement, "object"
        elif obj.get("objectType") == "SubStatement":
            yield obj, "actor"
            sub = obj.get("object")
            if isinstance(sub, dict) and sub.get("objectType") in _AGENT_TYPES:
                yield obj, "object"
            yield from _context_slots(obj.get("context"))
    if "authority" in statement:
        yield statement, "authority"
    yield from _context_slots(statement.get("context"))


def _context_slots(context: Any) -> Iterator[tuple[dict[str, Any], str]]:
    if not isinstance(context, dict):
        return
    for name in ("instructor", "team"):
        if name in context:
            yield context, name
    for entry in context.get("contextAgents", ()):
        yield entry, "agent"
    for entry in context.get("contextGroups", ()):
        yield entry, "group"


def identities(statement: dict[str, Any]) -> set[str]:
    """The identifiers of every identity a Statement names (members included)."""
    found: set[str] = set()
    for container, name in _agent_slots(statement):
        agent = container.get(name)
        if not isinstance(agent, dict):
            continue
        ident = identifier(agent)
        if ident is not None and (ifi_key(agent) is not None or "name" in agent):  # type: ignore[arg-type]
            found.add(ident)
        for member in agent.get("member", ()):
            member_ident = identifier(member)
            if member_ident is not None:
                found.add(member_ident)
    return found


def _copy_path(statement: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``statement`` whose agent-holding containers are copies too
    (the input is never modified)."""
    copy = dict(statement)
    obj = copy.get("object")
    if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
        obj = copy["object"] = dict(obj)
        if isinstance(obj.get("context"), dict):
            obj["context"] = _copy_context(obj["context"])
    if isinstance(copy.get("context"), dict):
        copy["context"] = _copy_context(copy["context"])
    return copy


_CONTEXT_AGENTS = ("instructor", "team", "contextAgents", "contextGroups")
_CONTEXT_AGENTS_SET = frozenset(_CONTEXT_AGENTS)


def _copy_context(context: dict[str, Any]) -> dict[str, Any]:
    if not any(name in context for name in _CONTEXT_AGENTS):
        return context  # nothing in it is replaced
    context = dict(context)
    for name in ("contextAgents", "contextGroups"):
        if name in context:
            context[name] = [dict(entry) for entry in context[name]]
    return context


def seal_statement(statement: dict[str, Any], seal_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``statement`` with every Agent/Group replaced by ``seal_agent(agent)``
    (the input is never modified).  The places and their order are
    :func:`_agent_slots`'s, walked without it: this runs for every Statement
    written, and the generic walk and copy cost more than sealing a known
    learner's Agent."""
    sealed = dict(statement)
    actor = sealed.get("actor")
    if isinstance(actor, dict):
        sealed["actor"] = seal_agent(actor)
    obj = sealed.get("object")
    if isinstance(obj, dict):
        object_type = obj.get("objectType")
        if object_type == "Agent" or object_type == "Group":
            sealed["object"] = seal_agent(obj)
        elif object_type == "SubStatement":
            obj = sealed["object"] = dict(obj)
            actor = obj.get("actor")
            if isinstance(actor, dict):
                obj["actor"] = seal_agent(actor)
            sub = obj.get("object")
            if isinstance(sub, dict) and sub.get("objectType") in _AGENT_TYPES:
                obj["object"] = seal_agent(sub)
            context = obj.get("context")
            if isinstance(context, dict) and not _CONTEXT_AGENTS_SET.isdisjoint(context):
                obj["context"] = _seal_context(context, seal_agent)
    authority = sealed.get("authority")
    if isinstance(authority, dict):
        sealed["authority"] = seal_agent(authority)
    context = sealed.get("context")
    if isinstance(context, dict) and not _CONTEXT_AGENTS_SET.isdisjoint(context):
        sealed["context"] = _seal_context(context, seal_agent)
    return sealed


def _seal_context(context: dict[str, Any], seal_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    context = dict(context)
    for name in ("instructor", "team"):
        agent = context.get(name)
        if isinstance(agent, dict):
            context[name] = seal_agent(agent)
    for name, slot in (("contextAgents", "agent"), ("contextGroups", "group")):
        entries = context.get(name)
        if entries is not None:
            context[name] = [_seal_entry(entry, slot, seal_agent) for entry in entries]
    return context


def _seal_entry(entry: dict[str, Any], slot: str, seal_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    entry = dict(entry)
    agent = entry.get(slot)
    if isinstance(agent, dict):
        entry[slot] = seal_agent(agent)
    return entry


def seal_agent(
    agent: dict[str, Any],
    keys: Mapping[str, SealKey],
    seal_text: Callable[[SealKey, bytes], str],
    tenant: str | None = None,
) -> dict[str, Any]:
    """The sealed form of one Agent or Group (``keys``: by identifier;
    ``seal_text``: :func:`seal_bytes` for the tenant, which also seals the
    compact form unless ``tenant`` is given)."""

    def seal_compact(key: SealKey, own: dict[str, Any]) -> str:
        if tenant is None:
            return seal_text(key, _COMPACT_MARK + _encode(own))
        return seal_compact_bytes(key, tenant, _encode(own))

    own = {k: v for k, v in agent.items() if k != "member"}
    object_type = agent.get("objectType", "Agent")
    ident = identifier(agent)
    anonymous_group = object_type == "Group" and ifi_key(agent) is None  # type: ignore[arg-type]
    sealed: dict[str, Any] = {"objectType": object_type}
    if ident is not None and (not anonymous_group or "name" in own):
        key = keys[ident]
        if anonymous_group:
            sealed[SEALED] = seal_text(key, _encode(own))
        else:
            sealed["account"] = {"homePage": PSEUDONYM_HOME, "name": key.pseudonym}
            if "objectType" in own:
                del own["objectType"]  # the form's own
                sealed[SEALED] = seal_compact(key, own)
            else:
                sealed[SEALED] = seal_text(key, _encode(own))
    members = agent.get("member")
    if members is not None:
        sealed["member"] = [seal_agent(m, keys, seal_text) for m in members]
    return sealed


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
        if self._references and plaintext.startswith(_COMPACT_MARK):
            return self._apart(key, plaintext[len(_COMPACT_MARK):])
        return seal_bytes(key, self.tenant, plaintext)

    def _apart(self, key: SealKey, plaintext: bytes) -> str:
        """The text of a ciphertext kept apart, noted in :attr:`ciphertexts`.
        Two namings of one identity sealed in one request whose v4 tags are
        equal (see _TAG_BYTES) would share a row: the second is sealed in the
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


def pseudonymous(agent: dict[str, Any], pseudonym_of: Callable[[str], str]) -> dict[str, Any]:
    """The sealed form of ``agent`` without its ciphertext: what filters see
    (``authority_key`` of it is the sealed authority's)."""
    form: dict[str, Any] = {"objectType": agent.get("objectType", "Agent")}
    key = ifi_key(agent)  # type: ignore[arg-type]
    if key is not None:
        form["account"] = {"homePage": PSEUDONYM_HOME, "name": pseudonym_of(key)}
    members = agent.get("member")
    if members is not None:
        form["member"] = [pseudonymous(m, pseudonym_of) for m in members]
    return form


def _aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{VERSION}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


# seal_text callers that cache by plaintext get the compact form's
# plaintext behind this mark (never the start of JSON), so one cache holds both.
_COMPACT_MARK = b"\x00v2"


def seal_bytes(key: SealKey, tenant: str, plaintext: bytes) -> str:
    """The v1 sealed text of ``plaintext`` (or v2, for a plaintext that
    :func:`seal_agent` marked compact)."""
    if plaintext.startswith(_COMPACT_MARK):
        return seal_compact_bytes(key, tenant, plaintext[len(_COMPACT_MARK):])
    ciphertext = key.cipher.encrypt(_NONCE, plaintext, _aad(tenant, key.pseudonym, key.generation))
    text = base64.urlsafe_b64encode(ciphertext).rstrip(b"=").decode("ascii")
    return f"{VERSION}.{key.pseudonym}.{key.generation}.{text}"


def _compact_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{COMPACT}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


def seal_compact_bytes(key: SealKey, tenant: str, plaintext: bytes) -> str:
    """The v2 sealed text: the pseudonym is the form's account name (bound
    through the associated data), not repeated here."""
    ciphertext = key.cipher.encrypt(_NONCE, plaintext, _compact_aad(tenant, key.pseudonym, key.generation))
    return f"{COMPACT}.{key.generation}.{base64.urlsafe_b64encode(ciphertext).rstrip(b'=').decode('ascii')}"


def _reference_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{REFERENCE}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


def reference_of(ciphertext: bytes) -> bytes:
    """The v3 reference of a ciphertext: the first 16 bytes of its SHA-256."""
    return hashlib.sha256(ciphertext).digest()[:16]


def seal_reference(key: SealKey, tenant: str, plaintext: bytes) -> tuple[str, bytes, bytes]:
    """(v3 sealed text, reference, ciphertext) of a compact plaintext: the
    ciphertext is stored apart, by its reference (``sealed_identities``)."""
    ciphertext = key.cipher.encrypt(_NONCE, plaintext, _reference_aad(tenant, key.pseudonym, key.generation))
    ref = reference_of(ciphertext)
    return f"{REFERENCE}.{key.generation}.{base64.urlsafe_b64encode(ref).rstrip(b'=').decode('ascii')}", ref, ciphertext


def _short_aad(tenant: str, pseudonym_: str, generation: int) -> bytes:
    return f"{SHORT}\x00{tenant}\x00{pseudonym_}\x00{generation}".encode()


def _tag(ciphertext: bytes) -> bytes:
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
    ciphertext = key.cipher.encrypt(_NONCE, plaintext, _short_aad(tenant, key.pseudonym, key.generation))
    tag = _tag(ciphertext)
    text = f"{SHORT}.{key.generation}.{base64.urlsafe_b64encode(tag).decode('ascii')}"
    return text, short_row(key.pseudonym, key.generation, tag), ciphertext


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _parse_sealed(text: str, form: Mapping[str, Any] | None = None) -> tuple[str, int, bytes]:
    """(pseudonym, generation, ciphertext) of a sealed text; a v2, v3 or v4
    text takes its pseudonym from its ``form``'s account; for v3 the third is
    the reference, for v4 the tag, not the ciphertext."""
    if text.startswith(COMPACT + ".") or text.startswith(REFERENCE + ".") or text.startswith(SHORT + "."):
        _, generation, data = text.split(".", 2)
        account = (form or {}).get("account")
        if not isinstance(account, dict) or not isinstance(account.get("name"), str):
            raise ValueError("a v2 sealed form without its account")
        return account["name"], int(generation), _b64(data)
    version, pseudonym_, generation, data = text.split(".", 3)
    if version != VERSION:
        raise ValueError(f"unknown sealed form {version!r}")
    return pseudonym_, int(generation), _b64(data)


def sealed_ref(text: str, form: Mapping[str, Any] | None = None) -> tuple[str, int]:
    """(pseudonym, generation) of a sealed text."""
    pseudonym_, generation, _ = _parse_sealed(text, form)
    return pseudonym_, generation


def open_text(text: str, ciphers: "Ciphers", tenant: str) -> bytes | None:
    """The plaintext of a sealed text (:func:`seal_bytes`); None once erased."""
    pseudonym_, generation, data = _parse_sealed(text)
    cipher = ciphers.get((pseudonym_, generation))
    if cipher is None:
        return None
    try:
        return cipher.decrypt(_NONCE, data, _aad(tenant, pseudonym_, generation))
    except InvalidTag:
        return None


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

    for container, name in _agent_slots(statement):
        agent = container.get(name)
        if isinstance(agent, dict):
            yield from visit(agent)


def stored_references(statement: dict[str, Any]) -> set[bytes]:
    """The ``sealed_identities`` rows of every v3 and v4 sealed identity in a
    stored Statement, whose ciphertexts :func:`open_statement` needs."""
    rows: set[bytes] = set()
    for text, agent in _sealed_texts(statement):
        if text.startswith(SHORT + "."):
            pseudonym_, generation, tag = _parse_sealed(text, agent)
            rows.add(short_row(pseudonym_, generation, tag))
        elif text.startswith(REFERENCE + "."):
            rows.add(_b64(text.split(".", 2)[2]))
    return rows


def sealed_refs(statement: dict[str, Any]) -> set[tuple[str, int]]:
    """(pseudonym, generation) of every sealed identity in a stored Statement."""
    refs: set[tuple[str, int]] = set()
    for text, agent in _sealed_texts(statement):
        pseudonym_, generation, _ = _parse_sealed(text, agent)
        refs.add((pseudonym_, generation))
    return refs


Ciphers = Mapping[tuple[str, int], "AESGCMSIV | DataKey | None"]
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
        pseudonym_, generation, data = _parse_sealed(text, agent)
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
            ok = stored is not None and _tag(stored) == data
            data = stored if ok else None  # type: ignore[assignment]
        if cipher is not None and data is not None:
            compact = referenced or short or text.startswith(COMPACT + ".")
            aad = (_reference_aad if referenced else _short_aad if short else _compact_aad if compact else _aad)(
                tenant, pseudonym_, generation)
            try:
                opened = _decode(cipher.decrypt(_NONCE, data, aad))
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
    opened = _copy_path(statement)
    for container, name in _agent_slots(opened):
        agent = container.get(name)
        if isinstance(agent, dict):
            container[name] = open_(agent)
    return opened


def stored_agents(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each Agent or Group of a stored Statement that :func:`open_statement` opens."""
    for container, name in _agent_slots(statement):
        agent = container.get(name)
        if isinstance(agent, dict):
            yield agent


def with_identities_of(statement: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any] | None:
    """``statement`` (as sent, sealed or not) with each Agent/Group as
    ``stored`` (a stored Statement with the same id, found equivalent once
    opened) holds it: sent again, it then compares equal to what is stored
    whatever form that was written in (v1, v2, v3 or clear).  The authority
    is left as it is.  None when the two do not name agents in the same places."""
    copy = _copy_path(statement)
    mine = [(c, n) for c, n in _agent_slots(copy) if not (c is copy and n == "authority")]
    theirs = [(c, n) for c, n in _agent_slots(stored) if not (c is stored and n == "authority")]
    if [n for _, n in mine] != [n for _, n in theirs]:
        return None
    for (container, name), (source, source_name) in zip(mine, theirs):
        if (name in container) != (source_name in source):
            return None
        if source_name in source:
            container[name] = source[source_name]
    return copy


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

    for container, name in _agent_slots(statement):
        found = visit(container.get(name))
        if found is not None:
            return found, False
    return None, erased


def decode(payload: bytes) -> dict[str, Any]:
    return _decode(payload)


def encode(statement: dict[str, Any]) -> bytes:
    """Stored-Statement JSON (sorted keys, as :mod:`lrs.eventlog` writes it)."""
    return _encode(statement)


def new_data_key_cipher(data_key: bytes) -> DataKey:
    """The cached form of a 32-byte data key (any other is refused, as AES-GCM-SIV refuses keys)."""
    if len(data_key) != 32:
        raise ValueError("a data key is 32 bytes")
    return DataKey(int.from_bytes(data_key, "big") ^ _PAD)
