"""The live event queue (事件): rows sorted by colour then time left, with a text filter.

``load_queue`` asks the store for the visible slice only (a few hundred rows),
so the pane costs the same on a 1M-event replica as on an empty one.
``diff_queue`` tells the UI which rows to add, update, move or drop so it
redraws only what changed.

Groups (``engine.grouping``: an alarm storm on one street, a 多跨 master and its
sub-tasks) are one row: the group's leader, with the count, where its most
urgent member would sit; an expanded group lists its members under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..domain.colour import Colour
from ..domain.entities import Event, Status
from ..textsafe import plain
from .names import Names

DEFAULT_LIMIT = 300


@dataclass(frozen=True)
class QueueRow:
    id: str
    number: str
    version: int
    colour: Colour
    status: Status
    title: str  # already stripped of control characters; render as Text, never markup
    category: str
    place: str
    district_code: str
    street_code: str | None
    grid_code: str | None
    due_at: float | None
    reported_at: float
    updated_at: float
    supervised: bool  # 督办: the upper tier watches it
    escalation_level: int
    duplicate_of: str | None
    inhibited: bool
    group_count: int = 1  # events in this row's group (a leader with followers: more than 1)
    group_leader: str | None = None  # a member listed under its expanded group: the leader's id

    def time_left(self, now: float) -> float | None:
        return None if self.due_at is None else self.due_at - now

    def overdue(self, now: float) -> bool:
        return self.due_at is not None and self.due_at < now


def row_of(event: Event, names: Names) -> QueueRow:
    """A list row from an ``Event`` or from the store's narrow ``queue_rows`` tuple (same field names)."""
    return QueueRow(
        id=event.id,
        number=plain(event.number),
        version=event.version,
        colour=_colour(event.colour),
        status=_status(event.status),
        title=plain(event.title),
        category=names.category(event.category_code),
        place=names.place(event.street_code or event.district_code),
        district_code=event.district_code,
        street_code=event.street_code,
        grid_code=event.grid_code,
        due_at=event.due_at,
        reported_at=event.reported_at,
        updated_at=event.updated_at,
        supervised=bool(event.supervised_by) or event.escalation_level > 0,
        escalation_level=event.escalation_level,
        duplicate_of=event.duplicate_of,
        inhibited=bool(event.inhibited_by),
    )


def _colour(value: str) -> Colour:
    try:
        return Colour(value)
    except ValueError:
        return Colour.GREEN


def _status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        return Status.REPORTED


# ---------------------------------------------------------------- filter


@dataclass(frozen=True)
class QueueFilter:
    text: str = ""
    districts: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    source: str = field(default="", compare=False)  # what the user typed

    @property
    def empty(self) -> bool:
        return not (self.text or self.districts or self.statuses or self.colours or self.categories)


_KEYED = re.compile(r"^(colour|color|c|status|s|district|d|cat|category|k|text|t):(.+)$", re.IGNORECASE)


def parse_filter(query: str, names: Names, registry=None) -> QueueFilter:
    """Turn what the dispatcher typed after ``/`` into a filter.

    Words are recognised by meaning — a colour (red, 红, 重大), a status
    (reported, 已上报), a category code or name (c05, 燃气泄漏), a district
    code or name (500108, 南岸区) — or forced with ``colour:``, ``status:``,
    ``district:``, ``cat:``, ``text:``. Anything else is free text matched
    against title, text, address and number.
    """
    colours: list[str] = []
    statuses: list[str] = []
    categories: list[str] = []
    districts: list[str] = []
    words: list[str] = []
    cat_by_name = {name: code for code, name in names.categories().items()}
    district_by_name = _district_names(registry)
    for token in (query or "").split():
        key, value = None, token
        m = _KEYED.match(token)
        if m:
            key, value = m.group(1).lower(), m.group(2)
        if key in (None, "colour", "color", "c"):
            try:
                colours.append(Colour.parse(value).value)
                continue
            except ValueError:
                if key:
                    raise ValueError(f"unknown colour {value!r}") from None
        if key in (None, "status", "s"):
            st = _parse_status(value)
            if st:
                statuses.append(st)
                continue
            if key:
                raise ValueError(f"unknown status {value!r}")
        if key in (None, "cat", "category", "k"):
            code = value.lower() if value.lower() in names.categories() else cat_by_name.get(value)
            if code:
                categories.append(code)
                continue
            if key:
                raise ValueError(f"unknown category {value!r}")
        if key in (None, "district", "d"):
            code = value if value in district_by_name.values() else district_by_name.get(value)
            if code is None and re.fullmatch(r"5\d{5}", value) and key:
                code = value
            if code:
                districts.append(code)
                continue
            if key:
                raise ValueError(f"unknown district {value!r}")
        words.append(value)
    return QueueFilter(
        text=" ".join(words), districts=tuple(districts), statuses=tuple(statuses), colours=tuple(colours),
        categories=tuple(categories), source=query or "",
    )


