"""Deterministic synthetic events as an Arrow table, for every benchmark.

``synth_events(n)`` returns a ``pyarrow.Table`` whose schema is exactly
``arrow_schema(Event)``. Everything is built column-wise with numpy and Arrow
compute (no per-row Python), so a million rows take a few seconds.

The jurisdiction layout (streets per district, grids per street, category
owners) comes from a fixed RNG independent of ``seed``: two tables made with
different seeds describe the same city, which sync benchmarks rely on.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cqgov_tui.domain.entities import Event
from cqgov_tui.domain.schema import arrow_schema

ROOT = Path(__file__).resolve().parents[1]
DISTRICTS_GEOJSON = ROOT / "fixtures" / "cqgov_fixtures" / "chongqing_districts.geojson"

# Functional areas that have their own hub but no shape in the district layer.
EXTRA_DISTRICTS = {
    "500190": ("两江新区", (106.62, 29.70)),
    "500191": ("重庆高新区", (106.33, 29.60)),
    "500192": ("万盛经开区", (106.92, 28.96)),
}
# The central urban area reports far more events than the outer counties.
_URBAN = {"500103", "500104", "500105", "500106", "500107", "500108", "500109", "500112", "500113", "500190", "500191"}

DEFAULT_END = 1_795_000_000.0  # 2026-11-18, the "now" of tests/factories.py
DEFAULT_DAYS = 90
DEFAULT_START = DEFAULT_END - DEFAULT_DAYS * 86400.0

OPEN_STATUSES = ("reported", "verified", "assessed", "dispatched", "accepted", "on_scene", "disposed", "feedback")
_OPEN_P = (0.16, 0.10, 0.09, 0.20, 0.14, 0.10, 0.11, 0.10)
CLOSED_STATUSES = ("closed", "reviewed", "merged", "rejected")
_CLOSED_P = (0.70, 0.20, 0.06, 0.04)
STATUSES = OPEN_STATUSES + CLOSED_STATUSES

COLOURS = ("red", "orange", "yellow", "blue", "green")
_COLOUR_P = (0.02, 0.08, 0.30, 0.42, 0.18)

CATEGORY_CODES = tuple(f"c{i:02d}" for i in range(1, 41))
_CATEGORY_NAMES = (
    "道路积水", "下穿通道积水", "井盖缺失破损", "道路塌陷", "化粪池甲烷超标", "燃气泄漏", "高层建筑火灾", "电动自行车充电起火",
    "供水管网爆管", "区域性停电", "路灯故障", "电梯困人", "违法建设", "占道经营", "道路交通事故", "道路严重拥堵",
    "渣土车撒漏", "建筑垃圾偷倒", "噪声扰民", "垃圾堆积", "水体污染", "油烟扰民", "露天焚烧", "山体滑坡隐患",
    "危岩落石", "边坡垮塌", "房屋开裂", "消防通道堵塞", "群租房安全隐患", "食品安全投诉", "无证经营", "物业纠纷",
    "欠薪讨薪", "邻里纠纷", "流浪乞讨人员", "独居老人求助", "树木倒伏", "广告牌松动", "共享单车乱停", "公交站台损坏",
)
SLA_PROFILES = ("standard", "grid", "urgent", "traffic", "fire", "gas", "flood")
DEPARTMENTS = ("cgj", "jtj", "jwj", "yjj", "xfzd", "gaj", "jxj", "sthj", "slj", "ghzy", "lyj", "wjw", "scjg", "mzj", "sfj", "rsj")
SOURCES = ("citizen", "grid", "sensor", "video", "department", "upper")
_SOURCE_P = (0.44, 0.32, 0.08, 0.10, 0.04, 0.02)
_SOURCE_REPORTER = ("12345热线", None, "物联感知平台", "视频AI平台", "职能部门", "市治理中心")
_SOURCE_LEAD = ("市民来电反映", "网格员巡查发现", "物联感知设备报警", "视频AI识别到", "职能部门报告", "上级交办")
_DETAILS = (
    "现场情况较为严重", "已影响周边居民正常生活", "已造成车辆通行缓慢", "附近有学校和幼儿园", "涉及群众约二十人",
    "夜间持续发生多次", "此前已多次反映未解决", "现场有安全隐患需设置警示", "周边商户意见较大", "雨后情况明显加重",
    "位于主干道路口附近", "小区物业已到场但无法处置",
)
_TAILS = ("，请尽快派人处置。", "，请相关部门核实处理。", "，请及时反馈处理结果。", "，请加强巡查防止反复。", "。")
_TITLE_SUFFIX = ("", "", "", "（复报）", "（紧急）", "，群众反映强烈")
_ROADS = (
    "解放路", "中山路", "民族路", "南滨路", "北滨路", "渝州路", "石桥铺正街", "杨家坪步行街", "观音桥步行街", "学府大道",
    "南坪正街", "江南大道", "金开大道", "红锦大道", "龙头寺路", "新华路", "人民路", "长江路", "嘉陵路", "滨江路",
    "和平路", "建设路", "朝阳路", "团结路", "兴隆街", "龙华大道", "高新大道", "科学大道", "滨湖路", "白龙路",
)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_CST = _dt.timezone(_dt.timedelta(hours=8))


@functools.lru_cache(maxsize=None)
def real_districts() -> tuple[tuple[str, str, float, float], ...]:
    """(adcode, name, lon, lat) of the 38 shaped districts plus the 3 functional areas."""
    data = json.loads(DISTRICTS_GEOJSON.read_text(encoding="utf-8"))
    out = [(f["properties"]["adcode"], f["properties"]["name"], *f["properties"]["anchor"]) for f in data["features"]]
    out += [(code, name, lon, lat) for code, (name, (lon, lat)) in EXTRA_DISTRICTS.items()]
    return tuple(out)


DISTRICT_CODES = tuple(d[0] for d in real_districts())


def _layout(codes: tuple[str, ...]):
    """Seed-independent geography: names, anchors, weights, streets and grids per district."""
    known = {d[0]: d for d in real_districts()}
    geo = np.random.default_rng(20261118)
    names = [known[c][1] if c in known else f"{c}区" for c in codes]
    lon = np.array([known[c][2] if c in known else 106.55 for c in codes])
    lat = np.array([known[c][3] if c in known else 29.56 for c in codes])
    weight = geo.lognormal(0.0, 0.35, len(codes)) * np.array([3.0 if c in _URBAN else 1.0 for c in codes])
    streets = geo.integers(12, 40, len(codes))  # ~1,000 street centres city-wide
    grids = geo.integers(30, 95, len(codes))  # grids per street (~64,000 city-wide)
    owner = geo.integers(0, len(DEPARTMENTS), len(CATEGORY_CODES))
    sla = geo.integers(0, len(SLA_PROFILES), len(CATEGORY_CODES))
    return names, lon, lat, weight / weight.sum(), streets, grids, owner, sla


def _fixed_width(mat: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII → a string array of n w-byte strings, zero-copy."""
    n, w = mat.shape
    if n * w >= 2**31:
        raise ValueError("too many rows for 32-bit string offsets")
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    bitmap, nulls = None, 0
    if valid is not None:
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - valid.sum())
    data = pa.py_buffer(np.ascontiguousarray(mat, dtype=np.uint8))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), data, bitmap, nulls)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative ints as an (n, width) ASCII matrix."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + 48).astype(np.uint8)


