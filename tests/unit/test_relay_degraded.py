"""/ready's rule for a relay that is behind for a reason (lrs.http.about)."""

from __future__ import annotations

from lrs.http.about import relay_degraded

WELL = {"running": True, "nats": "connected", "lag": 0, "last_error": None}


def test_a_relay_is_degraded_when_it_failed_stopped_or_cannot_reach_nats_with_events_waiting() -> None:
    assert not relay_degraded(WELL)
    assert not relay_degraded({**WELL, "lag": 40})  # busy, not stuck
    assert not relay_degraded({**WELL, "nats": "disconnected"})  # nothing waits
    assert relay_degraded({**WELL, "last_error": "MaxPayloadError()"})
    assert relay_degraded({**WELL, "running": False})
    assert relay_degraded({**WELL, "nats": "disconnected", "lag": 1})
