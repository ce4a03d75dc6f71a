"""Directives (政令) and their receipts, one per addressed street, staged in the unit of work."""

from __future__ import annotations

from ..domain.entities import Directive, Receipt
from ..domain.schema import to_row
from .base import StoreCore


class DirectiveRows(StoreCore):
    """Directives and receipts (mixed into ``Store``)."""

    def put_directive(self, directive: Directive, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("directives", (directive.id,), directive)
            self.log_change("directive", directive.id, "upsert", to_row(directive), origin, ",".join(directive.targets))

    def get_directive(self, directive_id: str) -> Directive | None:
        with self.lock:
            batch = self._mine()
            if batch is not None:
                for d in batch.keyed_seen["directives"].values():
                    if directive_id in (d.id, d.number):
                        return d  # type: ignore[no-any-return]
            found = self._select(Directive, "FROM directives WHERE id = ?", [directive_id], flush=False)
            if not found:
                found = self._select(Directive, "FROM directives WHERE number = ? LIMIT 1", [directive_id], flush=False)
        return found[0] if found else None

    def directives(self, limit: int = 100) -> list[Directive]:
        return self._select(Directive, "FROM directives ORDER BY created_at DESC LIMIT ?", [limit])

    def put_receipt(self, receipt: Receipt, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("receipts", (receipt.directive_id, receipt.jurisdiction_code), receipt)
            self.log_change("receipt", f"{receipt.directive_id}/{receipt.jurisdiction_code}", "upsert",
                            to_row(receipt), origin, receipt.jurisdiction_code)

    # A receipt known to exist or known to be new is written the same way: staged, then one bulk upsert.
    update_receipt = put_receipt
    insert_receipt = put_receipt

    def get_receipt(self, directive_id: str, jurisdiction_code: str) -> Receipt | None:
        """One recipient's receipt by its key (a directive to all streets has 1,031 of them)."""
        with self.lock:
            batch = self._mine()
            if batch is not None:
                hit = batch.keyed_seen["receipts"].get((directive_id, jurisdiction_code))
                if hit is not None:
                    return hit  # type: ignore[no-any-return]
            found = self._select(Receipt, "FROM receipts WHERE directive_id = ? AND jurisdiction_code = ?",
                                 [directive_id, jurisdiction_code], flush=False)
        return found[0] if found else None

    def receipts(self, directive_id: str) -> list[Receipt]:
        return self._select(Receipt, "FROM receipts WHERE directive_id = ? ORDER BY jurisdiction_code", [directive_id])

    # A receipt known to exist or known to be new is written the same way: staged, then one bulk upsert.
    update_receipt = put_receipt
    insert_receipt = put_receipt
