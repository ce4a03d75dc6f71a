"""`cqgov kpi`: runway colours and values (跑道), sector → runway → sub-runway → indicator."""

from __future__ import annotations

import os
import sys

import click

from ..clock import fmt_duration
from ..errors import BadInput
from . import main
from .common import db_option, emit_json, handle_errors, json_option, out
from .common import field as plain

_STYLE = {"red": "bold red", "orange": "dark_orange", "yellow": "yellow", "blue": "blue", "green": "green"}


def _use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@main.command("kpi")
@db_option
@click.option("--sector", default=None, metavar="S", help="Only this sector, by code (cs) or name (城市运行).")
@click.option("--scope", "scope_code", default=None, metavar="CODE",
              help="Jurisdiction to evaluate (default: the store's own, e.g. 500000 for the city).")
@click.option("--depth", type=click.IntRange(1, 4), default=None,
              help="Levels to print: 1 sectors … 4 indicators (default 2, or 4 with --sector).")
@click.option("--record", is_flag=True, help="Also append the values to the indicator history (throttled).")
@json_option
@handle_errors
def kpi_cmd(db_path, sector, scope_code, depth, record, as_json) -> None:
    """Runway colours: each indicator's value and five-colour light, rolled up to runways and sectors."""
    from ..catalogue.loader import load_catalogue
    from ..engine.runways import compute_board
    from ..scope import CITY_CODE
    from ..store import open_store

    with open_store(db_path) as store:
        if scope_code is None:
            scope_code = CITY_CODE if store.tier.value == "city" else store.code
        else:
            scope_code = _check_scope(scope_code)
        catalogue = load_catalogue()
        board = compute_board(store, catalogue, store.clock.now(), scope_code, record=record)
    sectors = [board.sector(sector)] if sector else board.sectors
    if as_json:
        data = board.to_dict()
        if sector:
            data["sectors"] = [s for s in data["sectors"] if s["code"] == sectors[0].code]
        emit_json(data)
        return
    depth = depth or (4 if sector else 2)
    lines = render_lines(board, sectors, depth)
    if _use_colour():
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False)
        for segments in lines:
            console.print(Text.assemble(*[(t, _STYLE.get(c, "")) if c else t for t, c in segments]), soft_wrap=True)
    else:
        for segments in lines:
            out("".join(t for t, _ in segments))


def _check_scope(code: str) -> str:
    from ..geo.registry import get_registry

    code = code.strip()
    if not code.isdigit():
        raise BadInput(f"scope must be a jurisdiction code such as 500108, got {code!r}")
    return get_registry().get(code).code


def _light(colour) -> tuple[str, str | None]:
    if colour is None:
        return "[  --  ]", None
    return f"[{colour.value:^6}]", colour.value


def _red(seconds: float) -> str:
    return f"  红 {fmt_duration(seconds)}" if seconds else ""


def _counts(counts: dict) -> str:
    parts = [f"{k} {v}" for k, v in counts.items() if v and k != "none"]
    return "  (" + ", ".join(parts) + ")" if parts else ""


def render_lines(board, sectors, depth: int) -> list[list[tuple[str, str | None]]]:
    """Lines of (text, colour-or-None) segments; the caller styles them or joins them plain."""
    from ..console.board import sparkline

    out: list[list[tuple[str, str | None]]] = [[
        ("跑道 runways ", None), (f"scope {board.scope_code} ", None), _light(board.colour), (_counts(board.counts), None),
    ]]
    for s in sectors:
        out.append([_light(s.colour), (f" {s.code} {plain(s.name)}", None), (_counts(s.counts) + _red(s.time_in_red_s), None)])
        if depth < 2:
            continue
        for r in s.runways:
            out.append([("  ", None), _light(r.colour), (f" {r.code} {plain(r.name)}{_red(r.time_in_red_s)}", None)])
            if depth < 3:
                continue
            for sub in r.sub_runways:
                out.append([("    ", None), _light(sub.colour),
                            (f" {sub.code} {plain(sub.name)}{_red(sub.time_in_red_s)}", None)])
                if depth < 4:
                    continue
                for i in sub.indicators:
                    value = "-" if i.value is None else f"{i.value:g}"
                    bands = "/".join(f"{t:g}" for t in i.thresholds)
                    arrow = "↑" if i.higher_is_worse else "↓"
                    spark = sparkline(i.history)
                    out.append([("      ", None), _light(i.colour),
                                (f" {plain(i.name)} = {value} {plain(i.unit)}  [{bands}{arrow}]"
                                 + (f"  {spark}" if spark else "") + _red(i.time_in_red_s), None)])
    return out
