"""ASCII map rendering and the `cqgov map` / `cqgov locate` commands."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from cqgov_tui.cli import main
from cqgov_tui.domain.colour import Colour
from cqgov_tui.domain.entities import Level
from cqgov_tui.errors import BadInput, UnknownCode
from cqgov_tui.geo.asciimap import render
from cqgov_tui.geo.registry import get_registry


def _named(m, code: str) -> bool:
    return code in m.labels or any(e.code == code for e in m.legend)


def _expected_ratio(bounds) -> float:
    minx, miny, maxx, maxy = bounds
    coslat = math.cos(math.radians((miny + maxy) / 2))
    return (maxy - miny) / ((maxx - minx) * coslat) / 2


@pytest.mark.parametrize("width", [40, 53, 80, 120, 160, 200, 240])
def test_city_map_at_many_widths(width):
    m = render(width=width)
    reg = get_registry()
    assert m.regions == tuple(reg.districts)
    assert m.raster.level is Level.DISTRICT
    assert m.width == width and len(m.rows) == m.height
    assert all(cell_len(row) == width for row in m.rows)
    # every district is named on the map (full or short name, or a key with a legend line)
    for code in reg.districts:
        assert _named(m, code), code
    for e in m.legend:
        assert e.name == reg.get(e.code).name
    # Chongqing is about as tall as it is wide on the ground; cells are 2:1
    assert m.height / m.width == pytest.approx(_expected_ratio(m.raster.bounds), abs=0.02 + 1 / width)
    assert 0.4 < m.height / m.width < 0.55
    # every region is visible, borders are drawn
    counts = {c: len(m.cells_of(c)) for c in m.regions}
    assert min(counts.values()) >= 1
    text = "\n".join(m.rows)
    assert "|" in text and "-" in text


def test_labels_sit_inside_their_region():
    m = render(width=120)
    r = m.raster
    for code, label in m.labels.items():
        i = r.regions.index(code)
        rows = {int(y) for y, x in zip(*r.is_label.nonzero()) if r.ids[y, x] == i}
        assert any(label in m.rows[y] for y in rows), (code, label)


def test_region_ids_follow_geography():
    m = render(width=160)
    reg = get_registry()
    for code in ("500101", "500242", "500229", "500108", "500190"):
        for row, col in m.cells_of(code)[::7]:
            loc = reg.locate(*m.lonlat_at(int(row), int(col)))
            assert loc is not None and loc.district.code == code
    # 渝中区 is smaller than a cell at this size but still gets one, at its anchor
    assert len(m.cells_of("500103")) >= 1
    assert m.region_at(-1, 0) is None and m.region_at(0, 10_000) is None


def test_drill_down_to_a_district_and_a_street():
    reg = get_registry()
    d = render("500108", width=100)
    assert d.regions == tuple(s.code for s in reg.children("500108"))
    assert d.raster.level is Level.STREET
    assert all(_named(d, c) for c in d.regions)
    assert "涂山镇" in "\n".join(d.rows) or "涂山" in "\n".join(d.rows) or _named(d, "500108009")
    s = render("500108009", width=100)
    assert s.raster.level is Level.GRID
    assert len(s.regions) == reg.grid_count("500108009")
    assert all(_named(s, c) for c in s.regions)
    assert all(cell_len(row) == 100 for row in s.rows)
    g = render("500108009001", width=40)
    assert g.regions == ("500108009001",)


def test_cache_reuses_the_raster_and_colours_apply_per_call():
    a = render(width=90)
    b = render(width=90, colours={"500108": Colour.RED}, highlight="500103")
    assert a.raster is b.raster
    assert b.colours == {"500108": Colour.RED} and b.highlight == "500103"
    assert a.colours == {} and a.highlight is None


def test_colours_of_deeper_codes_tint_their_region_worst_wins():
    m = render(width=80, colours={"500108009007": "yellow", "500108001": Colour.RED, "500101": "绿"},
               highlight="500103001")
    assert m.colours == {"500108": Colour.RED, "500101": Colour.GREEN}
    assert m.highlight == "500103"
    text = m.to_rich()
    bgs = {str(span.style.bgcolor.name) for span in text.spans if getattr(span.style, "bgcolor", None)}
    assert "#b71c1c" in bgs and "#2e7d32" in bgs and "#ffffff" in bgs
    assert text.plain.splitlines()[1:1 + m.height] == m.rows


def test_plain_text_and_dict():
    m = render(width=60)
    plain = m.to_plain()
    assert plain.splitlines()[0].startswith("重庆市 500000")
    assert "\x1b" not in plain
    d = m.to_dict()
    assert json.loads(json.dumps(d, ensure_ascii=False))["width"] == 60
    assert len(d["regions"]) == 41 and len(d["rows"]) == d["height"]
    assert {r["code"] for r in d["regions"]} == set(get_registry().districts)
    assert all(set(e) == {"key", "code", "name", "on_map"} for e in d["legend"])


def test_bad_arguments():
    with pytest.raises(BadInput):
        render(width=5)
    with pytest.raises(BadInput):
        render(width="wide")
    with pytest.raises(BadInput):
        render(width=80, height=0)
    with pytest.raises(UnknownCode):
        render("500199")
    with pytest.raises(BadInput, match="not on the map"):
        render("500108", highlight="500101")
    with pytest.raises(BadInput):
        render(width=80, colours={"500108": "purple"})


def test_height_limit_keeps_the_aspect():
    m = render(width=200, height=30)
    assert m.height == 30 and m.width < 200
    assert m.height / m.width == pytest.approx(_expected_ratio(m.raster.bounds), abs=0.05)


# ---------------------------------------------------------------- CLI


def _run(*args, env=None):
    return CliRunner().invoke(main, list(args), env={"NO_COLOR": "1", **(env or {})})


def test_cli_map_plain_text_without_colour():
    r = _run("map", "--width", "80")
    assert r.exit_code == 0, r.output
    assert "\x1b[" not in r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].startswith("重庆市 500000")
    assert any("万州" in line for line in lines)


def test_cli_map_json_shape():
    r = _run("map", "--code", "500103", "--width", "70", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["code"] == "500103" and d["region_level"] == "street" and d["width"] == 70
    assert len(d["regions"]) == 11 and len(d["rows"]) == d["height"]
    assert {"rows", "legend", "regions"} <= set(d)


def test_cli_map_colour_and_highlight_options():
    r = _run("map", "--width", "60", "--colour", "500108=red", "--highlight", "500103", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["highlight"] == "500103"
    assert [x["colour"] for x in d["regions"] if x["code"] == "500108"] == ["red"]


@pytest.mark.parametrize(
    "args",
    [
        ("map", "--code", "999999"),
        ("map", "--width", "abc"),
        ("map", "--width", "3"),
        ("map", "--colour", "500108"),
        ("locate", "abc", "29.5"),
        ("locate", "nan", "29.5"),
        ("locate", "29.56", "106.58"),
        ("locate", "116.4", "39.9"),
        ("locate", "-116.4", "39.9"),
    ],
)
def test_cli_errors_are_one_line(args):
    r = _run(*args)
    assert r.exit_code != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cqgov: "), r.stderr


def test_cli_locate():
    r = _run("locate", "106.58", "29.56")
    assert r.exit_code == 0, r.output
    assert "渝中区 500103" in r.stdout and "解放碑街道 500103001" in r.stdout
    r = _run("locate", "106.58", "29.56", "--json")
    d = json.loads(r.stdout)
    assert d["district"]["code"] == "500103" and d["street"]["name"] == "解放碑街道"
    assert d["grid"]["code"].startswith("500103001") and d["grid"]["households"] <= 400
