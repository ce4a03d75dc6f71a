"""The risk points' disk cache: the same points as generation, keyed by its inputs, never trusted blindly."""

from __future__ import annotations

from pathlib import Path

from cqgov_tui.catalogue import risk_cache
from cqgov_tui.catalogue.loader import _Doc, load_catalogue
from cqgov_tui.catalogue.risk import RiskGenerator, parse_risk_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cqgov_fixtures" / "catalogue"


def _fresh() -> RiskGenerator:
    cat = load_catalogue()
    config = parse_risk_config(_Doc(FIXTURES / "risk_points.yaml"), cat.categories, cat.sensor_kinds)
    return RiskGenerator(config, cat.categories, cat.sensor_kinds)


def test_cached_points_equal_generated_ones_and_a_bad_file_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("CQGOV_NO_CACHE", "1")
    generated = _fresh().generate()
    assert generated == _fresh().generate()  # generation itself is deterministic

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CQGOV_NO_CACHE")
    assert _fresh().generate() == generated  # drawn, then written
    files = list((tmp_path / "cqgov").glob("risk-*.json"))
    assert len(files) == 1
    key = files[0].stem.removeprefix("risk-")
    points, sensors = risk_cache.load(key)
    assert (points, sensors) == generated and list(points) == list(generated[0])  # order kept
    assert _fresh().generate() == generated  # read back

    files[0].write_text('{"format": 1, "points": [["truncated"', encoding="utf-8")
    assert risk_cache.load(key) is None
    assert _fresh().generate() == generated  # unreadable: drawn again and rewritten
    assert risk_cache.load(key) == generated


def test_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CQGOV_NO_CACHE", "1")
    assert len(_fresh().generate()[0]) > 0
    assert not (tmp_path / "cqgov").exists()
