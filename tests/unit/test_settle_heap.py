"""settle_heap: services freeze their start-up objects and collect cycles less often."""

from __future__ import annotations

import gc

from lrs.commands.common import SERVICE_GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == SERVICE_GC_THRESHOLDS
        assert SERVICE_GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
