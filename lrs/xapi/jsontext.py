"""Rules about the JSON text itself, before and after the typed decode.

msgspec decodes strictly, but a few kinds of bad input need more than its
message (or escape it altogether):

- **Invalid UTF-8** raises ``UnicodeDecodeError`` from inside msgspec (not a
  ``DecodeError``); a byte order mark, ``NaN``/``Infinity``, raw control
  characters and lone UTF-16 surrogate escapes (``"\\ud800"``) come out as
  "invalid character (byte N)" or "Input data was truncated".
  ``decode_problem`` turns each into a 400 that names it (Communication 1.4:
  all strings are UTF-8; RFC 8259: no NaN, no unescaped controls, no BOM on
  the wire).
- **Deep nesting** (``[[[[...`` in an extension value) makes msgspec raise
  ``RecursionError``. ``MAX_DEPTH`` bounds every Statement, so no later
  recursive code (equivalence, formats, encoders) meets a deeper value.
- **Duplicate keys**: msgspec keeps the last value silently. Data 2.2.s2.b2
  says a Statement MUST use each property no more than one time, and two
  values for one key make the Statement ambiguous, so the LRS rejects it and
  names the key. The check is cheap: every member of a JSON object has one
  colon outside strings, and without ``\\u`` escapes the strings hold the
  same colons in the text as in msgspec's encoding of the decoded value; so
  the text holds a duplicate exactly when it has more colons.  Where depth
  must be measured too, each Statement is encoded on its own, and every
  member of a JSON object ends with ``"`` then ``:``, so counting
  ``"\\s*:`` in the text counts its members plus the ``":`` that occur
  inside strings.  The same count over
  the decoded value re-encoded by msgspec counts its (distinct) keys plus
  the same string contents, written the same way unless the text used
  ``\\u`` escapes.  So without ``\\u`` escapes the text holds a duplicate
  exactly when its count is the higher one; with them, the keys of the
  decoded value are counted one by one instead.  Only when the counts differ
  is the text parsed again with the standard library to find the duplicate
  and its path.
- **Depth**: only extension values nest without a bound the schema sets,
  so a text without ``extensions`` is not measured.  A value nests no
  deeper than the number of ``{`` and ``[`` in its encoding, so only a
  Statement with more of them than ``MAX_DEPTH`` is walked to measure its
  depth.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from lrs.xapi.errors import XapiError

__all__ = ["MAX_DEPTH", "decode_problem", "check_shape", "too_deep"]

# Levels of arrays and objects, counting the Statement array and object.
# A Statement's own structure needs about a dozen; the rest is for extensions.
MAX_DEPTH = 64

_KEY_END_BYTES = re.compile(rb'"[ \t\r\n]*:')
_KEY_END_TEXT = re.compile(r'"[ \t\r\n]*:')
_BYTE_AT = re.compile(r"\(byte (\d+)\)")
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_LOW_SURROGATE = re.compile(rb"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_encode = msgspec.json.Encoder().encode
_NON_FINITE = (b"NaN", b"Infinity", b"-Infinity", b"+Infinity", b"-NaN")


def too_deep() -> XapiError:
    return XapiError(400, f"JSON is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects", "$")


def _as_bytes(body: bytes | str) -> bytes:
    if isinstance(body, bytes):
        return body
    return body.encode("utf-8", "surrogatepass")


def decode_problem(body: bytes | str, err: Exception, subject: str = "Request body") -> XapiError:
    """A 400 naming what is wrong with ``body`` that msgspec could not decode.

    ``subject`` names the text in the message ("Request body", "The `agent` parameter").
    """
    if isinstance(err, RecursionError):
        return too_deep()
    data = _as_bytes(body)
    if not data.strip():
        return XapiError(400, f"{subject} is not valid JSON: it is empty", "$")
    if data.startswith(b"\xef\xbb\xbf"):
        return XapiError(400, f"{subject} starts with a byte order mark (U+FEFF); send UTF-8 JSON without one", "$")
    if isinstance(err, UnicodeError):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return XapiError(400, f"{subject} is not valid UTF-8: invalid byte 0x{data[bad.start]:02x} at byte {bad.start}", "$")
        return XapiError(400, f"{subject} is not valid UTF-8 (it contains a lone surrogate)", "$")
    message = str(err)
    surrogate = _HIGH_SURROGATE.search(data) or _LOW_SURROGATE.search(data)
    if surrogate is not None and ("surrogate" in message or "truncated" in message):
        escape = surrogate.group().decode()
        return XapiError(
            400,
            f"{subject} is not valid JSON: lone UTF-16 surrogate escape {escape} at byte {surrogate.start()} "
            "(a string must be valid Unicode)",
            "$",
        )
    m = _BYTE_AT.search(message)
    if m is not None and "invalid character" in message:
        at = int(m.group(1))
        if at > 0 and data[at - 1 : at] in (b"-", b"+"):
            at -= 1
        rest = data[at : at + 10]
        if rest.startswith(_NON_FINITE) or (rest[:1] in (b"-", b"+") and rest[1:].startswith(_NON_FINITE)):
            word = rest.split(b",")[0].split(b"]")[0].split(b"}")[0].strip().decode("ascii", "replace")
            return XapiError(400, f"{subject} is not valid JSON: {word} at byte {at} is not a JSON number", "$")
        if rest and rest[0] < 0x20:
            return XapiError(
                400,
                f"{subject} is not valid JSON: unescaped control character U+{rest[0]:04X} at byte {at} "
                f"(write it as \\u{rest[0]:04x} inside a string)",
                "$",
            )
    return XapiError(400, f"{subject} is not valid JSON: {message}", "$")


def _count_and_depth(value: Any) -> tuple[int, int]:
    """(number of object keys, deepest nesting) of decoded JSON, without recursion."""
    keys = 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_DEPTH:
                break
        if isinstance(node, dict):
            keys += len(node)
            for child in node.values():
                if isinstance(child, (dict, list)):
                    push((child, depth + 1))
        else:
            for child in node:
                if isinstance(child, (dict, list)):
                    push((child, depth + 1))
    return keys, deepest


def upper_bound_of_members(body: bytes | str) -> int:
    """At least the number of object members in the JSON text ``body``.

    Counts ``"`` followed by optional whitespace and ``:``; when no
    whitespace precedes any colon, a plain substring count (much faster
    than the regular expression) gives the same number.  Raw tabs and line
    breaks only occur between tokens, so a compact text is told by a
    search for one byte each.
    """
    if isinstance(body, bytes):
        if b" :" in body or (
            (b"\n" in body or b"\t" in body or b"\r" in body)
            and (b"\n:" in body or b"\t:" in body or b"\r:" in body)
        ):
            return len(_KEY_END_BYTES.findall(body))
        return body.count(b'":')
    if " :" in body or "\n:" in body or "\t:" in body or "\r:" in body:
        return len(_KEY_END_TEXT.findall(body))
    return body.count('":')


def check_shape(
    body: bytes | str, decoded: Any, *, deep_key: str | None = None, deep_key_met: bool | None = None
) -> None:
    """Reject Statements nested deeper than ``MAX_DEPTH`` or with a key used twice in one object.

    ``decoded`` is the plain JSON (dicts and lists) the typed decode produced
    from ``body`` (one Statement, or a list of them); it holds exactly the
    distinct keys of the text because every Statement field defaults to UNSET
    and unknown keys are refused.

    ``deep_key`` names the only key whose values the schema lets nest without
    bound (for Statements, ``extensions``): a text that does not contain it
    needs no depth check.  None: every value may nest.  ``deep_key_met``:
    whether the decode met ``deep_key`` at all, when the caller knows
    (lrs.xapi.common.EXTENSIONS_MET); False spares the search of the text.
    """
    statements, depth_above = (decoded, 1) if isinstance(decoded, list) else ([decoded], 0)
    as_bytes = isinstance(body, bytes)
    escaped = (b"\\" in body and b"\\u" in body) if as_bytes else ("\\" in body and "\\u" in body)  # type: ignore[operator]
    if deep_key is None:
        shallow = False
    elif deep_key_met is None:
        shallow = (deep_key.encode() if as_bytes else deep_key) not in body  # type: ignore[operator]
    else:
        shallow = not deep_key_met
    if shallow and not escaped:
        # No value can be too deep.  Every member has one colon outside
        # strings, and the strings hold the same colons in the text and in
        # msgspec's encoding (a colon is never escaped but as \u003a).
        members = _encode(decoded).count(b":")
        in_text = body.count(b":" if as_bytes else ":")  # type: ignore[arg-type]
    else:
        members = 0
        for statement in statements:
            try:
                text = _encode(statement)
            except RecursionError:
                raise too_deep() from None
            if depth_above + text.count(b"{") + text.count(b"[") > MAX_DEPTH:
                if depth_above + _count_and_depth(statement)[1] > MAX_DEPTH:
                    raise too_deep()
            if not escaped:
                # msgspec writes no whitespace around a colon: a plain count, at
                # most what the regular expression would find in the same strings.
                members += text.count(b'":')
        if escaped:
            members = _count_and_depth(decoded)[0]
        in_text = upper_bound_of_members(body)
    if in_text > members:
        duplicate = find_duplicate_key(body)
        if duplicate is not None:
            path, key = duplicate
            raise XapiError(
                400,
                f"Duplicate key {key!r}: a property may occur only once in an object (xAPI-Data 2.2)",
                f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]",
            )


class _Duplicate:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            result[_Duplicate] = _Duplicate(key)  # type: ignore[index]
            return result
        result[key] = value
    return result


def find_duplicate_key(body: bytes | str) -> tuple[str, str] | None:
    """(JSON path of the object, key) of the first duplicated key, or None.

    Only called on text msgspec already accepted, so it is valid JSON of
    bounded depth.
    """
    tree = json.loads(body, object_pairs_hook=_pairs)
    stack: list[tuple[Any, str]] = [(tree, "$")]
    found: list[tuple[str, str]] = []
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            marker = node.get(_Duplicate)
            if marker is not None:
                found.append((path, marker.key))
            for key, child in node.items():
                if key is not _Duplicate and isinstance(child, (dict, list)):
                    stack.append((child, f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                if isinstance(child, (dict, list)):
                    stack.append((child, f"{path}[{i}]"))
    if not found:
        return None
    # The shortest path is the outermost (and usually the first) duplicate.
    return min(found, key=lambda item: (len(item[0]), item[0]))
