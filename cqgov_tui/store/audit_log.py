"""The audit log: this node's hash-chained entries (staged in the unit of work, chained as they are staged)
and the entries replicated from other nodes."""

from __future__ import annotations

from typing import Any

from ..domain.entities import AuditEntry
from ..domain.schema import column_names, evolve
from . import audit as audit_chain
from .events import EventRows
from .rows import AUDIT_ALL, event_scope


class AuditRows(EventRows):
    """Audit entries (mixed into ``Store``; an entry's scope is its event's, hence on top of ``EventRows``)."""

    def append_audit(
        self,
        *,
        event_id: str,
        action: str,
        from_status: str | None,
        to_status: str | None,
        actor: str,
        role: str,
        tier: str,
        note: str = "",
        at: float | None = None,
        scope: str | None = None,
    ) -> AuditEntry:
        """Append one hash-chained entry; ``scope`` (the event's deepest code) saves a lookup when known."""
        batch = self._require_tx()
        seq, prev = batch.audit_tail[0] + 1, batch.audit_tail[1]
        entry = AuditEntry(seq=seq, acted_at=self.clock.now() if at is None else at, event_id=event_id,
                           action=action, from_status=from_status, to_status=to_status, actor=actor, role=role,
                           tier=tier, node=self.node, note=note, prev_hash=prev, hash="")
        entry = evolve(entry, hash=audit_chain.entry_hash(prev, entry))
        batch.append_audit(entry)
        self.log_change("audit", str(entry.seq), "append", entry, scope=scope or self._scope_of(event_id))
        return entry

    def append_audits(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """``append_audit`` for many (same keyword fields per dict); the chain is built in order."""
        return [self.append_audit(**kw) for kw in entries]

    def _scope_of(self, event_id: str) -> str:
        event = self.get_event(event_id)
        return event_scope(event) if event is not None else self.code

    def remote_audit_head(self, node: str) -> tuple[int, str] | None:
        """(seq, hash) of the newest replicated audit entry from ``node`` (the client's witness)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT seq, hash FROM audit_remote WHERE node = ? ORDER BY seq DESC LIMIT 1", [node]).fetchall()
        return (row[0][0], row[0][1]) if row else None

    def audit_entries(self, event_id: str | None = None) -> list[AuditEntry]:
        if event_id:
            return self._select(AuditEntry, "FROM audit_log WHERE event_id = ? ORDER BY seq", [event_id])
        return self._select(AuditEntry, "FROM audit_log ORDER BY seq", [])

    def verify_audit(self) -> audit_chain.Verdict:
        return audit_chain.verify(self.audit_entries())

    def event_audit(self, event_id: str) -> list[AuditEntry]:
        """An event's audit entries from this node and replicated ones, in time order."""
        return self._select(AuditEntry, f"FROM {AUDIT_ALL} WHERE event_id = ? ORDER BY acted_at, node, seq",
                            [event_id])

    def bulk_load_remote_audit(self, table: Any) -> int:
        """Load an Arrow table of audit rows as entries replicated from other nodes (benchmarks)."""
        cols = column_names(AuditEntry)
        with self.tx():
            self._register("_bulk_audit", table)
            try:
                self.conn.execute(f"INSERT INTO audit_remote SELECT {', '.join(cols)} FROM _bulk_audit")
            finally:
                self.conn.unregister("_bulk_audit")
        return table.num_rows
