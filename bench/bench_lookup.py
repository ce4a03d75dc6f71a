"""Point → grid lookup: STRtree + lattice arithmetic vs a linear scan over street polygons.

``run()`` returns rows for ``bench/run.py``; ``python bench/bench_lookup.py``
prints them. The baseline runs on a subsample and is extrapolated linearly
(a scan costs the same per point whatever the sample size).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cqgov_tui.geo.registry import get_registry  # noqa: E402

N_POINTS = 100_000
N_BASELINE = 2_000
N_SINGLE = 2_000
N_SINGLE_BASELINE = 200
SEED = 42


def _points(reg, n, rng):
    """Uniform points over Chongqing's bounding box (about 40 % fall inside)."""
    minx, miny, maxx, maxy = reg.bounds
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def _best(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _scan_all(polys, xs, ys) -> np.ndarray:
    """Baseline: every street polygon tests every point (first match wins)."""
    street = np.full(xs.size, -1, dtype=np.int64)
    for i, poly in enumerate(polys):
        hit = shapely.intersects_xy(poly, xs, ys) & (street < 0)
        street[hit] = i
    return street


def _scan_one(polys, x, y) -> int:
    """Baseline for a single point: polygons in order until one holds it."""
    for i, poly in enumerate(polys):
        if shapely.intersects_xy(poly, x, y):
            return i
    return -1


def run(quick: bool = False) -> list[dict]:
    n_points, n_base, n_single, n_single_base = (
        (10_000, 500, 500, 50) if quick else (N_POINTS, N_BASELINE, N_SINGLE, N_SINGLE_BASELINE)
    )
    reg = get_registry()
    _codes, polys = reg.street_geometries()
    rng = np.random.default_rng(SEED)
    xs, ys = _points(reg, n_points, rng)

    reg.locate_many(xs[:1000], ys[:1000])  # warm-up
    t_fast = _best(lambda: reg.locate_many(xs, ys))
    fast_rate = n_points / t_fast

    bx, by = xs[:n_base], ys[:n_base]
    t_base = _best(lambda: _scan_all(polys, bx, by), repeat=1)
    base_rate = n_base / t_base
    # same answers, or the comparison means nothing
    assert np.array_equal(_scan_all(polys, bx, by), reg.locate_many(bx, by).street_index)

    sx, sy = xs[:n_single], ys[:n_single]
    t_one = _best(lambda: [reg.locate(x, y) for x, y in zip(sx.tolist(), sy.tolist())], repeat=1)
    one_rate = n_single / t_one
    ox, oy = xs[:n_single_base].tolist(), ys[:n_single_base].tolist()
    t_one_base = _best(lambda: [_scan_one(polys, x, y) for x, y in zip(ox, oy)], repeat=1)
    one_base_rate = n_single_base / t_one_base

    inside = float(reg.locate_many(xs, ys).found.mean())
    return [
        {
            "name": f"point→grid lookup, {n_points // 1000}k points ({inside:.0%} inside)",
            "value": round(fast_rate),
            "unit": "points/s",
            "baseline": round(base_rate),
            "baseline_name": f"linear scan over street polygons (shapely.intersects_xy per polygon, {n_base} pts extrapolated)",
            "ratio": round(fast_rate / base_rate, 1),
            "note": "STRtree bbox candidates, intersects_xy on prepared street polygons, lattice arithmetic for the grid",
            "target": "≥ 50,000 points/s",
            "target_ok": fast_rate >= 50_000,
        },
        {
            "name": "single-point locate() → Location",
            "value": round(one_rate),
            "unit": "points/s",
            "baseline": round(one_base_rate),
            "baseline_name": f"linear scan over street polygons, one point at a time ({n_single_base} pts extrapolated)",
            "ratio": round(one_rate / one_base_rate, 1),
            "note": "includes building the grid Jurisdiction (households, population, anchor)",
        },
    ]


def _print(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lookup benchmark")
    for col in ("name", "value", "unit", "baseline", "baseline_name", "ratio"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], f"{r['value']:,}", r["unit"], f"{r['baseline']:,}", r["baseline_name"], f"{r['ratio']}×")
    Console().print(table)


if __name__ == "__main__":
    _print(run())
