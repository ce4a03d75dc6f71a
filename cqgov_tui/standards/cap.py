"""CAP 1.2 (OASIS Common Alerting Protocol) for directives: out as ``<alert>``, in as a directive.

Out: a directive is one alert. ``msgType`` is ``Alert`` for its first version
and ``Update`` (referencing the first) once it has been re-sent; ``info``
carries the title, the text, the deadline as ``expires`` and a response type
read from the flood-evacuation wording of the seeds (通知转移 / 准备转移 /
立即转移 → Monitor / Prepare / Evacuate; anything else → Execute). Each
targeted jurisdiction is one ``area`` with its real shape as polygons
(simplified to at most ``MAX_POINTS`` points each, as cell-broadcast gateways
require) and its code as ``geocode``.

In: an alert from another system (say a flood warning from the hydrology
bureau) is parsed without entities or network access, validated against the
CAP 1.2 schema shipped in ``cqgov_fixtures/standards``, and mapped to a
``directive.send`` body: geocodes (or, failing those, the polygons) name the
targets, urgency and severity the priority, ``expires`` the deadline. A
``Cancel`` is refused: cqgov directives are never withdrawn.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import CST, local
from ..domain.entities import Directive
from ..errors import BadInput
from ..scope import CITY_CODE, covers

if TYPE_CHECKING:
    from ..geo.registry import Registry

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MEDIA_TYPE = "application/cap+xml"
MAX_POINTS = 100  # per polygon: what public-warning gateways accept
MAX_BYTES = 2 * 1024 * 1024  # an incoming alert larger than this is refused unread
# The seeds' evacuation levels and the CAP response each asks of the public.
RESPONSES = (("立即转移", "Evacuate"), ("准备转移", "Prepare"), ("通知转移", "Monitor"))
_RESPONSE_ZH = {en: zh for zh, en in RESPONSES}
# priority → (urgency, severity); certainty is Likely for every directive (an order about what is expected).
_PRIORITY = {"urgent": ("Immediate", "Severe"), "high": ("Expected", "Moderate"), "normal": ("Future", "Minor")}
# CAP category by the directive's wording, first match wins.
_CATEGORIES = (
    (("暴雨", "洪", "汛", "内涝", "水位", "积水", "气象", "寒潮", "高温", "大风"), "Met"),
    (("地质", "滑坡", "崩塌", "泥石流", "地震", "塌陷"), "Geo"),
    (("火", "消防"), "Fire"),
    (("燃气", "甲烷", "沼气", "危化", "泄漏"), "CBRNE"),
    (("交通", "渣土", "道路", "桥"), "Transport"),
    (("疫", "卫生", "食品"), "Health"),
    (("污染", "环保", "排污"), "Env"),
    (("供水", "停电", "电力", "管网"), "Infra"),
)
SCHEMA_FILE = "CAP-v1.2.xsd"


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def cap_time(t: float) -> str:
    """CAP's dateTime: seconds and an explicit offset (the schema forbids 'Z' and fractions)."""
    return local(t).replace(microsecond=0).isoformat()


def response_type(text: str) -> str:
    for zh, en in RESPONSES:
        if zh in text:
            return en
    return "Execute"


def category(text: str) -> str:
    for words, cat in _CATEGORIES:
        if any(w in text for w in words):
            return cat
    return "Safety"


def sender_of(d: Directive) -> str:
    return f"cqgov-{d.origin_tier}-{d.origin_code}"


def identifier_of(d: Directive, version: int | None = None) -> str:
    return f"{d.number}-v{version or d.version}"


def _geocode_name(code: str) -> str:
    # 6 digits: an administrative division (GB/T 2260); 9 digits: a street or town (GB/T 10114).
    return "GB/T 2260" if len(code) == 6 else "GB/T 10114"


