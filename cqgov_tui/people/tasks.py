"""Work that goes to a person: grid tasks (网格任务) and events dispatched to someone.

* **Periodic tasks** (周期性任务) come from templates (``task_templates.yaml``):
  one per grid or per risk point of given colours, every N days, due at a local
  time, assigned to the grid's worker. A day's tasks for a jurisdiction are
  generated exactly once: the day's marker (store metadata) is written in the
  same transaction as the tasks, and task ids are derived from (node,
  template, target, day), so a restart or a second scheduler finds them made.
* **Ad-hoc tasks** (临时性任务) are created by a dispatcher for a grid and a person.
* **Event tasks**: ``dispatch_to_person`` dispatches an event to one person
  (not only a department); accept / arrive / dispose on the task move the event.

A risk-point inspection task completed with a finding (``ok`` / ``hazard``) is an
inspection of that point like one recorded by hand: ``engine.risk_grades`` — the
one rule for grades — reads both (``store.last_inspections``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..clock import CST, local
from ..domain.colour import Colour
from ..domain.entities import Event, Role, Status, Tier, User
from ..domain.people import Task, TaskStatus
from ..domain.schema import evolve, to_row
from ..errors import BadInput, IllegalTransition, PermissionDenied, UnknownCode
from ..ids import uuid7
from ..scope import CITY_CODE, covers
from ..store.people import task_scope
from . import roster

if TYPE_CHECKING:
    from ..catalogue import Catalogue
    from ..engine import Engine
    from ..geo.registry import Registry
    from ..store import Store

GENERATED_KEY = "tasks_generated"  # store metadata: "<key>:<scope>:<YYYYMMDD>" → how many were made
MAX_TITLE = 200
MAX_NOTE = 2000
FINDINGS = ("ok", "hazard")
_COMMAND_ROLES = (Role.ADMIN.value, Role.DISPATCHER.value, Role.DUTY_OFFICER.value)
TASK_ACTIONS = ("accept", "arrive", "done")
_ACTION_ALIASES = {"complete": "done", "dispose": "done", "finish": "done", "sign": "accept", "on_scene": "arrive"}


class TaskTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str
    name: str
    per: Literal["grid", "risk_point"]
    every_days: int = 1
    due: str = "18:00"
    colours: list[str] = []

    @field_validator("every_days")
    @classmethod
    def _every(cls, v: int) -> int:
        if not 1 <= v <= 366:
            raise ValueError("must be between 1 and 366")
        return v

    @field_validator("due")
    @classmethod
    def _due(cls, v: str) -> str:
        try:
            _dt.time.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a local time HH:MM") from None
        return v

    @field_validator("colours")
    @classmethod
    def _colours(cls, v: list[str]) -> list[str]:
        return [Colour.parse(c).value for c in v]

    def due_at(self, day: _dt.date) -> float:
        return _dt.datetime.combine(day, _dt.time.fromisoformat(self.due), CST).timestamp()

    def falls_on(self, day: _dt.date, target: str) -> bool:
        """Every ``every_days`` days, each target on its own phase so the work spreads over the days."""
        if self.every_days == 1:
            return True
        phase = int(hashlib.blake2s(f"{self.code}|{target}".encode(), digest_size=4).hexdigest(), 16)
        return (day.toordinal() + phase) % self.every_days == 0


def templates_path() -> Path:
    from ..geo.files import FIXTURES

    return FIXTURES / "catalogue" / "task_templates.yaml"


_TEMPLATES: dict[str, list[TaskTemplate]] = {}


def load_templates(path: Path | str | None = None) -> list[TaskTemplate]:
    """The task templates, validated; a broken file is one ``BadInput`` naming the file and entry."""
    import yaml

    p = Path(path) if path is not None else templates_path()
    key = str(p)
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"{p}: cannot read task templates ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, list) or not doc:
        raise BadInput(f"{p}: expected a list of task templates")
    out: list[TaskTemplate] = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise BadInput(f"{p}: entry {i + 1} is not a mapping")
        try:
            out.append(TaskTemplate(**item))
        except (ValidationError, TypeError, ValueError) as exc:
            raise BadInput(f"{p}: entry {i + 1} ({item.get('code', '?')}): {_first_error(exc)}") from None
    codes = [t.code for t in out]
    if len(set(codes)) != len(codes):
        raise BadInput(f"{p}: a template code appears twice")
    _TEMPLATES[key] = out
    return out


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        return f"{where}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
    return str(exc)


def task_id(node: str, template: str, target: str, day: str) -> str:
    """The same (node, template, target, day) always names the same task: generation cannot make it twice."""
    raw = bytearray(hashlib.sha256(f"{node}|{template}|{target}|{day}".encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # UUID version 8 (application-defined), RFC 9562 variant
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def day_of(now: float) -> _dt.date:
    return local(now).date()


def parse_day(text: str | None, now: float) -> _dt.date:
    if not text:
        return day_of(now)
    try:
        return _dt.date.fromisoformat(text) if "-" in text else _dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise BadInput(f"{text!r} is not a day (YYYY-MM-DD)") from None


# ------------------------------------------------------------ periodic generation


@dataclass
class Generated:
    day: str
    scope: str
    created: int
    already: bool = False
    unassigned: int = 0


def grids_of(registry: Registry, scope_code: str) -> list[str]:
    if len(scope_code) > 9:
        return [scope_code]
    if len(scope_code) == 9:
        return list(registry.grid_codes(scope_code))
    if scope_code == CITY_CODE:
        raise BadInput("generate grid tasks per district or street, not for the whole city at once")
    return [g for s in registry.children(scope_code) for g in registry.grid_codes(s.code)]


def grid_workers(store: Store, scope_code: str) -> dict[str, str]:
    """Grid → its worker (first in rotation among the grid's 网格员)."""
    out: dict[str, str] = {}
    for p in store.people(scope_code, Role.GRID_WORKER.value):  # ordered by jurisdiction, rotation
        out.setdefault(p.jurisdiction, p.user)
    return out


def generate_day(store: Store, registry: Registry, catalogue: Catalogue, scope_code: str, now: float,
                 day: _dt.date | None = None, templates: list[TaskTemplate] | None = None) -> Generated:
    """Make one day's periodic tasks for every grid in ``scope_code``, exactly once."""
    day = day or day_of(now)
    stamp = day.strftime("%Y%m%d")
    key = f"{GENERATED_KEY}:{scope_code}:{stamp}"
    if not covers(store.code if store.tier is not Tier.CITY else CITY_CODE, scope_code):
        raise PermissionDenied(f"{scope_code} is outside this {store.tier.value} store ({store.code})")
    with store.tx():
        if store.meta(key) is not None:
            return Generated(stamp, scope_code, 0, already=True)
        templates = templates if templates is not None else load_templates()
        grids = grids_of(registry, scope_code)
        grid_set = set(grids)
        workers = grid_workers(store, scope_code)
        points: list[Any] = []  # the scope's risk points, in grid order
        if any(t.per == "risk_point" for t in templates):
            order = {g: i for i, g in enumerate(grids)}
            points = sorted((rp for rp in catalogue.risk_points.values() if rp.grid_code in grid_set),
                            key=lambda rp: (order[rp.grid_code], rp.code))
        tasks: list[Task] = []
        assigned = TaskStatus.ASSIGNED.value
        for t in templates:
            due = t.due_at(day)
            # (grid, risk point or None, title) per target of this template, in grid order
            targets = [(g, None, t.name) for g in grids] if t.per == "grid" else [
                (rp.grid_code, rp.code, f"{t.name} {rp.name}") for rp in points
                if not t.colours or rp.colour.value in t.colours]
            for grid, target, title in targets:
                if t.every_days > 1 and not t.falls_on(day, target or grid):
                    continue
                tasks.append(Task(
                    id=task_id(store.node, t.code, target or grid, stamp), kind="periodic", template=t.code,
                    event_id=None, day=stamp, district_code=grid[:6], street_code=grid[:9], grid_code=grid,
                    target=target, title=title[:MAX_TITLE], assignee=workers.get(grid), status=assigned,
                    created_at=now, due_at=due, accepted_at=None, done_at=None, finding=None, note="", photo=None,
                    created_by="system", origin_node=store.node, version=1))
        store.put_tasks(tasks)
        store.set_meta(key, str(len(tasks)))
    return Generated(stamp, scope_code, len(tasks), unassigned=sum(1 for t in tasks if t.assignee is None))


# ------------------------------------------------------------ ad-hoc tasks


def create_adhoc(store: Store, registry: Registry, actor: User, code: str, title: str, assignee: str | None = None,
                 due_at: float | None = None, note: str = "", task_id_: str | None = None) -> Task:
    """A 临时性任务 for a grid (or street), assigned to a person (default: the grid's worker)."""
    if Role(actor.role).value not in _COMMAND_ROLES:
        raise PermissionDenied(f"a {Role(actor.role).value} may not create tasks")
    title = (title or "").strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"a task needs a title of 1-{MAX_TITLE} characters")
    if len(note) > MAX_NOTE:
        raise BadInput(f"note is too long ({len(note)} > {MAX_NOTE})")
    j = registry.get(code)  # UnknownCode
    if j.level.value not in ("grid", "street"):
        raise BadInput(f"{code} ({j.name}) is a {j.level.value}: tasks go to a grid or a street")
    if not covers(actor.scope_code, code) or not covers(store.code if store.tier is not Tier.CITY else CITY_CODE, code):
        raise PermissionDenied(f"{actor.user} may not create tasks in {code}: outside {actor.scope_code}")
    now = store.clock.now()
    if due_at is not None and due_at <= now:
        raise BadInput("the due time is in the past")
    with store.tx():
        if assignee is None:
            assignee = grid_workers(store, code).get(code)
        elif store.get_person(assignee) is None:
            raise UnknownCode(f"no person {assignee!r} in the roster")
        if task_id_ and store.get_task(task_id_) is not None:
            raise BadInput(f"task {task_id_} already exists")
        t = Task(id=task_id_ or uuid7(int(now * 1000)), kind="adhoc", template=None, event_id=None, day=None,
                 district_code=code[:6], street_code=code[:9], grid_code=code if len(code) > 9 else None, target=None,
                 title=title, assignee=assignee, status=TaskStatus.ASSIGNED.value, created_at=now, due_at=due_at,
                 accepted_at=None, done_at=None, finding=None, note=note, photo=None, created_by=actor.user,
                 origin_node=store.node, version=1)
        store.put_task(t)
        _audit(store, t, "task.create", actor, f"{t.title} → {assignee or '(unassigned)'}")
    return t


