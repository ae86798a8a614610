"""Shared xAPI value types: IRIs, mailto IRIs, UUIDs, language maps, timestamps, durations.

Each type is a ``str`` annotated with a regular expression, so msgspec checks it
while decoding and reports the JSON path; the same patterns end up in the JSON
Schemas.  The ``Checked*`` variants carry the pattern for the schemas only:
the Struct that holds one checks it in ``__post_init__`` against the values
already matched (``is_iri``, ``is_language_tag``, ``is_duration``), for the
fields whose values repeat from statement to statement.  Calendar checks
that a pattern cannot express live in ``timestamp_problem`` (lrs.xapi.timestamps).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from lrs.xapi.errors import PATTERN_NAMES, field_error
from lrs.xapi.iri import IRI_BODY, IRI_BODY_FAST
from lrs.xapi.timestamps import COMMON_TIMESTAMP, TIMESTAMP_EXPECTED, TIMESTAMP_RULES, timestamp_problem

__all__ = [
    "Strict",
    "Iri",
    "MailtoIri",
    "Sha1Hex",
    "Uuid",
    "LanguageTag",
    "LanguageMap",
    "Timestamp",
    "Duration",
    "MediaType",
    "Sha2Hex",
    "VersionString",
    "Extensions",
    "EXTENSIONS_MET",
    "CheckedIri",
    "CheckedLanguageTag",
    "CheckedLanguageMap",
    "CheckedDuration",
    "CheckedUuid",
    "CheckedMailtoIri",
    "is_iri",
    "KNOWN_IRIS",
    "KNOWN_LANGUAGE_TAGS",
    "KNOWN_DURATIONS",
    "is_language_tag",
    "is_duration",
    "check_language_map",
    "is_uuid",
    "is_mailto",
    "match_uuid",
    "match_mailto",
    "UUID_EXPECTED",
    "MAILTO_EXPECTED",
    "timestamp_problem",
]


class Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every xAPI object: immutable, unknown keys rejected.

    ``kw_only`` is not inherited by msgspec, so each subclass passes it again.
    """


def _anchored(body: str) -> str:
    # "$" alone also matches before a trailing newline in Python; the lookahead
    # closes that gap and is understood by JSON Schema (ECMA 262) validators too.
    return f"^(?:{body})$(?!\\n)"


def _register(body: str, name: str) -> str:
    pattern = _anchored(body)
    PATTERN_NAMES[pattern] = name
    return pattern


# An IRI with a scheme, per RFC 3987's grammar (lrs.xapi.iri): a bad host,
# port or percent-escape is refused, not only whitespace and controls.
# Applied in its possessive form (linear time whatever the input); the JSON
# Schemas publish the portable form of the same language (PUBLISHED_PATTERNS).
IRI_PATTERN = _register(
    IRI_BODY_FAST,
    "an RFC 3987 IRI with a scheme (e.g. http://example.com/x)",
)
PUBLISHED_PATTERNS = {IRI_PATTERN: _anchored(IRI_BODY)}
MAILTO_PATTERN = _register(
    r'mailto:[^\x00-\x20\x7f<>"@]+@[^\x00-\x20\x7f<>"@]+',
    'a mailto IRI ("mailto:name@example.com")',
)
SHA1_PATTERN = _register(r"[0-9a-fA-F]{40}", "a hex-encoded SHA-1 (40 hex digits)")
UUID_PATTERN = _register(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "a UUID in standard string form (8-4-4-4-12 hex digits)",
)

_LANGTAG = (
    r"(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"  # language, extlang
    r"(?:-[A-Za-z]{4})?"  # script
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"  # variants
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"  # extensions
    r"(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?"  # private use
    r"|[xX](?:-[A-Za-z0-9]{1,8})+"  # private use only
    r"|[Ee][Nn]-[Gg][Bb]-[Oo][Ee][Dd]"  # irregular grandfathered tags
    r"|[Ii]-(?:ami|bnn|default|enochian|hak|klingon|lux|mingo|navajo|pwn|tao|tay|tsu)"
    r"|[Ss][Gg][Nn]-(?:BE-FR|BE-NL|CH-DE)"
)
# Applied with a shortcut for the common form first (two lower-case letters,
# maybe a hyphen and two upper-case ones: en, en-US, vi-VN), which is a tag of
# the full rule, so the language is the same for less time a tag; the schemas
# publish the rule alone (PUBLISHED_PATTERNS).
_COMMON_LANGTAG = r"[a-z]{2}(?:-[A-Z]{2})?"
LANGTAG_PATTERN = _register(f"{_COMMON_LANGTAG}|{_LANGTAG}", "an RFC 5646 language tag (e.g. en-US)")
PUBLISHED_PATTERNS[LANGTAG_PATTERN] = _anchored(_LANGTAG)

