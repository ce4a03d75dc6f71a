"""Drills: each shipped scenario proves its mechanism; bad scenario files are refused with file:line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.errors import BadInput
from cqgov_tui.sim.drills import SCENARIO_DIR, load_scenario, parse_scenario, run_drill, scenario_names
from cqgov_tui.store import open_store

SIX = ["methane", "muck-truck", "flood", "highrise-fire", "cross-district", "overdue"]
FIELDS = {"scenario", "events", "closed", "auto_dispatched", "merged", "inhibited", "escalated", "subtasks",
          "max_close_minutes", "audit_ok", "mechanism"}


@pytest.fixture(scope="module")
def reports():
    return {}


def _report(reports, name):
    if name not in reports:
        reports[name] = run_drill(name)
    return reports[name]


def _check(report, kind, n=0):
    return [c for c in report["mechanism"]["checks"] if c["check"] == kind][n]


def test_six_scenarios_ship():
    assert set(SIX) <= set(scenario_names())


@pytest.mark.parametrize("name", SIX)
def test_every_drill_passes_with_the_required_fields(reports, name):
    r = _report(reports, name)
    assert FIELDS <= set(r) and r["scenario"] == name
    assert r["audit_ok"] is True and r["mechanism"]["ok"] is True and r["ok"] is True, r["mechanism"]


def test_methane_alarm_detected_dispatched_and_disposed_within_20_minutes(reports):
    r = _report(reports, "methane")
    assert r["events"] == 1  # two readings over threshold in one episode open one event
    el = _check(r, "elapsed")
    assert el["dispatched_after_min"] == 0 and el["minutes"] <= 20 and el["to"] == "disposed"
    plan = _check(r, "plan")
    assert plan["plan"] == "septic_methane_auto" and plan["auto_dispatched"] and plan["sla_profile"] == "gas"
    assert r["auto_dispatched"] == 1 and r["closed"] == 1


def test_muck_truck_plan_signs_dispatches_and_dedup_merges(reports):
    r = _report(reports, "muck-truck")
    plan = _check(r, "plan")
    assert plan["auto_signed"] and plan["auto_dispatched"] and plan["assignee"] == "cgj"
    assert {"jtj", "jwj"} <= set(plan["departments"])
    auto, manual = _check(r, "merged", 0), _check(r, "merged", 1)
    assert auto["auto"] is True and manual["auto"] is False
    flagged = _check(r, "flagged")
    assert flagged["plan_held"] is True  # the suspected duplicate was not dispatched by the plan
    assert r["merged"] == 2 and r["auto_dispatched"] == 1


def test_flood_warning_inhibits_grid_alarms(reports):
    r = _report(reports, "flood")
    inh = _check(r, "inhibited")
    assert inh["inhibited"] == inh["recorded"] == 6 and inh["by_category"] == "flood_warning"
    assert inh["alerts_sent"] == 0 and inh["escalated"] == 0 and inh["by_district"] == "500105"
    assert _check(r, "not_inhibited", 1)["districts"] == ["500108"]
    assert r["inhibited"] == 6 and r["subtasks"] == 9


def test_highrise_fire_runs_on_1_3_5_and_rolls_up(reports):
    r = _report(reports, "highrise-fire")
    sla = _check(r, "sla")
    assert sla["deadlines"] == [1, 3, 5] and all(s["met"] for s in sla["stages"][:3])
    subs = _check(r, "subtasks")
    assert subs["distinct"] == ["gaj", "wjw", "xfzd"] and subs["master_status"] == "closed" and subs["roll_up_steps"] >= 4
    assert r["subtasks"] == 3 and r["closed"] == 4


def test_cross_district_master_with_three_district_subtasks(reports):
    r = _report(reports, "cross-district")
    subs = _check(r, "subtasks")
    assert subs["distinct"] == ["500105", "500106", "500108"] and subs["master_status"] == "closed"
    refused = _check(r, "refused")["refusals"]
    assert len(refused) == 3 and all(x["unchanged"] for x in refused)
    assert any("in your jurisdiction" in x["reason"] for x in refused)  # the one answer for out of scope
    assert any("city tier may not escalate" in x["reason"] for x in refused)


def test_overdue_event_escalates_street_district_city(reports):
    r = _report(reports, "overdue")
    esc = _check(r, "escalation")
    assert esc["colour_before"] == "blue" and esc["colour_after"] == "orange"
    assert esc["origin_tier"] == "street" and esc["supervised_by"] == "city" and esc["escalation_level"] == 2
    assert [s["note"].split("; ")[1] for s in esc["steps"]] == ["district supervises", "city supervises"]
    assert r["escalated"] == 1


def test_a_failing_mechanism_is_reported_not_hidden():
    text = (SCENARIO_DIR / "methane.yaml").read_text(encoding="utf-8").replace("max_minutes: 20", "max_minutes: 10")
    r = run_drill(parse_scenario(text, "methane-strict.yaml"))
    assert r["mechanism"]["ok"] is False and r["ok"] is False and _check(r, "elapsed")["ok"] is False


def test_cli_drill_run_json_keeps_the_store_and_audit_verifies(tmp_path):
    db = str(tmp_path / "drill.duckdb")
    res = CliRunner().invoke(main, ["drill", "run", "overdue", "--headless", "--json", "--db", db])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["scenario"] == "overdue" and report["audit_ok"]
    with open_store(db) as st:
        assert st.count_events() == report["events"] and st.verify_audit().ok
    again = CliRunner().invoke(main, ["drill", "run", "overdue", "--json", "--db", db])
    assert again.exit_code == 2 and "already exists" in again.output and len(again.output.strip().splitlines()) == 1
    assert CliRunner().invoke(main, ["audit", "verify", "--db", db]).exit_code == 0


def test_cli_unknown_scenario_is_one_line():
    res = CliRunner().invoke(main, ["drill", "run", "tsunami", "--headless", "--json"])
    assert res.exit_code == 2
    assert res.output.strip().startswith("cqgov: unknown scenario 'tsunami' (known: ")
    assert len(res.output.strip().splitlines()) == 1


def test_cli_drill_list():
    res = CliRunner().invoke(main, ["drill", "list", "--json"])
    assert res.exit_code == 0 and set(SIX) <= {r["name"] for r in json.loads(res.output)["drills"]}


def test_shipped_scenarios_validate():
    for name in SIX:
        sc = load_scenario(name)
        assert sc.steps and sc.checks


GOOD_HEAD = 'name: t\nstore: {tier: district, code: "500108"}\n'


@pytest.mark.parametrize("text, line, reason", [
    ("name: t\n", 1, "needs"),
    ('name: t\nstore: {tier: county, code: "500108"}\nsteps: []\nchecks: []\n', 2, "unknown tier"),
    ('name: t\nstore: {tier: district, code: "500108001"}\nsteps: [{at: 0, sweep: true}]\nchecks: [{refused: {min: 0}}]\n', 2,
     "is a street"),
    (GOOD_HEAD + "steps:\n  - {at: 0, report: {category: nosuch, place: {code: '500108'}}}\nchecks: [{refused: {min: 0}}]\n", 4,
     "unknown category 'nosuch'"),
    (GOOD_HEAD + "steps:\n  - {at: 0, explode: {}}\nchecks: [{refused: {min: 0}}]\n", 4, "exactly one of"),
    (GOOD_HEAD + "steps:\n  - {at: 5, sweep: true}\n  - {at: 2, sweep: true}\nchecks: [{refused: {min: 0}}]\n", 5,
     "comes before"),
    (GOOD_HEAD + "steps:\n  - {at: 0, act: {event: ghost, action: verify}}\nchecks: [{refused: {min: 0}}]\n", 4,
     "'ghost' is not defined"),
    (GOOD_HEAD + "steps:\n  - {at: 0, report: {as: a, category: garbage, place: {code: '500108'}}}\n"
     "  - {at: 1, act: {event: a, action: fly}}\nchecks: [{refused: {min: 0}}]\n", 5, "unknown action 'fly'"),
    (GOOD_HEAD + "steps:\n  - {at: 0, report: {category: garbage, place: {code: '999'}}}\nchecks: [{refused: {min: 0}}]\n", 4,
     "unknown jurisdiction"),
    (GOOD_HEAD + "steps:\n  - {at: 0, sweep: true}\nchecks:\n  - {vibes: {}}\n", 6, "unknown check 'vibes'"),
    (GOOD_HEAD + "steps:\n  - {at: 0, sweep: true}\nchecks: []\n", 1, "checks must be a non-empty list"),
    (GOOD_HEAD + "steps:\n  - {at: 0, report: {category: garbage, colour: purple, place: {code: '500108'}}}\n"
     "checks: [{refused: {min: 0}}]\n", 4, "unknown colour"),
    (GOOD_HEAD + "steps:\n  - {at: -1, sweep: true}\nchecks: [{refused: {min: 0}}]\n", 4, "'at' must be"),
    (GOOD_HEAD + "steps: [\n", 4, "not valid YAML"),
    (GOOD_HEAD + "steps:\n  - {at: 0, sensor: {sensor: SN-NOPE, value: 3}}\nchecks: [{refused: {min: 0}}]\n", 4,
     "no such sensor"),
])
def test_bad_scenario_files_name_file_and_line(tmp_path, text, line, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as err:
        load_scenario(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}:"), msg
    assert reason in msg and "\n" not in msg
    res = CliRunner().invoke(main, ["drill", "run", str(path), "--json"])
    assert res.exit_code == 2 and res.output.strip() == f"cqgov: {msg}"
