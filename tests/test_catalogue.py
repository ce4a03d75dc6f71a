"""The catalogue: exact seed counts, referential integrity, SLA profiles, plans, bad files, risk points, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.catalogue import Catalogue
from cqgov_tui.catalogue.loader import (
    clear_cache,
    default_root,
    load_catalogue,
    load_plans,
    parse_plans_text,
)
from cqgov_tui.catalogue.metrics import parse_metric
from cqgov_tui.catalogue.risk import LazyMapping, RiskGenerator, parse_risk_config
from cqgov_tui.domain.colour import Colour
from cqgov_tui.domain.entities import Status
from cqgov_tui.errors import BadInput

ROOT = default_root()


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


# ---------------------------------------------------------------- counts and integrity


def test_exact_seed_counts(cat):
    assert len(cat.categories) == 40
    assert len(cat.sectors) == 8
    assert len(cat.runways) == 70
    assert sum(1 for s in cat.sub_runways.values() if not s.places) == 255  # + 特色子跑道
    assert 600 <= len(cat.indicators) <= 1000
    assert 20 <= len(cat.departments) <= 30
    assert len(cat.plans) >= 8


def test_load_is_cached_and_risk_points_lazy():
    clear_cache()
    first = load_catalogue()
    assert isinstance(first.risk_points, LazyMapping) and not first.risk_points.loaded
    assert load_catalogue() is first
    assert load_catalogue(ROOT) is first


def test_categories_reference_known_things(cat):
    for c in cat.categories.values():
        assert c.department_code in cat.departments
        assert set(c.co_departments) <= set(cat.departments)
        assert c.department_code not in c.co_departments
        assert c.sla_profile in cat.sla_profiles
        assert c.sector_code in cat.sectors
        assert c.scope in ("grid", "district")
        assert isinstance(c.default_colour, Colour)
        for covered in c.covers:
            assert c.scope == "district" and cat.categories[covered].scope == "grid"
    # every sector has at least one kind of event
    assert {c.sector_code for c in cat.categories.values()} == set(cat.sectors)


def test_runway_tree_integrity(cat):
    for r in cat.runways.values():
        assert r.sector_code in cat.sectors
    for s in cat.sub_runways.values():
        assert s.runway_code in cat.runways
    for i in cat.indicators.values():
        assert i.sub_runway_code in cat.sub_runways
    # no empty branches: every sector has runways, every runway sub-runways, every sub-runway indicators
    assert all(cat.runways_of(s) for s in cat.sectors)
    assert all(cat.sub_runways_of(r) for r in cat.runways)
    assert all(cat.indicators_of(s) for s in cat.sub_runways)


def test_indicator_metrics_resolve_and_thresholds_ascend(cat):
    kinds = set()
    for i in cat.indicators.values():
        m = parse_metric(i.metric, cat.categories, cat.sensor_kinds)
        kinds.add(m.kind)
        assert len(i.thresholds) == 4
        assert all(a < b for a, b in zip(i.thresholds, i.thresholds[1:])), i
        assert i.unit
    assert {"open", "overdue_ratio", "mean_response_min", "sensor_max", "sensor_alarms", "risk_high",
            "closed_24h", "satisfaction", "handle_days", "figure", "fresh", "receipts_ack_ratio"} <= kinds
    assert "const" not in kinds


def test_no_constant_metrics_and_every_indicator_is_vital_or_kpi(cat):
    """Issue 13: every indicator is computed from data; none is typed into the catalogue."""
    assert not [i.code for i in cat.indicators.values() if i.metric.startswith("const")]
    assert {i.kind for i in cat.indicators.values()} == {"vital", "kpi"}
    # a plain sub-runway's figures are fed through 一表通 and have no value until fed
    plain = cat.indicators["cs01.04.rate"]  # 消防通道畅通达标率
    assert plain.metric == "figure_mean:cs01.04.rate" and plain.kind == "kpi"


def test_feature_sub_runways_belong_to_their_districts(cat):
    feature = [s for s in cat.sub_runways.values() if s.places]
    assert {p for s in feature for p in s.places} >= {"500107", "500118"}
    assert sum(1 for s in cat.sub_runways.values() if not s.places) == 255
    for s in feature:
        assert all(i.places == s.places for i in cat.indicators_of(s.code))


def test_indicator_colour_rule(cat):
    ind = cat.indicators["cs01.01.overdue"]  # 超期率, higher is worse, 5/10/20/30
    assert [ind.colour(v) for v in (0, 5, 12, 25, 30)] == [Colour.GREEN, Colour.BLUE, Colour.YELLOW, Colour.ORANGE,
                                                             Colour.RED]
    rate = next(i for i in cat.indicators.values() if i.code.endswith(".rate"))  # 达标率, lower is worse
    assert not rate.higher_is_worse
    assert rate.colour(100) is Colour.GREEN and rate.colour(50) is Colour.RED


def test_metric_language_rejects_bad_references(cat):
    for text in ("open:nope", "sensor_max:nope", "frobnicate:*", "const:abc", "const:3.5", "open:", "open",
                 "open:noise,noise", "open:noise,", "open:*@7d", "handle_days:*@0d", "handle_days:*@7w",
                 "reported_by:martians", "receipts_ack_ratio:noise", "figure:a b"):
        with pytest.raises(ValueError):
            parse_metric(text, cat.categories, cat.sensor_kinds)
    with pytest.raises(ValueError, match="not measurements"):
        parse_metric("const:90.5")
    assert parse_metric("open:*").categories is None
    assert parse_metric("overdue_ratio:noise,garbage").categories == ("noise", "garbage")
    m = parse_metric("handle_days:*@30d")
    assert (m.window_s, str(m), m.default_class) == (30 * 86400.0, "handle_days:*@30d", "kpi")
    assert parse_metric("open:*").default_class == "vital"
    assert str(parse_metric("figure:cs01.04.warn")) == "figure:cs01.04.warn"


def test_sensor_kinds(cat):
    for k in cat.sensor_kinds.values():
        assert k.category_code in cat.categories
        assert k.clear_below < k.threshold
    assert cat.sensor_kind("methane").category_code == "septic_methane"


# ---------------------------------------------------------------- SLA


def _minutes(profile):
    return {s.milestone: s.minutes for s in profile.stages}


def test_sla_profiles_follow_the_seeds(cat):
    grid = _minutes(cat.sla("grid"))
    assert (grid[Status.VERIFIED], grid[Status.ON_SCENE], grid[Status.FEEDBACK]) == (1, 5, 10)
    assert Status.CLOSED in grid
    fire = _minutes(cat.sla("fire"))
    assert (fire[Status.DISPATCHED], fire[Status.ON_SCENE], fire[Status.DISPOSED]) == (1, 3, 5)
    gas = _minutes(cat.sla("gas"))
    assert gas[Status.DISPOSED] <= 20 and gas[Status.DISPATCHED] < gas[Status.ON_SCENE] < gas[Status.DISPOSED]
    std = _minutes(cat.sla("standard"))
    assert (std[Status.VERIFIED], std[Status.DISPATCHED], std[Status.ON_SCENE], std[Status.DISPOSED],
            std[Status.FEEDBACK], std[Status.CLOSED]) == (30, 60, 240, 1440, 2880, 4320)
    assert {"grid", "fire", "gas", "urgent", "standard", "traffic"} <= set(cat.sla_profiles)


def test_sla_stages_in_loop_order_with_increasing_minutes(cat):
    loop = [s for s in Status][:10]
    for p in cat.sla_profiles.values():
        pos = [loop.index(s.milestone) for s in p.stages]
        mins = [s.minutes for s in p.stages]
        assert pos == sorted(set(pos)) and mins == sorted(set(mins)), p.code


# ---------------------------------------------------------------- required content


def test_required_categories(cat):
    c = cat.categories
    assert c["septic_methane"].sla_profile == "gas" and "甲烷" in c["septic_methane"].name
    assert c["muck_spill"].department_code == "cgj" and "jtj" in c["muck_spill"].co_departments
    assert c["highrise_fire"].sla_profile == "fire"
    assert c["waterlogging"].scope == "grid"
    flood = c["flood_warning"]
    assert flood.scope == "district" and "waterlogging" in flood.covers
    for code in ("road_collapse", "gas_leak", "landslide", "illegal_construction", "noise", "garbage", "forest_fire"):
        assert code in c
    assert cat.departments["cgj"].short == "城管" and cat.departments["jtj"].short == "交通"


def test_required_plans(cat):
    plans = {p.code: p for p in cat.plans}
    muck = plans["muck_spill_auto"]
    assert muck.auto_sign and muck.dispatch and {"jtj", "jwj"} <= set(muck.co_departments)
    assert cat.categories[muck.categories[0]].department_code == "cgj"
    methane = plans["septic_methane_auto"]
    assert methane.near_risk_km and methane.sla_profile == "gas" and {"rqgs", "yjj"} <= set(methane.co_departments)
    fire = plans["highrise_fire"]
    assert fire.sla_profile == "fire" and "duty_officer" in fire.notify_roles
    assert {"xfzd", "gaj", "wjw"} <= set(fire.open_multi)
    flood = plans["flood_warning_district"]
    assert "streets" in flood.open_multi and flood.notify_roles
    noise = plans["night_noise"]
    assert noise.hours == (22, 6)
    for p in cat.plans:
        assert set(p.categories) <= set(cat.categories)
        assert p.source.split(":")[0].endswith(".yaml") and int(p.source.rsplit(":", 1)[1]) >= 1


# ---------------------------------------------------------------- bad plan files

GOOD = """\
- code: ok_plan
  name: 测试预案
  categories: [muck_spill]
  colours: [red, 橙]
  places: ["500107"]
  hours: [22, 6]
  auto_sign: true
  dispatch: true
  co_departments: [jtj]
  sla_profile: traffic
  notify_roles: [dispatcher]
  open_multi: [streets, cgj, "500107001"]
