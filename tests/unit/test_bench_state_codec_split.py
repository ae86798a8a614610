"""bench/state_codec.py --split derives from each state's evidence-and-voidings
part the whole state it stands for (its own check, here on a few states of
each mix), so what it weighs is what a load of that part would have to do."""

from __future__ import annotations

import pytest

from bench import state_codec


@pytest.mark.parametrize("evidence_share", [0.33, 1.0], ids=["cmi5", "all-evidence"])
def test_split_derives_each_whole_state_from_its_part(evidence_share: float) -> None:
    folded = state_codec.states(3_000, 300, evidence_share, seed=1)
    assert any(s.certifications for s in folded)  # what a refold of the decoded part lost
    weighed = state_codec.split(folded, repeat=1)
    assert weighed["mean_bytes_evidence_part"] > 0 and weighed["decode_and_derive_cpu_us"] > 0
