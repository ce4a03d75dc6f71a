"""`cqgov map` (ASCII map of a jurisdiction's children) and `cqgov locate LON LAT`."""

from __future__ import annotations

import os
import shutil
import sys

import click

from ..errors import BadInput
from . import main
from .common import emit_json, field, handle_errors, json_option, out


def _use_colour() -> bool:
    # NO_COLOR (https://no-color.org): any non-empty value turns colour off
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _default_width() -> int:
    if sys.stdout.isatty():
        return max(40, min(shutil.get_terminal_size((80, 24)).columns - 1, 200))
    return 80


def _parse_colours(pairs: tuple[str, ...]) -> dict:
    from ..domain.colour import Colour

    out = {}
    for pair in pairs:
        code, sep, colour = pair.partition("=")
        if not sep or not code.strip():
            raise BadInput(f"--colour expects CODE=COLOUR, e.g. 500108=red, got {pair!r}")
        try:
            out[code.strip()] = Colour.parse(colour)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    return out


@main.command("map")
@click.option("--code", default=None, metavar="CODE", help="Jurisdiction whose children to draw (default: the city, 500000).")
@click.option("--width", default=None, metavar="N", help="Width in terminal cells (default: the terminal's, or 80).")
@click.option("--height", default=None, metavar="N", help="Maximum height in rows (default: as tall as the shape needs).")
@click.option("--highlight", default=None, metavar="CODE", help="Region (or anything inside it) to highlight.")
@click.option("--colour", "colours", multiple=True, metavar="CODE=COLOUR",
              help="Colour a region (red/orange/yellow/blue/green); repeatable.")
@click.option("--no-legend", is_flag=True, help="Leave out the legend.")
@json_option
@handle_errors
def map_cmd(code, width, height, highlight, colours, no_legend, as_json) -> None:
    """Draw Chongqing's districts, a district's streets or a street's grids."""
    from ..geo.asciimap import render

    m = render(
        code=code,
        width=_default_width() if width is None else width,
        height=height,
        colours=_parse_colours(colours),
        highlight=highlight,
    )
    if as_json:
        emit_json(m.to_dict())
    elif _use_colour():
        from rich.console import Console

        Console(highlight=False).print(m.to_rich(legend=not no_legend), soft_wrap=True, end="")
        out()
    else:
        out(m.to_plain(legend=not no_legend))


def _jur(j) -> dict:
    return {"code": j.code, "name": j.name, "kind": j.kind, "households": j.households, "population": j.population}


@main.command("locate", context_settings={"ignore_unknown_options": True})  # "-1.5" is a coordinate, not an option
@click.argument("lon")
@click.argument("lat")
@json_option
@handle_errors
def locate_cmd(lon, lat, as_json) -> None:
    """Find the district, street and grid at a WGS84 point (LON LAT)."""
    from ..geo.registry import get_registry

    reg = get_registry()
    loc = reg.locate(_number("longitude", lon), _number("latitude", lat))
    if loc is None:
        minx, miny, maxx, maxy = reg.bounds
        raise BadInput(  # the same refusal, and exit code, as `events report` at that point
            f"{lon}, {lat} is outside Chongqing (lon {minx:.2f}–{maxx:.2f}, lat {miny:.2f}–{maxy:.2f})"
        )
    if as_json:
        emit_json(
            {
                "lon": float(lon),
                "lat": float(lat),
                "district": _jur(loc.district),
                "street": _jur(loc.street),
                "grid": _jur(loc.grid),
            }
        )
    else:
        out(
            f"{field(loc.district.name)} {loc.district.code} / {field(loc.street.name)} {loc.street.code}"
            f" / {field(loc.grid.name)} {loc.grid.code}"
        )


def _number(what: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{what} must be a number in degrees, got {text!r}") from None
