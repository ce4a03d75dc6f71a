"""Field text is shown literally: no terminal escape or control codes reach the screen."""

from __future__ import annotations

import re

# C0/C1 controls (ESC included) except tab; DEL. Newlines are kept by ``plain(multiline=True)``.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROLS_KEEP_NL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str | None, multiline: bool = False) -> str:
    """Replace control characters with '␛'-style visible marks so nothing is silently lost."""
    pattern = _CONTROLS_KEEP_NL if multiline else _CONTROLS
    return pattern.sub(lambda m: "␛" if m.group() == "\x1b" else "�", text or "")