def _audit(store: Store, t: Task, action: str, actor: User, note: str, event_id: str | None = None) -> None:
    store.append_audit(event_id=event_id or t.id, action=action, from_status=None, to_status=None, actor=actor.user,
                       role=Role(actor.role).value, tier=Tier(actor.tier).value, note=note, scope=task_scope(t))


# ------------------------------------------------------------ dispatch to a person


def dispatch_to_person(engine: Engine, ref: str, user: str, actor: User, note: str = "",
                       departments: list[str] | None = None) -> tuple[Event, Task]:
    """Dispatch an event to one person: the event is dispatched (to their department, or the category's), a task
    is made for them and an ``assign`` entry on the event's timeline tells the notifier whom to tell."""
    store = engine.store
    now = engine.clock.now()
    with store.tx():
        event = store.resolve_event(ref)
        person = store.get_person(user)
        if person is None:
            raise UnknownCode(f"no person {user!r} in the roster")
        place = event.grid_code or event.street_code or event.district_code
        street = event.street_code or event.district_code
        if not (covers(person.jurisdiction, place) or covers(street, person.jurisdiction)
                or person.jurisdiction == CITY_CODE):
            raise BadInput(f"{person.user} ({person.name}) works in {person.jurisdiction}, not near {event.number} "
                           f"({place})")
        if not roster.is_on_duty(person, now):
            raise IllegalTransition(f"{person.user} ({person.name}) is not on duty now")
        if event.status == Status.DISPATCHED.value and event.assignee is not None:
            pass  # already dispatched: this hands the work to a person (a re-assignment is recorded too)
        else:
            depts = departments or ([person.department] if person.department else None)
            if depts is None:
                cat = engine.catalogue.category(event.category_code)
                depts = [cat.department_code, *cat.co_departments]
            event = engine.act(event.id, "dispatch", actor, note=note or f"派遣至 {person.name}", departments=depts)
        for old in store.tasks(event_id=event.id, open_only=True):
            store.put_task(replace(old, status=TaskStatus.CANCELLED.value, version=old.version + 1))
        task = Task(id=uuid7(int(now * 1000)), kind="event", template=None, event_id=event.id, day=None,
                    district_code=event.district_code, street_code=event.street_code, grid_code=event.grid_code,
                    target=None, title=event.title[:MAX_TITLE], assignee=person.user, status=TaskStatus.ASSIGNED.value,
                    created_at=now, due_at=event.due_at, accepted_at=None, done_at=None, finding=None, note=note,
                    photo=None, created_by=actor.user, origin_node=store.node, version=1)
        store.put_task(task)
        store.append_audit(event_id=event.id, action="assign", from_status=event.status, to_status=event.status,
                           actor=actor.user, role=Role(actor.role).value, tier=Tier(actor.tier).value,
                           note=f"→ {person.user} {person.name}", scope=place)
    return event, task


