"""The validator answers every body of a fixed corpus as it was recorded to
(tests/unit/xapi_parse_corpus.py): the same Statements back, in the same
key order, or the same 400 with the same path and message.  Its code may be
made faster; what it accepts and refuses, and how it says so, stays."""

from __future__ import annotations

import json

import pytest

import lrs.xapi.verbs as verbs
from lrs.xapi import parse_statement, parse_statements
from tests.unit.xapi_parse_corpus import DIGEST, OUTCOMES, digest, outcomes


@pytest.fixture(scope="module")
def results() -> list[tuple[str, str]]:
    return list(outcomes(parse_statements, parse_statement))


def test_every_body_of_the_corpus_gets_its_recorded_outcome(results: list[tuple[str, str]]) -> None:
    record = json.loads(OUTCOMES.read_text())
    assert len(results) == record["cases"], "the corpus changed: record its outcomes again (xapi_parse_corpus.py)"
    digests = record["digests"]
    changed = [
        (case, result)
        for i, (case, result) in enumerate(results)
        if digest(result) != digests[i * DIGEST : (i + 1) * DIGEST]
    ]
    assert not changed, f"{len(changed)} outcomes differ from the recorded ones, e.g. {changed[:3]}"


def test_the_corpus_holds_acceptances_and_many_distinct_refusals(results: list[tuple[str, str]]) -> None:
    accepted = sum(result.startswith("ok|") for _, result in results)
    refusals = {result.split("|", 1)[1] for _, result in results if result.startswith("400|")}
    assert accepted == json.loads(OUTCOMES.read_text())["accepted"] > 5000
    assert len(refusals) > 1000  # distinct (path, message) pairs
    assert all(result.startswith(("ok|", "400|")) for _, result in results), "a body raised something other than a 400"


class _Everything:
    def __contains__(self, value: object) -> bool:
        return True


def test_a_dropped_rule_changes_some_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus is fine enough to notice one rule going missing: here the
    IRI check of a verb's id."""
    before = dict(outcomes(parse_statements, parse_statement, only="minimal"))
    monkeypatch.setattr(verbs, "KNOWN_IRIS", _Everything())
    after = dict(outcomes(parse_statements, parse_statement, only="minimal"))
    newly_accepted = [case for case, result in after.items() if result.startswith("ok|") and before[case] != result]
    assert newly_accepted and all(case.startswith("minimal/") for case in newly_accepted)
