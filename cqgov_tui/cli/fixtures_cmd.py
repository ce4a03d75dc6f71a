"""`cqgov fixtures stats/categories/plans/check-plans`: what the shipped catalogue holds, and plan validation."""

from __future__ import annotations

import click

from . import main
from .common import emit_json, handle_errors, json_option, out
from .common import field as plain


def _catalogue():
    from ..catalogue.loader import load_catalogue

    return load_catalogue()


@main.group("fixtures")
def fixtures() -> None:
    """Inspect the fixtures: geography, categories, runways, plans, risk points."""


@fixtures.command("stats")
@json_option
@handle_errors
def stats(as_json: bool) -> None:
    """Counts of everything the fixtures define."""
    from ..geo.registry import get_registry

    reg = get_registry()
    cat = _catalogue()
    data = {
        "districts": len(reg.districts),
        "streets": len(reg.streets),
        "grids": reg.grid_count(),
        "departments": len(cat.departments),
        "categories": len(cat.categories),
        "sla_profiles": len(cat.sla_profiles),
        "sectors": len(cat.sectors),
        "runways": len(cat.runways),
        "sub_runways": sum(1 for s in cat.sub_runways.values() if not s.places),
        "feature_sub_runways": sum(1 for s in cat.sub_runways.values() if s.places),  # 特色子跑道
        "indicators": len(cat.indicators),
        "plans": len(cat.plans),
        "sensor_kinds": len(cat.sensor_kinds),
        "risk_points": len(cat.risk_points),
        "sensors": len(cat.sensors),
    }
    if as_json:
        emit_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        out(f"{key.replace('_', ' '):<{width}}  {value:>7,}")


@fixtures.command("categories")
@json_option
@handle_errors
def categories(as_json: bool) -> None:
    """The 40 event categories with owner, co-departments, colour, SLA and sector."""
    cat = _catalogue()
    rows = [
        {
            "code": c.code,
            "name": c.name,
            "department": c.department_code,
            "co_departments": list(c.co_departments),
            "colour": c.default_colour.value,
            "sla_profile": c.sla_profile,
            "sector": c.sector_code,
            "scope": c.scope,
            "covers": list(c.covers),
        }
        for c in cat.categories.values()
    ]
    if as_json:
        emit_json({"categories": rows})
        return
    for c in cat.categories.values():
        owner = cat.departments[c.department_code].short
        co = "+".join(cat.departments[d].short for d in c.co_departments)
        extra = f"  covers {','.join(c.covers)}" if c.covers else ""
        out(f"{plain(c.code):<24} {c.default_colour.zh} {plain(c.sector_code)} {plain(c.sla_profile):<8} "
            f"{plain(c.scope):<8} {plain(c.name)}  [{plain(owner)}{'+' + plain(co) if co else ''}]{plain(extra)}")


def _plan_row(p) -> dict:
    return {
        "code": p.code,
        "name": p.name,
        "categories": list(p.categories),
        "colours": list(p.colours),
        "places": list(p.places),
        "near_risk_km": p.near_risk_km,
        "hours": list(p.hours) if p.hours else None,
        "auto_sign": p.auto_sign,
        "dispatch": p.dispatch,
        "co_departments": list(p.co_departments),
        "sla_profile": p.sla_profile,
        "notify_roles": list(p.notify_roles),
        "open_multi": list(p.open_multi),
        "source": p.source,
    }


def _print_plans(plans) -> None:
    for p in plans:
        bits = [",".join(p.categories)]
        if p.colours:
            bits.append("colours " + ",".join(p.colours))
        if p.places:
            bits.append("in " + ",".join(p.places))
        if p.near_risk_km is not None:
            bits.append(f"≤{p.near_risk_km:g} km of a risk point")
        if p.hours:
            bits.append(f"{p.hours[0]:02d}–{p.hours[1]:02d}h")
        acts = [a for a, on in (("auto-sign", p.auto_sign), ("dispatch", p.dispatch)) if on]
        if p.co_departments:
            acts.append("co " + "+".join(p.co_departments))
        if p.sla_profile:
            acts.append("sla " + p.sla_profile)
        if p.notify_roles:
            acts.append("notify " + ",".join(p.notify_roles))
        if p.open_multi:
            acts.append("多跨 " + ",".join(p.open_multi))
        out(f"{plain(p.code):<24} {plain(p.name)}\n    when {plain('; '.join(bits))}\n"
            f"    then {plain('; '.join(acts)) or '—'}")


@fixtures.command("plans")
@json_option
@handle_errors
def plans(as_json: bool) -> None:
    """The shipped smart plans (智能预案)."""
    cat = _catalogue()
    if as_json:
        emit_json({"plans": [_plan_row(p) for p in cat.plans]})
        return
    _print_plans(cat.plans)


@fixtures.command("check-plans")
@click.argument("path", type=click.Path())
@json_option
@handle_errors
def check_plans(path: str, as_json: bool) -> None:
    """Validate a smart-plan file (or a directory of them) against the catalogue."""
    from ..catalogue.loader import load_plans

    checked = load_plans(path)
    if as_json:
        emit_json({"ok": True, "plans": [_plan_row(p) for p in checked]})
        return
    _print_plans(checked)
    out(f"ok: {len(checked)} plan{'s' if len(checked) != 1 else ''} valid")
