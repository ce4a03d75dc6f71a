"""Key bindings as data (k9s/lazygit conventions) and user overrides from ``keys.toml``.

Each binding has an id; a user file ``$XDG_CONFIG_HOME/cqgov/keys.toml`` (or
``~/.config/cqgov/keys.toml``) maps ids to other keys, e.g.::

    [keys]
    quit = "ctrl+q"
    pane_map = "2,m"

A broken file is reported once in the status bar and otherwise ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding


@dataclass(frozen=True)
class KeySpec:
    id: str
    keys: str  # comma-separated alternatives, function keys included
    action: str
    show: bool = True  # shown in the footer
    priority: bool = False


# Console-wide bindings (the app).
APP_KEYS: tuple[KeySpec, ...] = (
    KeySpec("quit", "q,f10", "quit_console"),
    KeySpec("help", "question_mark,f1", "help"),
    KeySpec("command", "colon", "command_line"),
    KeySpec("palette", "ctrl+p", "command_palette", show=False),
    KeySpec("focus_next", "tab", "next_pane", show=False, priority=True),
    KeySpec("focus_prev", "shift+tab", "previous_pane", show=False, priority=True),
    KeySpec("pane_events", "1,f2", "pane(0)", show=False),
    KeySpec("pane_map", "2,f3", "pane(1)", show=False),
    KeySpec("pane_runways", "3,f4", "pane(2)", show=False),
    KeySpec("pane_directives", "4,f5", "pane(3)", show=False),
    KeySpec("filter", "slash,f6", "filter"),
    KeySpec("compose", "c,f7", "compose"),
    KeySpec("lang", "f8", "toggle_lang", show=False),
    KeySpec("contrast", "f9", "toggle_contrast", show=False),
    KeySpec("dismiss", "ctrl+l", "dismiss", show=False),
    KeySpec("my_work", "i,f11", "my_work"),
    KeySpec("interrupt", "ctrl+c", "interrupt", show=False),
)

# Keys of one pane (shown in the footer while it has focus): the runways pane opens 事件热榜 and 考评.
PANE_KEYS: tuple[KeySpec, ...] = (
    KeySpec("hot_list", "h", "hot"),
    KeySpec("ranking", "k", "rank"),
)

# Actions on the event detail screen: one letter each, in loop order.
ACTION_KEYS: dict[str, str] = {
    "verify": "v", "assess": "a", "dispatch": "d", "accept": "s", "arrive": "o", "dispose": "x",
    "feedback": "f", "close": "z", "review": "w", "reject": "r", "merge": "m", "escalate": "e", "comment": "n",
    "supervise": "u", "callback": "b",
}


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cqgov" / "keys.toml"


def load_overrides(path: Path | None = None) -> tuple[dict[str, str], str]:
    """Binding id → keys from the user's file, and an error line ('' when fine or absent)."""
    import tomllib

    path = path or config_path()
    if not path.exists():
        return {}, ""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, f"{path}: {str(exc).splitlines()[0]}"
    table = data.get("keys", data)
    known = {k.id for k in APP_KEYS} | {k.id for k in PANE_KEYS} | set(ACTION_KEYS)
    out, bad = {}, []
    for key, value in table.items():
        if key not in known or not isinstance(value, str) or not value.strip():
            bad.append(key)
            continue
        out[key] = value.strip()
    return out, (f"{path}: unknown or empty binding {', '.join(map(str, bad))}" if bad else "")


def app_bindings() -> list[Binding]:
    return [Binding(k.keys, k.action, k.id, show=k.show, priority=k.priority, id=k.id) for k in APP_KEYS]


def pane_bindings(specs: tuple[KeySpec, ...]) -> list[Binding]:
    return [Binding(k.keys, k.action, k.id, show=k.show, id=k.id) for k in specs]


def display_key(keys: str) -> str:
    names = {"question_mark": "?", "colon": ":", "slash": "/", "shift+tab": "S-Tab", "ctrl+p": "^P", "ctrl+l": "^L", "ctrl+c": "^C"}
    return " / ".join(names.get(k, k) for k in keys.split(","))


def effective(overrides: dict[str, str]) -> list[tuple[str, str]]:
    """(binding id, keys) after overrides, for the help screen."""
    rows = [(k.id, overrides.get(k.id, k.keys)) for k in APP_KEYS + PANE_KEYS]
    rows += [(f"act:{a}", overrides.get(a, key)) for a, key in ACTION_KEYS.items()]
    return rows
