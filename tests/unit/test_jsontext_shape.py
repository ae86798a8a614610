"""check_shape: duplicate keys and depth, on the text and its decoded value."""

from __future__ import annotations

import json

import pytest

from lrs.xapi.errors import XapiError
from lrs.xapi.jsontext import MAX_DEPTH, check_shape
from lrs.xapi.statement import parse_statements


def _check(text: str | bytes, deep_key: str | None = None) -> None:
    check_shape(text, json.loads(text), deep_key=deep_key)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": {"c": "x\\": y", "d": [1, {"e": 2}]}}',
        '[{"a": "\\" :"}, {"a": "\\":\\":"}]',
        '{"a" :1, "b"\n:2, "c"\t: {"d"\r\n :3}}',
        '{"\\u0061": "\\u0022:", "b": "\\u0022 :"}',
        '{"a": "\\u0022\\u003a", "b": 1}',
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
@pytest.mark.parametrize("deep_key", [None, "extensions"])  # "extensions": none of them, so no depth walk
def test_texts_without_duplicates_pass(text: str, as_bytes: bool, deep_key: str | None) -> None:
    _check(text.encode() if as_bytes else text, deep_key)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"a": 1, "a": 2}', "$.a"),
        ('[{"b": 1}, {"c": {"d": 1, "d": 2}}]', "$[1].c.d"),
        ('{"a": "x\\":", "b": {"k": 1, "k" : 2}}', "$.b.k"),
        # The duplicate and a string with an escaped quote written as \u0022
        # would balance a count that trusted the text: the keys are counted instead.
        ('{"s": "\\u0022:", "b": {"k": 1, "k": 2}}', "$.b.k"),
        ('{"\\u006b": 1, "k": 2}', "$.k"),
        ('{"a" :1, "a"\n: 2}', "$.a"),
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
@pytest.mark.parametrize("deep_key", [None, "extensions"])
def test_duplicates_are_named(text: str, path: str, as_bytes: bool, deep_key: str | None) -> None:
    with pytest.raises(XapiError) as caught:
        _check(text.encode() if as_bytes else text, deep_key)
    assert caught.value.path == path
    assert "Duplicate key" in caught.value.message


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("batch", [False, True])
def test_depth_limit_counts_the_enclosing_array(batch: bool) -> None:
    # The statement object is one level, and a batch's array one more.
    inner = MAX_DEPTH - 1 - (1 if batch else 0)
    statement = '{"e": ' + _nested(inner) + "}"
    text = f"[{statement}]" if batch else statement
    _check(text)
    deeper = '{"e": ' + _nested(inner + 1) + "}"
    with pytest.raises(XapiError, match="nested too deeply"):
        _check(f"[{deeper}]" if batch else deeper)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    _check('[{"s": "' + "[{" * (2 * MAX_DEPTH) + '"}]')


def test_many_shallow_containers_pass() -> None:
    _check("[" + ",".join('{"a": [{"b": {}}]}' for _ in range(200)) + "]")


@pytest.mark.parametrize("where", ["result", "context", "object.definition"])
@pytest.mark.parametrize("batch", [False, True])
def test_deep_extension_values_of_a_statement_are_measured(where: str, batch: bool) -> None:
    # Extensions are the only values a Statement lets nest freely; the text
    # holding the word is what turns the depth check on.
    def text(levels: int) -> str:
        statement = {
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": "http://example.com/v"},
            "object": {"id": "http://example.com/o"},
        }
        holder = statement
        for part in where.split("."):
            holder = holder.setdefault(part, {})
        holder["extensions"] = {"http://example.com/x": json.loads(_nested(levels))}
        return json.dumps([statement] if batch else statement)

    depth_of_holder = len(where.split(".")) + 2 + (1 if batch else 0)  # statement, holder(s), extensions
    fits = MAX_DEPTH - depth_of_holder
    parse_statements(text(fits), "1.0.3")
    with pytest.raises(XapiError, match="nested too deeply"):
        parse_statements(text(fits + 1), "1.0.3")
