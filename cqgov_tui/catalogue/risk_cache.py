"""Generated risk points and sensors kept on disk, so generation runs once per install, not per process.

Generating the 7,092 points draws each inside its street with shapely, one at
a time: about 0.6 s of Python on every start of anything that reads
``Catalogue.risk_points`` — the console's runway board (high-risk counts),
sensor alarms, ``cqgov kpi``. The result is a pure function of the recipe
(``RiskConfig``), the sensor kinds, the jurisdiction fixtures and the code that
draws them, so it is cached under ``$XDG_CACHE_HOME/cqgov`` (``~/.cache``)
keyed by a digest of all of those; a different recipe, geography or
generator gets its own entry. The file is plain JSON (no pickle: nothing in
it is executed). Any failure to read or write is silent: the caller generates
as before. ``CQGOV_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from ..diskcache import cache_dir, write_atomic

from ..domain.colour import Colour
from ..domain.entities import RiskPoint, Sensor

FORMAT = 2  # 2: the register's grades never orange/red; 责任人 per point
_HERE = Path(__file__).resolve().parent


def digest(config, kinds) -> str:
    """Everything generation reads: recipe, sensor kinds, the geography files and the generating code."""
    from ..geo import files  # not ``geo.generate``: its numpy, pyarrow and shapely are not needed for a key

    h = hashlib.sha256()
    h.update(f"{FORMAT}|{sys.version_info[:2]}|{config!r}|{sorted(kinds.items())!r}".encode())
    for path in (files.FIXTURES / files.DISTRICTS_FILE, files.FIXTURES / files.STREETS_FILE,
                 _HERE / "risk.py", _HERE.parent / "geo" / "registry.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:32]


def load(key: str) -> tuple[dict[str, RiskPoint], dict[str, Sensor]] | None:
    base = cache_dir()
    if base is None:
        return None
    try:
        data = json.loads((base / f"risk-{key}.json").read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            return None
        points = {p[0]: RiskPoint(p[0], p[1], p[2], p[3], float(p[4]), float(p[5]), Colour(p[6]), str(p[7]))
                  for p in data["points"]}
        sensors = {s[0]: Sensor(s[0], s[1], s[2], s[3], float(s[4]), float(s[5])) for s in data["sensors"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return points, sensors


def save(key: str, points: dict[str, RiskPoint], sensors: dict[str, Sensor]) -> None:
    if cache_dir() is None:
        return
    data = {"format": FORMAT,
            "points": [[p.code, p.name, p.category_code, p.grid_code, p.lon, p.lat, Colour(p.colour).value, p.owner]
                       for p in points.values()],
            "sensors": [[s.code, s.kind, s.risk_point_code, s.unit, s.threshold, s.clear_below]
                        for s in sensors.values()]}
    write_atomic(f"risk-{key}.json", json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
