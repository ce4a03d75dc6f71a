"""Local effects of commands, applied to the replica at once while the command waits in the outbox.

They write the event row only (no audit: the authoritative entries arrive
from the server). The server's own row replaces the local one when it comes
back; if the server refuses the command the client restores the pre-image.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..catalogue import Catalogue
from ..domain.entities import Role, Source, Tier, User
from ..engine import drafting, lifecycle
from ..ids import uuid7
from ..store import Store

if TYPE_CHECKING:
    from ..geo.registry import Registry

PENDING_NUMBER = "待同步"  # shown until the server's number arrives


def touched_events(store: Store, ctype: str, body: dict[str, Any]) -> list[str]:
    """Event ids a command changes locally (their pre-images are kept for a revert)."""
    if ctype == "report":
        return [body["event_id"]]
    if ctype == "act":
        return [store.resolve_event(_event_ref(body)).id]
    return []


def _event_ref(body: dict[str, Any]) -> str:
    """An act names its event as ``event`` (what the server reads); ``ref`` is accepted from older callers."""
    return str(body.get("event") or body.get("ref") or "")


def prepare(store: Store, ctype: str, body: dict[str, Any], now: float) -> dict[str, Any]:
    """Fill in what the client decides: a report's event id, an act's resolved event id."""
    body = dict(body)
    if ctype == "report":
        body.setdefault("event_id", uuid7(int(now * 1000)))
    elif ctype == "act":
        body["event"] = store.resolve_event(_event_ref(body)).id
        body.pop("ref", None)
    return body


def apply(store: Store, ctype: str, body: dict[str, Any], *, now: float, user: User | None, server_node: str | None,
          server_tier: str | None, catalogue: Catalogue | None = None, registry: Registry | None = None) -> None:
    """The built-in local effect of ``report`` and ``act``; other command types change nothing locally."""
    if ctype == "report":
        _report(store, body, now, user, server_node, server_tier, catalogue, registry)
    elif ctype == "act":
        _act(store, body, now, user, catalogue)


def _report(store: Store, body: dict[str, Any], now: float, user: User | None, server_node: str | None,
            server_tier: str | None, catalogue: Catalogue | None, registry: Registry | None) -> None:
    if catalogue is None:
        from ..catalogue.loader import load_catalogue

        catalogue = load_catalogue()
    if registry is None:
        from ..geo.registry import get_registry

        registry = get_registry()
    cat = catalogue.category(str(body.get("category", "")))
    where = drafting.place(registry, body.get("lon"), body.get("lat"), body.get("code"))
    event = drafting.new_event(
        event_id=body["event_id"], number=PENDING_NUMBER, category=cat, catalogue=catalogue, where=where,
        colour=str(body.get("colour") or cat.default_colour.value), title=str(body.get("title") or cat.name),
        text=str(body.get("text") or ""), source=str(body.get("source") or Source.CITIZEN.value),
        reporter=str(body.get("reporter") or (user.user if user else "")), address=str(body.get("address") or ""),
        now=now, parent_id=body.get("parent_id"), origin_tier=server_tier or store.tier.value,
        # The server will own the event: mark the local row as its copy, so the server's row replaces it.
        origin_node=server_node or "", version=0)
    store.insert_event(event, origin=store.node)


def _act(store: Store, body: dict[str, Any], now: float, user: User | None, catalogue: Catalogue | None) -> None:
    event = store.resolve_event(_event_ref(body))
    role = user.role if user else Role.ADMIN
    tier = user.tier if user else Tier(store.tier)
    rule = lifecycle.check(event.status, str(body.get("action", "")), role, tier, note=str(body.get("note") or ""),
                           target=body.get("target"), departments=body.get("departments"))
    if rule.target is None:
        return
    if catalogue is None:
        from ..catalogue.loader import load_catalogue

        catalogue = load_catalogue()
    changes = drafting.transition_changes(event, rule, now, catalogue, body.get("departments"))
    changes["updated_at"] = now
    store.update_event(replace(event, **changes), changes.keys(), origin=store.node)
