"""Refusals counted per caller and minute: one audit entry each, and 429 past a rate.

A refused command rolls back with its transaction, so its denial is kept here
and audited later in a transaction of its own. Audited one by one, a caller
could flood the hash-chained audit log (and the change log that replicates it
to every tier) with a single batch of refused commands; so denials are
counted per (caller, minute) and each minute that saw any becomes one entry
with the count once the minute is over. A caller whose denials in the current
minute reach ``limit`` is answered 429 until the minute ends. Minutes are
read from the server's clock, so tests drive them with a simulated one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..domain.entities import Role, Tier, User

DEFAULT_LIMIT = 120  # denials per caller and minute before requests are answered 429
WINDOW_S = 60.0


@dataclass
class Tally:
    """The denials of one caller in one minute."""

    user: User
    minute: int
    first_at: float
    count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # command type → count
    first_reason: str = ""

    @property
    def note(self) -> str:
        kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(self.kinds.items()))
        return f"{self.count} refused in this minute ({kinds}); first: {self.first_reason}"[:1000]


class DenialLedger:
    def __init__(self, limit: int = DEFAULT_LIMIT, window: float = WINDOW_S):
        if limit < 1:
            raise ValueError("the denial limit must be at least 1")
        self.limit = limit
        self.window = window
        self._tallies: dict[tuple[str, int], Tally] = {}
        self._lock = threading.Lock()

    def _minute(self, now: float) -> int:
        return int(now // self.window)

    def record(self, user: User, kind: str, reason: str, now: float) -> None:
        key = (user.user, self._minute(now))
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = Tally(user, key[1], now, first_reason=reason[:300])
            tally.count += 1
            tally.kinds[kind] = tally.kinds.get(kind, 0) + 1

    def retry_after(self, user_id: str, now: float) -> float | None:
        """Seconds until ``user_id`` is heard again, or None when it is under the limit."""
        minute = self._minute(now)
        with self._lock:
            tally = self._tallies.get((user_id, minute))
            if tally is None or tally.count < self.limit:
                return None
        return max(1.0, (minute + 1) * self.window - now)

    def pending(self) -> int:
        """Denials not yet audited."""
        with self._lock:
            return sum(t.count for t in self._tallies.values())

    def take_due(self, now: float, final: bool = False) -> list[Tally]:
        """The tallies of minutes that have ended (every tally when ``final``), removed from the ledger."""
        minute = self._minute(now)
        with self._lock:
            due = [k for k in self._tallies if final or k[1] < minute]
            out = [self._tallies.pop(k) for k in due]
        return sorted(out, key=lambda t: (t.first_at, t.user.user))

    def put_back(self, tallies: list[Tally]) -> None:
        """Tallies whose audit could not be written go back (merged with any newer count)."""
        with self._lock:
            for t in tallies:
                have = self._tallies.get((t.user.user, t.minute))
                if have is None:
                    self._tallies[(t.user.user, t.minute)] = t
                else:
                    have.count += t.count
                    for k, n in t.kinds.items():
                        have.kinds[k] = have.kinds.get(k, 0) + n


def audit_fields(tally: Tally) -> dict:
    """The audit entry for one tally (``Store.append_audit`` keywords)."""
    user = tally.user
    return dict(event_id="-", action="denied", from_status=None, to_status=None, actor=user.user,
                role=Role(user.role).value, tier=Tier(user.tier).value, note=tally.note, at=tally.first_at,
                scope=user.scope_code)
