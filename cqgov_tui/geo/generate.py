"""Deterministic generator of the jurisdiction fixtures (districts, streets, grid lattices).

Run ``python -m cqgov_tui.geo.generate`` to rewrite ``fixtures/cq_districts.parquet``
and ``fixtures/cq_streets.parquet``. The output depends only on ``SEED`` and
the real district shapes in ``fixtures/chongqing_districts.geojson``.

* The three functional zones are carved out of their hosts' real shapes
  (a jittered box intersected with the hosts); hosts keep the remainder.
* Streets partition each district: Voronoi cells of seeded points clipped to
  the district, named streets seeded at their real (approximate) position.
* Grids are never stored as shapes. Each street has a square lattice (in
  km, so longitude steps are widened by 1/cos(lat)); grid k is the k-th lattice
  cell, in row-major order, that overlaps the street with positive area. The
  file keeps per street only the lattice, an occupancy bitmap and two integers
  from which every grid's households and population are derived.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from shapely.geometry import shape

from .files import DISTRICTS_FILE, FIXTURES, STREETS_FILE  # noqa: F401  (gen.FIXTURES … as before)
from .names import FIRST, REAL_STREETS, SECOND

SEED = 20240531
SOURCE = "chongqing_districts.geojson"
FORMAT_VERSION = "1"

CITY_CODE = "500000"
CITY_NAME = "重庆市"
TARGET_STREETS = 1031
TARGET_GRIDS = 64_000
MAX_HOUSEHOLDS = 400  # per grid, from the seeds
MAX_POPULATION = 1_000
MAX_GRIDS_PER_STREET = 999  # grid codes have three digits

# code -> (name, host districts, rough box lon0, lat0, lon1, lat1, density of the
# carved part relative to the host's average: 高新区 takes hosts' rural west)
ZONES: dict[str, tuple[str, tuple[str, ...], tuple[float, float, float, float], float]] = {
    "500190": ("两江新区", ("500105", "500112", "500109"), (106.50, 29.60, 106.80, 29.85), 1.0),
    "500191": ("西部科学城重庆高新区", ("500106", "500107", "500120", "500116"), (106.25, 29.45, 106.43, 29.68), 0.55),
    "500192": ("万盛经开区", ("500110",), (106.82, 28.80, 107.10, 29.05), 1.0),
}

# 2020 census resident population in 10,000s (rounded); zones take a share of their hosts.
POPULATION_WAN: dict[str, float] = {
    "500101": 156.4, "500102": 115.5, "500103": 58.9, "500104": 42.1, "500105": 92.6,
    "500106": 147.9, "500107": 153.0, "500108": 119.8, "500109": 83.5, "500110": 101.1,
    "500111": 83.5, "500112": 219.0, "500113": 117.9, "500114": 48.7, "500115": 69.3,
    "500116": 135.9, "500117": 124.5, "500118": 114.9, "500119": 57.2, "500120": 76.0,
    "500151": 68.6, "500152": 68.9, "500153": 67.1, "500154": 120.3, "500155": 64.7,
    "500156": 35.7, "500229": 19.8, "500230": 55.7, "500231": 64.7, "500233": 72.1,
    "500235": 92.9, "500236": 74.5, "500237": 46.2, "500238": 38.8, "500240": 38.9,
    "500241": 50.2, "500242": 60.9, "500243": 49.3,
}

# Street counts fixed where the real number (after the zones' carve-outs) is known.
FIXED_STREETS: dict[str, int] = {
    "500103": 11, "500104": 8, "500105": 9, "500106": 18, "500107": 14, "500108": 14,
    "500109": 15, "500112": 19, "500113": 22, "500110": 21,
    "500190": 24, "500191": 12, "500192": 10,
}

CORE = {"500103", "500104", "500105", "500106", "500107", "500108"}
INNER = {"500109", "500112", "500113", "500190", "500191"}

MIN_PART_AREA = 1e-6  # deg²; drops slivers left by overlaps in the simplified source


@dataclass
class District:
    code: str
    name: str
    kind: str
    geom: object
    anchor: tuple[float, float]
    population: float  # target, in people
    hosts: str = ""
    n_streets: int = 0


# ------------------------------------------------------------------ helpers


def _clean(geom):
    """Valid polygonal geometry without slivers."""
    geom = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area >= MIN_PART_AREA]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _jittered_box(box, rng, steps=8, amp=0.012):
    """A box with wobbly edges, so a zone's cut looks drawn rather than ruled."""
    x0, y0, x1, y1 = box
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    pts = []
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1]):
        for k in range(steps):
            t = k / steps
            x, y = ax + (bx - ax) * t, ay + (by - ay) * t
            if k:
                d = rng.uniform(-amp, amp)
                if ay == by:
                    y += d
                else:
                    x += d
            pts.append((round(x, 5), round(y, 5)))
    return shapely.Polygon(pts)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *keys])


