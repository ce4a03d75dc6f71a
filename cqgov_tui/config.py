"""The user's config file: default server URL, token, language and store for every command.

One precedence rule, everywhere: a command-line flag, else a ``CQGOV_*`` environment variable
(``CQGOV_SERVER``, ``CQGOV_TOKEN``, ``CQGOV_LANG``, ``CQGOV_DB``), else this file, else the built-in
default. The file is TOML at ``platformdirs.user_config_dir("cqgov")/config.toml`` (on Linux
``~/.config/cqgov/config.toml``), or wherever ``CQGOV_CONFIG`` points::

    server = "http://127.0.0.1:8701"
    token = "eyJ…"          # keep the file private: chmod 600
    lang = "en"
    db = "/srv/cqgov/district-500108.duckdb"

Keys are declared once (``Settings`` in ``cqgov_tui.settings``, imported only when there is a file to
check: a command run without one does not pay ~0.15 s for pydantic); an unknown key, a wrong type or a
malformed file is refused with one line naming the file.
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import BadInput

ENV_PATH = "CQGOV_CONFIG"
# The environment variable of each key (click reads them; listed here so the docs and tests have one source).
ENV = {"server": "CQGOV_SERVER", "token": "CQGOV_TOKEN", "lang": "CQGOV_LANG", "db": "CQGOV_DB"}


def server_url(value: str) -> str:
    """A tier server's base URL: http(s), a host, a valid port. Raises ValueError with the reason."""
    import httpx

    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8701")
    return value.strip().rstrip("/")


def path() -> Path:
    """Where the config file is read from (it need not exist)."""
    given = os.environ.get(ENV_PATH)
    if given:
        return Path(given).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("cqgov", appauthor=False)) / "config.toml"


_cache: dict[tuple[str, float, int], dict[str, Any]] = {}


def load() -> dict[str, Any]:
    """The file's settings that are set (missing file: none). Read once per file version."""
    p = path()
    try:
        st = p.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInput(f"config file {p}: {exc.strerror}") from None
    key = (str(p), st.st_mtime, st.st_size)
    if key not in _cache:
        _cache.clear()
        _cache[key] = _read(p, st)
    return _cache[key]


def _read(p: Path, st: os.stat_result) -> dict[str, Any]:
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"config file {p}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"config file {p}: not valid TOML ({exc})") from None
    from pydantic import ValidationError

    from .settings import Settings

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise BadInput(f"config file {p}: {where}: {first['msg']}") from None
    values = settings.model_dump(exclude_none=True)
    if "token" in values and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Like ssh with a private key: say so, once per read, but still work.
        print(f"cqgov: warning: {p} holds a token and is readable by others (chmod 600 {p})", file=sys.stderr)
    return values