def _parse_status(value: str) -> str | None:
    v = value.strip().lower()
    for st in Status:
        if v in (st.value, st.zh):
            return st.value
    return None


def _district_names(registry) -> dict[str, str]:
    if registry is None:
        return {}
    out: dict[str, str] = {}
    try:
        for d in registry.districts.values():
            out[d.name] = d.code
            short = d.name.rstrip("区县")
            if len(short) >= 2:
                out.setdefault(short, d.code)
    except Exception:  # a registry without districts: filter by code only
        return {}
    return out


# ---------------------------------------------------------------- loading


def load_queue(store, names: Names, flt: QueueFilter | None = None, limit: int = DEFAULT_LIMIT,
               expanded: frozenset[str] = frozenset()) -> list[QueueRow]:
    """The queue's rows, one per group (``expanded``: leaders whose members are listed under them)."""
    flt = flt or QueueFilter()
    events: list = []
    districts = flt.districts or (None,)
    for district in districts:
        # List columns only: the long text and audit stay on disk until the detail screen asks.
        events.extend(store.queue_rows(
            district=district, statuses=flt.statuses or None, colours=flt.colours or None,
            categories=flt.categories or None, text=flt.text or None, limit=limit,
        ))
    if len(districts) > 1:
        events.sort(key=lambda e: sort_key(row_of(e, names)))
        events = events[:limit]
    return group_rows([row_of(e, names) for e in events], events, expanded)


def group_rows(rows: list[QueueRow], events, expanded: frozenset[str] = frozenset()) -> list[QueueRow]:
    """``rows`` (sorted) as one row per group: the leader's, carrying the group's size, at the place of its
    most urgent member; an expanded group's other members follow it, in report order. ``events`` are the
    store's rows for ``rows`` (what ``engine.grouping`` reads: parent, source, category, street, time)."""
    from dataclasses import replace

    from ..engine.grouping import groups, leaders

    lead = leaders(events)
    members = {leader: g.members for leader, g in groups(events).items() if g.count > 1}
    if not members:
        return rows
    by_id = {r.id: r for r in rows}
    out: list[QueueRow] = []
    shown: set[str] = set()
    for r in rows:
        leader = lead.get(r.id, r.id)
        if leader in shown:
            continue
        shown.add(leader)
        group = members.get(leader)
        if group is None:
            out.append(r)
            continue
        out.append(replace(by_id[leader], group_count=len(group)))
        if leader in expanded:
            out.extend(replace(by_id[m], group_leader=leader) for m in group[1:] if m in by_id)
    return out


def sort_key(row: QueueRow):
    return (row.colour.rank, row.due_at if row.due_at is not None else float("inf"), row.reported_at)


# ---------------------------------------------------------------- diff


@dataclass(frozen=True)
class QueueDiff:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    reordered: bool  # surviving rows changed order (the UI must re-sort)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.reordered)


def diff_queue(old: list[QueueRow], new: list[QueueRow]) -> QueueDiff:
    before = {r.id: r for r in old}
    after = {r.id: r for r in new}
    added = tuple(r.id for r in new if r.id not in before)
    removed = tuple(r.id for r in old if r.id not in after)
    changed = tuple(r.id for r in new if r.id in before and before[r.id] != r)
    kept_old = [r.id for r in old if r.id in after]
    kept_new = [r.id for r in new if r.id in before]
    return QueueDiff(added, changed, removed, kept_old != kept_new)
