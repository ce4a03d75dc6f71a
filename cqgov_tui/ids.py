"""Identifiers: time-ordered UUIDv7 for events, commands and directives."""

from __future__ import annotations

import os
import time
import uuid


def uuid7(ms: int | None = None) -> str:
    """RFC 9562 UUIDv7: 48-bit ms timestamp, version, 74 random bits."""
    ms = int(time.time() * 1000) if ms is None else int(ms)
    rand = int.from_bytes(os.urandom(10), "big")
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