"""


def _plan(**overrides) -> str:
    lines = ["- code: p1", "  name: 预案", "  categories: [noise]"]
    lines += [f"  {k}: {v}" for k, v in overrides.items()]
    return "\n".join(lines) + "\n"


BAD_PLANS = [
    ("- code: a\n  name: b\n  categories: [noise\n  dispatch: true\n", 4, "YAML syntax error"),
    ("- code: a\n  name: b\n   categories: [noise]\n", 3, "YAML syntax error"),
    (_plan(colour="red"), 4, "unknown key 'colour'"),
    ("- code: p1\n  name: 预案\n  categories:\n    - noise\n    - no_such_thing\n", 5, "unknown category 'no_such_thing'"),
    (_plan(hours="[25, 3]"), 4, "from must be 0–23"),
    (_plan(hours="[3, 30]"), 4, "to must be 0–24"),
    (_plan(hours="[5, 5]"), 4, "empty or the whole day"),
    (_plan(hours="[5]"), 4, "expected [from, to)"),
    (_plan(hours="[a, 6]"), 4, "whole number"),
    (_plan(hours="[5.5, 6]"), 4, "whole number"),
    (_plan(hours="22-6"), 4, "expected a list"),
    (_plan(co_departments="[jtj, nobody]", dispatch="true"), 4, "unknown department 'nobody'"),
    (_plan(sla_profile="glacial"), 4, "unknown SLA profile 'glacial'"),
    (_plan(notify_roles="[mayor]"), 4, "unknown role 'mayor'"),
    (_plan(colours="[purple]"), 4, "unknown colour"),
    (_plan(auto_sign='"sure"'), 4, "expected true or false"),
    (_plan(near_risk_km="-1"), 4, "must be positive"),
    (_plan(near_risk_km=".nan"), 4, "finite"),
    (_plan(places="[beijing]"), 4, "not a jurisdiction code prefix"),
    (_plan(open_multi="[nowhere]"), 4, "open_multi target 'nowhere'"),
    (_plan(co_departments="[jtj]", dispatch="false"), 4, "co_departments need dispatch"),
    ("- code: p1\n  name: 预案\n  categories: []\n", 3, "must not be empty"),
    ("- code: p1\n  name: 预案\n  categories: noise\n", 3, "expected a list"),
    ("- code: p1\n  name: 预案\n", 1, "missing key 'categories'"),
    ("- code: Bad Code\n  name: 预案\n  categories: [noise]\n", 1, "is not a code"),
    ("- code: p1\n  name: 预案\n  name: again\n  categories: [noise]\n", 3, "duplicate key 'name'"),
    (_plan() + _plan(), 4, "duplicate plan code 'p1'"),
    ("", 1, "empty file"),
    ("[]\n", 1, "no plans"),
    ("just text\n", 1, "expected a mapping"),
    ("- code: p1\n  name: 预案\n  categories: [!!python/name:os.system noise]\n", 3, "expected text"),
]


@pytest.mark.parametrize("text,line,reason", BAD_PLANS)
def test_bad_plan_file_rejected_with_file_and_line(tmp_path, cat, text, line, reason):
    path = tmp_path / "plans.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as info:
        load_plans(path, cat)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message, message
    assert "\n" not in message


def test_good_plan_file_loads(tmp_path, cat):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    (plan,) = load_plans(path, cat)
    assert plan.colours == ("red", "orange")
    assert plan.hours == (22, 6) and plan.places == ("500107",)
    assert plan.open_multi == ("streets", "cgj", "500107001")
    assert plan.source == f"{path}:1"
    single = tmp_path / "single.yaml"
    single.write_text("code: one\nname: 单个\ncategories: [garbage]\n", encoding="utf-8")
    assert load_plans(single, cat)[0].code == "one"


def test_plan_directory_duplicate_codes_across_files(tmp_path, cat):
    (tmp_path / "a.yaml").write_text(_plan(), encoding="utf-8")
    (tmp_path / "b.yaml").write_text("# second\n" + _plan(), encoding="utf-8")
    with pytest.raises(BadInput) as info:
        load_plans(tmp_path, cat)
    assert str(info.value).startswith(f"{tmp_path / 'b.yaml'}:2: duplicate plan code 'p1'")


def test_unreadable_plan_files(tmp_path, cat):
    with pytest.raises(BadInput, match="no such file"):
        load_plans(tmp_path / "missing.yaml", cat)
    raw = tmp_path / "latin1.yaml"
    raw.write_bytes(b"- code: p1\n  name: caf\xe9\n")
    with pytest.raises(BadInput, match=r"latin1\.yaml:2: not UTF-8"):
        load_plans(raw, cat)
    ctl = tmp_path / "ctl.yaml"
    ctl.write_text("- code: p1\n  name: a\x07b\n", encoding="utf-8")
    with pytest.raises(BadInput, match="ctl.yaml:2: YAML syntax error"):
        load_plans(ctl, cat)


def test_shipped_plans_validate_standalone(cat):
    plans = load_plans(ROOT / "plans", cat)
    assert [p.code for p in plans] == [p.code for p in cat.plans]


# ---------------------------------------------------------------- fuzzing

_keys = st.sampled_from(["code", "name", "categories", "colours", "places", "near_risk_km", "hours", "auto_sign",
                         "dispatch", "co_departments", "sla_profile", "notify_roles", "open_multi", "bogus"])
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-30, 30), st.floats(allow_nan=True),
                  st.sampled_from(["noise", "muck_spill", "red", "橙", "cgj", "gas", "streets", "500107", "", "*"]),
                  st.text(max_size=8))
_values = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=8)
_plan_dicts = st.dictionaries(_keys, _values, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_only_raises_bad_input(cat, text):
    try:
        plans = parse_plans_text(text, "fuzz.yaml", cat)
    except BadInput as exc:
        assert str(exc).startswith("fuzz.yaml:") and "\n" not in str(exc)
    else:
        assert all(p.categories for p in plans)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_plan_dicts, min_size=1, max_size=3))
def test_fuzz_structured_plans_only_raise_bad_input(cat, plans):
    text = yaml.safe_dump(plans, allow_unicode=True)
    try:
        parsed = parse_plans_text(text, "fuzz.yaml", cat)
    except BadInput as exc:
        assert str(exc).startswith("fuzz.yaml:")
    else:
        for p in parsed:
            assert set(p.categories) <= set(cat.categories)
            assert p.hours is None or (0 <= p.hours[0] <= 23 and 0 <= p.hours[1] <= 24)


# ---------------------------------------------------------------- bad catalogue files


def _copy_root(tmp_path) -> Path:
    root = tmp_path / "catalogue"
    shutil.copytree(ROOT, root)
    return root


def _edit(path: Path, old: str, new: str) -> int:
    text = path.read_text(encoding="utf-8")
    assert old in text
    before = text[: text.index(old)]
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return before.count("\n") + 1


@pytest.mark.parametrize("file,old,new,reason", [
    ("sla_profiles.yaml", "milestone: on_scene, minutes: 5}", "milestone: on_scene, minutes: 0.5}",
     "minutes must strictly increase"),
    ("sla_profiles.yaml", "milestone: on_scene, minutes: 5}", "milestone: reported, minutes: 5}",
     "not a status of the loop"),
    ("sla_profiles.yaml", "{label: report back, label_zh: 上报, milestone: feedback, minutes: 10}",
     "{label: report back, label_zh: 上报, milestone: verified, minutes: 10}", "must follow the loop order"),
    ("categories.yaml", "department: cgj, co: [slj, jxj]", "department: nobody, co: [slj, jxj]",
     "unknown department 'nobody'"),
    ("categories.yaml", "colour: yellow, sla: grid, sector: cs}", "colour: mauve, sla: grid, sector: cs}",
     "unknown colour"),
    ("categories.yaml", "sla: grid, sector: cs}", "sla: grid, sector: zz}", "unknown sector 'zz'"),
    ("categories.yaml", "manhole_cover:", "waterlogging:", "duplicate key 'waterlogging'"),
    ("departments.yaml", "{code: jtj,", "{code: cgj,", "duplicate department code 'cgj'"),
    ("runways.yaml", "metric: \"risk_red:highrise_fire\"", "metric: \"open:unicorns\"", "unknown category 'unicorns'"),
    ("runways.yaml", "metric: \"risk_red:highrise_fire\"", "metric: \"const:12\"", "constants are not measurements"),
    ("runways.yaml", "places: [\"500118\"]", "places: [\"beijing\"]", "not a jurisdiction code"),
    ("runways.yaml", "bands: [5, 10, 20, 40]}", "bands: [5, 30, 20, 40]}", "strictly ascend"),
    ("runways.yaml", "sensors: [smoke]", "sensors: [radon]", "unknown sensor kind 'radon'"),
    ("runways.yaml", "cats: [highrise_fire]}", "cats: [highrise_fire], colour: red}", "unknown key 'colour'"),
    ("sensor_kinds.yaml", "threshold: 25, clear_below: 10", "threshold: 25, clear_below: 30",
     "must be under threshold"),
    ("risk_points.yaml", "{category: highrise_fire, count: 60, sensor: smoke}",
     "{category: highrise_fire, count: 60, sensor: methane}", "does not watch 'highrise_fire'"),
    ("risk_points.yaml", "{category: septic_methane, count: 2083, sensor: methane}",
     "{category: septic_methane, count: 2083, sensor: methane, extra: 1}", "unknown key 'extra'"),
    ("plans/noise.yaml", "hours: [22, 6]", "hours: [22, 6, 7]", "expected [from, to)"),
])
def test_bad_catalogue_file_rejected_with_file_and_line(tmp_path, file, old, new, reason):
    root = _copy_root(tmp_path)
    line = _edit(root / file, old, new)
    with pytest.raises(BadInput) as info:
        load_catalogue(root)
    message = str(info.value)
    assert f"{file}:{line}: " in message, message
    assert reason in message, message


def test_catalogue_count_drift_is_rejected(tmp_path):
    root = _copy_root(tmp_path)
    _edit(root / "runways.yaml", "      - 排水管网清疏\n", "")
    with pytest.raises(BadInput, match="expected 255 sub-runways, found 254"):
        load_catalogue(root)


# ---------------------------------------------------------------- risk points


@pytest.fixture(scope="module")
def registry():
    from cqgov_tui.geo.registry import get_registry

    return get_registry()


def _fresh_generator(cat, seed_override: int | None = None) -> RiskGenerator:
    from cqgov_tui.catalogue.loader import _Doc

    config = parse_risk_config(_Doc(ROOT / "risk_points.yaml"), cat.categories, cat.sensor_kinds)
    if seed_override is not None:
        from dataclasses import replace

        config = replace(config, seed=seed_override)
    return RiskGenerator(config, cat.categories, cat.sensor_kinds)


def test_risk_points_are_deterministic(cat):
    a_points, a_sensors = _fresh_generator(cat).generate()
    b_points, b_sensors = _fresh_generator(cat).generate()
    assert list(a_points) == list(b_points) and a_points == b_points
    assert a_sensors == b_sensors
    assert dict(cat.risk_points) == a_points
    c_points, _ = _fresh_generator(cat, seed_override=7).generate()
    assert [p.lon for p in c_points.values()] != [p.lon for p in a_points.values()]


def test_risk_point_counts_from_the_seeds(cat):
    points = cat.risk_points
    jiangbei = [s for s in cat.sensors.values() if s.kind == "methane" and s.risk_point_code.startswith("RP-500105-")]
    assert len(jiangbei) == 2083
    jlp = [p for p in points.values() if p.code.startswith("RP-500107-")]
    assert len(jlp) == 4508 and len({p.category_code for p in jlp}) == 40
    for s in cat.sensors.values():
        rp = points[s.risk_point_code]
        kind = cat.sensor_kinds[s.kind]
        assert kind.serves(rp.category_code)
        assert (s.threshold, s.clear_below, s.unit) == (kind.threshold, kind.clear_below, kind.unit)
    # the register's grades: orange and red take data (engine.risk_grades), never the register alone
    assert {p.colour for p in points.values()} == {Colour.GREEN, Colour.BLUE, Colour.YELLOW}
    assert all(p.owner for p in points.values())  # 责任人


def test_risk_points_sit_in_their_grid(cat, registry):
    points = list(cat.risk_points.values())
    found = registry.locate_many([p.lon for p in points], [p.lat for p in points])
    assert found.grid_codes() == [p.grid_code for p in points]
    for p in points[::500]:  # the one-point lookup agrees too
        loc = registry.locate(p.lon, p.lat)
        assert loc.grid.code == p.grid_code
        assert p.code[3:9] == loc.district.code
        assert loc.street.name in p.name


# ---------------------------------------------------------------- CLI


def _cli(*args):
    from cqgov_tui.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_stats_json_shape():
    result = _cli("fixtures", "stats", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("districts", "streets", "grids", "categories", "sectors", "runways", "sub_runways", "indicators",
                "departments", "sla_profiles", "plans", "risk_points", "sensors"):
        assert isinstance(data[key], int), key
    assert (data["categories"], data["sectors"], data["runways"], data["sub_runways"]) == (40, 8, 70, 255)
    assert data["districts"] == 41 and data["streets"] == 1031 and 60_000 <= data["grids"] <= 68_000


def test_cli_lists_and_check_plans(tmp_path):
    result = _cli("fixtures", "categories", "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)["categories"]) == 40
    result = _cli("fixtures", "plans", "--json")
    assert result.exit_code == 0 and {"muck_spill_auto", "highrise_fire"} <= {p["code"] for p in json.loads(result.output)["plans"]}
    assert "渣土车" in _cli("fixtures", "plans").output
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    result = _cli("fixtures", "check-plans", str(good))
    assert result.exit_code == 0 and "ok: 1 plan valid" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(_plan(hours="[25, 3]"), encoding="utf-8")
    result = _cli("fixtures", "check-plans", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:4: hours of plan 'p1': from must be 0–23" in result.output
