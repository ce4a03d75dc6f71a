"""The per-user cache directory and atomic writes into it: what the start-up caches (catalogue, risk points,
the console's geography) share.

A cache is only ever a shortcut: ``CQGOV_NO_CACHE=1`` turns every one off, and a file that cannot be
written is simply not written (the next start computes again).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/cqgov`` (or ``~/.cache/cqgov``); None when caching is turned off."""
    if os.environ.get("CQGOV_NO_CACHE") == "1":
        return None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cqgov"


def write_atomic(name: str, data: bytes) -> None:
    """Write ``data`` as ``name`` in the cache directory so a reader sees the old file or the whole new one;
    best effort (any failure leaves no partial file and is otherwise ignored)."""
    base = cache_dir()
    if base is None:
        return
    tmp = None
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=base, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, base / name)
    except Exception:  # noqa: BLE001 - caching is best effort
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
