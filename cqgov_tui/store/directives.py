"""Directives (政令) and their receipts, one per addressed street, staged in the unit of work."""

from __future__ import annotations

from typing import Any

from ..domain.entities import Directive, Receipt
from ..domain.schema import to_row
from .base import StoreCore
from .unit import _KEYED


class DirectiveRows(StoreCore):
    """Directives and receipts (mixed into ``Store``)."""

    def put_directive(self, directive: Directive, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("directives", (directive.id,), directive)
            self.log_change("directive", directive.id, "upsert", to_row(directive), origin, ",".join(directive.targets))

    def get_directive(self, directive_id: str) -> Directive | None:
        """A directive by id or number: the running transaction's, then the cache, then the table by key."""
        with self.lock:
            batch = self._mine()
            if batch is not None:
                for d in batch.keyed_seen["directives"].values():
                    if directive_id in (d.id, d.number):
                        return d
            cache = self._keyed_cache["directives"]
            key = (directive_id,)
            if key not in cache:
                found = self._select(Directive, "FROM directives WHERE id = ?", [directive_id], flush=False)
                if not found:
                    found = self._select(Directive, "FROM directives WHERE number = ? LIMIT 1", [directive_id],
                                         flush=False)
                    if found:  # cached by its id, where commits update it; a number is looked up each time
                        cache[(found[0].id,)] = found[0]
                        return found[0]
                self._remember(cache, key, found[0] if found else None)
            return cache[key]

    _listed: tuple[int, int, list[Directive]] | None = None  # (version, limit, newest first)

    def directives(self, limit: int = 100) -> list[Directive]:
        """The newest directives. Every street asks for them on each visit (1,031 at a fan-out) while
        only receipts change, so the list is kept until a directive is written."""
        with self.lock:
            if self._mine() is not None:
                return self._select(Directive, "FROM directives ORDER BY created_at DESC LIMIT ?", [limit])
            listed = self._listed
            if listed is None or listed[0] != self._directives_version or listed[1] != limit:
                rows = self._select(Directive, "FROM directives ORDER BY created_at DESC LIMIT ?", [limit])
                listed = self._listed = (self._directives_version, limit, rows)
            return list(listed[2])

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
            key = (directive_id, jurisdiction_code)
            if batch is not None:
                hit = batch.keyed_seen["receipts"].get(key)
                if hit is not None:
                    return hit
            cache = self._keyed_cache["receipts"]
            if key not in cache and directive_id not in self._receipts_complete:
                # One read brings every receipt of the directive: a fan-out then answers 1,031 streets'
                # lookups from memory, a street with no receipt yet included.
                if len(cache) > 200_000:  # one entry per street and directive: keep it bounded
                    cache.clear()
                    self._receipts_complete.clear()
                for r in self._select(Receipt, "FROM receipts WHERE directive_id = ?", [directive_id], flush=False):
                    cache[(r.directive_id, r.jurisdiction_code)] = r
                self._receipts_complete.add(directive_id)
            return cache.get(key)

    def stage_keyed(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Stage whole rows of a keyed table (directives, receipts, people…) as received (the replica logs them)."""
        entity = _KEYED[table]
        keys: tuple[str, ...] = getattr(entity, "__key__")  # set by @table
        batch = self._require_tx()
        for row in rows:
            batch.put_keyed(table, tuple(row[k] for k in keys), entity(**row))

    @staticmethod
    def _remember(cache: dict[tuple[str, ...], Any], key: tuple[str, ...], value: Any) -> None:
        if len(cache) > 200_000:  # one entry per street and directive: keep it bounded
            cache.clear()
        cache[key] = value

    def receipts(self, directive_id: str) -> list[Receipt]:
        return self._select(Receipt, "FROM receipts WHERE directive_id = ? ORDER BY jurisdiction_code", [directive_id])
