"""Field text is shown literally: no terminal escape, control, bidi or invisible character reaches the screen.

One transformation for every surface that shows stored text to a person — the CLI (``cli/common.out``),
the console's view-models and the review draft. Text in the store may come from anyone: a citizen's
report, a peer server's federated copy, a token's user name. A terminal acts on some of it (ESC and CSI
sequences, OSC 0/8/52 — window title, hyperlinks, clipboard — C1 codes such as U+009B, backspace and
carriage return that overwrite what was printed), and bidi overrides and zero-width characters make a
line read differently from what it holds. Each is replaced by a visible mark, so nothing is silently
lost either: C0 controls and DEL by their Unicode control pictures (␛ ␈ ␍ ␡), the rest by ``<U+XXXX>``.
"""

from __future__ import annotations

import json
import re

# Bidi embeddings, overrides, isolates and marks; zero-width and other invisible format characters;
# line/paragraph separators (some terminals break lines on them); interlinear annotations; tag characters.
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
)
_C1 = "\x80-\x9f"
_UNSAFE = re.compile(f"[\x00-\x08\x0a-\x1f\x7f{_C1}{_INVISIBLE}]")
_UNSAFE_KEEP_NL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f{_C1}{_INVISIBLE}]")
# What --json must escape beyond what json.dumps already does (it escapes C0 but not DEL, C1 or bidi).
_JSON_UNSAFE = re.compile(f"[\x7f{_C1}{_INVISIBLE}]")


def _mark(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟ (␛ for ESC, ␈ for BS, ␍ for CR)
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def plain(text: str | None, multiline: bool = False) -> str:
    """``text`` with every control, bidi and invisible character replaced by a visible mark.

    Tabs are kept; newlines too with ``multiline`` (a single-line field shows them as ␊, so a field
    cannot forge the next line of a listing)."""
    pattern = _UNSAFE_KEEP_NL if multiline else _UNSAFE
    return pattern.sub(_mark, text or "")


def is_plain(text: str, multiline: bool = False) -> bool:
    """True when ``plain`` would leave ``text`` unchanged."""
    return (_UNSAFE_KEEP_NL if multiline else _UNSAFE).search(text) is None


def json_text(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with DEL, C1, bidi and invisible characters
    escaped as ``\\uXXXX``: the same value to a parser, inert on a terminal."""
    return _JSON_UNSAFE.sub(lambda m: json.dumps(m.group()).strip('"'), text)