def _rings(geom: Any) -> list[list[tuple[float, float]]]:
    """Exterior rings of a (multi)polygon, each simplified until it has at most MAX_POINTS points."""
    import shapely

    parts = list(getattr(geom, "geoms", [geom]))
    parts.sort(key=lambda p: p.area, reverse=True)
    out = []
    for part in parts:
        if part.is_empty or part.geom_type != "Polygon":
            continue
        if part.area < parts[0].area * 0.002:
            continue  # slivers and islets: a warning area is not drawn to the metre
        tolerance = 0.0005
        ring = shapely.simplify(part, tolerance, preserve_topology=True).exterior
        while len(ring.coords) > MAX_POINTS:
            tolerance *= 2
            ring = shapely.simplify(part, tolerance, preserve_topology=True).exterior
        coords = [(float(x), float(y)) for x, y in ring.coords]
        if len(coords) >= 4:
            out.append(coords)
    return out


def polygon_text(ring: list[tuple[float, float]]) -> str:
    """CAP polygon: 'lat,lon' pairs separated by spaces, the first repeated last."""
    return " ".join(f"{lat:.5f},{lon:.5f}" for lon, lat in ring)


def alert(d: Directive, registry: Registry, *, sender_name: str | None = None, status: str = "Actual") -> bytes:
    """The directive as a CAP 1.2 alert (UTF-8 XML)."""
    from lxml import etree

    from ..engine import audience
    from ..engine.directives import PRIORITIES

    text_all = f"{d.title}\n{d.text}"
    urgency, severity = _PRIORITY.get(d.priority, _PRIORITY["normal"])
    response = response_type(text_all)
    if response == "Evacuate":
        urgency, severity = "Immediate", "Extreme"
    origin = _name(registry, d.origin_code)
    root = etree.Element(_q("alert"), nsmap={None: NS})

    def sub(parent, tag: str, text: str | None = None):
        node = etree.SubElement(parent, _q(tag))
        if text is not None:
            node.text = text
        return node

    sub(root, "identifier", identifier_of(d))
    sub(root, "sender", sender_of(d))
    sent = d.created_at if d.version <= 1 else max(d.created_at, d.deadline_at)  # an update is the re-send at the deadline
    sub(root, "sent", cap_time(sent))
    sub(root, "status", status)
    sub(root, "msgType", "Alert" if d.version <= 1 else "Update")
    sub(root, "source", f"cqgov {d.origin_tier} {d.origin_code}")
    sub(root, "scope", "Restricted")
    sub(root, "restriction", "政令：下发镇街、网格和职能部门，须按回执要求反馈")
    sub(root, "note", f"政令 {d.number}（{PRIORITIES.get(d.priority, d.priority)}）")
    if d.version > 1:
        sub(root, "references", f"{sender_of(d)},{identifier_of(d, 1)},{cap_time(d.created_at)}")
    info = sub(root, "info")
    sub(info, "language", "zh-CN")
    sub(info, "category", category(text_all))
    sub(info, "event", d.title)
    sub(info, "responseType", response)
    sub(info, "urgency", urgency)
    sub(info, "severity", severity)
    sub(info, "certainty", "Likely")
    who = audience.audience_of(d.targets)
    if who:
        sub(info, "audience", who.describe())
    sub(info, "effective", cap_time(d.created_at))
    sub(info, "expires", cap_time(d.deadline_at))
    sub(info, "senderName", sender_name or f"{origin}数字化城市运行和治理中心")
    sub(info, "headline", d.title[:160])
    sub(info, "description", d.text)
    ack = "收到后逐级回执：已读、已确认、已执行" if d.require_ack else "收到即可，无须确认"
    sub(info, "instruction", f"{ack}；截止 {local(d.deadline_at):%Y-%m-%d %H:%M}。")
    for name, value in (("cqgov:directive_id", d.id), ("cqgov:priority", d.priority),
                        ("cqgov:require_ack", "true" if d.require_ack else "false")):
        param = sub(info, "parameter")
        sub(param, "valueName", name)
        sub(param, "value", value)
    for code in (t for t in d.targets if audience.is_jurisdiction(t)):
        area = sub(info, "area")
        sub(area, "areaDesc", _name(registry, code))
        try:
            geom = registry.geometry(code)
        except BadInput:
            geom = None
        for ring in _rings(geom) if geom is not None else []:
            sub(area, "polygon", polygon_text(ring))
        geocode = sub(area, "geocode")
        sub(geocode, "valueName", _geocode_name(code))
        sub(geocode, "value", code)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _name(registry: Registry, code: str) -> str:
    try:
        return registry.get(code).name
    except BadInput:
        return code


