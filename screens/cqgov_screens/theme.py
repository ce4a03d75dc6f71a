"""Five-colour styles and glyphs. Each colour also has its own glyph, so the
queue and the map stay readable with ``NO_COLOR`` or on a monochrome screen."""

from __future__ import annotations

from rich.style import Style

from cqgov_tui.domain.colour import Colour

GLYPH = {Colour.RED: "■", Colour.ORANGE: "◆", Colour.YELLOW: "▲", Colour.BLUE: "●", Colour.GREEN: "○"}
MAP_GLYPH = {Colour.RED: "█", Colour.ORANGE: "▓", Colour.YELLOW: "▒", Colour.BLUE: "░", Colour.GREEN: ":"}

_NORMAL = {
    Colour.RED: "bold #ff3b30", Colour.ORANGE: "bold #ff9500", Colour.YELLOW: "#ffd60a",
    Colour.BLUE: "#409cff", Colour.GREEN: "#30d158",
}
_HIGH = {
    Colour.RED: "bold bright_red", Colour.ORANGE: "bold #ff8700", Colour.YELLOW: "bold bright_yellow",
    Colour.BLUE: "bold bright_cyan", Colour.GREEN: "bold bright_green",
}


def colour_style(colour: Colour | None, high_contrast: bool = False) -> Style:
    if colour is None:
        return Style(dim=True)
    return Style.parse((_HIGH if high_contrast else _NORMAL)[colour])


OVERDUE = Style(bold=True, color="#ff3b30")
SUPERVISED = Style(bold=True, color="#ff9500")
HOT = Style(reverse=True)
DIM = Style(dim=True)
SELECTED = Style(reverse=True, bold=True)
FLASH = Style(bold=True, blink=True, reverse=True)
FLASH_STILL = Style(bold=True, reverse=True, underline=True)
