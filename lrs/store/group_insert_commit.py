"""A group's INSERT and its COMMIT in one round trip (:mod:`lrs.store.group_write`).

A group of single-statement requests waited three times for PostgreSQL:
the head lock's call, the INSERT (``INSERT_GROUP``), and ``COMMIT; BEGIN``.
asyncpg cannot send a parameterised statement and a COMMIT together (each
extended-protocol execution ends in its own Sync and waits for it), but a
simple query may hold several statements: ``EXECUTE lrs_insert_group(...);
COMMIT; BEGIN ...`` runs the same prepared INSERT with its parameters
written as literals, and commits, in one round trip.  Two waits a group
instead of three (docs/scaling.md, branch b1y, says what that is worth).

The prepared statement is made once a session (:func:`prepare`, outside a
transaction: a PREPARE is not undone by a ROLLBACK, and one made twice is
an error).  It is INSERT_GROUP but for its last column: a Statement stored
before this group that refers to one of the group's (a target stored after
its referrer, :data:`lrs.store.group_commit_sql.REFERRED`) needs
:func:`lrs.store.ref_keys.add_reached_keys` before the COMMIT, so instead of
reporting it the statement fails (:data:`REFERRED_LATER`, no row written,
nothing committed) and the writer writes the group again the usual way.

Literals: PostgreSQL reads each with the input function of the parameter's
declared type, exactly as asyncpg's binary encoding would have given it:
arrays in PostgreSQL's array syntax with every text element double-quoted
and escaped, bytea in hex, timestamps in ISO 8601 with their offset, and the
whole literal in single quotes with its quotes doubled (which needs
``standard_conforming_strings``, PostgreSQL's default since 9.1:
:func:`usable` checks it).  No text the writer sends holds a NUL (the text
guard refuses one in a request's body, and hashes and payloads go as hex).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Sequence

import asyncpg

from lrs.store.group_commit_sql import INSERT_GROUP_REFUSING_REFERRED

__all__ = [
    "PREPARED",
    "REFERRED_LATER",
    "with_commit",
    "insert_parameters",
    "literal",
    "prepare",
    "usable",
]

PREPARED = "lrs_insert_group"
# The SQLSTATE group_referred_later() raises (schemas/postgres/0149_group_referred_later.sql).
REFERRED_LATER = "LR001"

# INSERT_GROUP's parameters, $1 to $23, by the type each is read as there.
PARAMETER_TYPES = (
    "bigint", "uuid[]", "text[]", "text", "uuid[]", "timestamptz", "bytea[]", "bytea", "bytea",
    "text[]", "text[]", "uuid[]", "bool[]", "uuid[]", "uuid[]", "bigint", "bytea", "timestamptz",
    "bool", "bool", "text[]", "bytea[]", "bytea[]",
)
# The payloads ($7) travel as one bytea and the end of each in it ($24): in
# hex, read by bytea's input function in one pass, rather than a bytea[]
# literal, whose array input reads every hex digit again.
PAYLOADS_CUT = (
    "(SELECT array_agg(substr($7, p.e - p.l + 1, p.l) ORDER BY p.n)"
    " FROM unnest($24::int[], $25::int[]) WITH ORDINALITY AS p(e, l, n))"
)
PREPARE_INSERT_GROUP = (
    f"PREPARE {PREPARED} ({', '.join(PARAMETER_TYPES[:6] + ('bytea',) + PARAMETER_TYPES[7:])}, int[], int[]) AS "
    + INSERT_GROUP_REFUSING_REFERRED.replace("$7::bytea[]", PAYLOADS_CUT)
)


async def prepare(conn: asyncpg.Connection) -> None:
    """Make the prepared INSERT in ``conn``'s session, if it is not there yet
    (a connection from the pool may have made it for an earlier group)."""
    try:
        await conn.execute(PREPARE_INSERT_GROUP)
    except asyncpg.DuplicatePreparedStatementError:
        pass


def usable(conn: asyncpg.Connection) -> bool:
    """Whether this session reads '\\' in a quoted literal as itself (the
    literals here are written for it)."""
    return getattr(conn.get_settings(), "standard_conforming_strings", None) == "on"


def insert_parameters(parameters: Sequence[object]) -> str:
    """``EXECUTE lrs_insert_group(...)`` with ``parameters`` (INSERT_GROUP's,
    in order) written as literals."""
    if len(parameters) != len(PARAMETER_TYPES):
        raise ValueError(f"INSERT_GROUP takes {len(PARAMETER_TYPES)} parameters, not {len(parameters)}")
    payloads = parameters[6]
    ends, lengths, at = [], [], 0
    for payload in payloads:
        at += len(payload)
        ends.append(at)
        lengths.append(len(payload))
    literals = [_RENDER[kind](value) if value is not None else "NULL" for kind, value in zip(PARAMETER_TYPES, parameters)]
    literals[6] = literal(b"".join(payloads))
    literals.append(_integers(ends))
    literals.append(_integers(lengths))
    return f"EXECUTE {PREPARED}({', '.join(literals)})"


def with_commit(parameters: Sequence[object], then: str) -> str | None:
    """The group's INSERT, COMMIT, and ``then`` (the next group's BEGIN, or
    nothing) as one simple query; None when a parameter has no literal (a
    text holding a NUL: the usual INSERT then gets PostgreSQL's own error).
    An error in the INSERT runs neither COMMIT nor ``then``: the transaction
    is left failed, for the caller's ROLLBACK."""
    try:
        insert = insert_parameters(parameters)
    except (ValueError, TypeError):
        return None
    return f"{insert}; COMMIT{'; ' + then if then else ''}"


def literal(value: object) -> str:
    """``value`` as a SQL literal its parameter's input function reads back
    exactly (None: NULL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(value).hex() + "'"
    if isinstance(value, list):
        return _quoted("{" + ",".join(map(_element, value)) + "}")
    return _quoted(_text(value))


def _uuids(values: list) -> str:
    # 32 hex digits: uuid_in reads them, and str() of a UUID costs 4 times as much
    return "'{" + ",".join([v.hex if v is not None else "NULL" for v in values]) + "}'"


def _texts(values: list) -> str:
    if None in values:
        return literal(values)
    text = '","'.join(values)
    if '"' in text or "\\" in text:
        return literal(values)
    return _quoted('{"' + text + '"}')


def _integers(values: list[int]) -> str:
    return "'{" + ",".join(map(str, values)) + "}'"


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, (bytes, bytearray, memoryview)):
        return '"\\\\x' + bytes(value).hex() + '"'
    text = _text(value)
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamptz parameter must be timezone-aware")
        return value.isoformat()
    raise TypeError(f"no literal for a {type(value).__name__}")


def _quoted(text: str) -> str:
    if "\x00" in text:
        raise ValueError("PostgreSQL text cannot hold a NUL")
    return "'" + (text.replace("'", "''") if "'" in text else text) + "'"


# Each parameter's literal by its declared type (PARAMETER_TYPES).
_RENDER = {
    "uuid[]": _uuids,
    "text[]": _texts, "bigint": literal, "text": literal, "timestamptz": literal, "bytea": literal,
    "bytea[]": literal, "bool": literal, "bool[]": literal,
}
