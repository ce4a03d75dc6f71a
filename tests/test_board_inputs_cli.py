"""The board's inputs from the CLI (issue 13 item 7): `cqgov risk inspect` on a store and through a tier server's
`risk.inspect`, and `cqgov kpi feed` through a server's `figure.feed`; refusals are one line with their exit code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.errors import EXIT_BAD_INPUT, EXIT_DENIED
from cqgov_tui.store import open_store

from synchost import TierServing

SECRET = b"board-inputs-test-secret-0123456789"


def _one_line(res) -> str:
    text = res.output.strip()
    assert text.count("\n") == 0 and "Traceback" not in res.output, res.output
    return text


@pytest.fixture(scope="module")
def points():
    """A green septic tank of 江北区 and a risk point of 南岸区."""
    cat = load_catalogue()
    mine = next(p for p in cat.risk_points.values() if p.grid_code.startswith("500105") and p.colour.value == "green")
    other = next(p for p in cat.risk_points.values() if p.grid_code.startswith("500108"))
    return mine.code, other.code


def _audit(store, code: str) -> list[str]:
    return [a.action for a in store.audit_entries(code)]


def test_risk_inspect_on_a_store_moves_the_grade_and_is_audited(tmp_path, points):
    mine, other = points
    runner = CliRunner()
    db = str(tmp_path / "d.duckdb")
    assert runner.invoke(main, ["init", "--db", db, "--tier", "district", "--code", "500105"]).exit_code == 0
    res = runner.invoke(main, ["risk", "inspect", mine, "--result", "hazard", "--note", "井盖破损", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    found = json.loads(res.output)
    assert found["colour"] == "yellow" and any("hazard" in r for r in found["reasons"])
    res = runner.invoke(main, ["risk", "inspect", mine, "--result", "ok", "--db", db])
    assert res.exit_code == 0 and _one_line(res) == f"{mine} green"
    with open_store(db, read_only=True) as store:
        trail = _audit(store, mine)
        assert trail.count("inspect") == 2 and trail.count("risk_grade") == 2  # raised, then lowered
    for args, code, words in (
        (["risk", "inspect", "RP-NOPE", "--result", "ok"], EXIT_BAD_INPUT, "unknown risk point"),
        (["risk", "inspect", other, "--result", "ok"], EXIT_DENIED, "outside 500105"),
        (["risk", "inspect", mine, "--result", "maybe"], EXIT_BAD_INPUT, "--result"),
    ):
        res = runner.invoke(main, [*args, "--db", db])
        assert res.exit_code == code and words in _one_line(res), (args, res.output)


def test_risk_inspect_and_figures_through_a_server(tmp_path, points):
    mine, other = points
    runner = CliRunner()
    with TierServing(tmp_path, "district", "500105", SECRET) as district:
        remote = ["--server", district.url, "--token", district.token]
        res = runner.invoke(main, ["risk", "inspect", mine, "--result", "hazard", *remote, "--json"])
        assert res.exit_code == 0 and json.loads(res.output)["colour"] == "yellow", res.output
        assert _audit(district.store, mine)[-2:] == ["inspect", "risk_grade"]
        res = runner.invoke(main, ["risk", "inspect", other, "--result", "ok", *remote])
        assert res.exit_code == EXIT_DENIED and "outside 500105" in _one_line(res)
        # 一表通 figures through the server: the figure.feed command, in the caller's jurisdiction.
        res = runner.invoke(main, ["kpi", "feed", "cs01.04.rate", "96.5", "--scope", "500105001", *remote, "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["scope_code"] == "500105001"
        latest = district.store.latest_figures("500105", district.clock.now() + 1)
        assert [(s, v) for s, _, v in latest["cs01.04.rate"]] == [("500105001", 96.5)]
        for args, code, words in (
            (["kpi", "feed", "cs01.04.rate", "90", "--scope", "500108"], EXIT_DENIED, "outside 500105"),
            (["kpi", "feed", "cs01.04.rate", "nan"], EXIT_BAD_INPUT, "finite"),
            (["kpi", "feed", "bad name!", "1"], EXIT_BAD_INPUT, "figure name"),
        ):
            res = runner.invoke(main, [*args, *remote])
            assert res.exit_code == code and words in _one_line(res), (args, res.output)
        assert len(district.store.latest_figures("500105", district.clock.now() + 1)) == 1
