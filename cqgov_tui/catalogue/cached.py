"""The parsed catalogue kept on disk, so the YAML is composed and validated once per change, not per process.

Composing and validating ``fixtures/catalogue`` takes PyYAML's import and
~0.05–0.1 s of Python on every start of anything that reads the catalogue
(the console needs it for names before its queue shows them). The parsed
catalogue is a pure function of the files under the catalogue's root and of
the code that parses them, so it is kept under ``$XDG_CACHE_HOME/cqgov``
(``~/.cache``, as ``risk_cache`` keeps the risk points) keyed by a digest of:
every file under the root (names and bytes), this package's and
``cqgov_tui/domain``'s source, the format and the Python version. Any change
to any of them is a different key, so a cached entry is never stale; only a
successful parse is written (a catalogue that fails validation raises
exactly as before, every time). Any failure to read or write is silent: the
caller parses as before. ``CQGOV_NO_CACHE=1`` turns the cache off.

The file is a pickle read by an unpickler that resolves only classes of
``cqgov_tui.domain`` and ``cqgov_tui.catalogue`` (entities, enums), so
reading it constructs plain data and can call nothing else.

This module also holds the process-wide cache (``load_catalogue``), so
importing it does not import PyYAML: ``catalogue.loader`` re-exports the same
functions and shares the same in-memory cache.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import threading
from pathlib import Path

from ..diskcache import cache_dir, write_atomic

from . import Catalogue

FORMAT = 1
_HERE = Path(__file__).resolve().parent
_CODE_DIRS = (_HERE, _HERE.parent / "domain")
_ALLOWED_MODULES = ("cqgov_tui.domain.", "cqgov_tui.catalogue.")

_CACHE: dict[tuple[Path, Path | None], Catalogue] = {}
_LOCK = threading.Lock()
ENV = "CQGOV_CATALOGUE"  # a district's own catalogue directory, layered over the shipped one (catalogue.overlay)
META_KEY = "catalogue_dir"  # where ``init --catalogue`` records it in a store, for ``serve`` to use


def default_root() -> Path:
    """``catalogue/`` of the installed ``cqgov_fixtures`` data package (works from a wheel)."""
    from ..geo.files import FIXTURES

    return FIXTURES / "catalogue"


def load_catalogue(root: str | Path | None = None, overlay: str | Path | None = None) -> Catalogue:
    """Load, validate and cache the catalogue under ``root`` (default: the installed fixtures), with a
    district's own directory ``overlay`` layered on top (default, for the installed catalogue only:
    ``$CQGOV_CATALOGUE``, which ``serve|tui|init --catalogue`` set for their process).

    Risk points and sensors are generated on first access to
    ``catalogue.risk_points`` / ``catalogue.sensors`` (they need the geography).
    """
    import os

    path = Path(root).resolve() if root is not None else default_root()
    if overlay is None and root is None:
        overlay = os.environ.get(ENV) or None
    extra = Path(overlay).resolve() if overlay is not None else None
    with _LOCK:
        cached = _CACHE.get((path, extra))
        if cached is None:
            cached = _CACHE[(path, extra)] = _build(path) if extra is None else _layered(path, extra)
        return cached


def _layered(root: Path, overlay: Path) -> Catalogue:
    """The catalogue under ``root`` with ``overlay`` on top (parsed every time: a district's files are few)."""
    from .loader import parse_catalogue
    from .overlay import apply_overlay

    key = digest(root)
    parts = load(key) if key is not None else None
    return assemble(apply_overlay(parts if parts is not None else parse_catalogue(root), overlay))


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def _build(root: Path) -> Catalogue:
    key = digest(root)
    parts = load(key) if key is not None else None
    if parts is None:
        from .loader import parse_catalogue

        parts = parse_catalogue(root)
        if key is not None:
            save(key, parts)
    return assemble(parts)


def assemble(parts: dict) -> Catalogue:
    """The catalogue from its parsed parts; risk points and sensors stay lazy."""
    from .risk import LazyMapping, RiskGenerator

    generator = RiskGenerator(parts["risk_config"], parts["categories"], parts["sensor_kinds"])
    return Catalogue(
        departments=parts["departments"],
        categories=parts["categories"],
        sla_profiles=parts["sla_profiles"],
        sectors=parts["sectors"],
        runways=parts["runways"],
        sub_runways=parts["sub_runways"],
        indicators=parts["indicators"],
        plans=parts["plans"],
        risk_points=LazyMapping(lambda: generator.generate()[0]),
        sensors=LazyMapping(lambda: generator.generate()[1]),
        sensor_kinds=parts["sensor_kinds"],
    )


def digest(root: Path) -> str | None:
    """Everything parsing reads: each file under ``root`` and the parsing code. None: no cache (turned
    off, or the root is unreadable — parsing then reports it as it always did)."""
    if cache_dir() is None:
        return None
    h = hashlib.sha256(f"{FORMAT}|{sys.version_info[:2]}|{root}".encode())
    try:
        if not root.is_dir():
            return None
        for base, tag in ((root, "data"),) + tuple((d, "code") for d in _CODE_DIRS):
            for path in sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                if tag == "code" and path.suffix != ".py":
                    continue
                h.update(f"\0{tag}\0{path.relative_to(base)}\0".encode())
                h.update(path.read_bytes())
    except OSError:
        return None
    return h.hexdigest()[:32]


class _Unpickler(pickle.Unpickler):
    """Resolves only the entity and catalogue classes a parsed catalogue is made of."""

    def find_class(self, module: str, name: str):
        if module.startswith(_ALLOWED_MODULES):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a cached catalogue")


def load(key: str) -> dict | None:
    base = cache_dir()
    if base is None:
        return None
    try:
        data = (base / f"catalogue-{key}.pickle").read_bytes()
        parts = _Unpickler(io.BytesIO(data)).load()
        if not isinstance(parts, dict) or parts.get("format") != FORMAT:
            return None
    except Exception:  # missing, truncated or foreign: parse as if there were no cache
        return None
    return parts


def save(key: str, parts: dict) -> None:
    if cache_dir() is None:
        return
    try:
        data = pickle.dumps(dict(parts, format=FORMAT), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # caching is best effort
        return
    write_atomic(f"catalogue-{key}.pickle", data)