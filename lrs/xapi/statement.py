"""Statements (Data 2.4) and the entry points that parse request bodies.

``parse_statements`` / ``parse_statement`` decode and validate in one pass
(msgspec, decoders built once at import) and hand back each statement as the
plain JSON it was sent as.
"""

from __future__ import annotations

import operator
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from lrs.xapi.actors import Account, Actor, Agent, _check_agent, _check_group, ifi_count
from lrs.xapi.attachments import Attachment
from lrs.xapi.common import (
    EXTENSIONS_MET,
    IRI_PATTERN,
    KNOWN_IRIS,
    UUID_EXPECTED,
    UUID_PATTERN,
    CheckedUuid,
    Iri,
    MailtoIri,
    Sha1Hex,
    Strict,
    Timestamp,
    VersionString,
    is_iri,
    is_uuid,
    match_uuid,
    timestamp_problem,
)
from lrs.xapi.contexts import V2_ONLY_FIELDS, Context
from lrs.xapi.errors import PATTERN_NAMES, XapiError, field_error, from_validation_error
from lrs.xapi.jsontext import check_shape, decode_problem, too_deep
from lrs.xapi.objects import ActivityDefinition
from lrs.xapi.results import Result
from lrs.xapi.verbs import VOIDED, Verb
from lrs.xapi.versions import SUPPORTED_VERSIONS

__all__ = [
    "StatementObject",
    "SubStatementObject",
    "Statement",
    "full_statement_version",
    "parse_statements",
    "parse_statement",
]

ObjectType = Literal["Activity", "Agent", "Group", "StatementRef", "SubStatement"]

_AGENT_FIELDS = frozenset({"objectType", "name", "mbox", "mbox_sha1sum", "openid", "account"})
_ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    "Activity": frozenset({"objectType", "id", "definition"}),
    "Agent": _AGENT_FIELDS,
    "Group": _AGENT_FIELDS | {"member"},
    "StatementRef": frozenset({"objectType", "id"}),
    "SubStatement": frozenset(
        {"objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"}
    ),
}
_IRI_NAME = PATTERN_NAMES[IRI_PATTERN]
_UUID_NAME = PATTERN_NAMES[UUID_PATTERN]


def _check_object(obj: "SubStatementObject | StatementObject", nested: bool) -> None:
    """Rules of a Statement's object that depend on its ``objectType``."""
    kind = obj.objectType
    if kind is UNSET:
        kind = "Activity"
    elif kind == "SubStatement" and nested:
        raise field_error(".objectType", "A SubStatement cannot contain a SubStatement")
    names, get_forbidden, none_set = (_FORBIDDEN_NESTED if nested else _FORBIDDEN_TOP)[kind]
    values = get_forbidden(obj)
    if values != none_set:
        name = next(n for n, v in zip(names, values) if v is not UNSET)
        raise field_error(f".{name}", f"`{name}` is not allowed on an object of objectType {kind!r}")
    if kind == "Activity" or kind == "StatementRef":
        if obj.id is UNSET:
            raise field_error("", f"An object of objectType {kind!r} requires `id`")
        if kind == "Activity":
            if obj.id not in KNOWN_IRIS and not is_iri(obj.id):
                raise field_error(".id", f"Expected {_IRI_NAME}")
        elif not is_uuid(obj.id):
            raise field_error(".id", f"Expected {_UUID_NAME}")
    elif kind == "Agent":
        _check_agent(obj)  # type: ignore[arg-type]
    elif kind == "Group":
        _check_group(obj)  # type: ignore[arg-type]
    else:  # SubStatement: validated as a Statement (Data 2.4.4.3.s8)
        for name in ("actor", "verb", "object"):
            if getattr(obj, name) is UNSET:
                raise field_error("", f"A SubStatement requires `{name}`")
        _check_statement_rules(obj)  # type: ignore[arg-type]


def _check_statement_rules(stmt: "Statement | StatementObject") -> None:
    """Rules shared by Statements and SubStatements."""
    if stmt.timestamp is not UNSET:
        problem = timestamp_problem(stmt.timestamp)
        if problem:
            raise field_error(".timestamp", problem)
    obj = stmt.object
    context = stmt.context
    kind = obj.objectType  # type: ignore[union-attr]
    if context is not UNSET and kind is not UNSET and kind != "Activity":
        for name in ("revision", "platform"):
            if getattr(context, name) is not UNSET:
                raise field_error(
                    f".context.{name}", f"`{name}` is only allowed when the object is an Activity"
                )
    if stmt.verb.id == VOIDED and obj.objectType != "StatementRef":  # type: ignore[union-attr]
        raise field_error(".object", "A voiding Statement's object must be a StatementRef")


