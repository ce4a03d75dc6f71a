"""The console's start snapshot: what its panes show on their first full frame, kept beside the store.

A start on a big store spends most of its time before the first full frame
loading data the panes showed when the console last closed: the queue's first
screen of rows with names, the map's colours, the directives, the runway
board. The launcher writes exactly that to ``<store>.console-start`` when it
closes the store (computed from the store just before closing, so it is what
a normal start would load), and keys it by:

* the store file as it was after closing — its size, modification time, the
  DuckDB header blocks (a checkpoint rewrites them, so any change to the
  file's content changes them) and its write-ahead log, if any;
* who looks and how (user, role, tier, scope, the queue's length), and the
  catalogue and geography the names and the board came from (their disk
  cache digests), the format and cqgov's version.

At the next start, if every part of the key matches, the panes are filled
from it at once and the console's usual workers then load the same data from
the store and replace it; anything else — the file missing, truncated,
corrupt, of another format, written for another user, or a store that
someone wrote since (a server, ``cqgov`` commands, a sync) — and it is
ignored and the console loads as before. Reading it never raises.

Decoding is declared, not hand-checked: ``msgspec`` decodes the JSON into
the same frozen dataclasses the feed produces (``QueueRow``,
``DirectiveRow``, ``BoardNode``), refusing any field of the wrong type.
``CQGOV_NO_CACHE=1`` turns it off, as it does the other start-up caches.

Values that depend on the clock (countdowns, directive deadlines, time
windows on the board) are the last close's until the workers' first load
replaces them, a fraction of a second after the first frame.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from ..domain.colour import Colour
from ..domain.entities import User
from .board import BoardNode
from .directives import DirectiveRow
from .queue import QueueRow

FORMAT = 2  # 2: the store's tier, code and node, so a start on the unchanged store need not open it first
SUFFIX = ".console-start"
HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers (checkpoint iteration, blocks)
MAX_BYTES = 32 * 1024 * 1024  # far above any real snapshot (a few hundred rows): a bigger file is not one


@dataclass(frozen=True)
class StoreMark:
    """The store file's identity on disk: equal marks mean the same content."""

    size: int
    mtime_ns: int
    header: str  # digest of the first HEADER_BYTES
    wal: tuple[int, int] | None  # (size, mtime_ns) of ``<store>.wal``, None when there is none


@dataclass(frozen=True)
class StartSnapshot:
    """What a normal start loads (``capture`` reads it from an open store) and, once ``save`` has written it,
    the mark of the closed store it stands for."""

    format: int
    store: StoreMark | None  # None until ``save`` keys it to the closed file
    context: str  # ``context_key``: who looks, the queue's length, catalogue and geography
    head: int  # the change log's head the content was read at
    saved_at: float
    queue: tuple[QueueRow, ...]
    fill: dict[str, Colour]  # the city map's colours (the level every start opens on)
    directives: tuple[DirectiveRow, ...]
    board: tuple[BoardNode, ...] | None  # None: the board could not be computed at close
    # Who the store is (its metadata): with the key proving the file unchanged, the console's first frame
    # needs no open store (``console.pending_store``). Empty: unknown, the store is opened first.
    tier: str = ""
    code: str = ""
    node: str = ""


def enabled() -> bool:
    return os.environ.get("CQGOV_NO_CACHE") != "1"


def path_for(store_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(store_path)}{SUFFIX}")


def store_mark(store_path: str | os.PathLike[str]) -> StoreMark | None:
    """The store file's mark, or None when it cannot be read."""
    path = os.fspath(store_path)
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            header = hashlib.blake2b(f.read(HEADER_BYTES), digest_size=16).hexdigest()
        try:
            w = os.stat(path + ".wal")
            wal: tuple[int, int] | None = (w.st_size, w.st_mtime_ns)
        except FileNotFoundError:
            wal = None
    except OSError:
        return None
    return StoreMark(st.st_size, st.st_mtime_ns, header, wal)


def context_key(user: User, limit: int) -> str:
    """Everything besides the store that the panes' first content depends on."""
    from .. import __version__
    from ..catalogue import cached
    from . import geo_cache

    overlay = os.environ.get(cached.ENV) or ""
    parts = [str(FORMAT), __version__, user.user, _plain(user.role), _plain(user.tier), user.scope_code,
             str(user.department), str(limit), str(cached.digest(cached.default_root())), overlay,
             str(cached.digest(Path(overlay)) if overlay else ""), str(geo_cache.digest())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _plain(value: object) -> str:
    return str(getattr(value, "value", value))


def capture(backend, limit: int) -> StartSnapshot:
    """The content of a normal start (the feed's first poll on the city, the board), read now."""
    from .board import load_board
    from .feed import ConsoleFeed

    feed = ConsoleFeed(backend, limit=limit)
    frame = feed.poll(None)
    now = backend.clock.now()
    try:
        board = tuple(load_board(backend.store, backend.catalogue, now, backend.user.scope_code))
    except Exception:  # a board that fails at close fails at start too: the board worker reports it then
        board = None
    store = backend.store
    return StartSnapshot(FORMAT, None, context_key(backend.user, limit), frame.head, now, frame.queue or (),
                         dict(frame.fill or {}), frame.directives or (), board, _plain(store.tier), store.code,
                         store.node)


def save(store_path: str | os.PathLike[str], content: StartSnapshot) -> bool:
    """Write ``content`` beside the closed store, keyed by the store's mark now; True when written.
    Best effort: a store directory that cannot be written to just has no snapshot."""
    if not enabled():
        return False
    mark = store_mark(store_path)
    if mark is None:
        return False
    snap = replace(content, store=mark)
    target = path_for(store_path)
    tmp = None
    try:
        data = msgspec.json.encode(snap)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)  # a reader sees the old file or the whole new one
        return True
    except Exception:  # noqa: BLE001 - the snapshot is only a shortcut
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def read(store_path: str | os.PathLike[str]) -> StartSnapshot | None:
    """The snapshot beside the store if it is one and was written for the store as it is now; else None."""
    if not enabled():
        return None
    try:
        with open(path_for(store_path), "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return None
        snap = msgspec.json.decode(data, type=StartSnapshot)
    except (OSError, msgspec.DecodeError, ValueError, TypeError, RecursionError):
        return None
    mark = store_mark(store_path)
    if snap.format != FORMAT or mark is None or snap.store != mark:
        return None
    return snap


def usable(snap: StartSnapshot | None, user: User, limit: int) -> StartSnapshot | None:
    """``snap`` if it was written for this user and queue length (and this catalogue and geography)."""
    if snap is None:
        return None
    try:
        return snap if snap.context == context_key(user, limit) else None
    except Exception:  # a digest that cannot be computed: no cache to compare with
        return None


def close_and_keep(backend, store_path: str | None, limit: int) -> None:
    """Close the backend's store; first read what the next start's panes will show, and keep it beside the
    store keyed by the closed file. Both are best effort on the way out (any failure: no snapshot). A store
    the console never opened (``console.pending_store``: it quit first, or the open failed) is left as it
    is on disk, and so is its snapshot, which still matches it."""
    if getattr(backend.store, "pending", False) and not backend.store.is_open:
        return
    content = None
    if store_path and enabled():
        try:
            content = capture(backend, limit)
        except Exception:  # no snapshot: the next start loads as a first one does
            content = None
    try:
        backend.store.close()
    except Exception:  # closing is best effort on the way out
        return
    if content is not None:
        save(store_path, content)