# ------------------------------------------------------------ acting on a task


def normalise_action(action: str) -> str:
    a = _ACTION_ALIASES.get(action, action)
    if a not in TASK_ACTIONS:
        raise IllegalTransition(f"unknown task action {action!r} (expected accept, arrive or done)")
    return a


_TASK_FROM = {"accept": (TaskStatus.ASSIGNED.value,),
              "arrive": (TaskStatus.ASSIGNED.value, TaskStatus.ACCEPTED.value),
              "done": (TaskStatus.ASSIGNED.value, TaskStatus.ACCEPTED.value, TaskStatus.ON_SCENE.value)}
_TASK_TO = {"accept": TaskStatus.ACCEPTED.value, "arrive": TaskStatus.ON_SCENE.value, "done": TaskStatus.DONE.value}
_EVENT_ACTION = {"accept": "accept", "arrive": "arrive", "done": "dispose"}


def act_on_task(engine: Engine, ref: str, action: str, actor: User, note: str = "", finding: str | None = None,
                photo: str | None = None) -> Task:
    """accept / arrive / done on a task; on an event task the same step moves the event (accept, arrive, dispose)."""
    store = engine.store
    action = normalise_action(action)
    if len(note) > MAX_NOTE:
        raise BadInput(f"note is too long ({len(note)} > {MAX_NOTE})")
    if finding is not None and finding not in FINDINGS:
        raise BadInput(f"unknown finding {finding!r} (expected ok or hazard)")
    now = engine.clock.now()
    with store.tx():
        task = _resolve_task(store, ref)
        _may_act(task, actor)
        if task.status not in _TASK_FROM[action]:
            raise IllegalTransition(f"cannot {action} a task that is {task.status}")
        if task.kind == "event" and task.event_id:
            event = store.get_event(task.event_id)
            if event is None:
                raise UnknownCode(f"task {task.id}: its event {task.event_id} is not in this store")
            steps = {"accept": ["accept"], "arrive": ["accept", "arrive"],
                     "done": ["accept", "arrive", "dispose"]}[action]
            done_already = {Status.DISPATCHED.value: 0, Status.ACCEPTED.value: 1, Status.ON_SCENE.value: 2}
            start = done_already.get(event.status)
            if start is None:
                raise IllegalTransition(f"{event.number} is {event.status}; its task cannot {action}")
            for step in steps[start:]:
                engine.act(event.id, step, actor, note=note if step == _EVENT_ACTION[action] else "")
        changes: dict[str, Any] = {"status": _TASK_TO[action], "version": task.version + 1}
        if action in ("accept", "arrive") and task.accepted_at is None:
            changes["accepted_at"] = now
        if action == "done":
            changes.update(done_at=now, accepted_at=task.accepted_at or now, finding=finding, photo=photo)
        if note:
            changes["note"] = note
        task = replace(task, **changes)
        store.put_task(task)
        if task.kind != "event":
            _audit(store, task, f"task.{action}", actor,
                   f"{task.title}" + (f"; {finding}" if finding else "") + (f"; {note}" if note else ""))
    return task