class SubStatementObject(Strict, kw_only=True):
    """The object of a SubStatement: Activity, Agent, Group or StatementRef."""

    objectType: ObjectType | UnsetType = UNSET
    id: str | UnsetType = UNSET
    definition: ActivityDefinition | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: MailtoIri | UnsetType = UNSET
    mbox_sha1sum: Sha1Hex | UnsetType = UNSET
    openid: Iri | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[Agent] | UnsetType = UNSET
    # Present only so that a nested SubStatement gets a clear error instead of
    # "unknown field `actor`": any of them set is refused by _check_object.
    actor: msgspec.Raw | UnsetType = UNSET
    verb: msgspec.Raw | UnsetType = UNSET
    object: msgspec.Raw | UnsetType = UNSET
    result: msgspec.Raw | UnsetType = UNSET
    context: msgspec.Raw | UnsetType = UNSET
    timestamp: msgspec.Raw | UnsetType = UNSET
    attachments: msgspec.Raw | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_object(self, nested=True)


class StatementObject(Strict, kw_only=True):
    """A Statement's object: Activity (the default), Agent, Group, StatementRef or SubStatement.

    The spec makes ``objectType`` optional (absent means Activity), so there is no
    tag to dispatch on; one struct carries the union of the fields and
    ``_check_object`` applies the rules of the actual type.
    """

    objectType: ObjectType | UnsetType = UNSET
    id: str | UnsetType = UNSET
    definition: ActivityDefinition | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: MailtoIri | UnsetType = UNSET
    mbox_sha1sum: Sha1Hex | UnsetType = UNSET
    openid: Iri | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[Agent] | UnsetType = UNSET
    # SubStatement fields
    actor: Actor | UnsetType = UNSET
    verb: Verb | UnsetType = UNSET
    object: SubStatementObject | UnsetType = UNSET
    result: Result | UnsetType = UNSET
    context: Context | UnsetType = UNSET
    timestamp: Timestamp | UnsetType = UNSET
    attachments: list[Attachment] | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_object(self, nested=False)


# Per struct, objectType -> (names of the fields that type must not have,
# getter of their values, those values when none is set).
_Forbidden = dict[str, tuple[tuple[str, ...], operator.attrgetter, tuple]]
_FORBIDDEN_NESTED: _Forbidden = {}
_FORBIDDEN_TOP: _Forbidden = {}
for _cls, _table in ((SubStatementObject, _FORBIDDEN_NESTED), (StatementObject, _FORBIDDEN_TOP)):
    for _kind, _allowed in _ALLOWED_FIELDS.items():
        _names = tuple(f for f in _cls.__struct_fields__ if f not in _allowed)
        assert len(_names) >= 2  # so the getter returns a tuple
        _table[_kind] = (_names, operator.attrgetter(*_names), (UNSET,) * len(_names))


class Statement(Strict, kw_only=True):
    id: CheckedUuid | UnsetType = UNSET
    actor: Actor
    verb: Verb
    object: StatementObject
    result: Result | UnsetType = UNSET
    context: Context | UnsetType = UNSET
    timestamp: Timestamp | UnsetType = UNSET
    stored: Timestamp | UnsetType = UNSET
    authority: Actor | UnsetType = UNSET
    version: VersionString | UnsetType = UNSET
    attachments: list[Attachment] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.id is not UNSET and match_uuid(self.id) is None:
            raise field_error(".id", UUID_EXPECTED)
        _check_statement_rules(self)
        if self.stored is not UNSET:
            problem = timestamp_problem(self.stored)
            if problem:
                raise field_error(".stored", problem)
        if self.authority is not UNSET and self.authority.objectType == "Group":
            _check_group_authority(self.authority)


def _check_group_authority(authority: Actor) -> None:
    """A Group authority is 3-legged OAuth (Data 2.4.9.s3.b1, 2.4.9.s7.b1-b2): an
    anonymous Group of exactly two Agents, the OAuth consumer among them identified
    by ``account``."""
    if ifi_count(authority) != 0:
        raise field_error(
            ".authority",
            "A Group authority must be an anonymous Group (no mbox, mbox_sha1sum, openid or account): "
            "the pairing of an OAuth application and a user",
        )
    if authority.member is UNSET or len(authority.member) != 2:
        raise field_error(
            ".authority.member",
            "A Group authority must have exactly two Agents (OAuth application and user)",
        )
    if all(member.account is UNSET for member in authority.member):
        raise field_error(
            ".authority.member",
            "A Group authority must have an Agent identified by `account` (the OAuth consumer)",
        )