# ISO 8601 combined date and time, extended or basic format, optional zone
# (lrs.xapi.timestamps).  Applied with a shortcut for the form most clients
# send (UTC, seconds, an optional fraction), a timestamp of the extended rule:
# the same language in less time; the schemas publish the rules alone
# (PUBLISHED_PATTERNS).  What a pattern cannot express (real days, hours,
# offsets, years 0001-9999 in UTC) is timestamp_problem's.
TIMESTAMP_PATTERN = _register(f"{COMMON_TIMESTAMP}|{TIMESTAMP_RULES}", TIMESTAMP_EXPECTED)
PUBLISHED_PATTERNS[TIMESTAMP_PATTERN] = _anchored(TIMESTAMP_RULES)

_NUM = r"[0-9]+(?:[.,][0-9]+)?"
DURATION_PATTERN = _register(
    rf"P(?:{_NUM}W"
    rf"|(?=[0-9T])(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}D)?(?:T(?=[0-9])(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?"
    rf"|{_NUM}S)",
    "an ISO 8601 duration (e.g. PT1H30M, P3Y, P4W)",
)
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~\-]+"
MEDIA_TYPE_PATTERN = _register(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"[^\"]*\"))*",
    "an Internet media type (e.g. application/pdf)",
)
SHA2_PATTERN = _register(
    r"[0-9a-fA-F]{56}|[0-9a-fA-F]{64}|[0-9a-fA-F]{96}|[0-9a-fA-F]{128}",
    "a hex-encoded SHA-2 hash (56, 64, 96 or 128 hex digits)",
)
# Formatted "as laid out for the API version header" (Data 2.4.10.s2.b1), and
# that header may be "1.0", read as "1.0.0" (Communication 3.3.s3.b3).
VERSION_PATTERN = _register(
    r"[0-9]+\.[0-9]+(?:\.[0-9]+(?:-[0-9A-Za-z.\-]+)?)?",
    "a semantic version (e.g. 1.0.0, or 1.0 read as 1.0.0)",
)

Iri = Annotated[str, Meta(pattern=IRI_PATTERN, description="Absolute IRI")]
# The same values and schemas as Iri, LanguageMap, LanguageTag and Duration,
# for the fields statements repeat most: their owning Struct checks them in
# __post_init__ with is_iri, check_language_map, is_language_tag and
# is_duration (a remembered match) instead of msgspec matching the pattern
# every time.  The schema still carries the pattern (extra_json_schema).
CheckedIri = Annotated[str, Meta(description="Absolute IRI", extra_json_schema={"pattern": IRI_PATTERN})]
CheckedLanguageTag = Annotated[
    str, Meta(description="RFC 5646 language tag", extra_json_schema={"pattern": LANGTAG_PATTERN})
]
CheckedLanguageMap = dict[CheckedLanguageTag, str]
CheckedDuration = Annotated[
    str, Meta(description="ISO 8601 duration", extra_json_schema={"pattern": DURATION_PATTERN})
]
MailtoIri = Annotated[str, Meta(pattern=MAILTO_PATTERN, description="mailto IRI")]
# The same values and schemas as Uuid and MailtoIri, for the fields every
# statement carries a new value of (its id, its registration, its actor's
# mbox): their owning Struct tests them in the __post_init__ it runs anyway
# (match_uuid, match_mailto).  A remembered match cannot help a value never seen
# before, but msgspec's pattern check costs about 0.44 µs a value where the
# same compiled pattern's match called from the hook costs about 0.2
# (bench/pattern_fields.py).
CheckedUuid = Annotated[
    str, Meta(description="UUID, standard string form", extra_json_schema={"pattern": UUID_PATTERN})
]
CheckedMailtoIri = Annotated[str, Meta(description="mailto IRI", extra_json_schema={"pattern": MAILTO_PATTERN})]
Sha1Hex = Annotated[str, Meta(pattern=SHA1_PATTERN, description="Hex SHA-1 of a mailto IRI")]
Uuid = Annotated[str, Meta(pattern=UUID_PATTERN, description="UUID, standard string form")]
LanguageTag = Annotated[str, Meta(pattern=LANGTAG_PATTERN, description="RFC 5646 language tag")]
LanguageMap = dict[LanguageTag, str]
Timestamp = Annotated[str, Meta(pattern=TIMESTAMP_PATTERN, description="ISO 8601 timestamp")]
Duration = Annotated[str, Meta(pattern=DURATION_PATTERN, description="ISO 8601 duration")]
MediaType = Annotated[str, Meta(pattern=MEDIA_TYPE_PATTERN, description="Internet media type")]
Sha2Hex = Annotated[str, Meta(pattern=SHA2_PATTERN, description="Hex SHA-2 hash")]
VersionString = Annotated[str, Meta(pattern=VERSION_PATTERN, description="xAPI version")]
# Extension values may be any JSON, including null (Data 4.1).
Extensions = dict[Iri, Any]
# Advanced by the hook of every Struct that was given ``extensions``, the only
# values that nest without a bound the schema sets: a decode during which it
# advanced only by the caller's own ``next`` read before and after (see
# lrs.xapi.statement.parse_statements) met no extensions, so its Statements
# need no depth check.  ``next`` on a count is atomic, and another thread's
# decode can only make it look as if extensions were met (a depth check that
# was not needed), never the reverse.
EXTENSIONS_MET = itertools.count()

