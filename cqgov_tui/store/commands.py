"""Applied command ids with their answers: what makes ``POST /v1/commands`` exactly-once."""

from __future__ import annotations

from .base import StoreCore


class CommandRows(StoreCore):
    """Applied commands (mixed into ``Store``); recorded in the same transaction as their effects."""

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
            rest = [i for i in ids if i not in out]
            if rest:
                rows = self._conn.execute(
                    "SELECT id, body_hash, outcome, reply FROM applied_commands WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [rest]).fetchall()
                out.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        return out

    def record_commands(self, records: list[tuple[str, str, str, str, str]], actor: str) -> None:
        """Record (id, body hash, type, outcome, reply JSON) of applied commands, in the caller's transaction."""
        batch = self._require_tx()
        now = self.clock.now()
        batch.record_commands([(*r, actor, now) for r in records])
