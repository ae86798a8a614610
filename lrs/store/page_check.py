"""The page check of a candidate read from the stored bytes, for the filters
that ask only a Statement's verb, Object and registration.

A page of GET /xapi/statements checks each candidate the read model found by
hashes on the Statement's JSON (:func:`lrs.ingest.stored_keys.meets_filters`).
Decoded whole, a ~1 KB Statement cost about 5 µs, half a page's Python work
after its decompression.  A verb, an activity (with ``related_activities``
too) and a registration need a few fields: :func:`narrow_check` decodes only
those (msgspec skips the rest without building it) and asks the same rules
of them, about 2 µs.  An agent (its identities are in many places) or the
statements/read/mine scope's authority need the whole Statement:
:func:`narrow_check` gives None and the page decodes it as before.  tests/unit/test_page_check.py holds the
two checks equal.
"""

from __future__ import annotations

import uuid
from typing import Callable

import msgspec

from lrs.ingest.query import StatementQuery

__all__ = ["NarrowCheck", "narrow_check"]

# lrs.ingest.stored_keys._NOT_ACTIVITIES: an Object of no other type is an
# Activity; _NOT_SUB_ACTIVITIES: a SubStatement's Object
_NOT_ACTIVITIES = frozenset(("Agent", "Group", "StatementRef", "SubStatement"))
_NOT_SUB_ACTIVITIES = frozenset(("Agent", "Group", "StatementRef"))


class _Verb(msgspec.Struct):
    id: str


class _Activity(msgspec.Struct):
    id: str


class _Context(msgspec.Struct):
    registration: str | None = None
    contextActivities: dict[str, list[_Activity]] | None = None


class _Inner(msgspec.Struct):
    """A SubStatement's Object."""

    objectType: str | None = None
    id: str | None = None


class _Object(msgspec.Struct):
    objectType: str | None = None
    id: str | None = None
    object: _Inner | None = None  # a SubStatement's
    context: _Context | None = None  # a SubStatement's


class _Checked(msgspec.Struct):
    verb: _Verb
    object: _Object
    context: _Context | None = None


_decode = msgspec.json.Decoder(_Checked).decode

# (whether the Statement itself meets the filters, the id its StatementRef
# Object points at or None), or None when the bytes do not have the form
# the narrow decoding expects (the whole JSON then decides)
NarrowCheck = Callable[[bytes], "tuple[bool, uuid.UUID | None] | None"]


def narrow_check(query: StatementQuery, authority: str | None) -> NarrowCheck | None:
    """The check of ``query``'s filters on a Statement's bytes, when they ask
    only its verb, Object and registration; else None."""
    if authority is not None or query.agent is not None:
        return None
    verb, activity, registration, related = query.verb, query.activity, query.registration, query.related_activities

    def check(payload: bytes) -> tuple[bool, uuid.UUID | None] | None:
        try:
            body = _decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        target = body.object
        referred = None
        if target.objectType == "StatementRef":
            if target.id is None:
                return None
            referred = uuid.UUID(target.id)
        if verb is not None and body.verb.id != verb:
            return False, referred
        if registration is not None:
            context = body.context
            if context is None or context.registration is None or uuid.UUID(context.registration) != registration:
                return False, referred
        if activity is not None and not (
            (target.objectType not in _NOT_ACTIVITIES and target.id == activity)
            or (related and _related_has(body, activity))
        ):
            return False, referred
        return True, referred

    return check


def _context_has(context: _Context | None, activity: str) -> bool:
    if context is None or context.contextActivities is None:
        return False
    return any(a.id == activity for value in context.contextActivities.values() for a in value)


def _related_has(body: _Checked, activity: str) -> bool:
    """Whether ``activity`` is one of the Statement's related Activities
    other than its Object (lrs.ingest.stored_keys._related_activities)."""
    if _context_has(body.context, activity):
        return True
    target = body.object
    if target.objectType != "SubStatement":
        return False
    inner = target.object
    if inner is not None and inner.objectType not in _NOT_SUB_ACTIVITIES and inner.id == activity:
        return True
    return _context_has(target.context, activity)
