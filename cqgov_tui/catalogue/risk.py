"""Risk points (风险点) and sensors (物联感知), generated deterministically from ``risk_points.yaml``.

江北区 gets its 2,083 septic-tank methane monitors, 九龙坡区 its 40 categories
of 4,508 risk points, a few other districts water gauges, smoke detectors,
landslide monitors and dust/noise stations.  Each point lies inside a street
of its district, on a grid that ``registry.locate`` finds again at the same
coordinates.  Generation needs the geography, so it runs on first access to
``Catalogue.risk_points`` / ``Catalogue.sensors`` and is cached.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterator

from ..domain.colour import Colour
from ..domain.entities import Category, RiskPoint, Sensor
from ..errors import BadInput
from . import SensorKind

_DISTRICT = re.compile(r"^50\d{4}$")
# The register's inherent grade (固有风险): most points low, some moderate. The register alone never
# makes a point orange or red — that takes data (an alarm, an open hazard, a failed inspection; see
# ``engine.risk_grades``). The weights keep one draw per point, so codes and places are unchanged.
_COLOUR_WEIGHTS = ((Colour.GREEN, 66), (Colour.BLUE, 24), (Colour.YELLOW, 10), (Colour.ORANGE, 0), (Colour.RED, 0))
# 责任人: each point's responsible person, drawn from the code (the register names one per point).
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何罗高林谭冉向邓"
_GIVEN = ("建国", "志强", "秀英", "桂兰", "明", "丽", "军", "芳", "勇", "静", "磊", "敏", "洋", "艳", "涛", "红梅",
          "海燕", "德明", "小龙", "春华")
_ROLES = ("网格长", "楼栋长", "物业经理", "安全员", "站长")
_MAX_TRIES = 20


@dataclass(frozen=True)
class RiskGroup:
    district: str
    category: str
    count: int
    sensor_kind: str | None
    sensor_share: float
    source: str  # file:line, for errors found at generation time


@dataclass(frozen=True)
class RiskConfig:
    seed: int
    nouns: dict[str, str]
    groups: tuple[RiskGroup, ...]


def parse_risk_config(doc, categories: dict[str, Category], kinds: dict[str, SensorKind]) -> RiskConfig:
    """Validate ``risk_points.yaml`` (``doc`` is a loader ``_Doc``); spreads are expanded here."""
    root = doc.mapping(doc.root, "risk point recipe", required=("seed", "nouns", "districts"))
    seed = doc.integer(root["seed"][1], "seed")
    nouns: dict[str, str] = {}
    for key, (knode, vnode) in doc.mapping(root["nouns"][1], "nouns", any_keys=True).items():
        if key not in categories:
            raise doc.error(knode, f"unknown category {key!r} in nouns")
        nouns[key] = doc.text_(vnode, f"noun of {key!r}")
    missing = [c for c in categories if c not in nouns]
    if missing:
        raise doc.error(root["nouns"][1], f"nouns missing for categories: {', '.join(missing)}")
    kind_of = {k.category_code: k.code for k in kinds.values()}
    groups: list[RiskGroup] = []
    for dcode, (knode, vnode) in doc.mapping(root["districts"][1], "districts", any_keys=True).items():
        if not _DISTRICT.match(dcode):
            raise doc.error(knode, f"{dcode!r} is not a district code (50xxxx)")
        for gnode in doc.seq(vnode, f"groups of {dcode}"):
            g = doc.mapping(gnode, "risk group", optional=("category", "count", "sensor", "sensor_share", "spread"))
            where = doc.where(gnode)
            share_given = "sensor_share" in g
            share = doc.number(g["sensor_share"][1], "sensor_share") if share_given else 1.0
            if not 0 <= share <= 1:
                raise doc.error(g["sensor_share"][1], f"sensor_share must be within 0–1, got {share:g}")
            if "spread" in g:
                if "category" in g or "count" in g or "sensor" in g:
                    raise doc.error(gnode, "a spread group takes only spread and sensor_share")
                total = doc.integer(g["spread"][1], "spread")
                if total <= 0:
                    raise doc.error(g["spread"][1], f"spread must be positive, got {total}")
                counts = _spread(total, list(categories), random.Random(f"{seed}:{dcode}:spread"))
                groups.extend(RiskGroup(dcode, c, n, kind_of.get(c), share if share_given else 0.2, where)
                              for c, n in counts.items() if n)
                continue
            if "category" not in g or "count" not in g:
                raise doc.error(gnode, "a risk group needs category and count (or spread)")
            cat = doc.text_(g["category"][1], "category")
            if cat not in categories:
                raise doc.error(g["category"][1], f"unknown category {cat!r}")
            count = doc.integer(g["count"][1], "count")
            if count <= 0:
                raise doc.error(g["count"][1], f"count must be positive, got {count}")
            kind = None
            if "sensor" in g:
                kind = doc.text_(g["sensor"][1], "sensor")
                if kind not in kinds:
                    raise doc.error(g["sensor"][1], f"unknown sensor kind {kind!r}")
                if not kinds[kind].serves(cat):
                    raise doc.error(g["sensor"][1], f"sensor kind {kind!r} does not watch {cat!r} risk points")
            elif share_given:
                raise doc.error(g["sensor_share"][0], "sensor_share without a sensor kind")
            groups.append(RiskGroup(dcode, cat, count, kind, share if kind else 0.0, where))
    return RiskConfig(seed, nouns, tuple(groups))


def _spread(total: int, codes: list[str], rng: random.Random) -> dict[str, int]:
    """Split ``total`` over ``codes`` with seeded uneven weights (largest remainder, so it sums exactly)."""
    weights = [0.4 + rng.random() * 1.2 for _ in codes]
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(codes)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return dict(zip(codes, counts))


class RiskGenerator:
    """Generates (and caches) risk points and sensors; thread-safe, runs once."""

    def __init__(self, config: RiskConfig, categories: dict[str, Category], kinds: dict[str, SensorKind],
                 registry=None):
        self.config = config
        self.categories = categories
        self.kinds = kinds
        self._registry = registry
        self._result: tuple[dict[str, RiskPoint], dict[str, Sensor]] | None = None
        self._lock = threading.Lock()

    def generate(self) -> tuple[dict[str, RiskPoint], dict[str, Sensor]]:
        with self._lock:
            if self._result is None:
                self._result = self._cached_run()
            return self._result

    def _cached_run(self) -> tuple[dict[str, RiskPoint], dict[str, Sensor]]:
        """``_run``, its result kept on disk when drawn on the fixtures' geography (``risk_cache``)."""
        if self._registry is not None:  # a caller's own registry: nothing to key a cache on
            return self._run()
        from . import risk_cache

        try:
            key = risk_cache.digest(self.config, self.kinds)
        except OSError:
            return self._run()
        hit = risk_cache.load(key)
        if hit is not None:
            return hit
        points, sensors = self._run()
        risk_cache.save(key, points, sensors)
        return points, sensors

    def _run(self) -> tuple[dict[str, RiskPoint], dict[str, Sensor]]:
        reg = self._registry
        if reg is None:
            from ..geo.registry import get_registry

            reg = get_registry()
        points: dict[str, RiskPoint] = {}
        sensors: dict[str, Sensor] = {}
        by_district: dict[str, list[RiskGroup]] = {}
        for g in self.config.groups:
            by_district.setdefault(g.district, []).append(g)
        colours = [c for c, _ in _COLOUR_WEIGHTS]
        colour_weights = [w for _, w in _COLOUR_WEIGHTS]
        for dcode, groups in by_district.items():
            streets = self._streets(reg, dcode, groups[0].source)
            weights = [max(1, s.population) for s in streets]
            rng = random.Random(f"{self.config.seed}:{dcode}")
            # Draw every point first, then locate them in one vectorised call.
            drawn: list[tuple[RiskGroup, object, float, float, Colour, bool]] = []
            for g in groups:
                for _ in range(g.count):
                    street = rng.choices(streets, weights)[0]
                    lon, lat = reg.random_point(street.code, rng)
                    colour = rng.choices(colours, colour_weights)[0]
                    has_sensor = bool(g.sensor_kind) and rng.random() < g.sensor_share
                    drawn.append((g, street, lon, lat, colour, has_sensor))
            found = reg.locate_many([d[2] for d in drawn], [d[3] for d in drawn])
            grids, located_streets = found.grid_codes(), found.street_codes()
            n_sensor = 0
            for n, ((g, street, lon, lat, colour, has_sensor), grid, located) in enumerate(
                    zip(drawn, grids, located_streets), 1):
                if grid is None or located != street.code:
                    # a point on a street border can locate next door: draw again inside the street
                    lon, lat, grid = self._place(reg, street.code, rng, g.source)
                code = f"RP-{dcode}-{n:05d}"
                noun = self.config.nouns[g.category]
                points[code] = RiskPoint(code, f"{street.name}{noun}{n:04d}号", g.category, grid,
                                         lon, lat, colour, owner_of(code))
                if has_sensor:
                    kind = self.kinds[g.sensor_kind]
                    n_sensor += 1
                    scode = f"SN-{dcode}-{n_sensor:05d}"
                    sensors[scode] = Sensor(scode, kind.code, code, kind.unit, kind.threshold, kind.clear_below)
        return points, sensors

    @staticmethod
    def _streets(reg, dcode: str, source: str) -> list:
        try:
            children = list(reg.children(dcode))
        except Exception as exc:  # the registry's own unknown-code error, whatever its type
            raise BadInput(f"{source}: district {dcode} not in the geography: {exc}") from None
        streets = [j for j in children if getattr(j.level, "value", j.level) == "street"]
        if not streets:
            raise BadInput(f"{source}: district {dcode} has no streets in the geography")
        return streets

    @staticmethod
    def _place(reg, street_code: str, rng: random.Random, source: str) -> tuple[float, float, str]:
        """A point in the street whose grid locates back to it (a point on a border may not)."""
        for _ in range(_MAX_TRIES):
            lon, lat = reg.random_point(street_code, rng)
            loc = reg.locate(lon, lat)
            if loc is not None and loc.street.code == street_code:
                return lon, lat, loc.grid.code
        raise BadInput(f"{source}: could not place a risk point inside street {street_code}")


def owner_of(code: str) -> str:
    """The 责任人 of a risk point: a deterministic name and role from its code."""
    import hashlib

    h = int.from_bytes(hashlib.blake2b(code.encode(), digest_size=6).digest(), "big")
    return (f"{_SURNAMES[h % len(_SURNAMES)]}{_GIVEN[(h >> 8) % len(_GIVEN)]}"
            f"({_ROLES[(h >> 16) % len(_ROLES)]})")


class LazyMapping(Mapping):
    """A read-only mapping filled by ``factory`` on first use (keeps load_catalogue fast)."""

    def __init__(self, factory: Callable[[], dict]):
        self._factory = factory
        self._data: dict | None = None

    def _d(self) -> dict:
        if self._data is None:
            self._data = self._factory()
        return self._data

    @property
    def loaded(self) -> bool:
        return self._data is not None

    def __getitem__(self, key):
        return self._d()[key]

    def __iter__(self) -> Iterator:
        return iter(self._d())

    def __len__(self) -> int:
        return len(self._d())

    def __contains__(self, key) -> bool:
        return key in self._d()

    def __repr__(self) -> str:
        return f"LazyMapping({'loaded, ' + str(len(self._data)) if self._data is not None else 'not loaded'})"