# --- parsing request bodies --------------------------------------------------

_batch_decoder = msgspec.json.Decoder(Statement | list[Statement])
_single_decoder = msgspec.json.Decoder(Statement)

# Statement "version" prefixes accepted under each request version
# (Data 2.4.10: a 1.0.x LRS rejects any version not starting with "1.0.").
_STATEMENT_VERSION_PREFIXES = {"1.0.3": ("1.0.",), "2.0.0": ("1.0.", "2.0.")}


def full_statement_version(value: str) -> str:
    """A Statement ``version`` with its patch number: "1.0" is read as "1.0.0"
    and "2.0" as "2.0.0" (Communication 3.3.s3.b3, 2.0 4.1.7); others unchanged."""
    return value + ".0" if value.count(".") == 1 else value


def _path(index: int | None) -> str:
    """The JSON path of a request's Statement: ``$``, or ``$[index]`` in an array."""
    return "$" if index is None else f"$[{index}]"


def _check_for_version(stmt: Statement, version: str, index: int | None) -> None:
    """Rules that depend on the request's X-Experience-API-Version (``index``:
    the Statement's place in the request's array, None for a single one)."""
    if stmt.version is not UNSET and not full_statement_version(stmt.version).startswith(
        _STATEMENT_VERSION_PREFIXES[version]
    ):
        allowed = " or ".join(repr(p) for p in _STATEMENT_VERSION_PREFIXES[version])
        raise XapiError(
            400,
            f"Statement version {stmt.version!r} is not accepted here: it must start with {allowed}",
            f"{_path(index)}.version",
        )
    if version == "1.0.3":
        # The path is written only for a problem: this runs for every statement.
        _check_v1_context(stmt.context, index, ".context")
        if stmt.object.objectType == "SubStatement":
            _check_v1_context(stmt.object.context, index, ".object.context")


def _check_v1_context(context: Context | UnsetType, index: int | None, where: str) -> None:
    if context is UNSET:
        return
    for name in V2_ONLY_FIELDS:
        if getattr(context, name) is not UNSET:
            raise XapiError(
                400,
                f"Object contains unknown field `{name}` (it exists only in xAPI 2.0.0)",
                f"{_path(index)}{where}",
            )


def _check_version_argument(version: str) -> None:
    if version not in _STATEMENT_VERSION_PREFIXES:
        raise XapiError(400, f"Unsupported xAPI version {version!r}; expected one of {SUPPORTED_VERSIONS}")


def _decode(decoder: msgspec.json.Decoder, body: bytes | str):  # type: ignore[no-untyped-def]
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as err:
        raise from_validation_error(err) from None
    except (msgspec.DecodeError, UnicodeError, RecursionError) as err:
        # UnicodeDecodeError (invalid UTF-8) and RecursionError (deep nesting)
        # escape msgspec as themselves; each becomes a 400 naming the problem.
        raise decode_problem(body, err) from None


def _builtins(value):  # type: ignore[no-untyped-def]
    """The validated Structs as plain JSON values (UNSET fields omitted)."""
    try:
        return msgspec.to_builtins(value)
    except RecursionError:
        raise too_deep() from None


def parse_statements(body: bytes | str, version: str) -> list[dict]:
    """Validate a POSTed body (one Statement object or an array of them).

    Returns each Statement as the JSON-able dict that was sent.  Raises
    ``XapiError(400, message, path)`` on the first problem; the path starts
    with ``$[i]`` inside an array.
    """
    _check_version_argument(version)
    before = next(EXTENSIONS_MET)
    decoded = _decode(_batch_decoder, body)
    met = next(EXTENSIONS_MET) != before + 1
    if isinstance(decoded, Statement):
        _check_for_version(decoded, version, None)
        statement = _builtins(decoded)
        check_shape(body, statement, deep_key="extensions", deep_key_met=met)
        return [statement]
    if not decoded:
        raise XapiError(400, "The request contains no statements (empty array)", "$")
    for i, stmt in enumerate(decoded):
        _check_for_version(stmt, version, i)
    statements = _builtins(decoded)
    check_shape(body, statements, deep_key="extensions", deep_key_met=met)
    return statements


def parse_statement(body: bytes | str, version: str) -> dict:
    """Validate a PUT body: exactly one Statement object."""
    _check_version_argument(version)
    before = next(EXTENSIONS_MET)
    stmt = _decode(_single_decoder, body)
    met = next(EXTENSIONS_MET) != before + 1
    _check_for_version(stmt, version, None)
    statement = _builtins(stmt)
    check_shape(body, statement, deep_key="extensions", deep_key_met=met)
    return statement
