"""The growth bench's pure parts: its README tables, its request feed and its roster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from growth import Feed, parse_args, roster, tables  # noqa: E402


def _step(events: int, cpu: float, known_ms: float) -> dict:
    query = {"p50_ms": 1.5, "p99_ms": events / 10_000, "max_ms": 9.0, "mean_rows": 100.0}
    return {
        "events": events,
        "ingest": {"cpu_us_per_statement": cpu, "statements_per_s": 9000,
                   "cpu_us_per_statement_by_process": {"lrs serve": cpu - 50, "postgresql": 50.0},
                   "loadavg_before": [3.1, 2.0, 1.0], "loadavg_after": [3.4, 2.0, 1.0]},
        "bytes": {"per_statement": {"whole database": 2500.0 + events / 1000}},
        "queries": {"filters": {"agent": {"sequential": query, "clients_16": {**query, "p99_ms": 40.0}}}},
        "replay": {"seconds": events / 50_000, "events_per_s": 50_000.0},
        "as_of": {"as_of_known": {"p50_ms": known_ms}},
    }


def test_every_measure_is_a_row_and_every_size_a_column() -> None:
    text = tables([{"sizes": [_step(100_000, 140.0, 30.0), _step(1_000_000, 150.0, 300.0)]}])
    lines = text.splitlines()
    assert lines[0] == "| measure | 100,000 events | 1,000,000 events |"
    assert lines[1] == "|---|---|---|"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[2:]}
    assert rows["ingest CPU µs/statement, all processes"] == ["140", "150 |"]
    assert rows["&nbsp;&nbsp;of which postgresql"] == ["50", "50 |"]
    assert rows["bytes/statement: whole database"] == ["2,600", "3,500 |"]
    assert rows["query `agent`, sequential p50 / p99 ms"] == ["1.5 / 10.0", "1.5 / 100.0 |"]
    assert rows["query `agent`, concurrent p50 / p99 ms"] == ["1.5 / 40.0", "1.5 / 40.0 |"]
    assert rows["replay seconds (events/s)"] == ["2.0 (50,000/s)", "20.0 (50,000/s) |"]
    assert rows["summary `as_of_known` p50 ms"] == ["30.0", "300.0 |"]
    assert rows["load average (1 min) in the ingest window"] == ["3.1–3.4", "3.1–3.4 |"]
    assert all(line.count("|") == 4 for line in lines)


def test_runs_to_compare_share_a_cell_in_the_order_given() -> None:
    first = {"sizes": [_step(100_000, 140.0, 30.0), _step(1_000_000, 150.0, 300.0)]}
    second = {"sizes": [_step(100_000, 120.0, 20.0), _step(1_000_000, 130.0, 200.0)]}
    lines = tables([first, second]).splitlines()
    assert "| ingest CPU µs/statement, all processes | 140 · 120 | 150 · 130 |" in lines
    assert "| summary `as_of_known` p50 ms | 30.0 · 20.0 | 300.0 · 200.0 |" in lines


def test_the_feed_sends_every_statement_once_and_the_evidence_share_of_requests() -> None:
    feed = Feed(batch=10, evidence_every=4, learners=50)
    sent = feed.bodies(95) + feed.bodies(40)
    assert sum(count for count, _ in sent) == 135
    statements = [s for _, body in sent for s in json.loads(body)]
    assert len(statements) == 135
    assert feed.evidence == sum(1 for s in statements if "cs" in s["actor"].get("mbox", ""))
    assert feed.evidence == 30  # requests 4, 8 and 12 of 14
    # the query bench's statements are numbered on without a gap or a repeat
    assert feed.next_n == 105
    ids = [s["id"] for s in statements if "cs" not in s["actor"].get("mbox", "")]
    assert len(set(ids)) == len(ids) == 105


def test_the_roster_places_each_learner_in_the_agency_its_address_names() -> None:
    made = roster(81)
    assert len(made.units) == 41 and len(made.memberships) == 81
    by_learner = {m.learner: m.unit_id for m in made.memberships}
    assert by_learner["mbox:mailto:cs41@agency1.example.gov.vn"] == "growth-ministry-01"
    assert by_learner["mbox:mailto:cs80@agency0.example.gov.vn"] == "growth-ministry-00"


@pytest.mark.parametrize("argv", [["--data", "d", "--sizes", "300000,100000"], ["--data", "d", "--sizes", "40000"],
                                  ["--sizes", "100000"]])
def test_sizes_must_ascend_above_the_window_and_a_store_directory_is_needed(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
