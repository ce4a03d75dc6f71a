"""The roster: who works where, who is on duty now, and the on-call order for a role in a jurisdiction.

A roster is imported from CSV (``user,name,role,department,jurisdiction,phone,
email,on_duty`` and optionally ``rotation`` and ``duties``); ``on_duty`` is
``yes``/``no`` or a shift name (``day`` 08–20, ``night`` 20–08 local time).
Each row is validated by a pydantic model, and a file with any bad row
changes nothing. A person's client reports status (on duty / busy / off) and
position; those survive a re-import.

On call: for a role and a place, the people of that role whose jurisdiction is
the place or its nearest ancestor that has anyone on duty, in rotation order,
with an active override first. The duty chief (值班长) comes after them.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..clock import local
from ..domain.entities import Role
from ..domain.people import DUTIES, DutyOverride, Person, PersonStatus
from ..errors import BadInput, UnknownCode
from ..scope import CITY_CODE, covers

if TYPE_CHECKING:
    from ..geo.registry import Registry
    from ..store import Store

REQUIRED_COLUMNS = ("user", "name", "role", "department", "jurisdiction", "phone", "email", "on_duty")
OPTIONAL_COLUMNS = ("rotation", "duties")
# Shift name → local hours [from, to); "yes" is always on, "no" never.
SHIFTS: dict[str, tuple[int, int]] = {"day": (8, 20), "白班": (8, 20), "night": (20, 8), "夜班": (20, 8)}
MAX_ROWS = 200_000
_ROLE_NAMES = {r.zh: r.value for r in Role} | {r.value: r.value for r in Role}
_DUTY_NAMES = {v: k for k, v in DUTIES.items()} | {k: k for k in DUTIES}


class RosterRow(BaseModel):
    """One CSV row, as typed; the validators say what is wrong in one line."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    user: str
    name: str
    role: str
    department: str = ""
    jurisdiction: str
    phone: str = ""
    email: str = ""
    on_duty: str = "yes"
    rotation: int = 0
    duties: str = ""

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not v or len(v) > 64 or any(c.isspace() or c in ",;\"'" for c in v):
            raise ValueError("must be 1-64 characters without spaces, commas or quotes")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 64:
            raise ValueError("must be 1-64 characters")
        return v

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in _ROLE_NAMES:
            raise ValueError(f"unknown role {v!r} (expected one of {', '.join(r.value for r in Role)} or 值班长, 网格员 …)")
        return _ROLE_NAMES[v]

    @field_validator("jurisdiction")
    @classmethod
    def _code(cls, v: str) -> str:
        if not v.isdigit():
            raise ValueError(f"{v!r} is not a jurisdiction code")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if v and (v.count("@") != 1 or " " in v or "." not in v.split("@")[1] or len(v) > 254):
            raise ValueError(f"{v!r} is not an e-mail address")
        return v

    @field_validator("on_duty")
    @classmethod
    def _on_duty(cls, v: str) -> str:
        v = v.lower() if v.isascii() else v
        v = {"true": "yes", "1": "yes", "y": "yes", "是": "yes", "false": "no", "0": "no", "n": "no", "否": "no"}.get(v, v)
        if v not in ("yes", "no") and v not in SHIFTS:
            raise ValueError(f"{v!r} is not yes, no or a shift ({', '.join(SHIFTS)})")
        return v

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, v: int) -> int:
        if not 0 <= v <= 10_000:
            raise ValueError("must be between 0 and 10000")
        return v

    @field_validator("duties")
    @classmethod
    def _duties(cls, v: str) -> str:
        out = []
        for part in v.replace("|", ";").split(";"):
            part = part.strip()
            if not part:
                continue
            if part not in _DUTY_NAMES:
                raise ValueError(f"unknown duty {part!r} (expected {', '.join(f'{k} ({z})' for k, z in DUTIES.items())})")
            out.append(_DUTY_NAMES[part])
        return ";".join(dict.fromkeys(out))


