"""Who may act on what: the jurisdiction rule with its one refusal, and the department rule.

Jurisdiction. A reference from outside one's scope is answered exactly like a
reference to nothing: ``no event '…' in your jurisdiction``. The message
repeats only what the caller sent, so it tells nothing about other streets'
events (not their number, not whether the id exists). Server-side lookups are
exact (an id or a number); id prefixes are for people at their own store.

Departments. A department user (职能部门, e.g. 城管 cgj) acts only on work
assigned to its department: an event whose assignee or dispatched departments
name it, a directive whose audience names it. Tokens always name the
department (``server.auth.claims_problem``); a department user with no
department exists only on a local store (the CLI's ``--role department``,
drills), where it acts as the store's own operator on events.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from ..domain.entities import Event, Role, User
from ..errors import BadInput, PermissionDenied
from ..scope import event_in_scope

if TYPE_CHECKING:
    from ..store import Store


class NotInJurisdiction(PermissionDenied):
    """The single answer for a reference the caller may not see, whether or not the row exists."""

    code = "not_in_jurisdiction"


def not_found(what: str, ref: str) -> NotInJurisdiction:
    shown = (ref or "")[:64]
    return NotInJurisdiction(f"no {what} {shown!r} in your jurisdiction")


def find_event(store: Store, ref: str, actor: User) -> Event:
    """The event named exactly by ``ref`` (id or number) inside ``actor``'s jurisdiction, or the one refusal."""
    try:
        event = store.resolve_event(ref)
    except BadInput:  # none, or an ambiguous number: both answered as "not yours"
        raise not_found("event", ref) from None
    if not event_in_scope(actor.scope_code, event.district_code, event.street_code, event.grid_code):
        raise not_found("event", ref)
    return event


def id_taken(what: str, ref: str) -> BadInput:
    """A client-chosen id already in use: one answer whoever holds it (never "already exists" elsewhere)."""
    return BadInput(f"{what} id {(ref or '')[:64]!r} cannot be used; let the server choose one")


def assigned(user: User, departments: Collection[str]) -> bool:
    """THE department rule: may ``user`` act on work assigned to ``departments``?

    True for every role but department; a department user only when its department is among them.
    """
    if Role(user.role) is not Role.DEPARTMENT:
        return True
    return user.department is not None and user.department in departments


def require_assigned(user: User, event: Event, action: str) -> None:
    """Refuse a department user's state change on an event not assigned to its department."""
    if Role(user.role) is not Role.DEPARTMENT or user.department is None:
        return  # other roles, or the local operator (see the module docstring)
    work = set(event.departments or ())
    if event.assignee:
        work.add(event.assignee)
    if not assigned(user, work):
        raise PermissionDenied(f"{event.number} is not assigned to department {user.department}; "
                               f"a department may {action} only its own work")