def _largest_remainder(weights: dict[str, float], total: int, minimum: int) -> dict[str, int]:
    keys = sorted(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    raw = w / w.sum() * total
    counts = np.maximum(np.floor(raw).astype(int), minimum)
    while counts.sum() > total:  # minimums overshot: take from the largest
        counts[np.argmax(counts)] -= 1
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    k = 0
    while counts.sum() < total:
        counts[order[k % len(keys)]] += 1
        k += 1
    return {key: int(c) for key, c in zip(keys, counts)}


# ------------------------------------------------------------------ districts


def build_districts(source: Path | None = None) -> list[District]:
    source = source or FIXTURES / SOURCE
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    real = {}
    for f in sorted(data["features"], key=lambda f: str(f["properties"]["adcode"])):
        p = f["properties"]
        real[str(p["adcode"])] = (p["name"], shapely.make_valid(shape(f["geometry"])), tuple(p["anchor"]))

    # Zones first: they get priority where host shapes overlap.
    zones = {}
    for i, (code, (name, hosts, box, _dens)) in enumerate(sorted(ZONES.items())):
        cut = _jittered_box(box, _rng(9, i))
        zones[code] = _clean(shapely.intersection(cut, shapely.union_all([real[h][1] for h in hosts])))

    taken = shapely.union_all(list(zones.values()))
    pops = {code: POPULATION_WAN[code] * 10_000 for code in real}
    zone_pop = {code: 0.0 for code in zones}
    for code, (name, hosts, _box, density) in sorted(ZONES.items()):
        for h in hosts:
            share = shapely.area(shapely.intersection(zones[code], real[h][1])) / real[h][1].area
            frac = min(0.7, density * share)
            zone_pop[code] += pops[h] * frac
            pops[h] *= 1 - frac

    out: list[District] = []
    for code, (name, geom, anchor) in real.items():
        # Subtracting what is already drawn removes overlaps in the simplified source.
        drawn = _clean(shapely.difference(geom, taken))
        taken = shapely.union(taken, drawn)
        kind = "县" if name.endswith("县") else "区"
        out.append(District(code, name, kind, drawn, _anchor(drawn, anchor), pops[code]))
    for code, geom in zones.items():
        name, hosts, _box, _dens = ZONES[code]
        out.append(District(code, name, "功能区", geom, _anchor(geom, None), zone_pop[code], hosts=",".join(hosts)))
    out.sort(key=lambda d: d.code)

    weights = {}
    for d in out:
        if d.code not in FIXED_STREETS:
            weights[d.code] = (d.geom.area ** 0.6) * (d.population ** 0.4)
    rest = TARGET_STREETS - sum(FIXED_STREETS.values())
    counts = {**_largest_remainder(weights, rest, 5), **FIXED_STREETS}
    for d in out:
        d.n_streets = counts[d.code]
    return out


def _anchor(geom, preferred):
    if preferred is not None and shapely.contains_xy(geom, *preferred):
        return (float(preferred[0]), float(preferred[1]))
    main = max(shapely.get_parts(geom), key=lambda p: p.area)
    p = shapely.point_on_surface(main)
    return (round(p.x, 5), round(p.y, 5))


# ------------------------------------------------------------------ streets


def _kind_quota(d: District) -> tuple[float, float]:
    """Fractions of 街道 and of 乡 among a district's streets."""
    if d.code == "500103":
        return 1.0, 0.0
    if d.code in CORE:
        return 0.75, 0.0
    if d.code in INNER:
        return 0.5, 0.0
    if d.kind == "县":
        return 0.12, 0.3
    return 0.25, 0.05


def _seed_points(d: District, named: list[tuple[str, float, float]], rng):
    """Seeds of the Voronoi partition: named streets first, then dart throwing
    with more density near the district seat (small urban streets)."""
    geom = d.geom
    shapely.prepare(geom)
    coslat = math.cos(math.radians(d.anchor[1]))
    area = geom.area * coslat
    spacing = 0.55 * math.sqrt(area / d.n_streets)

    names, pts = [], []
    for name, lon, lat in named[: d.n_streets]:
        # A position just outside the simplified shape moves to the nearest
        # free spot inside, so the name stays roughly where it belongs.
        radius = 0.002
        while not _free(geom, pts, lon, lat, coslat, 0.3 * spacing):
            lon = lon + rng.uniform(-radius, radius)
            lat = lat + rng.uniform(-radius, radius)
            radius *= 1.05
        names.append(name)
        pts.append((float(lon), float(lat)))

    seat = pts[0] if pts else d.anchor
    bias = 0.0 if d.code in CORE else (3.0 if d.code in INNER else 6.0)
    sigma = 0.25 * math.sqrt(area)
    minx, miny, maxx, maxy = geom.bounds
    relax = 1.0
    batches = 0
    while len(pts) < d.n_streets:
        xs = rng.uniform(minx, maxx, 256)
        ys = rng.uniform(miny, maxy, 256)
        gate = rng.random(256)
        inside = shapely.contains_xy(geom, xs, ys)
        for x, y, g, ok in zip(xs, ys, gate, inside):
            if not ok or len(pts) >= d.n_streets:
                continue
            dist = math.hypot((x - seat[0]) * coslat, y - seat[1])
            density = 1.0 + bias * math.exp(-((dist / sigma) ** 2))
            if g > density / (1.0 + bias):
                continue
            rmin = relax * spacing / math.sqrt(density)
            arr = np.asarray(pts) if pts else np.empty((0, 2))
            if len(arr) and np.min(np.hypot((arr[:, 0] - x) * coslat, arr[:, 1] - y)) < rmin:
                continue
            names.append(None)
            pts.append((float(x), float(y)))
        batches += 1
        if batches % 8 == 0:
            relax *= 0.85
    return names, np.asarray(pts), seat


def _free(geom, pts, lon, lat, coslat, gap) -> bool:
    if not shapely.contains_xy(geom, lon, lat):
        return False
    return not pts or min(math.hypot((lon - x) * coslat, lat - y) for x, y in pts) >= gap


def _partition(geom, pts):
    """Voronoi cells of ``pts`` clipped to ``geom``; detached fragments of a cell
    are handed to the neighbour they share most border with."""
    minx, miny, maxx, maxy = geom.bounds
    frame = shapely.box(minx - 1, miny - 1, maxx + 1, maxy + 1)
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame, ordered=True)
    cells = list(shapely.intersection(np.asarray(shapely.get_parts(cells)), geom))
    seeds = shapely.points(pts)
    for _ in range(2):
        moved = False
        for i, cell in enumerate(cells):
            parts = list(shapely.get_parts(cell))
            if len(parts) < 2:
                continue
            home = [k for k, p in enumerate(parts) if shapely.intersects(p, seeds[i])]
            keep = home[0] if home else max(range(len(parts)), key=lambda k: parts[k].area)
            kept = parts[keep]
            for k, frag in enumerate(parts):
                if k == keep:
                    continue
                best, best_len = None, 0.0
                for j, other in enumerate(cells):
                    if j == i or not shapely.intersects(frag.envelope, other.envelope):
                        continue
                    shared = shapely.length(shapely.intersection(frag.boundary, other.boundary))
                    if shared > best_len:
                        best, best_len = j, shared
                if best is None:
                    kept = shapely.union(kept, frag)  # an island with no other neighbour stays
                    continue
                cells[best] = _clean(shapely.union(cells[best], frag))
                moved = True
            cells[i] = _clean(kept)
        if not moved:
            break
    return cells


