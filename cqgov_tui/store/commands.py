"""Applied command ids with their answers: what makes ``POST /v1/commands`` exactly-once.

Every command ever applied has a row, so the table only grows; looking a
batch's ids up in it must not cost more as it does. Clients name commands by
UUIDv7, which carry the client's creation time. The process remembers every id
it applied in the last hour of wall time (``_Recent``): a command created
after that memory began (less a margin for a client clock running fast) and
not in it cannot have been applied before — no SQL at all. Any other id (older,
from a clock far ahead, or not a UUIDv7) is looked up by primary key.
"""

from __future__ import annotations

import time

from ..ids import uuid7_time
from .base import StoreCore

RECENT_S = 3600.0  # wall-clock seconds of applied ids kept in memory
SKEW_S = 600.0  # how far ahead a client's clock may run before its ids are looked up instead
_POINT_LOOKUPS = 32  # more unknown ids than this in one call: one scan instead of many lookups


class _Recent:
    """Ids applied since ``since`` (wall clock), with when."""

    def __init__(self, since: float, applied: dict[str, float]) -> None:
        self.since = since
        self.applied = applied

    def add(self, ids: list[str]) -> None:
        now = time.time()
        for i in ids:
            self.applied[i] = now
        if len(self.applied) > 10_000 and now - self.since > 2 * RECENT_S:
            cut = now - RECENT_S
            self.applied = {i: t for i, t in self.applied.items() if t >= cut}
            self.since = cut

    def surely_new(self, command_id: str) -> bool:
        if command_id in self.applied:
            return False
        created = uuid7_time(command_id)
        return created is not None and self.since + SKEW_S <= created <= time.time() + SKEW_S


class CommandRows(StoreCore):
    """Applied commands (mixed into ``Store``); recorded in the same transaction as their effects."""

    _recent_commands: _Recent | None = None

    def _recent(self) -> _Recent:
        if self._recent_commands is None:
            now = time.time()
            if abs(self.clock.now() - now) < 60.0:
                # The store's clock is the wall clock (a real server): start from the last hour's ids.
                rows = self._conn.execute("SELECT id, applied_at FROM applied_commands WHERE applied_at >= ?",
                                          [now - RECENT_S]).fetchall()
                self._recent_commands = _Recent(now - RECENT_S, {r[0]: float(r[1]) for r in rows})
            else:  # a simulated clock: only what this process applies is known
                self._recent_commands = _Recent(now, {})
        return self._recent_commands

    def applied_commands(self, ids: list[str]) -> dict[str, tuple[str, str, str]]:
        """Command id → (body hash, outcome, reply JSON) for the ids already applied (idempotency)."""
        if not ids:
            return {}
        with self.lock:
            out: dict[str, tuple[str, str, str]] = {}
            batch = self._mine()
            if batch is not None:
                wanted = set(ids)
                for r in batch.commands_seen:
                    if r[0] in wanted:
                        out[r[0]] = (r[1], r[3], r[4])
            recent = self._recent()
            rest = [i for i in ids if i not in out and not recent.surely_new(i)]
            select = "SELECT id, body_hash, outcome, reply FROM applied_commands"
            if len(rest) > _POINT_LOOKUPS:
                rows = self._conn.execute(f"{select} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [rest]).fetchall()
            else:
                rows = [r for i in rest for r in self._conn.execute(f"{select} WHERE id = ?", [i]).fetchall()]
            out.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        return out

    def record_commands(self, records: list[tuple[str, str, str, str, str]], actor: str) -> None:
        """Record (id, body hash, type, outcome, reply JSON) of applied commands, in the caller's transaction."""
        batch = self._require_tx()
        now = self.clock.now()
        batch.record_commands([(*r, actor, now) for r in records])

    def _committed_commands(self, ids: list[str]) -> None:
        """The ids a commit wrote: remembered so their next lookup needs no SQL."""
        self._recent().add(ids)