# ------------------------------------------------------------ feed


def feed(directives: list[Directive], registry: Registry, *, base_url: str, title: str, feed_id: str,
         now: float) -> bytes:
    """An Atom (RFC 4287) feed of directives, newest first, each entry linking to its CAP alert.

    Written with lxml: feedgen 1.0 drops the ``type`` and ``rel`` of entry links, and a CAP feed
    is only useful if readers can tell the alert link by its media type.
    """
    from lxml import etree

    atom = "http://www.w3.org/2005/Atom"
    root = etree.Element(f"{{{atom}}}feed", nsmap={None: atom})
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "zh-CN")

    def sub(parent, tag: str, text: str | None = None, **attrs: str):
        node = etree.SubElement(parent, f"{{{atom}}}{tag}", **attrs)
        if text is not None:
            node.text = text
        return node

    sub(root, "id", feed_id)
    sub(root, "title", title)
    sub(root, "updated", cap_time(max([now] + [d.created_at for d in directives])))
    sub(sub(root, "author"), "name", title)
    sub(root, "link", href=f"{base_url}/v1/directives.atom", rel="self", type="application/atom+xml")
    for d in sorted(directives, key=lambda d: d.created_at, reverse=True):
        entry = sub(root, "entry")
        sub(entry, "id", f"urn:uuid:{d.id}" if _is_uuid(d.id) else f"urn:cqgov:directive:{d.id}")
        sub(entry, "title", d.title)
        sub(entry, "updated", cap_time(d.created_at if d.version <= 1 else max(d.created_at, d.deadline_at)))
        sub(entry, "published", cap_time(d.created_at))
        sub(entry, "summary", d.text[:500])
        sub(entry, "link", href=f"{base_url}/v1/directives/{d.id}.cap", rel="alternate", type=MEDIA_TYPE)
        sub(entry, "category", term=category(f"{d.title}\n{d.text}"),
            scheme="urn:oasis:names:tc:emergency:cap:1.2:category")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------ in


def schema_path() -> Path:
    import cqgov_fixtures

    return Path(cqgov_fixtures.__file__).parent / "standards" / SCHEMA_FILE


@lru_cache(maxsize=1)
def _schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(schema_path())))


def parse_alert(raw: bytes, *, what: str = "alert") -> Any:
    """Parse and validate an incoming CAP 1.2 document; one line naming what is wrong."""
    from lxml import etree

    if len(raw) > MAX_BYTES:
        raise BadInput(f"{what}: larger than {MAX_BYTES // 1024} KiB; not a CAP alert")
    # No DTDs, entities or network: an alert is data from outside.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_comments=True)
    try:
        doc = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise BadInput(f"{what}: not well-formed XML ({str(exc).splitlines()[0]})") from None
    if doc.getroottree().docinfo.doctype:
        raise BadInput(f"{what}: a DOCTYPE is not allowed in a CAP alert")
    if doc.tag != _q("alert"):
        raise BadInput(f"{what}: the root element is {doc.tag!r}, not a CAP 1.2 <alert> ({NS})")
    schema = _schema()
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise BadInput(f"{what}: not valid CAP 1.2 (line {err.line}: {err.message})")
    return doc


def _text(node: Any, tag: str) -> str:
    found = node.find(_q(tag))
    return (found.text or "").strip() if found is not None else ""


def parse_time(text: str) -> float:
    return _dt.datetime.fromisoformat(text).astimezone(CST).timestamp()


