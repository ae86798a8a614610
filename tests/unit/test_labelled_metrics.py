"""Per-request metrics go through remembered labelled children: what /metrics exports is unchanged."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from lrs.http.metrics import labelled


def test_a_remembered_child_is_the_one_labels_gives_and_counts_in_the_export() -> None:
    registry = CollectorRegistry()
    counter = Counter("lrs_test_requests_total", "test", ("method", "status"), registry=registry)
    by = labelled(counter)
    assert by("POST", "200") is counter.labels("POST", "200")
    assert by("POST", "200") is by("POST", "200")
    by("POST", "200").inc()
    counter.labels("POST", "200").inc()
    by("GET", "404").inc(3)
    text = generate_latest(registry).decode()
    assert 'lrs_test_requests_total{method="POST",status="200"} 2.0' in text
    assert 'lrs_test_requests_total{method="GET",status="404"} 3.0' in text