def _name(rng, used: set[str], kind: str, reserved: set[str]) -> str:
    suffix = {"街道": "街道", "镇": "镇", "乡": "乡"}[kind]
    for attempt in range(1000):
        a = FIRST[rng.integers(len(FIRST))]
        b = SECOND[rng.integers(len(SECOND))]
        if attempt > 50 or rng.random() < 0.2:
            mid = FIRST[rng.integers(len(FIRST))]
            base = a + mid + b
        else:
            base = a + b
        name = base + suffix
        if name not in used and name not in reserved and a != b:
            used.add(name)
            return name
    raise RuntimeError("name space exhausted")  # cannot happen with these syllable lists


def _lattice(poly, target: int):
    """Choose a square (in km) lattice over ``poly`` whose overlapping cells number
    about ``target``; return (x0, y0, dx, dy, nx, ny, occupancy bool array)."""
    minx, miny, maxx, maxy = poly.bounds
    coslat = math.cos(math.radians((miny + maxy) / 2))
    shapely.prepare(poly)
    area = poly.area * coslat

    def boxes(s):
        dx, dy = s / coslat, s
        nx = max(1, math.ceil((maxx - minx) / dx))
        ny = max(1, math.ceil((maxy - miny) / dy))
        i = np.tile(np.arange(nx), ny)
        j = np.repeat(np.arange(ny), nx)
        b = shapely.box(minx + i * dx, miny + j * dy, minx + (i + 1) * dx, miny + (j + 1) * dy)
        return dx, dy, nx, ny, b

    def count(s):
        return int(shapely.intersects(poly, boxes(s)[4]).sum())

    lo, hi = math.sqrt(area / target) * 0.5, math.sqrt(area / target) * 4.0
    best_s, best_err = hi, None
    for _ in range(16):
        mid = math.sqrt(lo * hi)
        c = count(mid)
        err = abs(c - target)
        if best_err is None or err < best_err or (err == best_err and mid > best_s):
            best_s, best_err = mid, err
        if c > target:
            lo = mid
        else:
            hi = mid
        if err == 0:
            break
    dx, dy, nx, ny, b = boxes(best_s)
    hit = shapely.intersects(poly, b)
    inner = shapely.contains_properly(poly, b)
    edge = hit & ~inner
    occ = inner.copy()
    if edge.any():
        occ[edge] = shapely.area(shapely.intersection(b[edge], poly)) > 0
    if occ.sum() > MAX_GRIDS_PER_STREET:
        raise RuntimeError("lattice too fine")  # guarded by the grid target cap
    return minx, miny, dx, dy, nx, ny, occ


