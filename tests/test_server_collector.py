"""The tier server's collector settings: startup objects frozen, young collections far rarer."""

from __future__ import annotations

import gc

from cqgov_tui.server.collector import YOUNG_EVERY, tune_for_serving


def test_tuning_freezes_what_exists_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        tune_for_serving()
        assert gc.get_threshold() == (YOUNG_EVERY, *before[1:])
        assert gc.get_freeze_count() > 0
        # A cycle made after tuning is still collected (the collector is slowed, not switched off).
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
