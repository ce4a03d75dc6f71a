"""JSON text on the write path: every change-log row, audit entry and command reply is encoded once per
command, so encoding is done by orjson (several times faster than ``json``) with the standard library as
the fallback for what orjson refuses (a lone surrogate, an integer beyond 64 bits, an unknown type).

``canonical`` must stay byte-for-byte what ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` gives, because audit hashes already stored were made from it; the tests compare the two
over every code point.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import orjson

_SORTED = orjson.OPT_SORT_KEYS


def text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as compact JSON text (non-ASCII kept as is); ``default`` converts what JSON has no type for."""
    try:
        return orjson.dumps(value, default=default).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)


def encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (an HTTP reply). Raises TypeError for what orjson refuses (a lone
    surrogate, a non-finite number is written as null by orjson, so callers send finite numbers only)."""
    return orjson.dumps(value)


def parse(doc: str | bytes) -> Any:
    """JSON text back to values. What orjson refuses (a lone surrogate escape, NaN, a number past a double's
    range, nesting past its limit, bytes that are not UTF-8) goes to the standard library, which accepts or
    refuses it exactly as before (its errors: ValueError, UnicodeDecodeError, RecursionError). An integer
    past 64 bits but within a double's range reads as a float (orjson's rule)."""
    try:
        return orjson.loads(doc)
    except orjson.JSONDecodeError:
        return json.loads(doc)


def canonical(value: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the audit chain's canonical form of a flat entry."""
    try:
        return orjson.dumps(value, option=_SORTED)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
