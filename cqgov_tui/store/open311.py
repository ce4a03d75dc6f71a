"""Open311 intake records and the citizen-request queries the GeoReport v2 endpoints answer from.

An Open311 request *is* an event (``source = citizen``); this table keeps only
what the POST carried beyond it (token, media link, contact details), at the
tier that took the request. It is not in the change log: contact details never
leave the intake server, and every other tier answers from the event alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..domain.entities import Event, ServiceRequestIntake, Source
from ..domain.schema import column_names
from ..scope import sql_filter
from .rows import EVENT_SELECT, TERMINAL_VALUES, event_from_row
from .store import Store

_INTAKE_COLUMNS = column_names(ServiceRequestIntake)


def put_intake(store: Store, intake: ServiceRequestIntake) -> None:
    """Record a request's intake in the caller's transaction (written with the event it made)."""
    with store.tx():
        store.conn.execute(
            f"INSERT INTO open311_requests ({', '.join(_INTAKE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _INTAKE_COLUMNS)})",
            [getattr(intake, c) for c in _INTAKE_COLUMNS])


def intakes(store: Store, event_ids: Sequence[str]) -> dict[str, ServiceRequestIntake]:
    """Intake records of these events (those taken here by Open311), by event id."""
    if not event_ids:
        return {}
    with store.lock:
        rows = store.conn.execute(
            f"SELECT {', '.join(_INTAKE_COLUMNS)} FROM open311_requests WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
            [list(event_ids)]).fetchall()
    return {r[0]: ServiceRequestIntake(*r) for r in rows}


def event_for_token(store: Store, token: str) -> Event | None:
    """The event an Open311 token names: the intake's token, else the event id itself (every event's token)."""
    with store.lock:
        row = store.conn.execute("SELECT event_id FROM open311_requests WHERE token = ?", [token]).fetchall()
    return store.get_event(row[0][0] if row else token)


def citizen_requests(store: Store, *, scope_code: str, refs: Iterable[str] = (), categories: Iterable[str] = (),
                     start: float | None = None, end: float | None = None, closed: bool | None = None,
                     limit: int = 1000) -> list[Event]:
    """Citizen-reported events (Open311 service requests) in a scope, newest first.

    ``refs`` (event numbers or ids) overrides every other filter, as GeoReport v2 says of
    ``service_request_id``; ``closed`` None means open and closed alike.
    """
    where, params = sql_filter(scope_code)
    clauses: list[str] = [where, "source = ?"]
    args: list[Any] = [*params, Source.CITIZEN.value]
    wanted = list(refs)
    if wanted:
        clauses.append("(number IN (SELECT unnest(?::VARCHAR[])) OR id IN (SELECT unnest(?::VARCHAR[])))")
        args += [wanted, wanted]
    else:
        codes = list(categories)
        if codes:
            clauses.append("category_code IN (SELECT unnest(?::VARCHAR[]))")
            args.append(codes)
        if start is not None:
            clauses.append("reported_at >= ?")
            args.append(start)
        if end is not None:
            clauses.append("reported_at <= ?")
            args.append(end)
        if closed is not None:
            terminal = ", ".join(f"'{v}'" for v in TERMINAL_VALUES)
            clauses.append(f"status {'IN' if closed else 'NOT IN'} ({terminal})")
    sql = f"SELECT {EVENT_SELECT} FROM events WHERE {' AND '.join(clauses)} ORDER BY reported_at DESC, id LIMIT ?"
    with store.lock:
        rows = store.conn.execute(sql, [*args, limit]).fetchall()
    return [event_from_row(r) for r in rows]
