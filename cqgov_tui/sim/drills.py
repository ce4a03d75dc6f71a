"""Drills (演练): scripted scenarios replayed on a simulated clock against a fresh store.

A scenario is a YAML file in ``fixtures/scenarios/``: the store to create
(tier and code), a local start time, a sweep interval, timed steps and the
checks that prove the mechanism worked. Steps:

* ``report``   – an event (``count`` > 1 makes a group), placed by ``place``
* ``sensor``   – one reading of a catalogue sensor through ``engine.sensors.SensorMonitor``
  (crossing the threshold opens one alarm event per episode)
* ``act``      – a lifecycle action by a role at a tier (``expect: refused`` for a scripted refusal)
* ``subtasks`` – open a 多跨 event by hand
* ``sweep``    – an extra SLA sweep (the runner also sweeps every ``sweep_every`` minutes)

Events get aliases (``as``); ``ALIAS.subtasks`` names a master's sub-tasks.
Every file is validated before anything runs; errors name file and line.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..clock import CST, SimClock, local
from ..domain.colour import Colour
from ..domain.entities import Event, Role, Source, Status, Tier, User
from ..engine import lifecycle
from ..errors import BadInput, CqgovError
from ..geo.files import FIXTURES
from ..textfile import read_text
from ..scope import CITY_CODE

SCENARIO_DIR = FIXTURES / "scenarios"
_M_PER_DEG = 111_320.0


# ---------------------------------------------------------------- parsing with line numbers


class _Map(dict):
    line = 0


class _List(list):
    line = 0


def _plain(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    """YAML node → Python, keeping each mapping's and list's 1-based line for error messages."""
    if isinstance(node, yaml.MappingNode):
        out = _Map()
        out.line = node.start_mark.line + 1
        for k, v in node.value:
            key = _plain(k, loader)
            if not isinstance(key, (str, int, float, bool)):
                raise BadInput(f"line {k.start_mark.line + 1}: a key must be plain text")
            out[key] = _plain(v, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = _List(_plain(v, loader) for v in node.value)
        seq.line = node.start_mark.line + 1
        return seq
    return loader.construct_object(node, deep=True)


@dataclass
class Step:
    at: float  # simulated minutes from the start
    kind: str
    args: dict
    line: int


@dataclass
class Scenario:
    name: str
    title: str
    tier: Tier
    code: str
    start: float
    sweep_every: float | None
    steps: list[Step]
    checks: list[tuple[str, dict, int]]
    path: str


_STEP_KEYS = {
    "report": ({"category"}, {"as", "title", "text", "colour", "source", "place", "count", "role", "tier", "user"}),
    "sensor": ({"sensor", "value"}, {"as"}),
    "act": ({"event", "action"}, {"role", "tier", "user", "note", "departments", "into", "expect", "scope"}),
    "subtasks": ({"event", "targets"}, {"role", "tier", "user", "note", "as"}),
    "sweep": (set(), set()),
}
_CHECK_KEYS = {
    "elapsed": ({"event", "to", "max_minutes"}, {"from_sensor"}),
    "plan": ({"event", "plan"}, {"auto_signed", "auto_dispatched", "assignee", "departments", "sla_profile"}),
    "merged": ({"event", "into"}, {"auto"}),
    "flagged": ({"event", "duplicate_of"}, set()),
    "inhibited": ({"events", "by"}, {"min"}),
    "not_inhibited": ({"events"}, set()),
    "sla": ({"event", "profile", "deadlines"}, {"all_met"}),
    "subtasks": ({"event", "min"}, {"distinct", "master_status"}),
    "escalation": ({"event", "colour_before", "colour_after", "supervised_by"}, {"steps"}),
    "refused": ({"min"}, set()),
}


class _Where:
    def __init__(self, path: str):
        self.path = path

    def error(self, line: int, reason: str) -> BadInput:
        return BadInput(f"{self.path}:{line}: {reason}")


def scenario_names(directory: Path | None = None) -> list[str]:
    d = directory or SCENARIO_DIR
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def scenario_path(name: str, directory: Path | None = None) -> Path:
    d = directory or SCENARIO_DIR
    p = d / f"{name}.yaml"
    if not p.is_file():
        known = ", ".join(scenario_names(d)) or "none"
        raise BadInput(f"unknown scenario {name!r} (known: {known})")
    return p


def load_scenario(name_or_path: str | Path, catalogue=None, registry=None) -> Scenario:
    """Parse and validate a scenario by name (``fixtures/scenarios/NAME.yaml``) or path."""
    p = Path(name_or_path)
    if p.suffix != ".yaml" or not p.exists():
        p = scenario_path(str(name_or_path))
    return parse_scenario(read_text(p), str(p), catalogue, registry)


def parse_scenario(text: str, path: str = "<scenario>", catalogue=None, registry=None) -> Scenario:
    if catalogue is None:
        from ..catalogue.loader import load_catalogue

        catalogue = load_catalogue()
    if registry is None:
        from ..geo.registry import get_registry

        registry = get_registry()
    w = _Where(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise w.error(line, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if node is None:
        raise w.error(1, "empty scenario")
    loader = yaml.SafeLoader("")
    try:
        doc = _plain(node, loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or node.start_mark
        raise w.error(mark.line + 1, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except BadInput as exc:
        raise BadInput(f"{path}:{str(exc).removeprefix('line ')}") from None
    finally:
        loader.dispose()
    if not isinstance(doc, _Map):
        raise w.error(1, "a scenario is a mapping with name, store, steps and checks")
    _keys(w, doc, {"name", "store", "steps", "checks"}, {"title", "start", "sweep_every"}, "scenario")
    store = doc["store"]
    if not isinstance(store, _Map):
        raise w.error(doc.line, "store must be a mapping {tier, code}")
    _keys(w, store, {"tier", "code"}, set(), "store")
    try:
        tier = Tier(store["tier"])
    except ValueError:
        raise w.error(store.line, f"unknown tier {store['tier']!r} (city, district, street)") from None
    code = str(store["code"])
    try:
        level = registry.get(code).level.value
    except CqgovError:
        raise w.error(store.line, f"unknown jurisdiction code {code!r}") from None
    if level != tier.value:
        raise w.error(store.line, f"{code} is a {level}, not a {tier.value}")
    start = _start(w, doc.get("start"), doc.line)
    sweep_every = doc.get("sweep_every", 1)
    if sweep_every is not None and (not _is_number(sweep_every) or sweep_every <= 0):
        raise w.error(doc.line, f"sweep_every must be a positive number of minutes or null, not {sweep_every!r}")
    steps_node = doc["steps"]
    if not isinstance(steps_node, _List) or not steps_node:
        raise w.error(doc.line, "steps must be a non-empty list")
    aliases: set[str] = set()
    steps: list[Step] = []
    last_at = 0.0
    for item in steps_node:
        step = _parse_step(w, item, catalogue, aliases, registry)
        if step.at < last_at:
            raise w.error(step.line, f"step at {step.at:g} min comes before the previous one at {last_at:g} min")
        last_at = step.at
        steps.append(step)
    checks_node = doc["checks"]
    if not isinstance(checks_node, _List) or not checks_node:
        raise w.error(doc.line, "checks must be a non-empty list: a drill proves its mechanism")
    checks = [_parse_check(w, item, aliases) for item in checks_node]
    return Scenario(
        name=str(doc["name"]), title=str(doc.get("title") or doc["name"]), tier=tier, code=code, start=start,
        sweep_every=None if sweep_every is None else float(sweep_every), steps=steps, checks=checks, path=path,
    )


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _line(obj, fallback: int) -> int:
    return getattr(obj, "line", 0) or fallback


def _keys(w: _Where, m: _Map, required: set, optional: set, what: str) -> None:
    missing = sorted(required - set(m))
    if missing:
        raise w.error(m.line, f"{what} needs {', '.join(missing)}")
    extra = sorted(set(m) - required - optional, key=str)
    if extra:
        raise w.error(m.line, f"{what}: unknown key {extra[0]!r} (expected {', '.join(sorted(required | optional))})")


def _start(w: _Where, value, line: int) -> float:
    if value is None:
        return SimClock().now()
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=CST)
        return dt.timestamp()
    try:
        dt = datetime.strptime(str(value), "%Y-%m-%d %H:%M")
    except ValueError:
        raise w.error(line, f"start {value!r} is not 'YYYY-MM-DD HH:MM' (local time)") from None
    return dt.replace(tzinfo=CST).timestamp()


def _ref_alias(ref: str) -> str:
    return ref.split(".", 1)[0]


def _need_alias(w: _Where, ref, aliases: set[str], line: int, what: str) -> None:
    if not isinstance(ref, str) or not ref:
        raise w.error(line, f"{what} must name an event alias")
    if _ref_alias(ref) not in aliases:
        raise w.error(line, f"{what} {ref!r} is not defined by an earlier step")
    if "." in ref and ref.split(".", 1)[1] != "subtasks":
        raise w.error(line, f"{what} {ref!r}: only ALIAS.subtasks may follow a dot")


def _parse_step(w: _Where, item, catalogue, aliases: set[str], registry) -> Step:
    if not isinstance(item, _Map):
        raise w.error(_line(item, 1), "each step is a mapping with 'at' and one action")
    if "at" not in item:
        raise w.error(item.line, "step needs 'at' (simulated minutes from the start)")
    at = item["at"]
    if not _is_number(at) or at < 0:
        raise w.error(item.line, f"'at' must be minutes ≥ 0, not {at!r}")
    kinds = [k for k in item if k != "at"]
    if len(kinds) != 1 or kinds[0] not in _STEP_KEYS:
        raise w.error(item.line, f"step needs exactly one of {', '.join(_STEP_KEYS)} (found {', '.join(map(str, kinds)) or 'none'})")
    kind = kinds[0]
    args = item[kind]
    if kind == "sweep":
        if args not in (True, None) and args != {}:
            raise w.error(item.line, "sweep takes no arguments (write 'sweep: true')")
        return Step(float(at), kind, {}, item.line)
    if not isinstance(args, _Map):
        raise w.error(item.line, f"{kind} needs a mapping of arguments")
    required, optional = _STEP_KEYS[kind]
    _keys(w, args, required, optional, kind)
    line = args.line
    for key in ("role",):
        if key in args:
            try:
                Role(args[key])
            except ValueError:
                raise w.error(line, f"unknown role {args[key]!r}") from None
    if "tier" in args:
        try:
            Tier(args["tier"])
        except ValueError:
            raise w.error(line, f"unknown tier {args['tier']!r}") from None
    if kind == "report":
        if args["category"] not in catalogue.categories:
            raise w.error(line, f"unknown category {args['category']!r}")
        if "colour" in args:
            try:
                Colour.parse(args["colour"])
            except ValueError as exc:
                raise w.error(line, str(exc)) from None
        if "source" in args:
            try:
                Source(args["source"])
            except ValueError:
                raise w.error(line, f"unknown source {args['source']!r}") from None
        count = args.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
            raise w.error(line, f"count must be an integer 1–1000, not {count!r}")
        _check_place(w, args.get("place"), line, catalogue, aliases, registry)
    elif kind == "sensor":
        _check_sensor(w, args["sensor"], line, catalogue)
        if not _is_number(args["value"]):
            raise w.error(line, f"sensor value must be a number, not {args['value']!r}")
    elif kind == "act":
        _need_alias(w, args["event"], aliases, line, "event")
        try:
            lifecycle.rule_for(str(args["action"]))
        except CqgovError as exc:
            raise w.error(line, str(exc)) from None
        if "into" in args:
            _need_alias(w, args["into"], aliases, line, "into")
        if args.get("expect", "ok") not in ("ok", "refused"):
            raise w.error(line, f"expect must be ok or refused, not {args['expect']!r}")
        deps = args.get("departments", [])
        if not isinstance(deps, list) or any(d not in catalogue.departments for d in deps):
            raise w.error(line, f"departments must be a list of known department codes, not {deps!r}")
    elif kind == "subtasks":
        _need_alias(w, args["event"], aliases, line, "event")
        targets = args["targets"]
        if not isinstance(targets, list) or not targets:
            raise w.error(line, "targets must be a non-empty list of jurisdiction or department codes")
        for t in targets:
            if t == "streets" or t in catalogue.departments:
                continue
            try:
                registry.get(str(t))
            except CqgovError:
                raise w.error(line, f"sub-task target {t!r} is neither a department nor a jurisdiction") from None
    alias = args.get("as")
    if alias is not None:
        if not isinstance(alias, str) or not alias.isidentifier():
            raise w.error(line, f"alias {alias!r} must be a plain identifier")
        aliases.add(alias)
    return Step(float(at), kind, dict(args), line)


def _check_place(w: _Where, place, line: int, catalogue, aliases: set[str], registry) -> None:
    if place is None:
        raise w.error(line, "report needs a place")
    if not isinstance(place, _Map):
        raise w.error(line, "place must be a mapping")
    kinds = {"code", "random_in", "risk_point", "near", "lonlat"} & set(place)
    if len(kinds) != 1:
        raise w.error(place.line, "place needs exactly one of code, random_in, risk_point, near, lonlat")
    kind = kinds.pop()
    allowed = {"code": {"code"}, "random_in": {"random_in", "seed"}, "risk_point": {"risk_point"},
               "near": {"near", "east_m", "north_m"}, "lonlat": {"lonlat"}}[kind]
    _keys(w, place, {kind}, allowed - {kind}, "place")
    if kind in ("code", "random_in"):
        try:
            registry.get(str(place[kind]))
        except CqgovError:
            raise w.error(place.line, f"unknown jurisdiction code {place[kind]!r}") from None
    elif kind == "risk_point":
        rp = place["risk_point"]
        if not isinstance(rp, _Map):
            raise w.error(place.line, "risk_point must be {category, district, index}")
        _keys(w, rp, {"category", "district"}, {"index"}, "risk_point")
        if not _risk_points(catalogue, rp["category"], str(rp["district"])):
            raise w.error(rp.line, f"no {rp['category']} risk point in {rp['district']}")
    elif kind == "near":
        _need_alias(w, place["near"], aliases, place.line, "near")
        for k in ("east_m", "north_m"):
            if k in place and not _is_number(place[k]):
                raise w.error(place.line, f"{k} must be metres, not {place[k]!r}")
    else:
        ll = place["lonlat"]
        if not (isinstance(ll, list) and len(ll) == 2 and all(_is_number(x) for x in ll)):
            raise w.error(place.line, "lonlat must be [lon, lat]")


def _risk_points(catalogue, category: str, district: str) -> list:
    return sorted((r for r in catalogue.risk_points.values()
                   if r.category_code == category and r.grid_code.startswith(district)), key=lambda r: r.code)


def _find_sensor(catalogue, spec):
    if isinstance(spec, str):
        return catalogue.sensors.get(spec)
    kind, district, index = spec.get("kind"), str(spec.get("district", "")), spec.get("index", 0)
    found = sorted((s for s in catalogue.sensors.values()
                    if s.kind == kind and catalogue.risk_points[s.risk_point_code].grid_code.startswith(district)),
                   key=lambda s: s.code)
    return found[index] if isinstance(index, int) and 0 <= index < len(found) else None


def _check_sensor(w: _Where, spec, line: int, catalogue) -> None:
    if isinstance(spec, _Map):
        _keys(w, spec, {"kind", "district"}, {"index"}, "sensor")
    elif not isinstance(spec, str):
        raise w.error(line, "sensor must be a sensor code or {kind, district, index}")
    if _find_sensor(catalogue, spec) is None:
        raise w.error(line, f"no such sensor {dict(spec) if isinstance(spec, dict) else spec!r}")


def _parse_check(w: _Where, item, aliases: set[str]) -> tuple[str, dict, int]:
    if not isinstance(item, _Map) or len(item) != 1:
        raise w.error(_line(item, 1), f"each check is a mapping with one of {', '.join(_CHECK_KEYS)}")
    (kind, args), = item.items()
    if kind not in _CHECK_KEYS:
        raise w.error(item.line, f"unknown check {kind!r} (expected one of {', '.join(_CHECK_KEYS)})")
    if not isinstance(args, _Map):
        raise w.error(item.line, f"check {kind} needs a mapping of arguments")
    required, optional = _CHECK_KEYS[kind]
    _keys(w, args, required, optional, f"check {kind}")
    for key in ("event", "events", "into", "by", "duplicate_of"):
        if key in args:
            _need_alias(w, args[key], aliases, args.line, key)
    for key in ("to", "master_status"):
        if key in args:
            try:
                Status(args[key])
            except ValueError:
                raise w.error(args.line, f"unknown status {args[key]!r}") from None
    return kind, dict(args), args.line


# ---------------------------------------------------------------- running


@dataclass
class _Run:
    scenario: Scenario
    engine: Any
    clock: SimClock
    aliases: dict[str, list[str]] = field(default_factory=dict)  # alias → event ids
    refusals: list[dict] = field(default_factory=list)
    unexpected: list[dict] = field(default_factory=list)
    sensor_alarm_at: dict[str, float] = field(default_factory=dict)  # event id → first reading over threshold
    reported_colour: dict[str, str] = field(default_factory=dict)  # event id → colour when reported
    sweeps: int = 0
    log: list[str] = field(default_factory=list)

    def minute(self) -> float:
        return round((self.clock.now() - self.scenario.start) / 60.0, 3)


def run_drill(scenario: Scenario | str, db_path: str | None = None, progress=None) -> dict:
    """Run a scenario on a fresh store and return its report (see ``report``)."""
    from ..catalogue.loader import load_catalogue
    from ..engine import Engine
    from ..geo.registry import get_registry
    from ..store import init_store

    catalogue, registry = load_catalogue(), get_registry()
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, catalogue, registry)
    tmpdir = None
    if db_path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="cqgov-drill-")
        db_path = os.path.join(tmpdir.name, "drill.duckdb")
    elif os.path.exists(db_path):
        raise BadInput(f"{db_path} already exists; a drill runs on a fresh store")
    clock = SimClock(scenario.start)
    try:
        store = init_store(db_path, scenario.tier.value, scenario.code, clock=clock)
        try:
            engine = Engine(store, catalogue, registry, clock)
            run = _Run(scenario, engine, clock)
            for step in scenario.steps:
                _advance(run, scenario.start + step.at * 60.0, progress)
                _do_step(run, step, progress)
            return _report(run)
        finally:
            store.close()
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


def _say(run: _Run, progress, text: str) -> None:
    line = f"[{run.minute():6.2f} min] {text}"
    run.log.append(line)
    if progress:
        progress(line)


def _advance(run: _Run, until: float, progress) -> None:
    """Move the simulated clock to ``until``, sweeping at every interval on the way (like the live engine)."""
    every = run.scenario.sweep_every
    if every:
        step = every * 60.0
        k = math.floor((run.clock.now() - run.scenario.start) / step + 1e-9) + 1
        while run.scenario.start + k * step <= until + 1e-9:
            run.clock.set(run.scenario.start + k * step)
            _sweep(run, progress)
            k += 1
    if until > run.clock.now():
        run.clock.set(until)


def _sweep(run: _Run, progress) -> None:
    result = run.engine.sweep()
    run.sweeps += 1
    for eid in result.escalated:
        e = run.engine.store.get_event(eid)
        _say(run, progress, f"sweep: {e.number} overdue → {e.colour}, supervised by {e.supervised_by}")


def _actor(run: _Run, args: dict, event: Event | None) -> User:
    store = run.engine.store
    tier = Tier(args.get("tier", store.tier.value))
    role = Role(args.get("role", Role.DUTY_OFFICER.value))
    scope = args.get("scope")
    if scope is None:
        if tier is Tier.CITY:
            scope = CITY_CODE
        elif event is None:
            scope = store.code
        elif tier is Tier.DISTRICT:
            scope = event.district_code
        else:
            scope = event.street_code or event.district_code
    user = args.get("user") or f"{role.value}@{tier.value}"
    return User(user, user, role, tier, str(scope))


def _events(run: _Run, ref: str) -> list[Event]:
    store = run.engine.store
    alias, _, tail = ref.partition(".")
    ids = run.aliases.get(alias, [])
    events = [store.get_event(i) for i in ids]
    if tail == "subtasks":
        events = [c for e in events for c in store.children_of(e.id)]
    return [e for e in events if e is not None]


def _do_step(run: _Run, step: Step, progress) -> None:
    args, eng = step.args, run.engine
    if step.kind == "sweep":
        _sweep(run, progress)
    elif step.kind == "report":
        ids = []
        rng = random.Random(args.get("place", {}).get("seed", 0))
        for i in range(args.get("count", 1)):
            lon, lat, code = _place(run, args["place"], rng)
            actor = _actor(run, args, None) if ("role" in args or "tier" in args) else None
            e = eng.report(category=args["category"], title=args.get("title", ""), text=args.get("text", ""),
                           lon=lon, lat=lat, code=code, colour=args.get("colour"),
                           source=args.get("source", Source.CITIZEN.value), reporter=args.get("user", ""), actor=actor)
            ids.append(e.id)
            run.reported_colour[e.id] = e.colour
            _say(run, progress, f"report {e.number} {e.category_code} {e.colour} → {e.status}"
                 + (f" (inhibited by {e.inhibited_by[:8]})" if e.inhibited_by else "")
                 + (f" (merged into {e.merged_into[:8]})" if e.merged_into else "")
                 + (f" (merge candidate of {e.duplicate_of[:8]})" if e.duplicate_of else "")
                 + (f" plan {e.plan_code}" if e.plan_code else ""))
        if "as" in args:
            run.aliases[args["as"]] = ids
    elif step.kind == "sensor":
        _sensor(run, args, progress)
    elif step.kind == "act":
        targets = _events(run, args["event"])
        into = None
        if "into" in args:
            found = _events(run, args["into"])
            into = found[0].id if found else None
        for e in targets:
            actor = _actor(run, args, e)
            head = eng.store.head()
            try:
                after = eng.act(e.id, args["action"], actor, note=args.get("note", ""),
                                departments=args.get("departments") or None, target=into)
            except CqgovError as exc:
                entry = {"minute": run.minute(), "event": e.number, "action": args["action"],
                         "role": actor.role.value, "tier": actor.tier.value, "reason": str(exc),
                         "unchanged": eng.store.head() == head}
                if args.get("expect") == "refused":
                    run.refusals.append(entry)
                    _say(run, progress, f"refused as scripted: {e.number} {args['action']} by {actor.user}: {exc}")
                else:
                    run.unexpected.append(entry)
                    _say(run, progress, f"REFUSED: {e.number} {args['action']} by {actor.user}: {exc}")
                continue
            if args.get("expect") == "refused":
                run.unexpected.append({"minute": run.minute(), "event": e.number, "action": args["action"],
                                       "reason": "accepted but the scenario expected a refusal"})
            _say(run, progress, f"{actor.user} {args['action']} {after.number} → {after.status}")
    elif step.kind == "subtasks":
        masters = _events(run, args["event"])
        ids = []
        for m in masters:
            subs = eng.open_subtasks(m.id, [str(t) for t in args["targets"]], _actor(run, args, m),
                                     note=args.get("note", ""))
            ids.extend(s.id for s in subs)
            _say(run, progress, f"多跨 {m.number}: {len(subs)} sub-tasks")
        if "as" in args:
            run.aliases[args["as"]] = ids


def _place(run: _Run, place: dict, rng: random.Random) -> tuple[float | None, float | None, str | None]:
    reg, cat = run.engine.registry, run.engine.catalogue
    if "code" in place:
        return None, None, str(place["code"])
    if "random_in" in place:
        lon, lat = reg.random_point(str(place["random_in"]), rng)
        return lon, lat, None
    if "risk_point" in place:
        spec = place["risk_point"]
        rp = _risk_points(cat, spec["category"], str(spec["district"]))[spec.get("index", 0)]
        return rp.lon, rp.lat, None
    if "near" in place:
        base = _events(run, place["near"])[0]
        dlat = place.get("north_m", 0) / _M_PER_DEG
        dlon = place.get("east_m", 0) / (_M_PER_DEG * math.cos(math.radians(base.lat)))
        return base.lon + dlon, base.lat + dlat, None
    lon, lat = place["lonlat"]
    return float(lon), float(lat), None


def _sensor(run: _Run, args: dict, progress) -> None:
    """One reading through the engine's sensor monitor: crossing the threshold opens an alarm episode
    (one event), later readings attach to it, and falling under ``clear_below`` ends the episode."""
    from ..engine.sensors import SensorMonitor

    sensor = _find_sensor(run.engine.catalogue, args["sensor"])
    value = float(args["value"])
    result = SensorMonitor(run.engine).ingest([(sensor.code, run.clock.now(), value)])
    for r in result.rejected:
        run.unexpected.append({"minute": run.minute(), "sensor": sensor.code, "reason": r.reason})
        _say(run, progress, f"REJECTED reading: {r}")
    for eid in result.opened:
        e = run.engine.store.get_event(eid)
        run.sensor_alarm_at[eid] = run.clock.now()
        run.reported_colour[eid] = e.colour
        if "as" in args:
            run.aliases[args["as"]] = [eid]
        _say(run, progress, f"sensor {sensor.code} {value:g}{sensor.unit} ≥ {sensor.threshold:g}: alarm {e.number} "
             f"{e.colour} → {e.status}" + (f" plan {e.plan_code}" if e.plan_code else ""))
    if result.cleared:
        _say(run, progress, f"sensor {sensor.code} {value:g}{sensor.unit} < {sensor.clear_below:g}: alarm episode ends")
    elif not result.opened and not result.rejected:
        _say(run, progress, f"sensor {sensor.code} {value:g}{sensor.unit}"
             + (" (attached to the running alarm)" if result.attached else ""))
    if "as" in args and not result.opened and args["as"] not in run.aliases:
        run.unexpected.append({"minute": run.minute(), "sensor": sensor.code,
                               "reason": f"reading {value:g} opened no alarm for alias {args['as']!r}"})


# ---------------------------------------------------------------- report and checks


def _first_reached(trail, status: Status) -> float | None:
    target = lifecycle.position(status)
    for a in trail:
        if a.to_status and Status(a.to_status) not in (Status.MERGED, Status.REJECTED) and \
                lifecycle.position(a.to_status) >= target:
            return a.acted_at
    return None


def _report(run: _Run) -> dict:
    store = run.engine.store
    events = store.all_events()
    audit = store.audit_entries()
    verdict = store.verify_audit()
    by_event: dict[str, list] = {}
    for a in audit:
        by_event.setdefault(a.event_id, []).append(a)
    closed = [e for e in events if e.status in (Status.CLOSED.value, Status.REVIEWED.value)]
    auto_dispatched = sum(
        1 for e in events if e.plan_code and any(a.action == "dispatch" and a.actor == run.engine.system.user
                                                 for a in by_event.get(e.id, ()))
    )
    close_minutes = [(e.closed_at - e.reported_at) / 60.0 for e in closed if e.closed_at is not None]
    checks = [_run_check(run, kind, args, line, by_event) for kind, args, line in run.scenario.checks]
    if run.unexpected:
        checks.append({"check": "script", "ok": False, "unexpected": run.unexpected})
    mechanism_ok = all(c["ok"] for c in checks)
    return {
        "scenario": run.scenario.name,
        "title": run.scenario.title,
        "store": {"tier": run.scenario.tier.value, "code": run.scenario.code},
        "started": local(run.scenario.start).strftime("%Y-%m-%d %H:%M"),
        "sim_minutes": run.minute(),
        "sweeps": run.sweeps,
        "events": len(events),
        "closed": len(closed),
        "auto_dispatched": auto_dispatched,
        "merged": sum(1 for e in events if e.status == Status.MERGED.value),
        "flagged_duplicates": sum(1 for e in events if e.duplicate_of),
        "inhibited": sum(1 for e in events if e.inhibited_by),
        "escalated": sum(1 for e in events if e.escalation_level > 0 or e.status == Status.ESCALATED.value),
        "subtasks": sum(1 for e in events if e.parent_id),
        "max_close_minutes": round(max(close_minutes), 2) if close_minutes else None,
        "refused": len(run.refusals),
        "audit_entries": verdict.entries,
        "audit_ok": verdict.ok,
        "mechanism": {"ok": mechanism_ok, "checks": checks},
        "ok": mechanism_ok and verdict.ok,
    }


def _one(run: _Run, ref: str) -> Event | None:
    found = _events(run, ref)
    return found[0] if found else None


def _mins(run: _Run, t: float | None, since: float) -> float | None:
    return None if t is None else round((t - since) / 60.0, 2)


def _run_check(run: _Run, kind: str, args: dict, line: int, by_event: dict) -> dict:
    out: dict[str, Any] = {"check": kind}
    try:
        ok = _CHECKS[kind](run, args, by_event, out)
    except (IndexError, KeyError, AttributeError, TypeError) as exc:
        ok, out["error"] = False, f"{run.scenario.path}:{line}: cannot evaluate: {exc}"
    out["ok"] = bool(ok)
    return out


def _check_elapsed(run, args, by_event, out) -> bool:
    e = _one(run, args["event"])
    trail = by_event.get(e.id, [])
    start = run.sensor_alarm_at.get(e.id, e.reported_at) if args.get("from_sensor") else e.reported_at
    reached = _first_reached(trail, Status(args["to"]))
    out.update(event=e.number, to=args["to"], limit_minutes=args["max_minutes"],
               reported_min=_mins(run, e.reported_at, run.scenario.start),
               dispatched_after_min=_mins(run, _first_reached(trail, Status.DISPATCHED), start),
               on_scene_after_min=_mins(run, _first_reached(trail, Status.ON_SCENE), start),
               minutes=_mins(run, reached, start))
    return reached is not None and out["minutes"] <= args["max_minutes"]


def _check_plan(run, args, by_event, out) -> bool:
    e = _one(run, args["event"])
    trail = by_event.get(e.id, [])
    sysuser = run.engine.system.user
    signed = any(a.action == "verify" and a.actor == sysuser for a in trail)
    dispatched = any(a.action == "dispatch" and a.actor == sysuser for a in trail)
    out.update(event=e.number, plan=e.plan_code, auto_signed=signed, auto_dispatched=dispatched,
               assignee=e.assignee, departments=list(e.departments), sla_profile=e.sla_profile)
    ok = e.plan_code == args["plan"]
    if "auto_signed" in args:
        ok &= signed == bool(args["auto_signed"])
    if "auto_dispatched" in args:
        ok &= dispatched == bool(args["auto_dispatched"])
    if "assignee" in args:
        ok &= e.assignee == args["assignee"]
    if "departments" in args:
        ok &= set(args["departments"]) <= set(e.departments)
    if "sla_profile" in args:
        ok &= e.sla_profile == args["sla_profile"]
    return ok


def _check_merged(run, args, by_event, out) -> bool:
    e, into = _one(run, args["event"]), _one(run, args["into"])
    merge = [a for a in by_event.get(e.id, []) if a.action == "merge"]
    auto = bool(merge) and merge[0].actor == run.engine.system.user
    out.update(event=e.number, status=e.status, merged_into=e.merged_into and into and
               (into.number if e.merged_into == into.id else e.merged_into), auto=auto,
               note=merge[0].note if merge else None)
    ok = e.status == Status.MERGED.value and e.merged_into == into.id
    if "auto" in args:
        ok &= auto == bool(args["auto"])
    return ok


def _check_flagged(run, args, by_event, out) -> bool:
    e, other = _one(run, args["event"]), _one(run, args["duplicate_of"])
    flag = [a for a in by_event.get(e.id, []) if a.action == "flag_duplicate"]
    out.update(event=e.number, status=e.status, duplicate_of=other.number if e.duplicate_of == other.id else e.duplicate_of,
               note=flag[0].note if flag else None)
    # Flagged, not merged, at report time: a dispatcher decides (the event may be merged by hand later).
    held = any(a.action == "hold" for a in by_event.get(e.id, []))
    out["plan_held"] = held
    return e.duplicate_of == other.id and bool(flag) and not any(
        a.action == "merge" and a.actor == run.engine.system.user for a in by_event.get(e.id, []))


def _check_inhibited(run, args, by_event, out) -> bool:
    group, by = _events(run, args["events"]), _one(run, args["by"])
    inhibited = [e for e in group if e.inhibited_by == by.id]
    notified = sum(1 for e in inhibited for a in by_event.get(e.id, []) if a.action == "notify")
    suppressed = sum(1 for e in inhibited for a in by_event.get(e.id, []) if a.action == "notify_suppressed")
    now = run.clock.now()
    overdue = [e for e in inhibited if e.due_at is not None and e.due_at < now]
    escalated = [e for e in inhibited if e.escalation_level > 0]
    out.update(by=by.number, by_category=by.category_code, by_district=by.district_code, by_status=by.status,
               recorded=len(group), inhibited=len(inhibited), alerts_sent=notified, alerts_suppressed=suppressed,
               overdue_held=len(overdue), escalated=len(escalated), districts=sorted({e.district_code for e in group}))
    need = args.get("min", len(group))
    return (len(group) > 0 and len(inhibited) >= need and len(inhibited) == len(group) and notified == 0
            and not escalated)


def _check_not_inhibited(run, args, by_event, out) -> bool:
    group = _events(run, args["events"])
    out.update(events=[e.number for e in group], inhibited=[e.number for e in group if e.inhibited_by],
               districts=sorted({e.district_code for e in group}))
    return bool(group) and not any(e.inhibited_by for e in group)


def _check_sla(run, args, by_event, out) -> bool:
    e = _one(run, args["event"])
    profile = run.engine.catalogue.sla(e.sla_profile)
    trail = by_event.get(e.id, [])
    stages = []
    for st in profile.stages:
        reached = _first_reached(trail, st.milestone)
        stages.append({"stage": st.label, "zh": st.label_zh, "milestone": st.milestone.value, "due_min": st.minutes,
                       "reached_min": _mins(run, reached, e.reported_at),
                       "met": reached is not None and reached <= e.reported_at + st.minutes * 60.0})
    wanted = [float(x) for x in args["deadlines"]]
    got = [s["due_min"] for s in stages[: len(wanted)]]
    out.update(event=e.number, profile=e.sla_profile, deadlines=got, stages=stages)
    ok = e.sla_profile == args["profile"] and got == wanted
    if args.get("all_met"):
        ok &= all(s["met"] for s in stages[: len(wanted)])
    return ok


def _check_subtasks(run, args, by_event, out) -> bool:
    m = _one(run, args["event"])
    subs = run.engine.store.children_of(m.id)
    distinct = args.get("distinct")
    if distinct == "district":
        keys = {s.district_code for s in subs}
    elif distinct == "street":
        keys = {s.street_code for s in subs}
    elif distinct == "department":
        keys = {s.assignee for s in subs}
    else:
        keys = {s.id for s in subs}
    rollups = [a for a in by_event.get(m.id, []) if a.note == "多跨 roll-up from sub-tasks"]
    out.update(event=m.number, master_status=m.status, subtasks=[
        {"number": s.number, "district": s.district_code, "street": s.street_code, "department": s.assignee,
         "status": s.status} for s in subs], distinct=sorted(k for k in keys if k), roll_up_steps=len(rollups))
    ok = len(subs) >= args["min"] and len([k for k in keys if k]) >= args["min"]
    if "master_status" in args:
        ok &= m.status == args["master_status"]
    return ok


def _check_escalation(run, args, by_event, out) -> bool:
    e = _one(run, args["event"])
    steps = [a for a in by_event.get(e.id, []) if a.action == "supervise"]
    out.update(event=e.number, origin_tier=e.origin_tier, colour_after=e.colour,
               supervised_by=e.supervised_by, escalation_level=e.escalation_level,
               steps=[{"minute": _mins(run, a.acted_at, run.scenario.start), "note": a.note} for a in steps])
    before = run.reported_colour.get(e.id)
    out["colour_before"] = before
    ok = (e.colour == Colour.parse(args["colour_after"]).value and e.supervised_by == args["supervised_by"]
          and before == Colour.parse(args["colour_before"]).value)
    if "steps" in args:
        ok &= len(steps) == args["steps"]
    return ok


def _check_refused(run, args, by_event, out) -> bool:
    out.update(refusals=run.refusals)
    return len(run.refusals) >= args["min"] and all(r["unchanged"] for r in run.refusals)


_CHECKS = {
    "elapsed": _check_elapsed,
    "plan": _check_plan,
    "merged": _check_merged,
    "flagged": _check_flagged,
    "inhibited": _check_inhibited,
    "not_inhibited": _check_not_inhibited,
    "sla": _check_sla,
    "subtasks": _check_subtasks,
    "escalation": _check_escalation,
    "refused": _check_refused,
}
