"""check_shape: duplicate keys and depth, on the text and its decoded value."""

from __future__ import annotations

import json

import pytest

from lrs.xapi.errors import XapiError
from lrs.xapi.jsontext import MAX_DEPTH, check_shape


def _check(text: str | bytes) -> None:
    check_shape(text, json.loads(text))


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
def test_texts_without_duplicates_pass(text: str, as_bytes: bool) -> None:
    _check(text.encode() if as_bytes else text)


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
def test_duplicates_are_named(text: str, path: str, as_bytes: bool) -> None:
    with pytest.raises(XapiError) as caught:
        _check(text.encode() if as_bytes else text)
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
