"""The five warning colours (五色预警) shared by events, risks and runways."""

from __future__ import annotations

import enum


class Colour(str, enum.Enum):
    """Ordered from most to least severe; ``rank`` 0 is the worst."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"
    GREEN = "green"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def zh(self) -> str:
        return _ZH[self]

    @property
    def zh_level(self) -> str:
        return _ZH_LEVEL[self]

    def raised(self, steps: int = 1) -> "Colour":
        """One level more severe, stopping at red (overdue raises the colour)."""
        return _ORDER[max(0, self.rank - steps)]

    @classmethod
    def parse(cls, value: str) -> "Colour":
        """Accept the English name, the Chinese colour or the Chinese level."""
        text = (value or "").strip().lower()
        for colour in _ORDER:
            if text in (colour.value, _ZH[colour], _ZH_LEVEL[colour]):
                return colour
        raise ValueError(f"unknown colour {value!r} (expected one of {', '.join(c.value for c in _ORDER)})")

    @staticmethod
    def worst(colours) -> "Colour | None":
        best = None
        for c in colours:
            c = c if isinstance(c, Colour) else Colour(c)
            if best is None or c.rank < best.rank:
                best = c
        return best


_ORDER = [Colour.RED, Colour.ORANGE, Colour.YELLOW, Colour.BLUE, Colour.GREEN]
_ZH = {Colour.RED: "红", Colour.ORANGE: "橙", Colour.YELLOW: "黄", Colour.BLUE: "蓝", Colour.GREEN: "绿"}
_ZH_LEVEL = {Colour.RED: "重大", Colour.ORANGE: "较大", Colour.YELLOW: "一般", Colour.BLUE: "较低", Colour.GREEN: "低"}
COLOURS: tuple[Colour, ...] = tuple(_ORDER)
