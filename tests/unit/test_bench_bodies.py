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

from ingest import Learners, _Bodies, _statement  # noqa: E402

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


@pytest.mark.parametrize("batch", [1, 100])
def test_a_learner_population_names_each_learner_alike_in_every_statement(batch: int) -> None:
    learners = Learners(50, seed=3, draws=1000)
    bodies = _Bodies(batch, 2, learners)
    names: dict[str, set[str]] = {}
    for _ in range(20):
        body = bodies.next()
        assert len(parse_statements(body, "1.0.3")) == batch
        decoded = json.loads(body)
        for statement in decoded if batch > 1 else [decoded]:
            actor = statement["actor"]
            assert set(actor) == {"objectType", "name", "mbox"}
            names.setdefault(actor["mbox"], set()).add(actor["name"])
            assert statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/passed"  # the rest as the template
    assert all(len(n) == 1 for n in names.values())  # one name per learner
    assert len(names) <= 50
    if batch == 100:
        assert len(names) == 50  # 2,000 draws over 50 learners name them all
    statements, first = learners.counts()
    assert statements == 20 * batch and first == len(names)


def test_first_sights_name_new_learners_and_a_warm_pass_names_every_learner_once() -> None:
    learners = Learners(1000, first_sights=0.25, seed=5, draws=4000)
    drawn = [json.loads(learners.next()) for _ in range(4000)]
    new = [a for a in drawn if int(a["name"].split()[1]) >= 1000]
    assert 0.2 < len(new) / 4000 < 0.3
    assert len({a["mbox"] for a in new}) == len(new)  # each a learner never named before

    fresh = Learners(300, seed=7, draws=10)
    once = fresh.each_once()
    assert sorted(int(json.loads(once.next())["name"].split()[1]) for _ in range(300)) == list(range(300))
    before = fresh.counts()
    fresh.next()
    assert fresh.counts() == (before[0] + 1, before[1])  # every learner was named by the pass
