"""Values people type on the command line, read one way for every command: durations, jurisdictions (by
code or by name), categories, statuses and colours. Unknown values are refused with the accepted ones
named — a filter never silently matches nothing because of a typo."""

from __future__ import annotations

import math
import re

from ..errors import BadInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
          "秒": 1, "分": 60, "分钟": 60, "时": 3600, "小时": 3600, "天": 86400, "日": 86400, "周": 7 * 86400}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z\u4e00-\u9fff]*)\s*$", re.IGNORECASE)
_MAX_SECONDS = 100 * 365 * 86400.0


def parse_duration(text: str | None, what: str = "duration") -> float:
    """'45s', '30m', '12h', '1d', '2w' (or 30分钟, 2小时, 1天) or plain seconds → seconds, positive and finite.
    The one duration reader of the CLI: `demo --for`, `token create --ttl`, `store archive --older-than`,
    `serve --readings-retention` and `simulate --for` all accept the same forms."""
    m = _DURATION.match(text or "")
    unit = (m.group(2) or "s").lower() if m else ""
    if not m or unit not in _UNITS:
        raise BadInput(f"unreadable {what} {text!r} (use 45s, 30m, 12h, 1d, 2w or seconds)")
    value = float(m.group(1)) * _UNITS[unit]
    if not value > 0 or not math.isfinite(value):
        raise BadInput(f"{what} {text!r} must be positive")
    if value > _MAX_SECONDS:
        raise BadInput(f"{what} {text!r} is longer than 100 years")
    return value


def jurisdiction(text: str, level: str, within: str | None = None) -> str:
    """A district or street by code (500108) or name (南岸区, 南坪街道) → its code; ``within`` limits names
    to one district (street names repeat across districts)."""
    from ..geo.registry import Level, get_registry

    reg = get_registry()
    value = (text or "").strip()
    if not value:
        raise BadInput(f"empty {level}")
    if value.isdigit():
        j = reg.get(value)  # UnknownCode for a code that does not exist
        if j.level.value != level:
            raise BadInput(f"{value} ({j.name}) is a {j.level.value}, not a {level}")
        return j.code
    found = [j for j in reg.find_by_name(value, Level(level)) if within is None or j.code.startswith(within)]
    exact = [j for j in found if j.name == value]
    found = exact or found
    if not found:
        raise BadInput(f"unknown {level} {value!r} (give a code such as "
                       f"{'500108' if level == 'district' else '500108001'} or an exact name)")
    if len(found) > 1:
        shown = ", ".join(f"{j.code} {j.name}" for j in found[:5]) + (" …" if len(found) > 5 else "")
        raise BadInput(f"{level} {value!r} is ambiguous: {shown}; give the code")
    return found[0].code


def category(text: str) -> str:
    """A category by code (muck_spill) or Chinese name (渣土车撒漏) → its code."""
    from ..catalogue.loader import load_catalogue

    cats = load_catalogue().categories
    value = (text or "").strip()
    if value in cats:
        return value
    by_name = [c.code for c in cats.values() if c.name == value]
    if by_name:
        return by_name[0]
    raise BadInput(f"unknown category {value!r} (see `cqgov fixtures categories`)")


def status(text: str) -> str:
    """A status by value (reported) or by the Chinese word `events list` prints (已上报)."""
    from ..domain.entities import Status

    value = (text or "").strip()
    for s in Status:
        if value.lower() == s.value or value == s.zh:
            return s.value
    raise BadInput(f"unknown status {value!r} (expected one of "
                   f"{', '.join(f'{s.value}/{s.zh}' for s in Status)})")


def colour(text: str) -> str:
    """red/orange/yellow/blue/green, or 红/橙/黄/蓝/绿, or the level 重大/较大/一般/较低/低."""
    from ..domain.colour import Colour

    try:
        return Colour.parse(text).value
    except ValueError as exc:
        raise BadInput(str(exc)) from None
