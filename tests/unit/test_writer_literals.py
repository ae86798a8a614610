"""The text[] literals the group-commit writer sends for filter keys."""

from __future__ import annotations

import pytest

from lrs.store.group_columns import array_literal


@pytest.mark.parametrize(
    ("values", "literal"),
    [
        ([], "{}"),
        ([""], '{""}'),
        (["A:mbox:mailto:a@example.com", "O:http://example.com/a"],
         '{"A:mbox:mailto:a@example.com","O:http://example.com/a"}'),
        (['o:http://x/"q"', "U:a\\b", "plain"], '{"o:http://x/\\"q\\"","U:a\\\\b","plain"}'),
        (["{,}", "NULL"], '{"{,}","NULL"}'),
        (['"'], '{"\\""}'),
        (["a", 'b"'], '{"a","b\\""}'),
        (['"a', "b", "c"], '{"\\"a","b","c"}'),
        (['a","b', "c"], '{"a\\",\\"b","c"}'),
        (["a\\", "b"], '{"a\\\\","b"}'),
    ],
)
def test_every_element_is_quoted_and_escaped(values: list[str], literal: str) -> None:
    assert array_literal(values) == literal
