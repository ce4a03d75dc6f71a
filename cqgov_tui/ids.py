"""Identifiers: time-ordered UUIDv7 for events, commands and directives."""

from __future__ import annotations

import os
import threading
import time
import uuid

# Random bits come from os.urandom drawn 4 KB at a time, one pool per thread. os.urandom gives
# the GIL up around its system call, and a tier server's single writer thread makes an id per
# event and per audit entry: each call then waits to get the GIL back from the request threads,
# and that wait, not the call, was ~5 % of the writer's time under load.
_POOL_BYTES = 4000
_pools = threading.local()


def _forget_pools() -> None:
    # A forked child must not hand out the bytes its parent has already used.
    global _pools
    _pools = threading.local()


if hasattr(os, "register_at_fork"):  # POSIX; where there is no fork there is nothing to forget
    os.register_at_fork(after_in_child=_forget_pools)


def _random80() -> int:
    pool = _pools.__dict__
    buf: bytes | None = pool.get("buf")
    at: int = pool.get("at", _POOL_BYTES)
    if buf is None or at >= _POOL_BYTES:
        buf, at = os.urandom(_POOL_BYTES), 0
        pool["buf"] = buf
    pool["at"] = at + 10
    return int.from_bytes(buf[at:at + 10], "big")


def uuid7(ms: int | None = None) -> str:
    """RFC 9562 UUIDv7: 48-bit ms timestamp, version, 74 random bits (from the OS's CSPRNG)."""
    ms = int(time.time() * 1000) if ms is None else int(ms)
    rand = _random80()
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"  # str(uuid.UUID(int=value)) without building the object (one per event and entry)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_time(value: str) -> float | None:
    """The creation time (epoch seconds) a UUIDv7 carries; None for anything else."""
    if len(value) != 36:
        return None
    try:
        u = uuid.UUID(value)
    except ValueError:
        return None
    if u.version != 7:
        return None
    return (u.int >> 80) / 1000.0
