"""The console's view of the jurisdiction registry at start: names and the map without numpy or shapely.

The full ``geo.registry.Registry`` imports numpy, pyarrow and shapely and
builds lattices and a spatial index: ~0.3 s of Python on every start, all of
it before the console can show a place's name or draw the map. The console's
first screen needs much less: the city, its districts and streets (names and
the tree) and the map's canvas at the pane's size. ``CachedRegistry`` serves
those from a disk cache under ``$XDG_CACHE_HOME/cqgov`` and hands anything
else (grids, geometry, point lookup, search…) to the full registry, loaded on
first such need (``full()``; the console loads it in the background once
every pane is filled).

Both cached files are pure functions of the jurisdiction fixtures and of the
code that reads and draws them, so they are keyed by a digest of the fixture
files and of that code's source (``geo/registry.py``, ``geo/generate.py``,
``console/mapview.py``, ``domain/``, this module): any change is a new key,
never a stale answer. Canvases are keyed by region and size as well. Files
are pickles read by an unpickler that resolves only the entity, level and
canvas classes. Any failure to read or write is silent (the full registry
answers); ``CQGOV_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import threading
from pathlib import Path

from ..diskcache import cache_dir, write_atomic

FORMAT = 1
_ROOT = Path(__file__).resolve().parents[1]
_SOURCES = ("geo/registry.py", "geo/generate.py", "geo/files.py", "console/mapview.py", "console/geo_cache.py",
            "domain/entities.py", "domain/colour.py", "domain/schema.py")
_ALLOWED = {("cqgov_tui.domain.entities", "Jurisdiction"), ("cqgov_tui.domain.entities", "Level"),
            ("cqgov_tui.console.mapview", "MapCanvas"), ("cqgov_tui.console.mapview", "Region")}


def digest() -> str | None:
    """The fixtures and every line of code that turns them into the tree and the map; None: no cache."""
    if cache_dir() is None:
        return None
    from ..geo import files

    h = hashlib.sha256(f"{FORMAT}|{sys.version_info[:2]}".encode())
    try:
        for path in [files.FIXTURES / files.DISTRICTS_FILE, files.FIXTURES / files.STREETS_FILE,
                     *(_ROOT / rel for rel in _SOURCES)]:
            h.update(f"\0{path.name}\0".encode())
            h.update(path.read_bytes())
    except OSError:
        return None
    return h.hexdigest()[:32]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a cached registry")


def _read(name: str):
    base = cache_dir()
    if base is None:
        return None
    try:
        data = _Unpickler(io.BytesIO((base / name).read_bytes())).load()
    except Exception:  # missing, truncated or foreign: the full registry answers
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def _write(name: str, data: dict) -> None:
    if cache_dir() is None:
        return
    try:
        blob = pickle.dumps(dict(data, format=FORMAT), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # caching is best effort
        return
    write_atomic(name, blob)


def load_registry():
    """A ``CachedRegistry`` (tree from the cache; on a miss the full registry is loaded now and the tree
    written for the next start), or the full registry itself when the cache is off."""
    key = digest()
    if key is None:
        from ..geo.registry import get_registry

        return get_registry()
    data = _read(f"registry-{key}.pickle")
    if data is None:
        from ..geo.registry import get_registry

        full = get_registry()
        data = {"city": full.city, "districts": full.districts, "streets": full.streets,
                "district_streets": {d: [s.code for s in full.children(d)] for d in full.districts}}
        _write(f"registry-{key}.pickle", data)
        return CachedRegistry(data, key, full)
    return CachedRegistry(data, key)


class CachedRegistry:
    """The city, districts and streets and the map's canvases from the cache; everything else, including
    any grid, from the full registry (``full()``), loaded on first need. Read-only and thread-safe."""

    def __init__(self, data: dict, key: str, full=None):
        self.city = data["city"]
        self.districts = data["districts"]
        self.streets = data["streets"]
        self._district_streets: dict[str, list[str]] = data["district_streets"]
        self._key = key
        self._full = full
        self._lock = threading.Lock()
        self._canvases: dict[tuple[str, int, int], object] = {}

    def full(self):
        """The full registry (numpy, shapely), loaded once."""
        if self._full is None:
            with self._lock:
                if self._full is None:
                    from ..geo.registry import get_registry

                    self._full = get_registry()
        return self._full

    @property
    def loaded(self) -> bool:
        return self._full is not None

    def __getattr__(self, name: str):
        if name.startswith("__"):  # copy, pickle and friends: not a registry question
            raise AttributeError(name)
        return getattr(self.full(), name)

    def _known(self, code):
        """The city, a district or a street; None for what only the full registry can answer (grids,
        codes that are not strings). A district or street code not in the tree raises as ``Registry``
        does (a replica's rows may carry codes this build does not know: no need to load it for that)."""
        if type(code) is not str:
            return None
        code = code.strip()
        if code == self.city.code:
            return self.city
        j = self.districts.get(code) or self.streets.get(code)
        if j is None and len(code) in (6, 9) and code.isdigit():
            from ..errors import UnknownCode

            raise UnknownCode(f"unknown {'district' if len(code) == 6 else 'street'} code {code!r}")
        return j

    # the same answers as ``Registry``'s for the city, districts and streets; grids and errors go to it

    def get(self, code):
        j = self._known(code)
        return j if j is not None else self.full().get(code)

    def level_of(self, code):
        j = self._known(code)
        return j.level if j is not None else self.full().level_of(code)

    def children(self, code) -> list:
        j = self._known(code)
        if j is None or j.code in self.streets:
            return self.full().children(code)
        if j is self.city:
            return list(self.districts.values())
        return [self.streets[c] for c in self._district_streets[j.code]]

    def parent(self, code):
        j = self.get(code)
        return None if j.parent_code is None else self.get(j.parent_code)

    def ancestors(self, code) -> list:
        out = []
        p = self.parent(code)
        while p is not None:
            out.append(p)
            p = self.parent(p.code)
        return out[::-1]

    def canvas(self, code: str, width: int, height: int):
        """``mapview``'s canvas of ``code`` at this size: from memory, the disk cache, or drawn on the full
        registry (and written for the next start)."""
        from .mapview import _rasterise

        k = (code, width, height)
        hit = self._canvases.get(k)
        if hit is not None:
            return hit
        name = f"canvas-{self._key}-{code}-{width}x{height}.pickle"
        keep = code == self.city.code or code in self.districts  # streets' canvases (grids) need the full one
        data = _read(name) if keep else None
        if data is not None and isinstance(data.get("canvas"), _canvas_type()):
            canvas = data["canvas"]
        else:
            canvas = _rasterise(self.full(), code, width, height)
            if keep:
                _write(name, {"canvas": canvas})
        self._canvases[k] = canvas
        return canvas


def _canvas_type():
    from .mapview import MapCanvas

    return MapCanvas
