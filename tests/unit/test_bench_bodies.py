"""The ingest bench's request bodies: built from templates, each statement
with a new id and a new learner name, valid, and the same statements
``_body`` writes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ingest import _Bodies, _statement  # noqa: E402

from lrs.xapi import parse_statements  # noqa: E402

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.mark.parametrize("batch", [1, 7, 100])
def test_bodies_are_valid_statements_with_new_ids_and_learners_as_body_writes_them(batch: int) -> None:
    bodies = _Bodies(batch, 3)
    seen: set[str] = set()
    number = 0
    for request in range(7):  # past the three templates: they come round again
        body = bodies.next()
        assert len(parse_statements(body, "1.0.3")) == batch
        decoded = json.loads(body)
        statements = decoded if batch > 1 else [decoded]
        assert isinstance(decoded, list) == (batch > 1)
        for statement in statements:
            assert _UUID4.fullmatch(statement["id"]) and statement["id"] not in seen
            seen.add(statement["id"])
            assert statement["actor"]["name"] == f"Learner {number}"
            if request < 3:  # the templates' first round: exactly what _statement writes
                written = _statement(number, statement["id"], statement["context"]["registration"])
                assert json.loads(written) == statement
            number += 1
    assert len(seen) == 7 * batch
    other_run = _Bodies(batch, 1).next()
    assert json.loads(other_run if batch > 1 else b"[" + other_run + b"]")[0]["id"] not in seen