_DONE_COLUMNS = frozenset({"status", "done_at", "accepted_at", "finding", "note", "version"})


def complete_tasks(store: Store, items: list[tuple[str, str | None, str]], actor: User) -> int:
    """Many periodic or ad-hoc tasks done in one transaction: (task id, finding, note) each — a grid worker's
    batch of completions from the field. Refused whole if any is not the actor's, unknown or not open."""
    now = store.clock.now()
    with store.tx():
        found = store.get_tasks([i for i, _, _ in items])
        done: list[Task] = []
        for task_ref, finding, note in items:
            task = found.get(task_ref)
            if task is None:
                raise UnknownCode(f"no task {task_ref!r}")
            if task.kind == "event":
                raise BadInput(f"task {task.id} is an event's: dispose it with its event")
            _may_act(task, actor)
            if task.status not in _TASK_FROM["done"]:
                raise IllegalTransition(f"cannot complete task {task.id}: it is {task.status}")
            if finding is not None and finding not in FINDINGS:
                raise BadInput(f"unknown finding {finding!r} (expected ok or hazard)")
            t = evolve(task, status=TaskStatus.DONE.value, done_at=now, accepted_at=task.accepted_at or now,
                       finding=finding, note=note or task.note, version=task.version + 1)
            done.append(t)
        store.put_tasks(done, changed=_DONE_COLUMNS)
        if done:
            # One entry per batch (who, how many, which): the task rows carry each completion's time and finding.
            hazards = sum(1 for t in done if t.finding == "hazard")
            shown = ", ".join(t.id for t in done[:20]) + (" …" if len(done) > 20 else "")
            store.append_audit(event_id=done[0].id if len(done) == 1 else f"tasks:{done[0].day or 'adhoc'}",
                               action="task.done", from_status=None, to_status=None, actor=actor.user,
                               role=Role(actor.role).value, tier=Tier(actor.tier).value,
                               note=f"{len(done)} task(s) done" + (f", {hazards} hazard(s) found" if hazards else "")
                               + f": {shown}", scope=task_scope(done[0]))
    return len(done)


