"""`cqgov kpi`: runway colours and values (跑道), sector → runway → sub-runway → indicator."""

from __future__ import annotations

import os
import sys

import click

from ..clock import fmt_duration
from ..errors import BadInput
from . import main
from .common import db_option, emit_json, handle_errors, json_option, out, server_option, token_option
from .common import field as plain

_STYLE = {"red": "bold red", "orange": "dark_orange", "yellow": "yellow", "blue": "blue", "green": "green"}


def _use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@main.group("kpi", invoke_without_command=True)
@click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False), envvar="CQGOV_DB",
              help="The store (a DuckDB file).")
@click.option("--kind", type=click.Choice(["all", "vital", "kpi"]), default="all", show_default=True,
              help="城市体征 (vital), KPIs (kpi) or both.")
@click.option("--sector", default=None, metavar="S", help="Only this sector, by code (cs) or name (城市运行).")
@click.option("--scope", "scope_code", default=None, metavar="CODE",
              help="Jurisdiction to evaluate (default: the store's own, e.g. 500000 for the city).")
@click.option("--depth", type=click.IntRange(1, 4), default=None,
              help="Levels to print: 1 sectors … 4 indicators (default 2, or 4 with --sector).")
@click.option("--record", is_flag=True, help="Also append the values to the indicator history (throttled).")
@json_option
@click.pass_context
@handle_errors
def kpi_cmd(ctx, db_path, kind, sector, scope_code, depth, record, as_json) -> None:
    """Runway colours: each indicator's value and five-colour light, rolled up to runways and sectors.
    Indicators with nothing to measure show "-" (no data). Subcommands: rank (考评), hot (事件热榜),
    feed (一表通 figures)."""
    from ..catalogue.loader import load_catalogue
    from ..engine.runways import compute_board
    from ..scope import CITY_CODE
    from ..store import open_store

    if ctx.invoked_subcommand is not None:
        return
    if not db_path:
        raise BadInput("missing option --db (or CQGOV_DB)")
    with open_store(db_path) as store:
        if scope_code is None:
            scope_code = CITY_CODE if store.tier.value == "city" else store.code
        else:
            scope_code = _check_scope(scope_code)
        catalogue = load_catalogue()
        board = compute_board(store, catalogue, store.clock.now(), scope_code, record=record)
    if kind != "all":
        _keep_kind(board, kind)
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


def _keep_kind(board, kind: str) -> None:
    """Only 城市体征 or only KPIs, dropping branches left empty (counts stay those of the whole board)."""
    for sec in board.sectors:
        for r in sec.runways:
            for sub in r.sub_runways:
                sub.indicators = [i for i in sub.indicators if i.kind == kind]
            r.sub_runways = [sub for sub in r.sub_runways if sub.indicators]
        sec.runways = [r for r in sec.runways if r.sub_runways]


def _scope_of(store, scope_code: str | None) -> str:
    from ..scope import CITY_CODE

    if scope_code is None:
        return CITY_CODE if store.tier.value == "city" else store.code
    return _check_scope(scope_code)


def _names():
    from ..catalogue.loader import load_catalogue
    from ..console.names import Names
    from ..geo.registry import get_registry

    return Names(load_catalogue, get_registry)


@kpi_cmd.command("rank")
@db_option
@click.option("--by", type=click.Choice(["district", "street", "department"]), default="district", show_default=True,
              help="Rank districts, streets or the owning departments.")
@click.option("--period", default="7d", show_default=True, help="Events reported within this long (30m, 24h, 7d).")
@click.option("--scope", "scope_code", default=None, metavar="CODE", help="Jurisdiction (default: the store's).")
@json_option
@handle_errors
def rank_cmd(db_path, by, period, scope_code, as_json) -> None:
    """考评: rank districts, streets or departments on response time, overdue rate, closure rate, rework and
    satisfaction over a period; score 0–100 (see engine/evaluation.py)."""
    from ..catalogue.loader import load_catalogue
    from ..engine.evaluation import period_seconds, rank
    from ..store import open_store

    period_seconds(period)  # a bad period is refused before the store is opened
    with open_store(db_path) as store:
        ranking = rank(store, load_catalogue(), _names(), store.clock.now(), by, period, _scope_of(store, scope_code))
    if as_json:
        emit_json(ranking.to_dict())
        return
    out(f"考评 ranking by {by}, last {period}, scope {ranking.scope_code}: {len(ranking.ranks)} ranked")
    out(f"{'#':>3} {'code':<12} {'name':<14} {'events':>6} {'resp min':>8} {'overdue%':>8} {'closed%':>7} "
        f"{'rework%':>7} {'satisf%':>7} {'score':>6}")
    for r in ranking.ranks:
        out(f"{r.position:>3} {plain(r.code):<12} {plain(r.name)[:14]:<14} {r.events:>6} {_num(r.response_min):>8} "
            f"{_num(r.overdue_rate):>8} {_num(r.closure_rate):>7} {_num(r.rework_rate):>7} "
            f"{_num(r.satisfaction):>7} {_num(r.score):>6}")


