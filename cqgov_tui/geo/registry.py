"""The jurisdiction registry: city → 41 districts → 1,031 streets → ~64,000 lazy grids.

Loaded once from the generated fixtures (``get_registry()``). Streets are
real polygons; a grid is one lattice cell of its street, so grids cost
nothing until asked for, and point lookup is an STRtree query over street
polygons followed by lattice arithmetic.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow.parquet as pq
import shapely

from ..domain.entities import Jurisdiction, Level
from ..errors import BadInput, UnknownCode
from . import generate as gen

CITY_ANCHOR = (106.5505, 29.5630)  # 解放碑 area, inside 渝中区


@dataclass(frozen=True)
class Location:
    district: Jurisdiction
    street: Jurisdiction
    grid: Jurisdiction

    @property
    def code(self) -> str:
        return self.grid.code


@dataclass(frozen=True)
class Locations:
    """Result of ``locate_many``: per point the street row (-1 = outside) and the
    1-based grid number within that street (0 = outside)."""

    street_index: np.ndarray
    grid_number: np.ndarray
    _registry: "Registry"

    def __len__(self) -> int:
        return len(self.street_index)

    @property
    def found(self) -> np.ndarray:
        return self.street_index >= 0

    def street_codes(self) -> list[str | None]:
        codes = self._registry._street_codes
        return [codes[i] if i >= 0 else None for i in self.street_index.tolist()]

    def district_codes(self) -> list[str | None]:
        dcodes = self._registry._district_codes
        sd = self._registry._street_district
        return [dcodes[sd[i]] if i >= 0 else None for i in self.street_index.tolist()]

    def grid_codes(self) -> list[str | None]:
        codes = self._registry._street_codes
        return [
            f"{codes[i]}{k:03d}" if i >= 0 else None
            for i, k in zip(self.street_index.tolist(), self.grid_number.tolist())
        ]


class Registry:
    """All jurisdictions; read-only after construction, safe to share between threads."""

    def __init__(self, fixtures_dir: Path | str | None = None):
        base = Path(fixtures_dir or gen.FIXTURES)
        try:
            # ParquetFile.read, not read_table: the same table without importing pyarrow.dataset
            # (a fifth of a second on every start of the console and the CLI).
            dt = pq.ParquetFile(base / gen.DISTRICTS_FILE).read()
            st = pq.ParquetFile(base / gen.STREETS_FILE).read()
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read jurisdiction fixtures in {base}: {exc}") from exc
        d = dt.to_pydict()
        s = st.to_pydict()

        self._district_codes: list[str] = d["code"]
        self._district_pos = {c: i for i, c in enumerate(self._district_codes)}
        self._district_geoms = shapely.from_wkb(np.asarray(d["geometry"], dtype=object))

        self._street_codes: list[str] = s["code"]
        self._street_pos = {c: i for i, c in enumerate(self._street_codes)}
        self._street_district = np.array([self._district_pos[c] for c in s["district"]], dtype=np.int32)
        self._polys = shapely.from_wkb(np.asarray(s["geometry"], dtype=object))
        shapely.prepare(self._polys)
        self._tree = shapely.STRtree(self._polys)

        self._x0 = np.asarray(s["x0"], dtype=np.float64)
        self._y0 = np.asarray(s["y0"], dtype=np.float64)
        self._dx = np.asarray(s["dx"], dtype=np.float64)
        self._dy = np.asarray(s["dy"], dtype=np.float64)
        self._nx = np.asarray(s["nx"], dtype=np.int64)
        self._ny = np.asarray(s["ny"], dtype=np.int64)
        self._grids = np.asarray(s["grids"], dtype=np.int64)
        self._base_hh = np.asarray(s["base_hh"], dtype=np.int64)
        self._ppl = np.asarray(s["ppl"], dtype=np.int64)
        # One flat occupancy array over all lattices; rank[f] = grids before cell f.
        sizes = self._nx * self._ny
        self._off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        occ = [
            np.unpackbits(np.frombuffer(b, dtype=np.uint8), count=int(n)).astype(bool)
            for b, n in zip(s["occupancy"], sizes)
        ]
        self._occ = np.concatenate(occ)
        self._rank = (np.cumsum(self._occ) - self._occ).astype(np.int64)
        if not np.array_equal(self._rank[self._off + sizes - 1] + self._occ[self._off + sizes - 1] - self._rank[self._off], self._grids):
            raise BadInput(f"jurisdiction fixtures in {base} are inconsistent (grid counts vs lattices)")

        self.streets: dict[str, Jurisdiction] = {}
        for i, code in enumerate(self._street_codes):
            self.streets[code] = Jurisdiction(
                code=code,
                name=s["name"][i],
                level=Level.STREET,
                parent_code=s["district"][i],
                households=int(s["households"][i]),
                population=int(s["population"][i]),
                lon=float(s["lon"][i]),
                lat=float(s["lat"][i]),
                geometry_ref=f"street:{code}",
                kind=s["kind"][i],
            )
        self.districts: dict[str, Jurisdiction] = {}
        self._district_streets: dict[str, list[str]] = {c: [] for c in self._district_codes}
        for code, district in zip(self._street_codes, s["district"]):
            self._district_streets[district].append(code)
        for i, code in enumerate(self._district_codes):
            self.districts[code] = Jurisdiction(
                code=code,
                name=d["name"][i],
                level=Level.DISTRICT,
                parent_code=gen.CITY_CODE,
                households=int(d["households"][i]),
                population=int(d["population"][i]),
                lon=float(d["lon"][i]),
                lat=float(d["lat"][i]),
                geometry_ref=f"district:{code}",
                kind=d["kind"][i],
            )
        self.city = Jurisdiction(
            code=gen.CITY_CODE,
            name=gen.CITY_NAME,
            level=Level.CITY,
            parent_code=None,
            households=sum(j.households for j in self.districts.values()),
            population=sum(j.population for j in self.districts.values()),
            lon=CITY_ANCHOR[0],
            lat=CITY_ANCHOR[1],
            geometry_ref=f"city:{gen.CITY_CODE}",
            kind="市",
        )
        self.zone_hosts = {c: h.split(",") for c, h in zip(self._district_codes, d["hosts"]) if h}
        bounds = shapely.total_bounds(self._polys)
        self.bounds: tuple[float, float, float, float] = tuple(float(v) for v in bounds)
        self._by_name: dict[str, list[Jurisdiction]] = {}
        for j in [self.city, *self.districts.values(), *self.streets.values()]:
            self._by_name.setdefault(j.name, []).append(j)
        self._city_geom = None
        self._lock = threading.Lock()
        self._grid_cache: dict[str, Jurisdiction] = {}

    # ------------------------------------------------------------ codes

    def level_of(self, code: str) -> Level:
        """Level of a well-formed, existing code (raises ``UnknownCode`` otherwise)."""
        code = self._norm(code)
        if code == gen.CITY_CODE:
            return Level.CITY
        if code in self.districts:
            return Level.DISTRICT
        if code in self.streets:
            return Level.STREET
        if len(code) in (6, 9) and code.isdigit():
            raise UnknownCode(f"unknown {'district' if len(code) == 6 else 'street'} code {code!r}")
        self._grid_parts(code)
        return Level.GRID

    @staticmethod
    def _norm(code) -> str:
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        if not isinstance(code, str):
            raise UnknownCode(f"jurisdiction code must be a string of digits, got {type(code).__name__}")
        return code.strip()

    def _grid_parts(self, code: str) -> tuple[int, int]:
        """(street row, 1-based grid number) of a grid code."""
        if len(code) != 12 or not code.isdigit():
            raise UnknownCode(f"unknown jurisdiction code {code!r} (expected 6, 9 or 12 digits, e.g. 500108, 500108001, 500108001007)")
        street = self._street_pos.get(code[:9])
        if street is None:
            raise UnknownCode(f"unknown jurisdiction code {code!r}: no street {code[:9]}")
        k = int(code[9:])
        n = int(self._grids[street])
        if not 1 <= k <= n:
            name = self.streets[code[:9]].name
            raise UnknownCode(f"unknown grid code {code!r}: {name} has grids 001–{n:03d}")
        return street, k

    def _cell_of(self, street: int, k: int) -> tuple[int, int]:
        off, size = int(self._off[street]), int(self._nx[street] * self._ny[street])
        flat = int(np.flatnonzero(self._occ[off : off + size])[k - 1])
        nx = int(self._nx[street])
        return flat % nx, flat // nx

    def _cell_box(self, street: int, i: int, j: int):
        x0, y0, dx, dy = self._x0[street], self._y0[street], self._dx[street], self._dy[street]
        return shapely.box(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy)

    def grid_values(self, code: str) -> tuple[int, int]:
        """(households, population) of a grid, derived from its code."""
        street, k = self._grid_parts(self._norm(code))
        hh, pop = gen.grid_values(code[:9], k, int(self._base_hh[street]), int(self._ppl[street]))
        return int(hh), int(pop)

    def _grid(self, code: str, anchor: tuple[float, float] | None = None) -> Jurisdiction:
        cached = self._grid_cache.get(code)
        if cached is not None:
            return cached
        street, k = self._grid_parts(code)
        i, j = self._cell_of(street, k)
        if anchor is None:
            anchor = self._grid_anchor(street, i, j)
        hh, pop = gen.grid_values(code[:9], k, int(self._base_hh[street]), int(self._ppl[street]))
        parent = self._street_codes[street]
        grid = Jurisdiction(
            code=code,
            name=f"{self.streets[parent].name}第{k}网格",
            level=Level.GRID,
            parent_code=parent,
            households=int(hh),
            population=int(pop),
            lon=anchor[0],
            lat=anchor[1],
            geometry_ref=f"grid:{parent}/{i},{j}",
            kind="网格",
        )
        with self._lock:
            if len(self._grid_cache) > 20_000:  # bounded: grids are cheap to rebuild
                self._grid_cache.clear()
            self._grid_cache[code] = grid
        return grid

    def _grid_anchor(self, street: int, i: int, j: int) -> tuple[float, float]:
        cx = self._x0[street] + (i + 0.5) * self._dx[street]
        cy = self._y0[street] + (j + 0.5) * self._dy[street]
        if shapely.contains_xy(self._polys[street], cx, cy):
            return (round(float(cx), 6), round(float(cy), 6))
        p = shapely.point_on_surface(shapely.intersection(self._cell_box(street, i, j), self._polys[street]))
        return (round(p.x, 6), round(p.y, 6))

    # ------------------------------------------------------------ tree

    def get(self, code: str) -> Jurisdiction:
        code = self._norm(code)
        if code == gen.CITY_CODE:
            return self.city
        j = self.districts.get(code) or self.streets.get(code)
        if j is not None:
            return j
        if len(code) in (6, 9) and code.isdigit():
            what = "district" if len(code) == 6 else "street"
            raise UnknownCode(f"unknown {what} code {code!r}")
        return self._grid(code)

    def children(self, code: str) -> list[Jurisdiction]:
        level = self.level_of(code)
        code = self._norm(code)
        if level is Level.CITY:
            return list(self.districts.values())
        if level is Level.DISTRICT:
            return [self.streets[c] for c in self._district_streets[code]]
        if level is Level.STREET:
            return [self._grid(g) for g in self.grid_codes(code)]
        return []

    def grid_codes(self, street_code: str) -> list[str]:
        street_code = self._norm(street_code)
        if street_code not in self.streets:
            raise UnknownCode(f"unknown street code {street_code!r}")
        n = int(self._grids[self._street_pos[street_code]])
        return [f"{street_code}{k:03d}" for k in range(1, n + 1)]

    def parent(self, code: str) -> Jurisdiction | None:
        j = self.get(code)
        return None if j.parent_code is None else self.get(j.parent_code)

    def ancestors(self, code: str) -> list[Jurisdiction]:
        """From the city down to the immediate parent (empty for the city)."""
        out = []
        p = self.parent(code)
        while p is not None:
            out.append(p)
            p = self.parent(p.code)
        return out[::-1]

    def district_of(self, code: str) -> Jurisdiction | None:
        """The district a code lies in (itself for a district, None for the city)."""
        code = self._norm(code)
        level = self.level_of(code)
        if level is Level.CITY:
            return None
        return self.districts[code[:6]]

    def find_by_name(self, name: str, level: Level | None = None) -> list[Jurisdiction]:
        """Exact name matches (city, districts, streets); if none, names containing ``name``."""
        text = (name or "").strip()
        if not text:
            raise BadInput("name to find must not be empty")
        found = list(self._by_name.get(text, []))
        if not found:
            found = [j for n, js in self._by_name.items() if text in n for j in js]
        if level is not None:
            found = [j for j in found if j.level is level]
        return sorted(found, key=lambda j: j.code)

    def grid_count(self, code: str | None = None) -> int:
        if code is None:
            return int(self._grids.sum())
        level = self.level_of(code)
        code = self._norm(code)
        if level is Level.CITY:
            return int(self._grids.sum())
        if level is Level.DISTRICT:
            return int(self._grids[self._street_district == self._district_pos[code]].sum())
        if level is Level.STREET:
            return int(self._grids[self._street_pos[code]])
        return 1

    # ------------------------------------------------------------ geometry

    def geometry(self, code: str):
        level = self.level_of(code)
        code = self._norm(code)
        if level is Level.CITY:
            if self._city_geom is None:
                self._city_geom = shapely.union_all(self._district_geoms)
            return self._city_geom
        if level is Level.DISTRICT:
            return self._district_geoms[self._district_pos[code]]
        if level is Level.STREET:
            return self._polys[self._street_pos[code]]
        return self._grid_geometry(code)

    @lru_cache(maxsize=4096)
    def _grid_geometry(self, code: str):
        street, k = self._grid_parts(code)
        i, j = self._cell_of(street, k)
        return shapely.intersection(self._cell_box(street, i, j), self._polys[street])

    def street_geometries(self) -> tuple[list[str], np.ndarray]:
        """All street codes and polygons (row order), for renderers and benchmarks."""
        return list(self._street_codes), self._polys

    # ------------------------------------------------------------ lookup

    def _check_coord(self, lon, lat) -> tuple[float, float]:
        try:
            x, y = float(lon), float(lat)
        except (TypeError, ValueError):
            raise BadInput(f"coordinates must be numbers, got longitude {lon!r}, latitude {lat!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise BadInput(f"coordinates must be finite, got longitude {x}, latitude {y}")
        if not -90.0 <= y <= 90.0:
            hint = " (longitude and latitude swapped?)" if -90.0 <= x <= 90.0 else ""
            raise BadInput(f"latitude {y} is out of range -90..90{hint}")
        if not -180.0 <= x <= 180.0:
            raise BadInput(f"longitude {x} is out of range -180..180")
        return x, y

    def locate(self, lon: float, lat: float) -> Location | None:
        """The grid, street and district at a WGS84 point; None outside Chongqing."""
        x, y = self._check_coord(lon, lat)
        res = self._locate_arrays(np.array([x]), np.array([y]))
        s, k = int(res[0][0]), int(res[1][0])
        if s < 0:
            return None
        street_code = self._street_codes[s]
        street = self.streets[street_code]
        grid = self._grid(f"{street_code}{k:03d}")
        return Location(self.districts[street.parent_code], street, grid)

    def locate_many(self, lons: Iterable[float], lats: Iterable[float]) -> Locations:
        """Vectorised ``locate``; points outside Chongqing get street -1, grid 0."""
        xs = np.asarray(lons, dtype=np.float64).ravel()
        ys = np.asarray(lats, dtype=np.float64).ravel()
        if xs.shape != ys.shape:
            raise BadInput(f"got {xs.size} longitudes but {ys.size} latitudes")
        bad = ~(np.isfinite(xs) & np.isfinite(ys))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BadInput(f"{int(bad.sum())} non-finite coordinate(s), first at index {i}: ({xs[i]}, {ys[i]})")
        street, grid = self._locate_arrays(xs, ys)
        return Locations(street, grid, self)

    def _locate_arrays(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = xs.size
        street = np.full(n, -1, dtype=np.int64)
        minx, miny, maxx, maxy = self.bounds
        idx = np.flatnonzero((xs >= minx) & (xs <= maxx) & (ys >= miny) & (ys <= maxy))
        if idx.size:
            px, py = xs[idx], ys[idx]
            # bbox candidates from the tree, then exact tests on prepared polygons
            pi, ti = self._tree.query(shapely.points(px, py))
            hit = shapely.intersects_xy(self._polys[ti], px[pi], py[pi])
            pi, ti = pi[hit], ti[hit]
            if pi.size:
                # on a shared border two streets match: the lower row wins, deterministically
                order = np.lexsort((ti, pi))
                pi, ti = pi[order], ti[order]
                first = np.ones(pi.size, dtype=bool)
                first[1:] = pi[1:] != pi[:-1]
                street[idx[pi[first]]] = ti[first]
        grid = np.zeros(n, dtype=np.int64)
        m = np.flatnonzero(street >= 0)
        if m.size:
            grid[m] = self._grid_numbers(street[m], xs[m], ys[m])
        return street, grid

    def _grid_numbers(self, s: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        nx, ny = self._nx[s], self._ny[s]
        i = np.clip(np.floor((xs - self._x0[s]) / self._dx[s]).astype(np.int64), 0, nx - 1)
        j = np.clip(np.floor((ys - self._y0[s]) / self._dy[s]).astype(np.int64), 0, ny - 1)
        flat = self._off[s] + j * nx + i
        k = self._rank[flat] - self._rank[self._off[s]] + 1
        empty = ~self._occ[flat]
        for q in np.flatnonzero(empty):  # only points exactly on a cell edge at the street border
            k[q] = self._nearest_grid(int(s[q]), float(xs[q]), float(ys[q]))
        return k

    def _nearest_grid(self, street: int, x: float, y: float) -> int:
        off, nx, ny = int(self._off[street]), int(self._nx[street]), int(self._ny[street])
        cells = np.flatnonzero(self._occ[off : off + nx * ny])
        ci, cj = cells % nx, cells // nx
        cx = self._x0[street] + (ci + 0.5) * self._dx[street]
        cy = self._y0[street] + (cj + 0.5) * self._dy[street]
        return int(np.argmin(np.hypot(cx - x, cy - y))) + 1

    def classify(self, code: str, xs: np.ndarray, ys: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The children of ``code`` and, per point, the index of the child holding
        it (-1 if none) — the city's districts, a district's streets, a street's grids."""
        level = self.level_of(code)
        code = self._norm(code)
        street, grid = self._locate_arrays(np.asarray(xs, dtype=np.float64).ravel(), np.asarray(ys, dtype=np.float64).ravel())
        found = street >= 0
        ids = np.full(street.shape, -1, dtype=np.int64)
        if level is Level.CITY:
            ids[found] = self._street_district[street[found]]
            return list(self._district_codes), ids
        if level is Level.DISTRICT:
            rows = np.array([self._street_pos[c] for c in self._district_streets[code]], dtype=np.int64)
            pos = np.full(len(self._street_codes), -1, dtype=np.int64)
            pos[rows] = np.arange(rows.size)
            ids[found] = pos[street[found]]
            return list(self._district_streets[code]), ids
        if level is Level.STREET:
            row = self._street_pos[code]
            mine = street == row
            ids[mine] = grid[mine] - 1
            return self.grid_codes(code), ids
        row, k = self._grid_parts(code)
        ids[(street == row) & (grid == k)] = 0
        return [code], ids

    # ------------------------------------------------------------ sampling

    def random_point(self, code: str, rng=None) -> tuple[float, float]:
        """A point strictly inside a jurisdiction that ``locate`` maps back to it.

        ``rng`` is anything with ``.random()`` (``numpy.random.Generator``,
        ``random.Random``); None uses a fresh numpy generator.
        """
        if rng is None:
            rng = np.random.default_rng()
        level = self.level_of(code)
        code = self._norm(code)
        if level is Level.CITY or level is Level.DISTRICT:
            # pick a street by area, then a point in it
            streets = self._street_codes if level is Level.CITY else self._district_streets[code]
            rows = np.array([self._street_pos[c] for c in streets])
            w = np.cumsum(shapely.area(self._polys[rows]))
            row = int(rows[min(int(np.searchsorted(w, rng.random() * w[-1])), len(rows) - 1)])
            return self.random_point(self._street_codes[row], rng)
        if level is Level.STREET:
            row = self._street_pos[code]
            poly = self._polys[row]
            minx, miny, maxx, maxy = poly.bounds
            for _ in range(10_000):
                x = minx + (maxx - minx) * rng.random()
                y = miny + (maxy - miny) * rng.random()
                if shapely.contains_xy(poly, x, y):
                    return (x, y)
            p = shapely.point_on_surface(poly)
            return (p.x, p.y)
        street, k = self._grid_parts(code)
        i, j = self._cell_of(street, k)
        geom = self._grid_geometry(code)
        minx, miny, maxx, maxy = geom.bounds
        poly = self._polys[street]
        for _ in range(10_000):
            x = minx + (maxx - minx) * rng.random()
            y = miny + (maxy - miny) * rng.random()
            if shapely.contains_xy(poly, x, y) and self._grid_numbers(np.array([street]), np.array([x]), np.array([y]))[0] == k:
                return (x, y)
        p = shapely.point_on_surface(geom)
        return (p.x, p.y)


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loaded from ``fixtures/`` on first use."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
    return _registry