# Grid households and population: integer arithmetic only, so the numpy
# (generator, bulk) and pure Python (lazy, one grid) versions agree exactly.
_P = 2_147_483_647


def grid_hash(street_code, k):
    """Two pseudo-random integers in [0, 2^31) for grid ``k`` (1-based) of a street."""
    s = np.asarray(street_code, dtype=np.int64) if isinstance(street_code, np.ndarray) else int(street_code)
    h = (s % _P * 40_503 + k * 2_654_435 + 12_345) % _P
    h = h * 48_271 % _P
    h = h * 48_271 % _P
    h2 = h * 16_807 % _P
    h2 = h2 * 16_807 % _P
    return h, h2


def grid_values(street_code, k, base_hh, ppl):
    """(households, population) of grid ``k``; works on numpy arrays or ints."""
    h1, h2 = grid_hash(street_code, k)
    w = 60 + h1 % 81  # 60..140 % of the street's base
    hh = base_hh * w // 100
    pct = ppl - 30 + h2 % 61  # people per household ×100
    if isinstance(hh, np.ndarray):
        hh = np.clip(hh, 1, MAX_HOUSEHOLDS)
        pop = np.minimum(hh * pct // 100, MAX_POPULATION)
        pop = np.maximum(pop, hh)
    else:
        hh = min(max(hh, 1), MAX_HOUSEHOLDS)
        pop = max(min(hh * pct // 100, MAX_POPULATION), hh)
    return hh, pop


def build_streets(d: District, reserved: set[str], people_per_grid: float) -> list[dict]:
    rng = _rng(int(d.code))
    named = REAL_STREETS.get(d.code, [])
    names, pts, seat = _seed_points(d, named, rng)
    cells = _partition(d.geom, pts)

    n = len(cells)
    coslat = math.cos(math.radians(seat[1]))
    dist = np.hypot((pts[:, 0] - seat[0]) * coslat, pts[:, 1] - seat[1])
    jd_frac, xiang_frac = _kind_quota(d)
    kinds: list[str | None] = [None] * n
    for i, nm in enumerate(names):
        if nm:
            kinds[i] = "街道" if nm.endswith("街道") else nm[-1]
    n_jd = max(round(jd_frac * n), sum(k == "街道" for k in kinds))
    n_xiang = round(xiang_frac * n)
    free = [i for i in np.argsort(dist, kind="stable") if kinds[i] is None]
    left_jd = n_jd - sum(k == "街道" for k in kinds)
    for rank, i in enumerate(free):
        if rank < left_jd:
            kinds[i] = "街道"
        elif rank >= len(free) - n_xiang:
            kinds[i] = "乡"
        else:
            kinds[i] = "镇"

    used = {nm for nm in names if nm}
    final_names = [nm if nm else _name(rng, used, kinds[i], reserved) for i, nm in enumerate(names)]

    # Population: urban streets are small but dense.
    areas_km2 = np.array([c.area for c in cells]) * 111.32**2 * coslat
    dens = np.array([{"街道": 6.0, "镇": 1.0, "乡": 0.5}[k] for k in kinds])
    w = areas_km2**0.4 * dens * rng.lognormal(0.0, 0.3, n)
    pops = d.population * w / w.sum()

    rows = []
    for i, cell in enumerate(cells):
        code = f"{d.code}{i + 1:03d}"
        ppl = int(rng.integers(235, 285))  # people per household ×100
        base_cap = MAX_HOUSEHOLDS * 100 // 140  # so the 140 % grids stay under the limit
        need = pops[i] / (base_cap * ppl / 100)
        target = int(min(MAX_GRIDS_PER_STREET * 0.8, max(math.ceil(need * 1.05), round(pops[i] / people_per_grid), 3)))
        x0, y0, dx, dy, nx, ny, occ = _lattice(cell, target)
        ng = int(occ.sum())
        base_hh = int(min(base_cap, max(20, round(pops[i] / ng / (ppl / 100)))))
        ks = np.arange(1, ng + 1, dtype=np.int64)
        hh, pop = grid_values(np.full(ng, int(code), dtype=np.int64), ks, base_hh, ppl)
        x, y = (float(pts[i, 0]), float(pts[i, 1]))
        if not shapely.contains_xy(cell, x, y):
            p = shapely.point_on_surface(cell)
            x, y = p.x, p.y
        rows.append(
            {
                "code": code,
                "name": final_names[i],
                "kind": kinds[i],
                "district": d.code,
                "population": int(pop.sum()),
                "households": int(hh.sum()),
                "lon": round(x, 6),
                "lat": round(y, 6),
                "geometry": shapely.to_wkb(cell, byte_order=1),
                "x0": x0,
                "y0": y0,
                "dx": dx,
                "dy": dy,
                "nx": nx,
                "ny": ny,
                "grids": ng,
                "occupancy": np.packbits(occ).tobytes(),
                "base_hh": base_hh,
                "ppl": ppl,
            }
        )
    return rows


# ------------------------------------------------------------------ output

STREET_SCHEMA = pa.schema(
    [
        ("code", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("district", pa.string()),
        ("population", pa.int64()),
        ("households", pa.int64()),
        ("lon", pa.float64()),
        ("lat", pa.float64()),
        ("geometry", pa.binary()),
        ("x0", pa.float64()),
        ("y0", pa.float64()),
        ("dx", pa.float64()),
        ("dy", pa.float64()),
        ("nx", pa.int32()),
        ("ny", pa.int32()),
        ("grids", pa.int32()),
        ("occupancy", pa.binary()),
        ("base_hh", pa.int32()),
        ("ppl", pa.int32()),
    ]
)
DISTRICT_SCHEMA = pa.schema(
    [
        ("code", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("hosts", pa.string()),
        ("population", pa.int64()),
        ("households", pa.int64()),
        ("lon", pa.float64()),
        ("lat", pa.float64()),
        ("geometry", pa.binary()),
    ]
)


def generate(districts: list[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """Build the district and street tables; ``districts`` limits streets to some
    districts (the district table is always complete). Pure: writes nothing."""
    ds = build_districts()
    reserved = {name for rows in REAL_STREETS.values() for name, _x, _y in rows}
    total_pop = sum(d.population for d in ds)
    people_per_grid = total_pop / TARGET_GRIDS
    streets: list[dict] = []
    drows = []
    for d in ds:
        if districts is not None and d.code not in districts:
            continue
        rows = build_streets(d, reserved, people_per_grid)
        streets.extend(rows)
        drows.append(
            {
                "code": d.code,
                "name": d.name,
                "kind": d.kind,
                "hosts": d.hosts,
                "population": sum(r["population"] for r in rows),
                "households": sum(r["households"] for r in rows),
                "lon": d.anchor[0],
                "lat": d.anchor[1],
                "geometry": shapely.to_wkb(d.geom, byte_order=1),
            }
        )
    meta = {b"cqgov.format": FORMAT_VERSION.encode(), b"cqgov.seed": str(SEED).encode()}
    dt = pa.Table.from_pylist(drows, schema=DISTRICT_SCHEMA).replace_schema_metadata(meta)
    st = pa.Table.from_pylist(streets, schema=STREET_SCHEMA).replace_schema_metadata(meta)
    return dt, st


def write(out_dir: Path | None = None) -> tuple[Path, Path]:
    out_dir = Path(out_dir or FIXTURES)
    dt, st = generate()
    paths = (out_dir / DISTRICTS_FILE, out_dir / STREETS_FILE)
    for table, path in zip((dt, st), paths):
        pq.write_table(table, path, compression="zstd", compression_level=9, use_dictionary=["district", "kind"])
    return paths


def main() -> None:
    import time

    t = time.perf_counter()
    paths = write()
    st = pq.read_table(paths[1])
    grids = sum(st.column("grids").to_pylist())
    pop = sum(st.column("population").to_pylist())
    print(f"{st.num_rows} streets, {grids} grids, {pop} people in {time.perf_counter() - t:.1f}s")
    for p in paths:
        print(f"  {p} ({p.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