def _ascii(strings) -> np.ndarray:
    return np.array([list(s.encode("ascii")) for s in strings], dtype=np.uint8)


def _uuid7(ms: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """UUIDv7 strings (time-ordered like ``cqgov_tui.ids.uuid7``) from seeded random bits."""
    n = len(ms)
    hi = (ms.astype(np.uint64) << np.uint64(16)) | np.uint64(0x7000) | rng.integers(0, 1 << 12, n, dtype=np.uint64)
    lo = (np.uint64(0b10) << np.uint64(62)) | rng.integers(0, 1 << 62, n, dtype=np.uint64)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = np.concatenate([(hi[:, None] >> shifts) & np.uint64(15), (lo[:, None] >> shifts) & np.uint64(15)], axis=1)
    hexed = _HEX[nibbles]
    mat = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in ((0, 0), (9, 8), (14, 12), (19, 16), (24, 20)):
        width = {0: 8, 24: 12}.get(dst, 4)
        mat[:, dst : dst + width] = hexed[:, src : src + width]
    return _fixed_width(mat)


def _refs(ids: pa.Array, has: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Nullable references to a random *earlier* event (parents, merge targets)."""
    n = len(has)
    idx = np.floor(rng.random(n) * np.arange(n)).astype(np.int64)
    has = has & (np.arange(n) > 0)
    return pc.take(ids, pa.array(idx, mask=~has))


def _pick(pool, idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    values = pa.array(list(pool), pa.string())
    return pc.take(values, pa.array(idx.astype(np.int32), mask=None if valid is None else ~valid))


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def synth_events(
    n: int,
    seed: int = 0,
    open_ratio: float = 0.03,
    start: float = DEFAULT_START,
    district_codes=None,
    days: float = DEFAULT_DAYS,
    city_code: str = "500000",
) -> pa.Table:
    """``n`` synthetic events over ``days`` from ``start``, sorted by report time.

    About ``open_ratio`` of them are open (spread over reported…feedback, most
    reported in the last few days, some overdue); the rest are closed,
    reviewed, merged or rejected. Same arguments, same table.
    """
    codes = tuple(district_codes) if district_codes else DISTRICT_CODES
    names, anchor_lon, anchor_lat, dweight, n_streets, n_grids, cat_owner, cat_sla = _layout(codes)
    rng = np.random.default_rng(seed)
    end = start + days * 86400.0
    schema = arrow_schema(Event)

    # Times first: open events skew recent; sorting makes ids and serials follow report order.
    is_open = rng.random(n) < open_ratio
    reported = np.where(
        is_open,
        np.maximum(end - rng.exponential(3 * 86400.0, n), start),
        start + rng.random(n) * (end - start),
    )
    reported = np.minimum(np.round(reported, 3), end - 1.0)
    order = np.argsort(reported, kind="stable")
    reported, is_open = reported[order], is_open[order]

    dist = rng.choice(len(codes), n, p=dweight)
    street_no = (rng.random(n) * n_streets[dist]).astype(np.int64) + 1
    grid_no = (rng.random(n) * n_grids[dist]).astype(np.int64) + 1
    has_street = rng.random(n) >= 0.005  # district-wide events (flood warnings) have no street
    has_grid = has_street & (rng.random(n) >= 0.01)

    cat_w = 1.0 / (np.arange(len(CATEGORY_CODES)) + 4.0)
    cat = rng.choice(len(CATEGORY_CODES), n, p=cat_w / cat_w.sum())
    colour = rng.choice(len(COLOURS), n, p=_COLOUR_P)
    status = np.where(
        is_open,
        rng.choice(len(OPEN_STATUSES), n, p=_OPEN_P),
        len(OPEN_STATUSES) + rng.choice(len(CLOSED_STATUSES), n, p=_CLOSED_P),
    )
    source = rng.choice(len(SOURCES), n, p=_SOURCE_P)

    # Codes and ids as fixed-width ASCII matrices.
    dist_ascii = _ascii(codes)[dist]
    street_mat = np.concatenate([dist_ascii, _digits(street_no, 3)], axis=1)
    grid_mat = np.concatenate([street_mat, _digits(grid_no, 3)], axis=1)
    ids = _uuid7(np.floor(reported * 1000).astype(np.int64), rng)

    local_day = np.floor((reported + 8 * 3600) / 86400).astype(np.int64)
    day0 = int(local_day.min()) if n else 0
    ndays = int(local_day.max()) - day0 + 1 if n else 1
    day_ascii = _ascii(
        (_dt.datetime.fromtimestamp(0, _CST) + _dt.timedelta(days=day0 + d)).strftime("%Y%m%d") for d in range(ndays)
    ) if n else np.zeros((0, 8), np.uint8)
    # Daily serial per district, in report order (rows are time-sorted, the sort is stable).
    key = dist.astype(np.int64) * ndays + (local_day - day0)
    by_key = np.argsort(key, kind="stable")
    sk = key[by_key]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if n else np.zeros(0, np.int64)
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    serial = np.empty(n, np.int64)
    serial[by_key] = np.arange(n) - group_start + 1
    dash = np.full((n, 1), ord("-"), np.uint8)
    number_mat = np.concatenate(
        [dist_ascii[:, 2:], dash, day_ascii[local_day - day0] if n else day_ascii, dash, _digits(serial % 100000, 5)],
        axis=1,
    )

    # Lifecycle times.
    closed_at = np.minimum(reported + 300.0 + rng.exponential(86400.0, n), end)
    stage = np.where(is_open, reported + (end - reported) * rng.random(n) * 0.8, closed_at)
    stage_minutes = np.array([5, 10, 30, 60, 240, 1440, 4320], dtype=np.float64)
    due = stage + 60.0 * stage_minutes[rng.integers(0, len(stage_minutes), n)]
    overdue = is_open & (due < end)
    esc = np.where(overdue, rng.choice(3, n, p=(0.35, 0.5, 0.15)), (rng.random(n) < 0.05).astype(np.int64))
    version = np.where(is_open, status + 1 + esc, 9 + rng.integers(0, 4, n))

    # Free text: Chinese phrases of realistic length, joined column-wise.
    title = _join(
        _pick(_CATEGORY_NAMES, cat), _pick(_TITLE_SUFFIX, rng.integers(0, len(_TITLE_SUFFIX), n))
    )
    address = _join(
        _pick(names, dist),
        _pick(_ROADS, rng.integers(0, len(_ROADS), n)),
        _pick([str(i) for i in range(1, 400)], rng.integers(0, 399, n)),
        pa.scalar("号"),
    )
    text = _join(
        _pick(_SOURCE_LEAD, source), pa.scalar("："), address, pa.scalar("附近"), _pick(_CATEGORY_NAMES, cat),
        pa.scalar("，"), _pick(_DETAILS, rng.integers(0, len(_DETAILS), n)),
        _pick(_TAILS, rng.integers(0, len(_TAILS), n)),
    )
    grid_workers = [f"网格员{i:03d}" for i in range(300)]
    reporter_pool = [r or "" for r in _SOURCE_REPORTER] + grid_workers
    reporter_idx = np.where(source == SOURCES.index("grid"), len(SOURCES) + rng.integers(0, 300, n), source)

    has_assignee = ~np.isin(status, [STATUSES.index(s) for s in ("reported", "verified", "assessed", "rejected")])
    n_co = rng.choice(4, n, p=(0.45, 0.30, 0.17, 0.08))
    co_offsets = np.zeros(n + 1, np.int32)
    np.cumsum(n_co, out=co_offsets[1:])
    co_values = _pick(DEPARTMENTS, rng.integers(0, len(DEPARTMENTS), int(co_offsets[-1])))
    departments = pa.ListArray.from_arrays(pa.array(co_offsets), co_values, type=schema.field("departments").type)

    tier = np.where(has_street, rng.choice(3, n, p=(0.62, 0.33, 0.05)), 1)  # street, district, city
    street_codes = _fixed_width(street_mat, has_street)
    origin_node = pc.if_else(
        pa.array(tier == 0),
        _join(pa.scalar("street-"), street_codes),
        pc.if_else(pa.array(tier == 1), _join(pa.scalar("district-"), _pick(codes, dist)), pa.scalar(f"city-{city_code}")),
    )
    lon_ok = rng.random(n) >= 0.002

    merged = status == STATUSES.index("merged")
    columns = {
        "id": ids,
        "number": _fixed_width(number_mat),
        "city_code": _pick((city_code,), np.zeros(n, np.int32)),
        "district_code": _pick(codes, dist),
        "street_code": street_codes,
        "grid_code": _fixed_width(grid_mat, has_grid),
        "category_code": _pick(CATEGORY_CODES, cat),
        "colour": _pick(COLOURS, colour),
        "status": _pick(STATUSES, status),
        "title": title,
        "text": text,
        "lon": pa.array(anchor_lon[dist] + rng.normal(0, 0.04, n), mask=~lon_ok),
        "lat": pa.array(anchor_lat[dist] + rng.normal(0, 0.03, n), mask=~lon_ok),
        "address": address,
        "source": _pick(SOURCES, source),
        "reporter": _pick(reporter_pool, reporter_idx),
        "assignee": _pick(DEPARTMENTS, cat_owner[cat], has_assignee),
        "departments": departments,
        "sla_profile": _pick(SLA_PROFILES, cat_sla[cat]),
        "reported_at": pa.array(reported),
        "stage_started_at": pa.array(stage),
        "due_at": pa.array(due, mask=~is_open),
        "closed_at": pa.array(closed_at, mask=is_open),
        "updated_at": pa.array(stage),
        "escalation_level": pa.array(esc.astype(np.int64)),
        "supervised_by": _pick(("", "district", "city"), esc, esc > 0),
        "parent_id": _refs(ids, rng.random(n) < 0.01, rng),
        "merged_into": _refs(ids, merged, rng),
        "duplicate_of": _refs(ids, is_open & (rng.random(n) < 0.01), rng),
        "inhibited_by": _refs(ids, is_open & (rng.random(n) < 0.003), rng),
        "plan_code": _pick([f"p{i:02d}" for i in range(1, 13)], rng.integers(0, 12, n), rng.random(n) < 0.12),
        "origin_tier": _pick(("street", "district", "city"), tier),
        "origin_node": origin_node,
        "version": pa.array(version.astype(np.int64)),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)

