"""一表通 ledger definitions: which rows, which columns, what grouping — data in ``catalogue/ledgers.yaml``.

The seeds' 一表通 replaces "asking the grassroots for data" with ledgers drawn
from the system. Each ledger is declared once in YAML (read with the
catalogue's line-aware reader, so a mistake names file and line) and run by
``standards.ledgers`` against a store. Keys per ledger:

``code``, ``name``
    how it is asked for (``cqgov report ledger event_disposal`` or ``… 事件处置台账``).
``source``
    ``events``, ``receipts`` (one row per directive × street) or ``risk_points``.
``period``
    the time field that places a row in ``--period``; omitted: a snapshot (risk points).
``where``
    ``field: [values…]``, ``field: {min: n}`` or ``field: {not_null: true}``; all must hold.
``columns``
    ``field: title`` or ``field: {title, as}``; ``as`` is ``time``, ``yesno`` or ``name``
    (a jurisdiction code shown by name).
``group_by`` and ``measures``
    instead of ``columns``: one row per distinct group, with counts; a measure is
    ``{title, where}`` (the rows of the group for which ``where`` holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import UnknownCode

SOURCES = ("events", "receipts", "risk_points")
FORMATS = ("time", "yesno", "name")
FILE = "ledgers.yaml"


@dataclass(frozen=True)
class Column:
    field: str
    title: str
    as_: str | None = None


@dataclass(frozen=True)
class Condition:
    field: str
    values: tuple[Any, ...] = ()
    min: float | None = None
    not_null: bool = False

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.field)
        if self.not_null and value is None:
            return False
        if self.min is not None and (value is None or value < self.min):
            return False
        return not self.values or value in self.values


@dataclass(frozen=True)
class Measure:
    title: str
    where: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Ledger:
    code: str
    name: str
    source: str
    period: str | None
    where: tuple[Condition, ...]
    columns: tuple[Column, ...]  # detail columns, or the group-by columns of a grouped ledger
    measures: tuple[Measure, ...] = ()
    note: str = ""

    @property
    def grouped(self) -> bool:
        return bool(self.measures)


def _conditions(doc, node, what: str) -> tuple[Condition, ...]:
    import yaml

    out = []
    for field, (knode, vnode) in doc.mapping(node, what, any_keys=True).items():
        if isinstance(vnode, yaml.SequenceNode):
            values = []
            for item in doc.seq(vnode, f"{what}.{field}"):
                if item.tag.endswith(":bool"):
                    values.append(doc.boolean(item, f"{what}.{field}"))
                elif item.tag.endswith(":int"):
                    values.append(doc.integer(item, f"{what}.{field}"))
                else:
                    values.append(doc.text_(item, f"{what}.{field}"))
            out.append(Condition(field, values=tuple(values)))
            continue
        spec = doc.mapping(vnode, f"{what}.{field}", optional=("min", "not_null"))
        if not spec:
            raise doc.error(vnode, f"{what}.{field}: give min or not_null")
        out.append(Condition(field, min=doc.number(spec["min"][1], f"{what}.{field}.min") if "min" in spec else None,
                             not_null=doc.boolean(spec["not_null"][1], f"{what}.{field}.not_null")
                             if "not_null" in spec else False))
    return tuple(out)


def _columns(doc, node, what: str) -> tuple[Column, ...]:
    import yaml

    out = []
    for field, (_k, vnode) in doc.mapping(node, what, any_keys=True).items():
        if isinstance(vnode, yaml.MappingNode):
            spec = doc.mapping(vnode, f"{what}.{field}", required=("title",), optional=("as",))
            as_ = doc.text_(spec["as"][1], f"{what}.{field}.as") if "as" in spec else None
            if as_ is not None and as_ not in FORMATS:
                raise doc.error(spec["as"][1], f"{what}.{field}: unknown format {as_!r} (one of {', '.join(FORMATS)})")
            out.append(Column(field, doc.text_(spec["title"][1], f"{what}.{field}.title"), as_))
        else:
            out.append(Column(field, doc.text_(vnode, f"{what}.{field}")))
    if not out:
        raise doc.error(node, f"{what}: at least one column")
    return tuple(out)


def parse_ledgers(path: Path, text: str | None = None) -> dict[str, Ledger]:
    """Every ledger in the file, by code; a mistake is one line naming file and line."""
    from .loader import _Doc, _document

    doc = _Doc(path, text)
    out: dict[str, Ledger] = {}
    for node in doc.seq(_document(doc, "a list of ledgers"), "ledgers"):
        keys = doc.mapping(node, "ledger", required=("code", "name", "source"),
                           optional=("period", "where", "columns", "group_by", "measures", "note"))
        code = doc.code(keys["code"][1], "ledger code")
        what = f"ledger {code}"
        if code in out:
            raise doc.error(keys["code"][1], f"ledger {code!r} declared twice")
        source = doc.text_(keys["source"][1], f"{what}.source")
        if source not in SOURCES:
            raise doc.error(keys["source"][1], f"{what}: unknown source {source!r} (one of {', '.join(SOURCES)})")
        if ("columns" in keys) == ("group_by" in keys):
            raise doc.error(node, f"{what}: give either columns or group_by (with measures)")
        if ("group_by" in keys) != ("measures" in keys):
            raise doc.error(node, f"{what}: group_by and measures go together")
        measures = []
        if "measures" in keys:
            for m in doc.seq(keys["measures"][1], f"{what}.measures"):
                spec = doc.mapping(m, f"{what} measure", required=("title",), optional=("where",))
                measures.append(Measure(doc.text_(spec["title"][1], f"{what} measure title"),
                                        _conditions(doc, spec["where"][1], f"{what} measure") if "where" in spec else ()))
        out[code] = Ledger(
            code=code, name=doc.text_(keys["name"][1], f"{what}.name"), source=source,
            period=doc.text_(keys["period"][1], f"{what}.period") if "period" in keys else None,
            where=_conditions(doc, keys["where"][1], f"{what}.where") if "where" in keys else (),
            columns=_columns(doc, keys["columns" if "columns" in keys else "group_by"][1], what),
            measures=tuple(measures),
            note=doc.text_(keys["note"][1], f"{what}.note") if "note" in keys else "",
        )
    return out


def ledgers_path() -> Path:
    from .cached import default_root

    return Path(default_root()) / FILE


@lru_cache(maxsize=1)
def load_ledgers() -> dict[str, Ledger]:
    return parse_ledgers(ledgers_path())


def ledger(name: str) -> Ledger:
    """A ledger by code or by its Chinese name."""
    found = load_ledgers()
    if name in found:
        return found[name]
    for item in found.values():
        if item.name == name:
            return item
    raise UnknownCode(f"unknown ledger {name!r} (one of {', '.join(found)})")

