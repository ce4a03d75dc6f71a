"""Reading a text file a user names: its text, or one line saying what is wrong with it."""

from __future__ import annotations

from pathlib import Path

from .errors import BadInput


def read_text(path: str | Path) -> str:
    """UTF-8 text (a BOM is dropped); missing, a directory, unreadable or not UTF-8 is one ``BadInput``
    line naming the file (and, for bad UTF-8, the line)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, expected a text file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{path}:{line}: not UTF-8 text") from None
