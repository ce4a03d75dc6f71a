"""Human names for codes (categories, places, departments), tolerant of partial catalogues.

A replica may hold rows whose codes this build does not know (a newer
catalogue upstream); the console then shows the code rather than failing.
"""

from __future__ import annotations

from ..textsafe import plain


class Names:
    """``catalogue`` and ``registry`` may be the objects or zero-argument functions returning them
    (a backend loads them lazily; nothing is loaded until a name is asked for)."""

    def __init__(self, catalogue=None, registry=None):
        self._catalogue = catalogue
        self._registry = registry
        self._place_cache: dict[str, str] = {}

    @property
    def catalogue(self):
        c = self._catalogue
        return c() if callable(c) else c

    @property
    def registry(self):
        r = self._registry
        return r() if callable(r) else r

    def category(self, code: str) -> str:
        cats = getattr(self.catalogue, "categories", None) or {}
        cat = cats.get(code)
        return plain(cat.name) if cat else code

    def department(self, code: str) -> str:
        deps = getattr(self.catalogue, "departments", None) or {}
        dep = deps.get(code)
        return plain(getattr(dep, "short", "") or dep.name) if dep else code

    def place(self, code: str | None) -> str:
        if not code:
            return ""
        hit = self._place_cache.get(code)
        if hit is not None:
            return hit
        registry = self.registry
        if registry is None:  # not loaded yet: the code now, the name once it is (so nothing is cached)
            return code
        try:
            name = plain(registry.get(code).name)
        except Exception:  # unknown code in a replica: show the code itself
            name = code
        self._place_cache[code] = name
        return name

    def categories(self) -> dict[str, str]:
        cats = getattr(self.catalogue, "categories", None) or {}
        return {code: c.name for code, c in cats.items()}

    def departments(self) -> dict[str, str]:
        deps = getattr(self.catalogue, "departments", None) or {}
        return {code: d.name for code, d in deps.items()}