def directive_body(raw: bytes, registry: Registry, *, scope_code: str, what: str = "alert",
                   deadline_at: float | None = None) -> dict[str, Any]:
    """An incoming alert → a ``directive.send`` body for a server whose jurisdiction is ``scope_code``.

    The directive id is derived from the alert's sender and identifier, so importing
    the same alert twice is refused by the server ("already exists") instead of doubling it.
    """
    doc = parse_alert(raw, what=what)
    msg_type = _text(doc, "msgType")
    identifier, sender = _text(doc, "identifier"), _text(doc, "sender")
    if msg_type == "Cancel":
        raise BadInput(f"{what}: a Cancel (of {_text(doc, 'references') or identifier}) is not imported: "
                       "directives are not withdrawn; send a new directive instead")
    if msg_type not in ("Alert", "Update"):
        raise BadInput(f"{what}: msgType {msg_type} carries no warning to pass on")
    infos = doc.findall(_q("info"))
    if not infos:
        raise BadInput(f"{what}: the alert has no <info> to turn into a directive")
    info = next((i for i in infos if _text(i, "language").lower().startswith("zh")), infos[0])
    codes, polygons = [], []
    for area in info.findall(_q("area")):
        for geocode in area.findall(_q("geocode")):
            value = _text(geocode, "value")
            if value.isdigit() and value not in codes:
                codes.append(value)
        polygons += [(p.text or "").strip() for p in area.findall(_q("polygon"))]
    targets = _targets(registry, codes, polygons, scope_code, what)
    headline = _text(info, "headline") or _text(info, "event")
    response = [(r.text or "").strip() for r in info.findall(_q("responseType"))]
    zh = next((_RESPONSE_ZH[r] for r in ("Evacuate", "Prepare", "Monitor") if r in response), "")
    body_text = "\n".join(t for t in (_text(info, "description"), _text(info, "instruction")) if t)
    if zh and zh not in body_text and zh not in headline:
        body_text = f"【{zh}】{body_text}"
    source = _text(info, "senderName") or sender
    body_text = f"{body_text}\n（来源：{source}，CAP {identifier}）".strip()
    expires = _text(info, "expires")
    if deadline_at is None:
        if not expires:
            raise BadInput(f"{what}: the alert has no <expires>; give a deadline (--deadline)")
        deadline_at = parse_time(expires)
    urgency, severity = _text(info, "urgency"), _text(info, "severity")
    if urgency == "Immediate" or severity in ("Extreme", "Severe"):
        priority = "urgent"
    elif urgency == "Expected" or severity == "Moderate":
        priority = "high"
    else:
        priority = "normal"
    return {
        "directive_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cap:{sender}:{identifier}")),
        "title": (headline or body_text[:30])[:200], "text": body_text[:4000], "targets": targets,
        "priority": priority, "deadline_at": deadline_at, "require_ack": True,
    }


def _targets(registry: Registry, codes: list[str], polygons: list[str], scope_code: str, what: str) -> list[str]:
    """Known jurisdictions inside this server's scope: the geocodes, else what the polygons cover."""
    known = []
    for code in codes:
        try:
            known.append(registry.get(code).code)
        except BadInput:
            continue
    if not known and polygons:
        known = _covered(registry, polygons, scope_code, what)
    inside = [c for c in known if covers(scope_code, c)]
    if not inside:
        if scope_code != CITY_CODE and any(covers(c, scope_code) for c in known):
            return [scope_code]  # the alert covers this whole jurisdiction (and more)
        raise BadInput(f"{what}: no area of the alert lies within {_name(registry, scope_code)} ({scope_code})")
    return inside


def _covered(registry: Registry, polygons: list[str], scope_code: str, what: str) -> list[str]:
    """Jurisdictions one level below ``scope_code`` whose shapes meet the alert's polygons."""
    import shapely

    shapes = []
    for text in polygons:
        try:
            pairs = [tuple(float(v) for v in p.split(",")) for p in text.split()]
            shapes.append(shapely.Polygon([(lon, lat) for lat, lon in pairs]).buffer(0))
        except (ValueError, TypeError):
            raise BadInput(f"{what}: malformed <polygon> (expected 'lat,lon' pairs)") from None
    area = shapely.union_all(shapes)
    if scope_code == CITY_CODE:
        candidates = list(registry.districts)
    else:
        candidates = [j.code for j in registry.children(scope_code)] if len(scope_code) == 6 else [scope_code]
    return [c for c in candidates if registry.geometry(c).intersects(area)]
