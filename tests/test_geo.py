"""Geography: generated fixtures, the registry's tree, lookups and determinism."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.domain.entities import Jurisdiction, Level
from cqgov_tui.errors import BadInput, UnknownCode
from cqgov_tui.geo import generate as gen
from cqgov_tui.geo.registry import Location, get_registry


@pytest.fixture(scope="module")
def reg():
    return get_registry()


@pytest.fixture(scope="module")
def street_table():
    return pq.read_table(gen.FIXTURES / gen.STREETS_FILE).to_pydict()


# ---------------------------------------------------------------- counts


def test_counts(reg):
    assert len(reg.districts) == 41
    assert len(reg.streets) == 1031
    assert 60_000 <= reg.grid_count() <= 70_000
    assert sum(reg.grid_count(d) for d in reg.districts) == reg.grid_count()
    assert reg.city.code == "500000" and reg.city.name == "重庆市"
    assert {"500190", "500191", "500192"} <= set(reg.districts)
    assert reg.districts["500190"].name == "两江新区"
    assert reg.districts["500191"].name == "西部科学城重庆高新区"
    assert reg.districts["500192"].name == "万盛经开区"
    assert all(reg.districts[c].kind == "功能区" for c in ("500190", "500191", "500192"))


def test_every_district_has_at_least_five_streets_with_well_formed_codes(reg):
    for code in reg.districts:
        streets = reg.children(code)
        assert len(streets) >= 5, code
        names = [s.name for s in streets]
        assert len(names) == len(set(names)), f"duplicate street names in {code}"
        for s in streets:
            assert s.code.startswith(code) and len(s.code) == 9 and s.code.isdigit()
            assert s.kind in {"街道", "镇", "乡"} and s.name.endswith(s.kind)
            assert s.parent_code == code


def test_grid_limits_and_totals_add_up(reg, street_table):
    t = street_table
    for i, code in enumerate(t["code"]):
        n = t["grids"][i]
        assert 1 <= n <= 999
        ks = np.arange(1, n + 1, dtype=np.int64)
        hh, pop = gen.grid_values(np.full(n, int(code), dtype=np.int64), ks, t["base_hh"][i], t["ppl"][i])
        assert hh.max() <= gen.MAX_HOUSEHOLDS and pop.max() <= gen.MAX_POPULATION, code
        assert hh.min() >= 1 and (pop >= hh).all()
        assert int(hh.sum()) == t["households"][i] and int(pop.sum()) == t["population"][i]
    assert sum(d.population for d in reg.districts.values()) == reg.city.population
    assert 30_000_000 <= reg.city.population <= 34_000_000


def test_lazy_grid_values_match_bulk_values(reg):
    for code in ("500103001001", "500108009017", "500242010003"):
        j = reg.get(code)
        street = j.parent_code
        k = int(code[9:])
        row = reg._street_pos[street]
        hh, pop = gen.grid_values(np.array([int(street)]), np.array([k]), int(reg._base_hh[row]), int(reg._ppl[row]))
        assert (j.households, j.population) == (int(hh[0]), int(pop[0])) == reg.grid_values(code)
        assert j.households <= 400 and j.population <= 1000


def test_main_city_is_denser_than_counties(reg):
    def density(code):
        return reg.districts[code].population / reg.geometry(code).area

    assert density("500103") > 10 * density("500229")  # 渝中区 vs 城口县
    assert density("500108") > density("500242")


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, district",
    [
        ("涂山镇", "500108"),
        ("菩提街道", "500115"),
        ("谢家湾街道", "500107"),
        ("陈家坝街道", "500101"),
        ("中山路街道", "500118"),
        ("解放碑街道", "500103"),
        ("大坪街道", "500103"),
        ("南坪街道", "500108"),
        ("弹子石街道", "500108"),
    ],
)
def test_real_names_in_the_right_district(reg, name, district):
    found = reg.find_by_name(name)
    assert [j.parent_code for j in found] == [district]
    assert reg.district_of(found[0].code).code == district


def test_yuzhong_has_its_eleven_real_streets(reg):
    names = {s.name for s in reg.children("500103")}
    assert names == {
        "解放碑街道", "朝天门街道", "七星岗街道", "南纪门街道", "两路口街道", "上清寺街道",
        "菜园坝街道", "大溪沟街道", "大坪街道", "化龙桥街道", "石油路街道",
    }


def test_find_by_name_falls_back_to_substring_and_rejects_empty(reg):
    assert [j.code for j in reg.find_by_name("南岸区")] == ["500108"]
    assert any(j.name == "两江新区" for j in reg.find_by_name("两江"))
    assert all(j.level is Level.DISTRICT for j in reg.find_by_name("区", level=Level.DISTRICT))
    with pytest.raises(BadInput):
        reg.find_by_name("  ")


# ---------------------------------------------------------------- zones


def test_zones_are_carved_out_of_their_hosts(reg):
    for code, (_name, hosts, box, _d) in gen.ZONES.items():
        zone = reg.geometry(code)
        minx, miny, maxx, maxy = zone.bounds
        assert minx >= box[0] - 0.02 and maxx <= box[2] + 0.02
        assert miny >= box[1] - 0.02 and maxy <= box[3] + 0.02
        for h in hosts:
            assert shapely.area(shapely.intersection(zone, reg.geometry(h))) < 1e-6
    assert reg.locate(106.52, 29.52).district.code == "500107"  # 谢家湾 stays in 九龙坡区
    assert reg.locate(106.58, 29.56).district.code == "500103"
    assert reg.locate(106.30, 29.60).district.code == "500191"  # 西永
    assert reg.locate(106.60, 29.70).district.code == "500190"
    assert reg.locate(106.95, 28.92).district.code == "500192"


def test_districts_do_not_overlap(reg):
    geoms = [reg.geometry(c) for c in reg.districts]
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    m = a < b
    overlap = shapely.area(shapely.intersection(np.asarray(geoms)[a[m]], np.asarray(geoms)[b[m]]))
    assert overlap.max() < 1e-9


# ---------------------------------------------------------------- tree


def test_tree_navigation(reg):
    grid = "500108009007"
    j = reg.get(grid)
    assert isinstance(j, Jurisdiction) and j.level is Level.GRID and j.kind == "网格"
    assert j.parent_code == "500108009" and j.geometry_ref.startswith("grid:500108009/")
    assert [a.code for a in reg.ancestors(grid)] == ["500000", "500108", "500108009"]
    assert reg.parent(grid).name == "涂山镇"
    assert reg.parent("500108").code == "500000" and reg.parent("500000") is None
    assert reg.district_of(grid).code == "500108" and reg.district_of("500000") is None
    assert len(reg.children("500000")) == 41
    grids = reg.children("500108009")
    assert len(grids) == reg.grid_count("500108009")
    assert [g.code for g in grids] == reg.grid_codes("500108009")
    assert reg.children(grid) == []
    assert reg.level_of(grid) is Level.GRID and reg.level_of("500108") is Level.DISTRICT


@pytest.mark.parametrize("code", ["500108999", "500199", "500108009999", "500108009000", "abc", "5001", "", None])
def test_unknown_codes_are_one_line_errors(reg, code):
    with pytest.raises(UnknownCode) as exc:
        reg.get(code)
    assert "\n" not in str(exc.value)


def test_geometries_at_every_level(reg):
    assert reg.geometry("500000").area == pytest.approx(sum(reg.geometry(c).area for c in reg.districts), rel=1e-6)
    street = reg.geometry("500108009")
    grids = [reg.geometry(c) for c in reg.grid_codes("500108009")]
    assert all(g.area > 0 for g in grids)
    assert sum(g.area for g in grids) == pytest.approx(street.area, rel=1e-6)
    j = reg.get("500108009003")
    assert shapely.intersects_xy(reg.geometry(j.code), j.lon, j.lat)


def test_streets_partition_their_district(reg):
    for code in ("500103", "500108", "500190", "500104"):
        d = reg.geometry(code)
        union = shapely.union_all([reg.geometry(s.code) for s in reg.children(code)])
        assert shapely.area(shapely.symmetric_difference(union, d)) < 1e-6 * max(d.area, 1e-3)


# ---------------------------------------------------------------- lookup


def test_known_points(reg):
    loc = reg.locate(106.58, 29.56)
    assert isinstance(loc, Location)
    assert loc.district.name == "渝中区" and loc.street.name == "解放碑街道"
    assert loc.grid.code.startswith("500103001") and loc.code == loc.grid.code
    assert reg.locate(106.65, 29.53).district.name == "南岸区"
    assert reg.locate(108.40, 30.80).district.name == "万州区"
    assert reg.locate(116.40, 39.90) is None  # Beijing
    assert reg.locate(104.06, 30.67) is None  # Chengdu


@pytest.mark.parametrize(
    "lon, lat, fragment",
    [
        (float("nan"), 29.5, "finite"),
        (106.5, float("inf"), "finite"),
        ("abc", 29.5, "numbers"),
        (29.56, 106.58, "swapped"),
        (200.0, 29.5, "longitude"),
    ],
)
def test_bad_coordinates(reg, lon, lat, fragment):
    with pytest.raises(BadInput) as exc:
        reg.locate(lon, lat)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_locate_many_matches_locate(reg):
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = reg.bounds
    xs = rng.uniform(minx, maxx, 400)
    ys = rng.uniform(miny, maxy, 400)
    many = reg.locate_many(xs, ys)
    assert len(many) == 400 and 0.2 < many.found.mean() < 0.8
    codes = many.grid_codes()
    dcodes = many.district_codes()
    for x, y, code, dcode in zip(xs, ys, codes, dcodes):
        one = reg.locate(x, y)
        assert (one.code if one else None) == code
        assert (one.district.code if one else None) == dcode


def test_locate_many_rejects_bad_input(reg):
    with pytest.raises(BadInput, match="non-finite"):
        reg.locate_many([106.5, float("nan")], [29.5, 29.5])
    with pytest.raises(BadInput, match="latitudes"):
        reg.locate_many([106.5, 106.6], [29.5])
    assert len(reg.locate_many([], [])) == 0


@settings(max_examples=60, deadline=None)
@given(row=st.integers(0, 1030), seed=st.integers(0, 2**32 - 1))
def test_random_point_in_a_street_locates_back(reg, row, seed):
    code = list(reg.streets)[row]
    lon, lat = reg.random_point(code, np.random.default_rng(seed))
    loc = reg.locate(lon, lat)
    assert loc is not None and loc.street.code == code


@settings(max_examples=40, deadline=None)
@given(row=st.integers(0, 1030), pick=st.floats(0, 1, exclude_max=True), seed=st.integers(0, 2**32 - 1))
def test_random_point_in_a_grid_locates_back(reg, row, pick, seed):
    street = list(reg.streets)[row]
    codes = reg.grid_codes(street)
    code = codes[int(pick * len(codes))]
    lon, lat = reg.random_point(code, random.Random(seed))
    assert reg.locate(lon, lat).code == code


def test_random_point_in_district_and_city(reg):
    rng = np.random.default_rng(3)
    for code in ("500000", "500103", "500191"):
        lon, lat = reg.random_point(code, rng)
        loc = reg.locate(lon, lat)
        assert loc is not None
        if code != "500000":
            assert loc.district.code == code


def test_grid_cells_are_squares_on_the_ground(reg, street_table):
    t = street_table
    for i in range(0, 1031, 97):
        lat = t["y0"][i] + t["ny"][i] * t["dy"][i] / 2
        km_x = t["dx"][i] * 111.32 * math.cos(math.radians(lat))
        km_y = t["dy"][i] * 110.57
        assert 0.9 < km_x / km_y < 1.1


# ---------------------------------------------------------------- determinism


def test_regenerating_reproduces_the_shipped_fixtures():
    dt, st_ = gen.generate()
    shipped_d = pq.read_table(gen.FIXTURES / gen.DISTRICTS_FILE)
    shipped_s = pq.read_table(gen.FIXTURES / gen.STREETS_FILE)
    assert dt.equals(shipped_d.cast(dt.schema))
    assert st_.equals(shipped_s.cast(st_.schema))


def test_generating_one_district_alone_gives_the_same_streets(street_table):
    _dt, st_ = gen.generate(districts=["500108"])
    rows = st_.to_pydict()
    shipped = {c: i for i, c in enumerate(street_table["code"])}
    assert rows["code"] == [c for c in street_table["code"] if c.startswith("500108")]
    for i, code in enumerate(rows["code"]):
        j = shipped[code]
        assert rows["name"][i] == street_table["name"][j]
        assert rows["geometry"][i] == street_table["geometry"][j]
        assert rows["occupancy"][i] == street_table["occupancy"][j]
