"""Witnessing an upstream audit chain: a truncated tail still verifies on its own, so the
client remembers the newest entry it received and checks the server's chain reaches it."""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Store
from ..store.audit import Verdict


@dataclass(frozen=True)
class Witness:
    node: str
    seq: int
    hash: str


def witness(store: Store, node: str) -> Witness | None:
    """The newest entry of ``node``'s chain that this replica holds."""
    row = store.remote_audit_head(node)
    return Witness(node, row[0], row[1]) if row else None


def check(verdict: Verdict, entries_hashes: dict[int, str], seen: Witness) -> tuple[bool, str]:
    """Verdict of a chain plus the witnessed entry: intact, reaching the witnessed seq with the same hash."""
    if not verdict.ok:
        return False, verdict.reason
    have = entries_hashes.get(seen.seq)
    if have is None:
        return False, f"audit log ends at seq {verdict.entries} but seq {seen.seq} was witnessed (truncated)"
    if have != seen.hash:
        return False, f"seq {seen.seq} differs from the witnessed entry (rewritten)"
    return True, "intact and reaches the witnessed head"
