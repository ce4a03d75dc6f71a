"""Injectable clocks: the engine, SLA sweeps and simulator never call time.time()."""

from __future__ import annotations

import abc
import datetime as _dt
import threading
import time

CST = _dt.timezone(_dt.timedelta(hours=8), "CST")  # China has one zone and no DST


class Clock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> float: ...

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None: ...


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class SimClock(Clock):
    """A clock that only moves when told to (drills replay hours in seconds)."""

    def __init__(self, start: float = 1_795_000_000.0):  # 2026-11-18 local morning
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += seconds
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = float(t)

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))


def local(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(t, CST)


def fmt_local(t: float | None, with_date: bool = False) -> str:
    if t is None:
        return "-"
    return local(t).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def fmt_duration(seconds: float) -> str:
    """Signed m:ss / h:mm:ss countdown; negative means overdue."""
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m}:{s:02d}"
