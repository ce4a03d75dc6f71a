"""一表通 ledgers: run a catalogue ledger against a store for a period; write it as CSV, XLSX or Parquet.

A ledger is first an Arrow table whose column names are the ledger's Chinese
titles (times as timestamps in China Standard Time, counts as integers), so
the three formats carry the same rows: CSV is UTF-8 with a byte-order mark
(spreadsheets then read the Chinese correctly), XLSX has a bold header row,
frozen under the header, an autofilter and column widths measured in terminal
cells (a Han character is two), Parquet keeps the types and the ledger's name
and period in its metadata.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections import OrderedDict
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..catalogue.ledgers import Ledger
from ..clock import CST, local
from ..domain.colour import Colour
from ..domain.entities import ReceiptState, Source, Status
from ..errors import BadInput
from ..scope import CITY_CODE, covers

if TYPE_CHECKING:
    import pyarrow as pa

    from ..catalogue import Catalogue
    from ..geo.registry import Registry
    from ..store import Store

FORMATS = ("csv", "xlsx", "parquet")
_SOURCE_ZH = {Source.CITIZEN.value: "市民热线", Source.GRID.value: "网格巡查", Source.SENSOR.value: "物联感知",
              Source.VIDEO.value: "视频AI", Source.DEPARTMENT.value: "部门上报", Source.UPPER.value: "上级交办"}
_RECEIPT_ZH = {ReceiptState.PENDING.value: "未送达", ReceiptState.DELIVERED.value: "已送达",
               ReceiptState.READ.value: "已读", ReceiptState.ACKNOWLEDGED.value: "已确认",
               ReceiptState.EXECUTED.value: "已执行"}
_PRIORITY_ZH = {"urgent": "特急", "high": "加急", "normal": "平急"}
_CLOSED = {Status.CLOSED.value, Status.REVIEWED.value}


def period_bounds(period: str) -> tuple[float, float]:
    """``2026-11`` (a month) or ``2026-11-24`` (a day), in China Standard Time → [start, end) epoch seconds."""
    text = (period or "").strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?", text)
    if not m:
        raise BadInput(f"unreadable period {period!r} (use a month, 2026-11, or a day, 2026-11-24)")
    year, month, day = int(m[1]), int(m[2]), m[3]
    try:
        if day is None:
            start = _dt.datetime(year, month, 1, tzinfo=CST)
            end = _dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=CST)
        else:
            start = _dt.datetime(year, month, int(day), tzinfo=CST)
            end = start + _dt.timedelta(days=1)
    except ValueError:
        raise BadInput(f"no such period {period!r}") from None
    return start.timestamp(), end.timestamp()


# ------------------------------------------------------------ rows per source


def _event_rows(store: Store, catalogue: Catalogue, start: float, end: float, column: str, now: float) -> list[dict]:
    from ..store.ledgers import events_between

    rows = []
    for e in events_between(store, start, end, column):
        d = asdict(e)
        cat = catalogue.categories.get(e.category_code)
        dept_code = e.assignee or (cat.department_code if cat else None)
        dept = catalogue.departments.get(dept_code) if dept_code else None
        is_open = Status(e.status).is_open
        d.update(category_name=cat.name if cat else e.category_code, department_name=dept.name if dept else dept_code,
                 colour_zh=Colour(e.colour).zh, status_zh=Status(e.status).zh,
                 source_zh=_SOURCE_ZH.get(e.source, e.source), open=is_open, closed=e.status in _CLOSED,
                 overdue=e.escalation_level > 0 or (is_open and e.due_at is not None and e.due_at < now))
        rows.append(d)
    return rows


def _receipt_rows(store: Store, registry: Registry, start: float, end: float, scope: str) -> list[dict]:
    from ..engine.directives import recipients
    from ..store.ledgers import directives_between

    rows = []
    for d, receipts in directives_between(store, start, end):
        held = {r.jurisdiction_code: r for r in receipts}
        codes = sorted(set(held) | {c for c in recipients(registry, d.targets) if covers(scope, c)})
        for code in codes:
            r = held.get(code)
            state = r.state if r else ReceiptState.PENDING.value
            acked = r.acknowledged_at if r else None
            rows.append({
                "directive_id": d.id, "directive_number": d.number, "directive_title": d.title,
                "priority": d.priority, "priority_zh": _PRIORITY_ZH.get(d.priority, d.priority),
                "origin_code": d.origin_code, "created_at": d.created_at, "deadline_at": d.deadline_at,
                "jurisdiction_code": code, "district_code": code[:6], "state": state,
                "state_zh": _RECEIPT_ZH.get(state, state),
                "delivered_at": r.delivered_at if r else None, "read_at": r.read_at if r else None,
                "acknowledged_at": acked, "executed_at": r.executed_at if r else None,
                "acknowledged": acked is not None, "on_time": acked is not None and acked <= d.deadline_at,
            })
    return rows


def _risk_rows(catalogue: Catalogue, scope: str) -> list[dict]:
    sensors: dict[str, int] = {}
    for s in catalogue.sensors.values():
        sensors[s.risk_point_code] = sensors.get(s.risk_point_code, 0) + 1
    rows = []
    for p in catalogue.risk_points.values():
        if not covers(scope, p.grid_code):
            continue
        cat = catalogue.categories.get(p.category_code)
        rows.append({
            "code": p.code, "name": p.name, "category_code": p.category_code,
            "category_name": cat.name if cat else p.category_code, "colour": Colour(p.colour).value,
            "colour_zh": Colour(p.colour).zh, "grid_code": p.grid_code, "street_code": p.grid_code[:9],
            "district_code": p.grid_code[:6], "lon": p.lon, "lat": p.lat, "owner": getattr(p, "owner", ""),
            "sensors": sensors.get(p.code, 0),
        })
    return rows


# ------------------------------------------------------------ shaping


def _name_of(registry: Registry, code: Any) -> Any:
    if not code:
        return code
    try:
        return registry.get(str(code)).name
    except BadInput:
        return code


def _shown(value: Any, as_: str | None, registry: Registry) -> Any:
    if as_ == "time":
        return None if value is None else local(float(value)).replace(tzinfo=None)
    if as_ == "yesno":
        return None if value is None else ("是" if value else "否")
    if as_ == "name":
        return _name_of(registry, value)
    return value


def _arrow_type(values: list[Any], as_: str | None) -> pa.DataType:
    import pyarrow as pa

    if as_ == "time":
        return pa.timestamp("s")
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def run(ledger: Ledger, store: Store, *, period: str | None, catalogue: Catalogue, registry: Registry,
        now: float | None = None) -> pa.Table:
    """The ledger's rows for a period as an Arrow table titled in Chinese."""
    import pyarrow as pa

    now = store.clock.now() if now is None else now
    scope = CITY_CODE if store.tier.value == "city" else store.code
    start, end = float("-inf"), float("inf")  # a snapshot ledger (no period field) takes every row
    if ledger.period is not None:
        if not period:
            raise BadInput(f"ledger {ledger.code} ({ledger.name}) needs --period (e.g. 2026-11)")
        start, end = period_bounds(period)
    if ledger.source == "events":
        rows = _event_rows(store, catalogue, start, end, ledger.period or "reported_at", now)
    elif ledger.source == "receipts":
        rows = _receipt_rows(store, registry, start, end, scope)
    else:
        rows = _risk_rows(catalogue, scope)
    rows = [r for r in rows if all(c.holds(r) for c in ledger.where)]
    unknown = {c.field for c in ledger.columns} - set(rows[0]) if rows else set()
    if unknown:
        raise BadInput(f"ledger {ledger.code}: no field {sorted(unknown)[0]!r} in {ledger.source}")
    if ledger.grouped:
        groups: OrderedDict[tuple, list[int]] = OrderedDict()
        for r in sorted(rows, key=lambda r: tuple(str(r.get(c.field) or "") for c in ledger.columns)):
            key = tuple(r.get(c.field) for c in ledger.columns)
            counts = groups.setdefault(key, [0] * len(ledger.measures))
            for i, m in enumerate(ledger.measures):
                counts[i] += all(c.holds(r) for c in m.where)
        data: dict[str, list[Any]] = {}
        for i, col in enumerate(ledger.columns):
            data[col.title] = [_shown(k[i], col.as_, registry) for k in groups]
        for i, m in enumerate(ledger.measures):
            data[m.title] = [v[i] for v in groups.values()]
        types = [_arrow_type(data[c.title], c.as_) for c in ledger.columns] + [pa.int64() for _ in ledger.measures]
    else:
        data = {col.title: [_shown(r.get(col.field), col.as_, registry) for r in rows] for col in ledger.columns}
        types = [_arrow_type(data[c.title], c.as_) for c in ledger.columns]
    arrays = [pa.array(values, type=t) for values, t in zip(data.values(), types)]
    meta = {"ledger": ledger.code, "name": ledger.name, "period": period or "", "store": f"{store.tier.value}:{store.code}",
            "generated_at": local(now).isoformat(timespec="seconds")}
    return pa.Table.from_arrays(arrays, names=list(data), metadata={k: str(v) for k, v in meta.items()})


