"""Errors raised by the xAPI layer, each carrying an HTTP status and a JSON path."""

from __future__ import annotations

import re

import msgspec

__all__ = ["XapiError", "ConflictError", "NotFoundError", "field_error", "from_validation_error"]


class XapiError(Exception):
    """A request the LRS refuses; ``status`` is the HTTP status to answer with.

    Accepts ``XapiError(400, "message", "$.path")`` as well as
    ``XapiError("message", path="$.path")``; status defaults to the class default.
    """

    default_status = 400
    # What the request log line says instead of the message, when the message
    # names personal data the caller sent in clear (a log lies outside the
    # store, where an erasure cannot reach it).
    logged: str | None = None

    def __init__(
        self,
        *args: object,
        status: int | None = None,
        message: str | None = None,
        path: str | None = None,
    ) -> None:
        rest = list(args)
        if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool):
            status = int(rest.pop(0))  # type: ignore[call-overload]
        if rest and message is None:
            message = str(rest.pop(0))
        if rest and path is None:
            path = None if rest[0] is None else str(rest.pop(0))
        self.status: int = self.default_status if status is None else status
        self.message: str = message or "invalid request"
        self.path: str | None = path
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.message + (f" (at {self.path})" if self.path else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r}, {self.path!r})"


class ConflictError(XapiError):
    default_status = 409


class NotFoundError(XapiError):
    default_status = 404


# --- turning msgspec validation messages into XapiErrors -------------------

# A ValueError raised in a Struct's __post_init__ is reported by msgspec at the
# path of that struct.  To name a field below it, the message is prefixed with
# SUBPATH_MARK + ".field" + SUBPATH_MARK.
SUBPATH_MARK = "\x1f"


def field_error(subpath: str, message: str) -> ValueError:
    """A ValueError for ``__post_init__`` naming ``subpath`` (".mbox", ".member[2]")."""
    return ValueError(f"{SUBPATH_MARK}{subpath}{SUBPATH_MARK}{message}")


_AT = re.compile(r"^(?P<msg>.*) - at `(?P<path>[^`]*)`(?: in `(?P<outer>[^`]*)`)?$", re.S)

# Friendly names for the patterns used in lrs.xapi.common (registered there).
PATTERN_NAMES: dict[str, str] = {}


def _describe_patterns(message: str) -> str:
    for pattern, name in PATTERN_NAMES.items():
        message = message.replace(f"Expected `str` matching regex {pattern!r}", f"Expected {name}")
    return message


def from_validation_error(err: msgspec.ValidationError, prefix: str = "") -> XapiError:
    """Convert msgspec's ``"<message> - at `$...`"`` into ``XapiError(400, message, path)``.

    ``prefix`` replaces the leading ``$`` (e.g. ``"$[3]"`` inside a batch, or
    ``"agent"`` for a query parameter).
    """
    text = str(err)
    m = _AT.match(text)
    if m is None:
        message, path = text, "$"
    else:
        message, path = m.group("msg"), m.group("path")
        if m.group("outer") is not None:  # "- at `key` in `$.x`": a bad mapping key
            message = f"Invalid key: {message}"
            path = m.group("outer")
    if path.endswith("[...]"):  # a mapping value; msgspec does not name the key
        path = path[: -len("[...]")]
        message = f"Invalid value: {message}"
    if message.startswith(SUBPATH_MARK):
        _, sub, message = message.split(SUBPATH_MARK, 2)
        path += sub
    if "matching regex" in message:
        message = _describe_patterns(message)
    if prefix:
        path = prefix + path[1:] if path.startswith("$") else prefix + path
    return XapiError(400, message, path)
