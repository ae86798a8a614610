"""Property test: random breakages of valid statements are refused with a 400, nothing else."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrs.xapi import XapiError, parse_statements
from lrs.xapi.common import LANGTAG_PATTERN
from tests.unit.test_xapi_valid import CORPUS

BASES = sorted(CORPUS)


def _mutable_spots(node: Any, inside_extensions: bool = False) -> list[tuple[dict, str]]:
    """(object, key) pairs outside extensions, where a mutation must be refused."""
    spots: list[tuple[dict, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "extensions" or inside_extensions:
                continue
            spots.append((node, key))
            spots.extend(_mutable_spots(value))
    elif isinstance(node, list):
        for item in node:
            spots.extend(_mutable_spots(item))
    return spots


def _flip_case(key: str) -> str:
    flipped = key.swapcase()
    return flipped if flipped != key else key + "X"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), kind=st.sampled_from(["null", "flip-case", "unknown-key"]), data=st.data())
def test_mutations_are_refused_with_400(base: str, kind: str, data: st.DataObject) -> None:
    statement = copy.deepcopy(CORPUS[base])
    spots = _mutable_spots(statement)
    owner, key = data.draw(st.sampled_from(spots))
    language_map = owner is not statement and _is_language_map(owner)
    if kind == "null":
        owner[key] = None
    elif kind == "flip-case":
        if language_map:  # language tags are case-insensitive: flip a value instead
            owner[key] = None
        else:
            owner[_flip_case(key)] = owner.pop(key)
    else:
        owner["unknownProperty" if not language_map else "not a tag"] = "x"
    batch = [CORPUS["minimal"], statement]
    try:
        parse_statements(json.dumps(batch).encode(), "1.0.3")
    except XapiError as err:
        assert err.status == 400
        assert err.path is not None and err.path.startswith("$[1]")
    else:
        raise AssertionError(f"accepted a {kind} mutation of {key!r} in {base}")


_TAG = re.compile(LANGTAG_PATTERN)


def _is_language_map(obj: dict) -> bool:
    """Best guess (keys look like language tags, values are strings); a wrong guess
    only picks a different mutation, which must be refused just the same."""
    return bool(obj) and "id" not in obj and all(isinstance(v, str) and _TAG.match(k) for k, v in obj.items())