def parse_csv(text: str, source: str = "roster") -> list[RosterRow]:
    """Every row of a roster CSV, or ``BadInput`` naming the first bad line (nothing is imported then)."""
    try:
        return _parse_csv(text, source)
    except csv.Error as exc:
        raise BadInput(f"{source}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _parse_csv(text: str, source: str) -> list[RosterRow]:
    if text.startswith("\ufeff"):
        text = text[1:]  # Excel's UTF-8 mark
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BadInput(f"{source}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                       f"(need {','.join(REQUIRED_COLUMNS)})")
    unknown = [h for h in header if h not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise BadInput(f"{source}: unknown column {unknown[0]!r}")
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(reader, start=2):
        if None in raw:
            raise BadInput(f"{source}:{n}: more fields than columns")
        values = {k.strip(): (v or "") for k, v in raw.items() if k is not None}
        if not any(v.strip() for v in values.values()):
            continue
        if not values.get("rotation", "").strip():
            values.pop("rotation", None)
        try:
            row = RosterRow(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err.get("loc", ())) or "row"
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            raise BadInput(f"{source}:{n}: {where}: {msg}") from None
        if row.user in seen:
            raise BadInput(f"{source}:{n}: user {row.user!r} already on line {seen[row.user]}")
        seen[row.user] = n
        rows.append(row)
        if len(rows) > MAX_ROWS:
            raise BadInput(f"{source}: more than {MAX_ROWS} rows")
    if not rows:
        raise BadInput(f"{source}: no rows")
    return rows


def import_rows(store: Store, registry: Registry, rows: list[RosterRow], scope_code: str | None = None,
                source: str = "roster") -> dict[str, int]:
    """Write roster rows (all or nothing). A known person keeps their reported status and position."""
    scope = scope_code or (CITY_CODE if store.tier.value == "city" else store.code)
    for row in rows:
        if row.jurisdiction != CITY_CODE:
            try:
                registry.get(row.jurisdiction)
            except UnknownCode:
                raise BadInput(f"{source}: {row.user}: unknown jurisdiction {row.jurisdiction}") from None
        if not covers(scope, row.jurisdiction) and row.jurisdiction != scope:
            raise BadInput(f"{source}: {row.user}: jurisdiction {row.jurisdiction} is outside {scope}")
    now = store.clock.now()
    added = updated = 0
    with store.tx():
        known = {p.user: p for p in store.people()}  # one read, not one per row
        for row in rows:
            have = known.get(row.user)
            person = Person(
                user=row.user, name=row.name, role=row.role, department=row.department or None,
                jurisdiction=row.jurisdiction, phone=row.phone, email=row.email, on_duty=row.on_duty,
                rotation=row.rotation, duties=[d for d in row.duties.split(";") if d],
                status=have.status if have else (PersonStatus.ON_DUTY.value if row.on_duty != "no"
                                                 else PersonStatus.OFF.value),
                lon=have.lon if have else None, lat=have.lat if have else None,
                seen_at=have.seen_at if have else None, updated_at=now, version=(have.version + 1) if have else 1)
            if have is not None and _same(have, person):
                continue
            store.put_person(person)
            if have is None:
                added += 1
            else:
                updated += 1
    return {"rows": len(rows), "added": added, "updated": updated, "unchanged": len(rows) - added - updated}


def _same(a: Person, b: Person) -> bool:
    return replace(a, updated_at=0.0, version=0) == replace(b, updated_at=0.0, version=0)


# ------------------------------------------------------------ on duty


def in_shift(on_duty: str, now: float) -> bool:
    if on_duty == "yes":
        return True
    if on_duty == "no" or on_duty not in SHIFTS:
        return False
    start, end = SHIFTS[on_duty]
    hour = local(now).hour
    return start <= hour < end if start <= end else (hour >= start or hour < end)


def is_on_duty(person: Person, now: float) -> bool:
    """Scheduled now and not reported off by their client."""
    return person.status != PersonStatus.OFF.value and in_shift(person.on_duty, now)


def who_is_on(store: Store, now: float, scope_code: str | None = None, role: str | None = None) -> list[Person]:
    return [p for p in store.people(scope_code, role) if is_on_duty(p, now)]


def report_status(store: Store, user: str, status: str | None, lon: float | None, lat: float | None,
                  now: float) -> Person:
    """A person's client reports status and/or position."""
    person = store.get_person(user)
    if person is None:
        raise UnknownCode(f"no person {user!r} in the roster")
    changes: dict[str, object] = {}
    if status is not None:
        try:
            changes["status"] = PersonStatus(status).value
        except ValueError:
            raise BadInput(f"unknown status {status!r} (expected on_duty, busy or off)") from None
    if (lon is None) != (lat is None):
        raise BadInput("give both lon and lat")
    if lon is not None and lat is not None:
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise BadInput(f"position {lon},{lat} is not a longitude and latitude")
        changes["lon"], changes["lat"] = float(lon), float(lat)
    if not changes:
        raise BadInput("report a status, a position or both")
    updated = replace(person, seen_at=now, updated_at=now, version=person.version + 1, **changes)  # type: ignore[arg-type]
    store.put_person(updated)
    return updated


MAX_OVERRIDE_S = 366 * 86400.0  # a cover is for a shift, a leave or a season, not for ever


def override_id(role: str, jurisdiction: str, starts_at: float) -> str:
    return f"{role}/{jurisdiction}/{int(starts_at)}"


def set_override(store: Store, role: str, jurisdiction: str, user: str, starts_at: float, ends_at: float,
                 set_by: str) -> DutyOverride:
    """``user`` covers ``role`` in ``jurisdiction`` from ``starts_at`` to ``ends_at``: first in that rotation.
    Setting the same role, place and start again replaces the cover (a new version, replicated)."""
    if role not in _ROLE_NAMES:
        raise BadInput(f"unknown role {role!r} (expected one of {', '.join(r.value for r in Role)})")
    jurisdiction = (jurisdiction or "").strip()
    if not jurisdiction.isdigit():
        raise BadInput(f"{jurisdiction!r} is not a jurisdiction code")
    person = store.get_person(user)
    if person is None:
        raise UnknownCode(f"no person {user!r} in the roster")
    if not (math.isfinite(starts_at) and math.isfinite(ends_at)) or ends_at <= starts_at:
        raise BadInput("an override must end after it starts")
    if ends_at - starts_at > MAX_OVERRIDE_S:
        raise BadInput("an override may last at most 366 days")
    role_value = _ROLE_NAMES[role]
    oid = override_id(role_value, jurisdiction, starts_at)
    with store.tx():
        before = store.get_override(oid)
        o = DutyOverride(oid, role_value, jurisdiction, user, float(starts_at), float(ends_at), set_by, store.node,
                         before.version + 1 if before is not None else 1)
        store.put_override(o)
    return o


def override_dict(o: DutyOverride) -> dict[str, object]:
    return {"id": o.id, "role": o.role, "jurisdiction": o.jurisdiction, "user": o.user, "starts_at": o.starts_at,
            "ends_at": o.ends_at, "set_by": o.set_by, "version": o.version}


# ------------------------------------------------------------ on call


@dataclass(frozen=True)
class OnCall:
    """The people to tell, in order, for a role at a place: the rotation, then the duty chief."""

    role: str
    level_code: str  # the jurisdiction whose rotation answered
    rotation: tuple[Person, ...]
    chief: Person | None

    @property
    def chain(self) -> list[Person]:
        out = list(self.rotation)
        if self.chief is not None and all(p.user != self.chief.user for p in out):
            out.append(self.chief)
        return out


def _ancestry(code: str) -> list[str]:
    """``code`` and its ancestors, deepest first (grid → street → district → city)."""
    out = [code]
    for n in (9, 6):
        if len(code) > n:
            out.append(code[:n])
    if code != CITY_CODE:
        out.append(CITY_CODE)
    return out


def on_call(store: Store, role: str, code: str, now: float, duty: str | None = None) -> OnCall:
    """Who answers for ``role`` (or, with ``duty``, for a duty such as flood) at ``code`` now."""
    role = _ROLE_NAMES.get(role, role)
    people, all_overrides = store.duty_roster()
    everyone = [p for p in people if is_on_duty(p, now)]
    # Where two overlap for one role and place, the one that started first is kept.
    active = sorted((o for o in all_overrides if o.starts_at <= now < o.ends_at), key=lambda o: -o.starts_at)
    overrides = {(o.role, o.jurisdiction): o.user for o in active}
    by_user = {p.user: p for p in everyone}
    rotation: tuple[Person, ...] = ()
    level = code
    for level in _ancestry(code):
        here = [p for p in everyone if p.jurisdiction == level
                and (duty in p.duties if duty else p.role == role)]
        here.sort(key=lambda p: (p.rotation, p.user))
        first = overrides.get((role, level))
        if first is not None and first in by_user:
            here = [by_user[first]] + [p for p in here if p.user != first]
        if here:
            rotation = tuple(here)
            break
    chief = None
    start = _ancestry(level)
    if role == Role.DUTY_OFFICER.value and rotation:
        start = start[1:]  # the duty officers' own chief is the next tier's
    for upper in start:
        chiefs = sorted((p for p in everyone if p.jurisdiction == upper and p.role == Role.DUTY_OFFICER.value),
                        key=lambda p: (p.rotation, p.user))
        if chiefs:
            chief = chiefs[0]
            break
    return OnCall(role, level, rotation, chief)


def nearby(store: Store, code: str, lon: float | None, lat: float | None, now: float,
           roles: Iterable[str] = (Role.GRID_WORKER.value, Role.DEPARTMENT.value), limit: int = 8) -> list[
               tuple[Person, float | None]]:
    """People on duty who can be sent to a place: in its street (or district), free before busy, nearest first.
    Returns (person, distance in metres or None when their position is unknown)."""
    street = code[:9] if len(code) >= 9 else code
    wanted = set(roles)
    found: list[tuple[Person, float | None]] = []
    for p in store.people(code[:6]):
        inside = p.jurisdiction.startswith(street) or street.startswith(p.jurisdiction)
        if not inside or p.role not in wanted or not is_on_duty(p, now):
            continue
        dist = None
        if lon is not None and lat is not None and p.lon is not None and p.lat is not None:
            dist = _metres(lon, lat, p.lon, p.lat)
        found.append((p, dist))
    found.sort(key=lambda pd: (pd[0].status == PersonStatus.BUSY.value, pd[1] is None, pd[1] or 0.0,
                               0 if code.startswith(pd[0].jurisdiction) or pd[0].jurisdiction.startswith(code) else 1,
                               pd[0].user))
    return found[:limit]


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    k = math.pi / 180
    x = (lon2 - lon1) * k * math.cos((lat1 + lat2) / 2 * k)
    y = (lat2 - lat1) * k
    return 6_371_000 * math.hypot(x, y)


def person_dict(p: Person, now: float | None = None) -> dict[str, object]:
    from ..domain.schema import to_row

    d = to_row(p)
    if now is not None:
        d["on_duty_now"] = is_on_duty(p, now)
    return d
