"""Federation: a tier server as a client of the tier above, over the same sync protocol.

Down (pull, by the sync client): the upper tier's change log, filtered to this
server's jurisdiction — directives, supervision (a 督办 is a directive to the
owning jurisdiction), and the upper tier's copies of our own rows, which the
replica skips or the version check makes no-ops.

Up (push, through the outbox): ``FederationPump`` walks this store's own
change log from a cursor kept in ``store_meta`` and, in the same transaction
as it advances the cursor, enqueues

* at a street: every event it owns (``federate.event``, the whole row at its
  current version) and every receipt of its own jurisdiction
  (``federate.receipt``);
* at a district: the events the city must see — orange or red, overdue
  (supervised), escalated, 多跨 masters and sub-tasks — plus any event that
  has gone up before (its later versions follow it), and receipts of
  directives that came from the city;
* at the city: nothing.

Origins are kept: an event keeps ``origin_tier``/``origin_node`` at every hop
and receipts name the street that wrote them, so a row never goes back to the
tier it came from (rows whose origin is the upper tier are skipped; a copy
is written only when its version is newer, so an echo is a no-op).

Who acts on an event: the tier that owns it (``origin_node``). An upper tier
holding a federated copy may comment on it (audit only) but any state
change is refused with a reason naming the owner; to make the owner act the
upper tier sends ``supervise``, which is a directive to the owning
jurisdiction with require-ack, travelling down and answered with receipts
like any other directive. The SLA sweep likewise raises colour and
supervision only on events this tier owns (``Engine.sweep(owned_only=True)``): the owner's
escalation ladder already names the supervising tier and that travels up
with the event.
"""

from __future__ import annotations

import threading
import time

from ..domain.colour import Colour
from ..domain.entities import Event, Status, Tier
from ..domain.schema import to_row
from ..engine import directives

PUMP_CURSOR = "federation:pump_seq"
_SENT_EVENT = "federation:sent_event:"
_SENT_RECEIPT = "federation:sent_receipt:"
BATCH = 500
IDLE_CURSOR_EVERY_S = 5.0  # how often a pump with nothing to forward stores how far it has read


def node_tier(node: str | None) -> str | None:
    """Nodes are named ``<tier>-<code>``; the tier part tells where a row was written."""
    if not node:
        return None
    head = node.split("-", 1)[0]
    return head if head in ("city", "district", "street") else None


def city_must_see(store, event: Event) -> bool:
    """Events the city must see: orange/red, overdue (supervised), escalated, 多跨."""
    if event.colour in (Colour.RED.value, Colour.ORANGE.value):
        return True
    if event.escalation_level > 0 or event.supervised_by or event.status == Status.ESCALATED.value:
        return True
    if event.parent_id:
        return True
    return bool(store.children_of(event.id))


class FederationPump:
    """Turns this store's own changes into outbox commands for the tier above."""

    def __init__(self, store, client=None):
        self.store = store
        self.client = client  # SyncClient of the upper tier; None: deliveries only (a city, or no --upstream)
        self.lock = threading.Lock()
        self.enqueued = {"federate.event": 0, "federate.receipt": 0}
        self.delivered = 0
        self._idle_cursor: int | None = None  # read but not yet stored (a pump with nothing to forward)
        self._idle_stored_at = 0.0

    def _upward(self, event: Event) -> bool:
        tier = self.store.tier
        if tier is Tier.CITY or event.origin_tier == Tier.CITY.value:
            return False
        if tier is Tier.STREET:
            return event.origin_node == self.store.node
        # district: own events and the streets' events, when the city must see them or already has them
        if self.store.meta(_SENT_EVENT + event.id) is not None:
            return True
        return city_must_see(self.store, event)

    def run_once(self) -> int:
        """Process up to ``BATCH`` change-log rows; returns how many were read."""
        with self.lock:
            store = self.store
            start = self._idle_cursor if self._idle_cursor is not None else int(store.meta(PUMP_CURSOR, "0"))
            if self.client is None and store.tier is not Tier.STREET:
                # Nothing goes up and nothing is delivered here, so no row needs reading: the cursor moves to
                # the head in memory and is stored every few seconds, not in a commit of its own after every
                # command batch. (After a crash the few seconds' rows are passed over again, to the same no
                # effect.)
                head = store.head()
                if head <= start:
                    return 0
                self._idle_cursor = head
                self._store_idle_cursor()
                return head - start
            rows = store.changes_after(start, limit=BATCH, with_data=False)  # which rows, not their JSON
            if not rows:
                return 0
            self._idle_cursor = None
            upper = Tier(store.tier).upper
            with store.tx():
                events: dict[str, None] = {}
                receipts: dict[tuple[str, str], None] = {}
                arrived = False
                for row in rows:
                    if upper is not None and node_tier(row["origin"]) == upper.value and row["entity"] != "directive":
                        continue  # came from above: never sent back up
                    if row["entity"] == "event":
                        events[row["key"]] = None
                    elif row["entity"] == "receipt":
                        d_id, _, code = row["key"].partition("/")
                        receipts[(d_id, code)] = None
                    elif row["entity"] == "directive":
                        arrived = True
                if arrived and store.tier is Tier.STREET:
                    # A directive reached this street: record its 'delivered' receipt now.
                    for r in directives.deliver_arrived(store):
                        receipts[(r.directive_id, r.jurisdiction_code)] = None
                if self.client is not None:
                    for event_id in events:
                        self._event_up(event_id)
                    for d_id, code in receipts:
                        self._receipt_up(d_id, code)
                store.set_meta(PUMP_CURSOR, str(rows[-1]["seq"]))
            return len(rows)

    def _store_idle_cursor(self) -> None:
        now = time.monotonic()
        if self._idle_cursor is not None and now - self._idle_stored_at >= IDLE_CURSOR_EVERY_S:
            self.store.set_meta(PUMP_CURSOR, str(self._idle_cursor))
            self._idle_stored_at = now

    def _event_up(self, event_id: str) -> None:
        event = self.store.get_event(event_id)
        if event is None or not self._upward(event):
            return
        sent = self.store.meta(_SENT_EVENT + event.id)
        if sent is not None and int(sent) >= event.version:
            return
        self.client.enqueue("federate.event", {"event": to_row(event)}, local_effect=_no_local_effect)
        self.store.set_meta(_SENT_EVENT + event.id, str(event.version))
        self.enqueued["federate.event"] += 1

    def _receipt_up(self, directive_id: str, code: str) -> None:
        store = self.store
        receipt = store.get_receipt(directive_id, code)
        if receipt is None:
            return
        if store.tier is Tier.STREET:
            if code != store.code:
                return
        else:
            d = store.get_directive(directive_id)
            if d is None or d.origin_tier != Tier.CITY.value:
                return  # our own directive: its receipts stop here
        key = f"{_SENT_RECEIPT}{directive_id}/{code}"
        sent = store.meta(key)
        fingerprint = f"{directives.RANK[receipt.state]}:{receipt.version}:{receipt.renotified}"
        if sent == fingerprint:
            return
        self.client.enqueue("federate.receipt", {"receipt": to_row(receipt), "origin": store.node},
                            local_effect=_no_local_effect)
        store.set_meta(key, fingerprint)
        self.enqueued["federate.receipt"] += 1

    def backlog(self) -> int:
        done = self._idle_cursor if self._idle_cursor is not None else int(self.store.meta(PUMP_CURSOR, "0"))
        return max(0, self.store.head() - done)


def _no_local_effect(_store) -> None:
    """Federation commands copy rows this store already holds: nothing to apply locally."""

