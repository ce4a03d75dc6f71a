"""Load and validate the catalogue from ``fixtures/catalogue/``.

Every file is composed with PyYAML (not merely loaded) so each node keeps its
line; anything wrong is rejected as ``BadInput("<file>:<line>: <reason>")``
in one line, and nothing partly loaded is ever returned.

Files (all YAML):

``departments.yaml``
    list of ``{code, name, short}``.
``sla_profiles.yaml``
    ``<code>: {name, stages: [{label, label_zh, milestone, minutes}, …], escalate_after}``;
    milestones follow the closed loop, minutes (from report) strictly increase;
    ``escalate_after: [m1, m2]`` — minutes an overdue event waits before the tier
    above supervises, then before the city does (default: at once).
``runways.yaml``
    ``<sector code>: {name, runways: {<runway name>: [sub-runway, …]}}`` —
    8 sectors, 70 runways, 255 sub-runways.  Runway codes are
    ``<sector><nn>``, sub-runway codes ``<runway>.<nn>``, in file order.
    A sub-runway is a plain name or ``{name, cats, sensors, risk, kpis, places}``;
    its indicators (code ``<sub-runway>.<suffix>``) are expanded thus:

    * ``cats: [T…]`` → ``.open`` 在办事件 (``open:T``), ``.overdue`` 超期率
      (``overdue_ratio:T``), ``.resp`` 平均响应时长 (``mean_response_min:T``,
      boundaries 1×/1.5×/2×/3× the first stage of the categories' SLA);
    * ``sensors: [kind…]`` → ``.<kind>_max`` (``sensor_max:kind``, the kind's
      bands), ``.<kind>_alarms`` (``sensor_alarms:kind``) and ``.<kind>_fresh``
      (``sensor_fresh:kind``);
    * ``risk: [T…]`` → ``.risk`` 高风险点位 (``risk_high:T``);
    * ``kpis: [{name, unit, metric, bands, lower_better, kind}]`` → ``.k1``, ``.k2``…;
      ``kind`` is ``vital`` (城市体征) or ``kpi``, by default the metric's;
    * a plain name → three figures fed through 一表通: ``.rate`` 达标率
      (``figure_mean:<code>.rate``), ``.warn`` 预警数 (``figure:<code>.warn``)
      and ``.fresh`` 数据更新及时率 (``fresh:<code>``) — no data until fed.

    ``places: [code…]`` makes a sub-runway a 特色子跑道 of those jurisdictions:
    only their boards (and boards inside them) show it. The 255 counted are
    the common ones.

    The metric language is documented in ``catalogue.metrics``.
``categories.yaml``
    ``<code>: {name, department, co, colour, sla, sector, scope, covers}``;
    exactly 40.  ``covers`` (district scope only) lists the grid categories an
    open event of this category inhibits.
``sensor_kinds.yaml``
    ``<kind>: {name, unit, threshold, clear_below, category, bands, also}``;
    a sensor sits on a risk point whose category the kind serves
    (``category`` or one of ``also``), and an alarm opens an event of the
    risk point's category.
``risk_points.yaml``
    generation recipe for risk points and sensors (see ``catalogue.risk``).
``plans/*.yaml``
    smart plans: a list of plans, or one plan mapping, per file; keys are the
    fields of ``SmartPlan`` (see ``load_plans``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from ..domain.colour import Colour
from ..domain.entities import (
    Category,
    Department,
    Indicator,
    LOOP,
    Role,
    Runway,
    Sector,
    SlaProfile,
    SlaStage,
    SmartPlan,
    Status,
    SubRunway,
)
from ..errors import BadInput
from ..textfile import read_text
from . import Catalogue, SensorKind
from .metrics import KPI, VITAL, parse_metric

try:  # libyaml is several times faster and keeps the same marks
    _LOADER = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _LOADER = yaml.SafeLoader

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACE = re.compile(r"^50\d*$")
_SCOPES = ("grid", "district")
# Sub-task target in open_multi meaning "every street of the event's district" (engine.multi).
MULTI_STREETS = "streets"
EXPECTED = {"categories": 40, "sectors": 8, "runways": 70, "sub_runways": 255}

_T_STR = "tag:yaml.org,2002:str"
_T_INT = "tag:yaml.org,2002:int"
_T_FLOAT = "tag:yaml.org,2002:float"
_T_BOOL = "tag:yaml.org,2002:bool"
_T_NULL = "tag:yaml.org,2002:null"


# ----------------------------------------------------------------- YAML nodes


class _Doc:
    """One YAML file, composed; builds one-line errors that name file and line."""

    def __init__(self, path: Path, text: str | None = None):
        self.path = Path(path)
        self.name = _display(self.path)
        if text is None:
            text = read_text(self.path)
        self.text = text
        try:
            self.root = yaml.compose(text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            reason = exc.problem or exc.context or "malformed YAML"
            raise BadInput(f"{self.name}:{line}: YAML syntax error: {_one_line(reason)}") from None
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, max(0, exc.position)) + 1
            raise BadInput(f"{self.name}:{line}: YAML syntax error: {_one_line(exc.reason)}") from None
        except yaml.YAMLError as exc:
            raise BadInput(f"{self.name}:1: YAML syntax error: {_one_line(str(exc))}") from None
        except RecursionError:
            raise BadInput(f"{self.name}:1: YAML nested too deeply") from None

    def line(self, node: yaml.Node | None) -> int:
        return node.start_mark.line + 1 if node is not None else 1

    def error(self, node: yaml.Node | None, reason: str) -> BadInput:
        return BadInput(f"{self.name}:{self.line(node)}: {_one_line(reason)}")

    def where(self, node: yaml.Node) -> str:
        return f"{self.name}:{self.line(node)}"

    # -- typed access; ``what`` names the thing in the message

    def mapping(self, node, what: str, required: Iterable[str] = (), optional: Iterable[str] = (),
                any_keys: bool = False) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key → (key node, value node); unknown, duplicate and missing keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what}: expected a mapping, got {_kind(node)}")
        required, optional = tuple(required), tuple(optional)
        allowed = set(required) | set(optional)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode) or knode.tag == _T_NULL or not knode.value.strip():
                raise self.error(knode, f"{what}: keys must be plain names")
            key = knode.value.strip()
            if not any_keys and key not in allowed:
                raise self.error(knode, f"unknown key {key!r} in {what} (allowed: {', '.join(required + optional)})")
            if key in out:
                raise self.error(knode, f"duplicate key {key!r} in {what}")
            out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                raise self.error(node, f"{what}: missing key {key!r}")
        return out

    def seq(self, node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what}: expected a list, got {_kind(node)}")
        return list(node.value)

    def text_(self, node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _T_NULL:
            raise self.error(node, f"{what}: expected text, got {_kind(node)}")
        if node.tag not in (_T_STR, _T_INT, _T_FLOAT, _T_BOOL):
            raise self.error(node, f"{what}: expected text, got {node.tag.rsplit(':', 1)[-1]}")
        value = node.value.strip()
        if not value:
            raise self.error(node, f"{what}: must not be empty")
        return value

    def code(self, node, what: str) -> str:
        value = self.text_(node, what)
        if not _CODE.match(value):
            raise self.error(node, f"{what}: {value!r} is not a code (lower-case letters, digits, _)")
        return value

    def number(self, node, what: str) -> float:
        if isinstance(node, yaml.ScalarNode) and node.tag in (_T_INT, _T_FLOAT):
            value = _construct(node)
        elif isinstance(node, yaml.ScalarNode) and node.tag == _T_STR and node.style is None:
            # PyYAML's YAML 1.1 resolver reads "1e3" as text; accept plain numerals anyway.
            try:
                value = float(node.value)
            except ValueError:
                raise self.error(node, f"{what}: expected a number, got {node.value!r}") from None
        else:
            raise self.error(node, f"{what}: expected a number, got {_kind(node)}")
        if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
            raise self.error(node, f"{what}: expected a finite number, got {node.value!r}")
        return float(value)

    def integer(self, node, what: str) -> int:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _T_INT):
            raise self.error(node, f"{what}: expected a whole number, got {_kind(node)}")
        value = _construct(node)
        if not isinstance(value, int):
            raise self.error(node, f"{what}: expected a whole number, got {node.value!r}")
        return value

    def boolean(self, node, what: str) -> bool:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _T_BOOL):
            raise self.error(node, f"{what}: expected true or false, got {_kind(node)}")
        return bool(_construct(node))

    def codes(self, node, what: str, known: Iterable[str] | None = None, noun: str = "code") -> tuple[str, ...]:
        """A list of distinct codes, each (if ``known`` given) among ``known``."""
        known_set = set(known) if known is not None else None
        out: list[str] = []
        for item in self.seq(node, what):
            value = self.text_(item, what)
            if known_set is not None and value not in known_set:
                raise self.error(item, f"unknown {noun} {value!r} in {what}")
            if value in out:
                raise self.error(item, f"{noun} {value!r} listed twice in {what}")
            out.append(value)
        return tuple(out)

    def bands(self, node, what: str) -> tuple[float, float, float, float]:
        items = self.seq(node, what)
        if len(items) != 4:
            raise self.error(node, f"{what}: expected 4 ascending boundaries, got {len(items)}")
        values = tuple(self.number(i, what) for i in items)
        if any(a >= b for a, b in zip(values, values[1:])):
            raise self.error(node, f"{what}: boundaries must strictly ascend, got {list(values)}")
        return values  # type: ignore[return-value]

    def colour(self, node, what: str) -> Colour:
        value = self.text_(node, what)
        try:
            return Colour.parse(value)
        except ValueError as exc:
            raise self.error(node, f"{what}: {exc}") from None


_SCALARS = yaml.constructor.SafeConstructor()


def _construct(node: yaml.ScalarNode) -> Any:
    try:
        return _SCALARS.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        return None


def _kind(node) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _T_NULL:
        return "nothing"
    return repr(node.value)


def _display(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _document(doc: _Doc, what: str) -> yaml.Node:
    if doc.root is None:
        raise BadInput(f"{doc.name}:1: empty file, expected {what}")
    return doc.root


# ---------------------------------------------------------------- reference data


def _load_departments(doc: _Doc) -> dict[str, Department]:
    out: dict[str, Department] = {}
    for item in doc.seq(_document(doc, "a list of departments"), "departments"):
        m = doc.mapping(item, "department", required=("code", "name", "short"))
        code = doc.code(m["code"][1], "department code")
        if code in out:
            raise doc.error(m["code"][1], f"duplicate department code {code!r}")
        out[code] = Department(code, doc.text_(m["name"][1], "department name"), doc.text_(m["short"][1], "short name"))
    if not out:
        raise doc.error(doc.root, "no departments")
    return out


def _load_sla(doc: _Doc) -> dict[str, SlaProfile]:
    out: dict[str, SlaProfile] = {}
    root = doc.mapping(_document(doc, "SLA profiles"), "SLA profiles", any_keys=True)
    for key, (knode, vnode) in root.items():
        code = doc.code(knode, "SLA profile code")
        m = doc.mapping(vnode, f"SLA profile {code!r}", required=("name", "stages"), optional=("escalate_after",))
        stages: list[SlaStage] = []
        for snode in doc.seq(m["stages"][1], f"stages of {code!r}"):
            s = doc.mapping(snode, f"stage of {code!r}", required=("label", "label_zh", "milestone", "minutes"))
            mnode = s["milestone"][1]
            name = doc.text_(mnode, "milestone")
            try:
                milestone = Status(name)
            except ValueError:
                milestone = None
            if milestone is None or milestone not in LOOP[1:]:
                raise doc.error(mnode, f"milestone {name!r} is not a status of the loop "
                                       f"({', '.join(s.value for s in LOOP[1:])})")
            minutes = doc.number(s["minutes"][1], "minutes")
            if minutes <= 0:
                raise doc.error(s["minutes"][1], f"minutes must be positive, got {minutes:g}")
            if stages:
                prev = stages[-1]
                if LOOP.index(milestone) <= LOOP.index(prev.milestone):
                    raise doc.error(mnode, f"milestone {milestone.value!r} comes after {prev.milestone.value!r} "
                                           f"in profile {code!r}: stages must follow the loop order")
                if minutes <= prev.minutes:
                    raise doc.error(s["minutes"][1], f"minutes must strictly increase in profile {code!r} "
                                                     f"({minutes:g} after {prev.minutes:g})")
            stages.append(SlaStage(doc.text_(s["label"][1], "label"), doc.text_(s["label_zh"][1], "label_zh"),
                                   milestone, minutes))
        if not stages:
            raise doc.error(m["stages"][1], f"SLA profile {code!r} has no stages")
        delays: tuple[float, ...] = ()
        if "escalate_after" in m:
            delays = tuple(doc.number(n, f"escalate_after of {code!r}")
                           for n in doc.seq(m["escalate_after"][1], f"escalate_after of {code!r}"))
            if not delays or any(d < 0 for d in delays):
                raise doc.error(m["escalate_after"][1], f"escalate_after of {code!r}: one or more minutes ≥ 0 "
                                                        f"(before the tier above supervises, then the city)")
        out[code] = SlaProfile(code, doc.text_(m["name"][1], "profile name"), tuple(stages), delays)
    if not out:
        raise doc.error(doc.root, "no SLA profiles")
    return out


def _load_sectors(doc: _Doc) -> dict[str, Sector]:
    out: dict[str, Sector] = {}
    root = doc.mapping(_document(doc, "sectors"), "runway catalogue", any_keys=True)
    for key, (knode, vnode) in root.items():
        code = doc.code(knode, "sector code")
        m = doc.mapping(vnode, f"sector {code!r}", required=("name", "runways"))
        out[code] = Sector(code, doc.text_(m["name"][1], "sector name"))
    return out


def _load_categories(doc: _Doc, departments, profiles, sectors) -> dict[str, Category]:
    out: dict[str, Category] = {}
    pending_covers: list[tuple[str, yaml.Node]] = []
    root = doc.mapping(_document(doc, "categories"), "categories", any_keys=True)
    for key, (knode, vnode) in root.items():
        code = doc.code(knode, "category code")
        what = f"category {code!r}"
        m = doc.mapping(vnode, what, required=("name", "department", "colour", "sla", "sector"),
                        optional=("co", "scope", "covers"))
        dept = doc.text_(m["department"][1], "department")
        if dept not in departments:
            raise doc.error(m["department"][1], f"unknown department {dept!r} in {what}")
        co: tuple[str, ...] = ()
        if "co" in m:
            co = doc.codes(m["co"][1], f"co-departments of {code!r}", departments, "department")
            if dept in co:
                raise doc.error(m["co"][1], f"{what}: owner {dept!r} is also listed as a co-department")
        sla = doc.text_(m["sla"][1], "sla")
        if sla not in profiles:
            raise doc.error(m["sla"][1], f"unknown SLA profile {sla!r} in {what}")
        sector = doc.text_(m["sector"][1], "sector")
        if sector not in sectors:
            raise doc.error(m["sector"][1], f"unknown sector {sector!r} in {what}")
        scope = "grid"
        if "scope" in m:
            scope = doc.text_(m["scope"][1], "scope")
            if scope not in _SCOPES:
                raise doc.error(m["scope"][1], f"scope must be one of {', '.join(_SCOPES)}, got {scope!r}")
        if "covers" in m:
            if scope != "district":
                raise doc.error(m["covers"][0], f"{what}: only district-scope categories cover others")
            pending_covers.append((code, m["covers"][1]))
        out[code] = Category(code, doc.text_(m["name"][1], "category name"), dept, co,
                             doc.colour(m["colour"][1], "colour"), sla, sector, scope)
    # covers may name categories declared further down the file
    for code, node in pending_covers:
        covers = doc.codes(node, f"covers of {code!r}", out, "category")
        for c in covers:
            if out[c].scope != "grid":
                raise doc.error(node, f"{code!r} covers {c!r}, which is not a grid-scope category")
        cat = out[code]
        out[code] = Category(cat.code, cat.name, cat.department_code, cat.co_departments, cat.default_colour,
                             cat.sla_profile, cat.sector_code, cat.scope, covers)
    return out


def _load_sensor_kinds(doc: _Doc, categories) -> dict[str, SensorKind]:
    out: dict[str, SensorKind] = {}
    root = doc.mapping(_document(doc, "sensor kinds"), "sensor kinds", any_keys=True)
    for key, (knode, vnode) in root.items():
        code = doc.code(knode, "sensor kind")
        what = f"sensor kind {code!r}"
        m = doc.mapping(vnode, what, required=("name", "unit", "threshold", "clear_below", "category", "bands"),
                        optional=("also",))
        threshold = doc.number(m["threshold"][1], "threshold")
        clear = doc.number(m["clear_below"][1], "clear_below")
        if clear >= threshold:
            raise doc.error(m["clear_below"][1], f"{what}: clear_below {clear:g} must be under threshold {threshold:g}")
        cat = doc.text_(m["category"][1], "category")
        if cat not in categories:
            raise doc.error(m["category"][1], f"unknown category {cat!r} in {what}")
        also = doc.codes(m["also"][1], f"also of {code!r}", categories, "category") if "also" in m else ()
        if cat in also:
            raise doc.error(m["also"][1], f"{what}: {cat!r} is already its category")
        out[code] = SensorKind(code, doc.text_(m["name"][1], "name"), doc.text_(m["unit"][1], "unit"),
                               threshold, clear, cat, doc.bands(m["bands"][1], f"bands of {code!r}"), also)
    return out


# ---------------------------------------------------------------- runways


@dataclass
class _RunwayTree:
    runways: dict[str, Runway]
    sub_runways: dict[str, SubRunway]
    indicators: dict[str, Indicator]


def _load_runways(doc: _Doc, sectors, categories, profiles, sensor_kinds) -> _RunwayTree:
    runways: dict[str, Runway] = {}
    subs: dict[str, SubRunway] = {}
    indicators: dict[str, Indicator] = {}
    names_seen: dict[str, str] = {}
    root = doc.mapping(doc.root, "runway catalogue", any_keys=True)
    for skey, (sknode, svnode) in root.items():
        sector = sectors[skey]
        sm = doc.mapping(svnode, f"sector {skey!r}", required=("name", "runways"))
        rmap = doc.mapping(sm["runways"][1], f"runways of {skey!r}", any_keys=True)
        for rindex, (rname, (rknode, rvnode)) in enumerate(rmap.items(), 1):
            if rname in names_seen:
                raise doc.error(rknode, f"runway {rname!r} already declared in sector {names_seen[rname]!r}")
            names_seen[rname] = skey
            rcode = f"{sector.code}{rindex:02d}"
            runways[rcode] = Runway(rcode, rname, sector.code)
            sub_names: set[str] = set()
            for sindex, snode in enumerate(doc.seq(rvnode, f"sub-runways of {rname!r}"), 1):
                scode = f"{rcode}.{sindex:02d}"
                _sub_runway(doc, snode, scode, rname, rcode, sub_names, subs, indicators, categories, profiles,
                            sensor_kinds)
    return _RunwayTree(runways, subs, indicators)


_SUB_KEYS = ("cats", "sensors", "risk", "kpis", "places")


def _sub_runway(doc: _Doc, snode, scode: str, rname: str, rcode: str, sub_names: set[str], subs, indicators,
                categories, profiles, sensor_kinds) -> None:
    """One sub-runway and its indicators (see the module docstring for the expansion rules)."""
    if isinstance(snode, yaml.ScalarNode):
        sname, sm2 = doc.text_(snode, "sub-runway name"), {}
    else:
        sm2 = doc.mapping(snode, f"sub-runway of {rname!r}", required=("name",), optional=_SUB_KEYS)
        sname = doc.text_(sm2["name"][1], "sub-runway name")
    if sname in sub_names:
        raise doc.error(snode, f"sub-runway {sname!r} listed twice in runway {rname!r}")
    sub_names.add(sname)
    places: tuple[str, ...] = ()
    if "places" in sm2:
        places = doc.codes(sm2["places"][1], f"places of {sname!r}", noun="place")
        for item, p in zip(sm2["places"][1].value, places):
            if not _PLACE.match(p):
                raise doc.error(item, f"place {p!r} of {sname!r} is not a jurisdiction code (digits, 50…)")
        if not places:
            raise doc.error(sm2["places"][1], f"places of {sname!r}: empty list (omit places for every jurisdiction)")
    subs[scode] = SubRunway(scode, sname, rcode, places)
    cats_kinds = list(categories) + ["*"]

    def add(code: str, name: str, unit: str, metric: str, bands, lower_better: bool = False,
            kind: str | None = None) -> None:
        m = parse_metric(metric, categories, sensor_kinds)
        indicators[code] = Indicator(code, name, scode, unit, metric, tuple(float(b) for b in bands),
                                     not lower_better, kind or m.default_class, places)

    def target(node, what) -> tuple[str, tuple[str, ...]]:
        cats = doc.codes(node, what, cats_kinds, "category")
        if not cats:
            raise doc.error(node, f"{what}: empty list")
        if "*" in cats and len(cats) > 1:
            raise doc.error(node, f"{what}: '*' already means every category")
        return ("*" if cats == ("*",) else ",".join(cats)), cats

    if not (set(sm2) - {"name", "places"}):
        _fed_indicators(add, scode, sname)
        return
    if "cats" in sm2:
        arg, cats = target(sm2["cats"][1], f"cats of {sname!r}")
        first = 30.0 if cats == ("*",) else min(profiles[categories[c].sla_profile].stages[0].minutes for c in cats)
        scale = 10 if cats == ("*",) else 1
        add(f"{scode}.open", f"{sname}在办事件", "件", f"open:{arg}", [5 * scale, 10 * scale, 20 * scale, 40 * scale])
        add(f"{scode}.overdue", f"{sname}超期率", "%", f"overdue_ratio:{arg}", [5, 10, 20, 30])
        add(f"{scode}.resp", f"{sname}平均响应时长", "分钟", f"mean_response_min:{arg}",
            [first, first * 1.5, first * 2, first * 3])
    if "sensors" in sm2:
        kinds = doc.codes(sm2["sensors"][1], f"sensors of {sname!r}", sensor_kinds, "sensor kind")
        for kind in kinds:
            sk = sensor_kinds[kind]
            add(f"{scode}.{kind}_max", f"{sk.name}最高值", sk.unit, f"sensor_max:{kind}", sk.bands)
            add(f"{scode}.{kind}_alarms", f"{sk.name}超限设备", "个", f"sensor_alarms:{kind}", [1, 3, 5, 10])
            add(f"{scode}.{kind}_fresh", f"{sk.name}数据更新及时率", "%", f"sensor_fresh:{kind}",
                [80, 90, 95, 99], lower_better=True)
    if "risk" in sm2:
        arg, _ = target(sm2["risk"][1], f"risk of {sname!r}")
        add(f"{scode}.risk", f"{sname}高风险点位", "个", f"risk_high:{arg}", [5, 20, 50, 100])
    if "kpis" in sm2:
        for kindex, knode in enumerate(doc.seq(sm2["kpis"][1], f"kpis of {sname!r}"), 1):
            km = doc.mapping(knode, "kpi", required=("name", "unit", "metric", "bands"),
                             optional=("lower_better", "kind"))
            metric = doc.text_(km["metric"][1], "metric")
            try:
                parse_metric(metric, categories, sensor_kinds)
            except ValueError as exc:
                raise doc.error(km["metric"][1], str(exc)) from None
            lower = doc.boolean(km["lower_better"][1], "lower_better") if "lower_better" in km else False
            kind = None
            if "kind" in km:
                kind = doc.text_(km["kind"][1], "kind")
                if kind not in (VITAL, KPI):
                    raise doc.error(km["kind"][1], f"kind must be {VITAL} (城市体征) or {KPI}, got {kind!r}")
            add(f"{scode}.k{kindex}", doc.text_(km["name"][1], "kpi name"), doc.text_(km["unit"][1], "unit"), metric,
                doc.bands(km["bands"][1], "bands"), lower, kind)


def _fed_indicators(add: Callable, scode: str, sname: str) -> None:
    """A sub-runway no event, sensor or risk point measures: its figures come through 一表通 (``cqgov kpi
    feed``). Until a jurisdiction feeds them they have no value ("no data"), never a made-up one."""
    add(f"{scode}.rate", f"{sname}达标率", "%", f"figure_mean:{scode}.rate", (85, 90, 95, 98), True)
    add(f"{scode}.warn", f"{sname}预警数", "件", f"figure:{scode}.warn", (1, 3, 5, 10), False)
    add(f"{scode}.fresh", f"{sname}数据更新及时率", "%", f"fresh:{scode}", (80, 90, 95, 99), True)


# ---------------------------------------------------------------- plans

_PLAN_REQUIRED = ("code", "name", "categories")
_PLAN_OPTIONAL = ("colours", "places", "near_risk_km", "hours", "auto_sign", "dispatch", "co_departments",
                  "sla_profile", "notify_roles", "open_multi")


@dataclass(frozen=True)
class _Refs:
    categories: Any
    departments: Any
    sla_profiles: Any


def _parse_plans(doc: _Doc, refs: _Refs) -> list[tuple[SmartPlan, yaml.Node]]:
    root = _document(doc, "a plan or a list of plans")
    nodes = doc.seq(root, "plans") if isinstance(root, yaml.SequenceNode) else [root]
    if not nodes:
        raise doc.error(root, "no plans in file")
    return [(_parse_plan(doc, node, refs), node) for node in nodes]


def _parse_plan(doc: _Doc, node, refs: _Refs) -> SmartPlan:
    m = doc.mapping(node, "plan", required=_PLAN_REQUIRED, optional=_PLAN_OPTIONAL)
    code = doc.code(m["code"][1], "plan code")
    what = f"plan {code!r}"
    categories = doc.codes(m["categories"][1], f"categories of {what}", refs.categories, "category")
    if not categories:
        raise doc.error(m["categories"][1], f"{what}: categories must not be empty")
    kw: dict[str, Any] = {}
    if "colours" in m:
        colours = []
        for item in doc.seq(m["colours"][1], f"colours of {what}"):
            c = doc.colour(item, f"colours of {what}").value
            if c in colours:
                raise doc.error(item, f"colour {c!r} listed twice in {what}")
            colours.append(c)
        kw["colours"] = tuple(colours)
    if "places" in m:
        places = doc.codes(m["places"][1], f"places of {what}", noun="place")
        for item, p in zip(m["places"][1].value, places):
            if not _PLACE.match(p):
                raise doc.error(item, f"place {p!r} in {what} is not a jurisdiction code prefix (digits, 50…)")
        kw["places"] = places
    if "near_risk_km" in m:
        km = doc.number(m["near_risk_km"][1], "near_risk_km")
        if km <= 0:
            raise doc.error(m["near_risk_km"][1], f"near_risk_km must be positive, got {km:g}")
        kw["near_risk_km"] = km
    if "hours" in m:
        hnode = m["hours"][1]
        items = doc.seq(hnode, f"hours of {what}")
        if len(items) != 2:
            raise doc.error(hnode, f"hours of {what}: expected [from, to), got {len(items)} values")
        start, end = (doc.integer(i, f"hours of {what}") for i in items)
        if not 0 <= start <= 23:
            raise doc.error(items[0], f"hours of {what}: from must be 0–23, got {start}")
        if not 0 <= end <= 24:
            raise doc.error(items[1], f"hours of {what}: to must be 0–24, got {end}")
        if start == end % 24:
            raise doc.error(hnode, f"hours of {what}: [{start}, {end}) is empty or the whole day; omit hours instead")
        kw["hours"] = (start, end)
    for flag in ("auto_sign", "dispatch"):
        if flag in m:
            kw[flag] = doc.boolean(m[flag][1], flag)
    if "co_departments" in m:
        kw["co_departments"] = doc.codes(m["co_departments"][1], f"co_departments of {what}", refs.departments,
                                         "department")
    if "sla_profile" in m:
        sla = doc.text_(m["sla_profile"][1], "sla_profile")
        if sla not in refs.sla_profiles:
            raise doc.error(m["sla_profile"][1], f"unknown SLA profile {sla!r} in {what}")
        kw["sla_profile"] = sla
    if "notify_roles" in m:
        kw["notify_roles"] = doc.codes(m["notify_roles"][1], f"notify_roles of {what}", [r.value for r in Role],
                                       "role")
    if "open_multi" in m:
        targets = doc.codes(m["open_multi"][1], f"open_multi of {what}", noun="target")
        for item, t in zip(m["open_multi"][1].value, targets):
            if t != MULTI_STREETS and t not in refs.departments and not _PLACE.match(t):
                raise doc.error(item, f"open_multi target {t!r} in {what} is not a department, "
                                      f"a jurisdiction code or {MULTI_STREETS!r}")
        kw["open_multi"] = targets
    if kw.get("dispatch") is False and kw.get("co_departments"):
        raise doc.error(m["co_departments"][0], f"{what}: co_departments need dispatch: true")
    return SmartPlan(code=code, name=doc.text_(m["name"][1], "plan name"), categories=categories,
                     source=doc.where(node), **kw)


def _plan_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def _load_plan_files(files: Iterable[Path], refs: _Refs) -> list[SmartPlan]:
    return _collect_plans((_Doc(f) for f in files), refs)


def _collect_plans(docs: Iterable[_Doc], refs: _Refs) -> list[SmartPlan]:
    plans: list[SmartPlan] = []
    seen: dict[str, str] = {}
    for doc in docs:
        for plan, node in _parse_plans(doc, refs):
            if plan.code in seen:
                code_node = next(v for k, v in node.value if k.value.strip() == "code")
                raise doc.error(code_node, f"duplicate plan code {plan.code!r} (first at {seen[plan.code]})")
            seen[plan.code] = plan.source
            plans.append(plan)
    return plans


def load_plans(path_or_dir: str | Path, catalogue: Catalogue | None = None) -> list[SmartPlan]:
    """Load and validate the smart plans in a file (or every ``*.yaml`` of a directory).

    References (categories, departments, SLA profiles) are checked against
    ``catalogue`` — by default the installed one.  Plan keys: ``code``,
    ``name``, ``categories`` (required); ``colours`` (five-colour names, also
    Chinese), ``places`` (jurisdiction code prefixes), ``near_risk_km``,
    ``hours: [from, to)`` in local hours (from 0–23, to 0–24; from > to wraps
    midnight), ``auto_sign``, ``dispatch``, ``co_departments``,
    ``sla_profile``, ``notify_roles`` (role values), ``open_multi``
    (department codes, jurisdiction codes or ``streets``).
    """
    path = Path(path_or_dir)
    if not path.exists():
        raise BadInput(f"{path}: no such file or directory")
    cat = catalogue if catalogue is not None else load_catalogue()
    return _load_plan_files(_plan_files(path), _Refs(cat.categories, cat.departments, cat.sla_profiles))


def parse_plans_text(text: str, name: str = "<plans>", catalogue: Catalogue | None = None) -> list[SmartPlan]:
    """Validate plan YAML given as text (a plan editor, tests); ``name`` labels error messages."""
    cat = catalogue if catalogue is not None else load_catalogue()
    return _collect_plans([_Doc(Path(name), text)], _Refs(cat.categories, cat.departments, cat.sla_profiles))


# ---------------------------------------------------------------- catalogue


# The process-wide cache and the on-disk parsed cache live in ``cached`` (which does not import PyYAML);
# these names are the same functions, sharing the same in-memory cache.
from .cached import _CACHE, _LOCK, clear_cache, default_root, load_catalogue  # noqa: E402,F401


def parse_catalogue(root: Path) -> dict:
    """Compose and validate every file under ``root``: the catalogue's parts (``cached.assemble`` builds
    the ``Catalogue``). Raises ``BadInput`` naming file and line on the first problem."""
    from .risk import parse_risk_config

    if not root.is_dir():
        raise BadInput(f"{root}: catalogue directory not found")
    departments = _load_departments(_Doc(root / "departments.yaml"))
    profiles = _load_sla(_Doc(root / "sla_profiles.yaml"))
    runway_doc = _Doc(root / "runways.yaml")
    sectors = _load_sectors(runway_doc)
    cat_doc = _Doc(root / "categories.yaml")
    categories = _load_categories(cat_doc, departments, profiles, sectors)
    kinds = _load_sensor_kinds(_Doc(root / "sensor_kinds.yaml"), categories)
    tree = _load_runways(runway_doc, sectors, categories, profiles, kinds)
    _check_counts(cat_doc, runway_doc, categories, sectors, tree)
    plans_dir = root / "plans"
    plans = _load_plan_files(_plan_files(plans_dir), _Refs(categories, departments, profiles)) \
        if plans_dir.is_dir() else []
    risk_config = parse_risk_config(_Doc(root / "risk_points.yaml"), categories, kinds)
    return {"departments": departments, "categories": categories, "sla_profiles": profiles, "sectors": sectors,
            "runways": tree.runways, "sub_runways": tree.sub_runways, "indicators": tree.indicators,
            "plans": plans, "risk_config": risk_config, "sensor_kinds": kinds}


def _build(root: Path) -> Catalogue:
    """Parse ``root`` without the on-disk cache."""
    from .cached import assemble

    return assemble(parse_catalogue(root))


def _check_counts(cat_doc: _Doc, runway_doc: _Doc, categories, sectors, tree: _RunwayTree) -> None:
    """The seeds' catalogue is 40 categories, 8 sectors, 70 runways, 255 sub-runways; hold the fixtures to it."""
    # 特色子跑道 (sub-runways with places) come on top of the city's common 255
    got = {"categories": len(categories), "sectors": len(sectors), "runways": len(tree.runways),
           "sub_runways": sum(1 for s in tree.sub_runways.values() if not s.places)}
    for key, want in EXPECTED.items():
        if got[key] != want:
            doc = cat_doc if key == "categories" else runway_doc
            raise doc.error(doc.root, f"expected {want} {key.replace('_', '-')}, found {got[key]}")