@kpi_cmd.command("hot")
@db_option
@click.option("--period", default="7d", show_default=True, help="Events reported within this long, or still open.")
@click.option("--scope", "scope_code", default=None, metavar="CODE", help="Jurisdiction (default: the store's).")
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True, help="Events per list.")
@json_option
@handle_errors
def hot_cmd(db_path, period, scope_code, limit, as_json) -> None:
    """事件热榜: the events most reported, open longest, escalated furthest and supervised most."""
    from ..engine.evaluation import hot_list, period_seconds
    from ..store import open_store

    period_seconds(period)
    with open_store(db_path) as store:
        hot = hot_list(store, _names(), store.clock.now(), period, _scope_of(store, scope_code), limit)
    if as_json:
        emit_json(hot.to_dict())
        return
    titles = {"reported": "最多上报 most reported", "open": "最久未结 open longest",
              "escalated": "督办最高 most escalated", "supervised": "督办最多 most supervised"}
    for kind, items in hot.lists.items():
        out(f"{titles[kind]}:")
        for n, i in enumerate(items, 1):
            value = fmt_duration(i.value) if kind == "open" else f"{i.value:g}"
            out(f"  {n:>2}. {plain(i.number)}  {plain(i.title)}  {plain(i.category)}  {plain(i.place)}  {value}")
        if not items:
            out("  -")


@kpi_cmd.command("feed")
@click.option("--db", "db_path", default=None, envvar="CQGOV_DB", type=click.Path(dir_okay=False),
              help="A store this process writes (or --server URL --token T: a tier server's figure.feed).")
@server_option(required=False)
@token_option(required=False)
@click.argument("name")
@click.argument("value", type=float)
@click.option("--scope", "scope_code", default=None, metavar="CODE",
              help="The jurisdiction the figure is for (default: the store's or the server's).")
@click.option("--source", default="一表通", show_default=True, help="Where the figure comes from.")
@json_option
@handle_errors
def feed_cmd(db_path, server, token, name, value, scope_code, source, as_json) -> None:
    """Feed a figure through 一表通 (e.g. cs01.04.rate 96.5): indicators with figure:NAME read it."""
    import math
    import re

    from ..store import open_store

    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name):
        raise BadInput(f"figure name {name!r} may hold only letters, digits, . _ - (at most 64)")
    if not math.isfinite(value):
        raise BadInput(f"figure value must be a finite number, got {value!r}")
    if server and not db_path:  # a store named (flag or $CQGOV_DB) is written here; else the server
        if not token:
            raise BadInput("--server needs --token")
        from .roster_cmd import remote

        body = {"name": name, "value": value, "source": source[:64]}
        if scope_code:
            body["scope"] = scope_code.strip()
        with remote(server, token) as r:
            data = r.command("figure.feed", body)
        if as_json:
            emit_json(data)
        else:
            out(f"{plain(name)} = {value:g} for {plain(data.get('scope_code'))}")
        return
    if not db_path:
        raise BadInput("give --db FILE or --server URL --token T")
    with open_store(db_path) as store:
        scope = _scope_of(store, scope_code)
        now = store.clock.now()
        store.feed_figure(name, scope, now, value, source[:64])
    if as_json:
        emit_json({"name": name, "scope_code": scope, "value": value, "measured_at": now})
        return
    out(f"{plain(name)} = {value:g} for {scope}")


def _num(v) -> str:
    return "-" if v is None else f"{v:g}"


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
