"""The simulator follows the seeds' volumes and mix (issue 13 item 7): ~400 events per district and day across
the 40 categories, fires rare, sensors reporting at their kind's real rate."""

from __future__ import annotations

import collections

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.clock import SimClock
from cqgov_tui.geo.registry import get_registry
from cqgov_tui.sim.simulator import (CITIZEN, EVENTS_PER_DISTRICT_DAY, GRID, READING_EVERY_BY_KIND, SOURCE_MIX,
                                     Simulator, Target, seeds_rate)


def test_the_daily_volume_and_categories_are_the_seeds():
    catalogue = load_catalogue()
    assert 390 <= EVENTS_PER_DISTRICT_DAY <= 410
    assert round(seeds_rate(2, speed=1.0) * 86400) == round(2 * EVENTS_PER_DISTRICT_DAY)
    assert abs(sum(share for _, share in SOURCE_MIX) - 1.0) < 1e-9
    drawn = set(CITIZEN) | set(GRID) | {"septic_methane", "flood_warning"}  # the last two: sensors and 预警
    assert drawn == set(catalogue.categories) and len(drawn) == 40
    fires = CITIZEN["highrise_fire"] + CITIZEN["ebike_fire"] + GRID["forest_fire"]
    assert fires / EVENTS_PER_DISTRICT_DAY < 0.002  # rare: about one fire in a district every two days


def test_drawn_reports_follow_the_mix_and_sensors_read_at_their_kinds_rate():
    catalogue, registry = load_catalogue(), get_registry()
    targets = [Target("", "", "500108001"), Target("", "", "500112001")]
    sim = Simulator(targets, catalogue, registry, SimClock(1_795_000_000.0), seeds_rate(2), seed=3,
                    reading_every_by_kind=READING_EVERY_BY_KIND)
    n = 6000
    commands = [sim.draw(i % 2) for i in range(n)]
    reports = [c for c in commands if c is not None]
    by_source = collections.Counter(c["body"]["source"] for c in reports)
    share = dict(SOURCE_MIX)
    for source in ("citizen", "grid"):
        assert abs(by_source[source] / n - share[source]) < 0.03, by_source
    by_category = collections.Counter(c["body"]["category"] for c in reports)
    assert by_category.most_common(1)[0][0] in ("garbage", "street_vending", "noise")
    assert by_category["highrise_fire"] <= 3
    every = {t.sensor.kind: t.every for t in sim.tracks}
    assert every and all(every[k] == READING_EVERY_BY_KIND[k] for k in every)