def _resolve_task(store: Store, ref: str) -> Task:
    ref = (ref or "").strip()
    task = store.get_task(ref) if ref else None
    if task is None:
        raise UnknownCode(f"no task {ref!r}")
    return task


def _may_act(task: Task, actor: User) -> None:
    if not covers(actor.scope_code, task_scope(task)):
        raise PermissionDenied(f"{actor.user} may not act on task {task.id}: outside {actor.scope_code}")
    if task.assignee != actor.user and Role(actor.role).value not in _COMMAND_ROLES:
        raise PermissionDenied(f"task {task.id} is {task.assignee or 'unassigned'}'s, not {actor.user}'s")


# ------------------------------------------------------------ reading


def my_work(store: Store, user: str, now: float, include_done: bool = False, limit: int = 200) -> list[Task]:
    """The user's tasks: open ones by due time (overdue first), then today's done ones when asked."""
    rows = store.tasks(assignee=user, open_only=not include_done, limit=limit)
    return sorted(rows, key=lambda t: (t.status in (TaskStatus.DONE.value, TaskStatus.CANCELLED.value),
                                       t.due_at if t.due_at is not None else float("inf"), t.id))


def task_dict(t: Task, now: float | None = None) -> dict[str, Any]:
    d = to_row(t)
    if now is not None:
        d["overdue"] = t.due_at is not None and t.status not in ("done", "cancelled") and t.due_at < now
    return d


def generate_today(store: Store, engine: Engine, now: float) -> Generated | None:
    """The server's daily run: today's periodic tasks for its own jurisdiction, once (a cheap check after)."""
    day = day_of(now)
    if store.meta(f"{GENERATED_KEY}:{store.code}:{day:%Y%m%d}") is not None:
        return None
    return generate_day(store, engine.registry, engine.catalogue, store.code, now, day)
