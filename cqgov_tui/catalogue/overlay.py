"""A district's own catalogue, layered over the shipped one (``serve|tui|init --catalogue DIR``, ``CQGOV_CATALOGUE``).

九龙坡 alone runs 124 smart plans and 19 特色子跑道; cqgov ships 12 plans and the
city's common runways. A district keeps its own in a directory of the same
YAML files as ``fixtures/catalogue`` — every file optional:

``departments.yaml``, ``sla_profiles.yaml``, ``categories.yaml``
    entries added to the shipped ones (the same keys; a code the shipped
    catalogue already has is refused: a district adds, it does not redefine).
``runways.yaml``
    ``<sector code>: {runways: {<runway name>: [sub-runway, …]}}`` — sub-runways
    (with ``places`` they are 特色子跑道 of those jurisdictions) appended to a
    shipped runway of that name, or to a new runway of the sector; their
    indicators expand as in the shipped file (``cats``, ``sensors``, ``risk``,
    ``kpis`` with metrics of ``catalogue.metrics``).
``plans/*.yaml``
    smart plans, as the shipped ones; plan codes must differ from the shipped.

Everything is validated against the combined catalogue at start, with one
line naming file and line (``BadInput``); nothing partly layered is used.
"""

from __future__ import annotations

from pathlib import Path

from ..domain.entities import Runway
from ..errors import BadInput
from .loader import (_Doc, _load_categories, _load_departments, _load_plan_files, _load_sla, _plan_files, _Refs,
                     _sub_runway)

FILES = ("departments.yaml", "sla_profiles.yaml", "categories.yaml", "runways.yaml")


def apply_overlay(base: dict, root: Path) -> dict:
    """The catalogue's parts (``loader.parse_catalogue``) with the district's directory ``root`` on top."""
    if not root.is_dir():
        raise BadInput(f"{root}: catalogue directory not found")
    known = [f for f in FILES if (root / f).is_file()] + (["plans"] if (root / "plans").is_dir() else [])
    if not known:
        raise BadInput(f"{root}: no catalogue files (expected any of {', '.join(FILES)} or plans/)")
    parts = dict(base)
    departments = _added(parts["departments"], root, "departments.yaml", _load_departments, "department")
    profiles = _added(parts["sla_profiles"], root, "sla_profiles.yaml", _load_sla, "SLA profile")
    categories = parts["categories"]
    if (root / "categories.yaml").is_file():
        doc = _Doc(root / "categories.yaml")
        own = _load_categories(doc, departments, profiles, parts["sectors"])
        _no_redefinition(doc, own, categories, "category")
        categories = {**categories, **own}
    parts.update(departments=departments, sla_profiles=profiles, categories=categories)
    if (root / "runways.yaml").is_file():
        runways, subs, indicators = _runways(_Doc(root / "runways.yaml"), parts)
        parts.update(runways=runways, sub_runways=subs, indicators=indicators)
    if (root / "plans").is_dir():
        own_plans = _load_plan_files(_plan_files(root / "plans"), _Refs(categories, departments, profiles))
        shipped = {p.code: p for p in parts["plans"]}
        for plan in own_plans:
            if plan.code in shipped:
                raise BadInput(f"{plan.source}: plan code {plan.code!r} is a shipped plan's "
                               f"({shipped[plan.code].source}); give the district's plan its own code")
        parts["plans"] = [*parts["plans"], *own_plans]
    return parts


def _added(current: dict, root: Path, name: str, load, noun: str) -> dict:
    if not (root / name).is_file():
        return current
    doc = _Doc(root / name)
    own = load(doc)
    _no_redefinition(doc, own, current, noun)
    return {**current, **own}


def _no_redefinition(doc: _Doc, own: dict, shipped: dict, noun: str) -> None:
    taken = sorted(set(own) & set(shipped))
    if taken:
        raise BadInput(f"{doc.name}:1: {noun} {taken[0]!r} is already in the shipped catalogue; "
                       f"a district adds its own codes, it does not redefine")


def _runways(doc: _Doc, parts: dict) -> tuple[dict, dict, dict]:
    runways, subs, indicators = dict(parts["runways"]), dict(parts["sub_runways"]), dict(parts["indicators"])
    sectors = parts["sectors"]
    root = doc.mapping(doc.root, "runway catalogue", any_keys=True) if doc.root is not None else {}
    if not root:
        raise BadInput(f"{doc.name}:1: empty file, expected sectors with runways")
    for skey, (sknode, svnode) in root.items():
        if skey not in sectors:
            raise doc.error(sknode, f"unknown sector {skey!r} (expected one of {', '.join(sectors)})")
        sm = doc.mapping(svnode, f"sector {skey!r}", required=("runways",), optional=("name",))
        by_name = {r.name: r for r in runways.values() if r.sector_code == skey}
        rmap = doc.mapping(sm["runways"][1], f"runways of {skey!r}", any_keys=True)
        for rname, (rknode, rvnode) in rmap.items():
            runway = by_name.get(rname)
            if runway is None:  # a district's own runway: numbered after the sector's
                n = 1 + max((int(r.code[len(skey):]) for r in runways.values() if r.sector_code == skey), default=0)
                runway = runways[f"{skey}{n:02d}"] = by_name[rname] = Runway(f"{skey}{n:02d}", rname, skey)
            existing = [s for s in subs.values() if s.runway_code == runway.code]
            names = {s.name for s in existing}
            start = 1 + max((int(s.code.rsplit(".", 1)[1]) for s in existing), default=0)
            for i, snode in enumerate(doc.seq(rvnode, f"sub-runways of {rname!r}"), start):
                _sub_runway(doc, snode, f"{runway.code}.{i:02d}", rname, runway.code, names, subs, indicators,
                            parts["categories"], parts["sla_profiles"], parts["sensor_kinds"])
    return runways, subs, indicators