# The compiled patterns' match, None when the value does not match; the
# hooks that test CheckedUuid and CheckedMailtoIri fields call them directly.
match_uuid = re.compile(UUID_PATTERN).match
match_mailto = re.compile(MAILTO_PATTERN).match

# Values already matched, per pattern.  The IRIs, language tags and durations
# of statements repeat (the same verbs, activity types and ids, "en-US", "PT5M"
# statement after statement), and a set lookup costs a tenth of a match
# (about 30 ns against 300 ns, bench/ingest_pieces.py).  Only values that
# matched are kept, so a value is accepted exactly when the pattern accepts it.
# Bounded: short values only, and a set is emptied when full.
_KNOWN_MAX = 4096
_KNOWN_MAX_LENGTH = 256


def _matches_cached(pattern: str, limit: int = _KNOWN_MAX) -> Callable[[str], bool]:
    """A test of ``pattern`` (anchored, lrs.xapi.common) that remembers up to
    ``limit`` values that matched (in its attribute ``known``)."""
    match = re.compile(pattern).match
    known: set[str] = set()

    def matches(value: str) -> bool:
        if value in known:
            return True
        if match(value) is None:
            return False
        if len(value) <= _KNOWN_MAX_LENGTH:
            if len(known) >= limit:
                known.clear()
            known.add(value)
        return True

    matches.known = known  # type: ignore[attr-defined]
    return matches


is_iri = _matches_cached(IRI_PATTERN)
is_language_tag = _matches_cached(LANGTAG_PATTERN)
is_duration = _matches_cached(DURATION_PATTERN)
is_iri.__doc__ = "Whether ``value`` is an IRI of IRI_PATTERN (RFC 3987)."
is_language_tag.__doc__ = "Whether ``value`` is a language tag of LANGTAG_PATTERN (RFC 5646)."
is_duration.__doc__ = "Whether ``value`` is an ISO 8601 duration of DURATION_PATTERN."
# The values each test remembers, for the hooks that run on every statement:
# ``value in KNOWN_IRIS or is_iri(value)`` answers as ``is_iri(value)`` does,
# without a Python call when the value was seen (the sets are cleared in
# place, never replaced), and ``KNOWN_LANGUAGE_TAGS.issuperset(map)`` tells
# that every key of a language map is a tag in one C call.
KNOWN_IRIS: set[str] = is_iri.known  # type: ignore[attr-defined]
KNOWN_LANGUAGE_TAGS: set[str] = is_language_tag.known  # type: ignore[attr-defined]
KNOWN_DURATIONS: set[str] = is_duration.known  # type: ignore[attr-defined]

IRI_EXPECTED = f"Expected {PATTERN_NAMES[IRI_PATTERN]}"
DURATION_EXPECTED = f"Expected {PATTERN_NAMES[DURATION_PATTERN]}"
LANGUAGE_TAG_EXPECTED = f"Expected {PATTERN_NAMES[LANGTAG_PATTERN]}"
UUID_EXPECTED = f"Expected {PATTERN_NAMES[UUID_PATTERN]}"
MAILTO_EXPECTED = f"Expected {PATTERN_NAMES[MAILTO_PATTERN]}"
_LANGUAGE_KEY_EXPECTED = f"Invalid key: {LANGUAGE_TAG_EXPECTED}"


def check_language_map(value: dict[str, str], path: str) -> None:
    """Raise ``field_error`` at ``path`` (the message msgspec's pattern check
    gave) unless every key of the language map is a language tag."""
    for key in value:
        if not is_language_tag(key):
            raise field_error(path, _LANGUAGE_KEY_EXPECTED)


def is_uuid(value: str) -> bool:
    return match_uuid(value) is not None


def is_mailto(value: str) -> bool:
    return match_mailto(value) is not None