# ------------------------------------------------------------ writers


def cell_width(text: str) -> int:
    """Terminal cells of a text: East Asian wide and full-width characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def write(table: pa.Table, path: str, fmt: str, *, sheet: str = "台账") -> None:
    """Write the ledger atomically (a temporary file renamed into place)."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInput(f"{path}: no such directory {folder}")
    tmp = f"{path}.part"
    try:
        if fmt == "csv":
            _write_csv(table, tmp)
        elif fmt == "xlsx":
            _write_xlsx(table, tmp, sheet)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except OSError as exc:
        raise BadInput(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_csv(table: pa.Table, path: str) -> None:
    import csv

    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.column_names)
        for row in zip(*(table.column(i).to_pylist() for i in range(table.num_columns))):
            writer.writerow([_display(v) for v in row])


def _write_xlsx(table: pa.Table, path: str, sheet: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = re.sub(r"[\[\]:*?/\\]", "", sheet)[:31] or "台账"
    names = table.column_names
    ws.append(names)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    for row in zip(*columns):
        ws.append(list(row))
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    for cell in ws[1]:
        cell.font = header_font
        cell.fill = header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center")
    for i, (name, values) in enumerate(zip(names, columns), start=1):
        letter = get_column_letter(i)
        if any(isinstance(v, _dt.datetime) for v in values):
            for cell in ws[letter][1:]:
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
        widest = max([cell_width(name)] + [cell_width(_display(v)) for v in values[:5000]])
        ws.column_dimensions[letter].width = min(60, widest + 2)
    ws.freeze_panes = "A2"
    if table.num_rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(names))}{table.num_rows + 1}"
    wb.save(path)


def export(store: Store, name: str, *, period: str | None, fmt: str, out: str,
           catalogue: Catalogue | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """Run a ledger by code or name and write it; returns what was written (for --json and the console)."""
    from ..catalogue.ledgers import ledger as find

    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    found = find(name)
    if catalogue is None:
        from ..catalogue.loader import load_catalogue

        catalogue = load_catalogue()
    if registry is None:
        from ..geo.registry import get_registry

        registry = get_registry()
    table = run(found, store, period=period, catalogue=catalogue, registry=registry)
    write(table, out, fmt, sheet=found.name)
    totals = {c: sum(v or 0 for v in table.column(c).to_pylist()) for c in (m.title for m in found.measures)}
    return {"ledger": found.code, "name": found.name, "period": period if found.period else None, "format": fmt,
            "out": out, "rows": table.num_rows, "columns": table.column_names, "totals": totals}
