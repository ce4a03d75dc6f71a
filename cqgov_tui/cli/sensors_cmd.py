"""`cqgov sensors ingest`: feed sensor readings (CSV or JSON lines) into a store's alarm monitor."""

from __future__ import annotations

import datetime as _dt
import json
import sys

import click

from ..clock import CST
from ..textfile import read_text
from . import main
from .common import db_option, emit_json, field, handle_errors, json_option, out

_HEADER_NAMES = ("sensor_code", "sensor", "code")


@main.group("sensors")
def sensors() -> None:
    """Sensor readings (物联感知)."""


@sensors.command("ingest")
@db_option
@click.argument("source", metavar="FILE|-")
@json_option
@handle_errors
def ingest(db_path, source, as_json) -> None:
    """Ingest readings and open/clear alarm events.

    One reading per line, either CSV ``sensor_code,measured_at,value`` (an
    optional header line is skipped) or JSON — an object with ``sensor``
    (or ``sensor_code``), ``measured_at`` and ``value``, or a 3-element list.
    ``measured_at`` is epoch seconds or an ISO-8601 time (China time when it
    has no offset). Blank lines and lines starting with ``#`` are skipped.
    Bad lines are reported one per line on stderr and the good ones are
    stored; the exit status is 2 when any line was rejected.
    """
    from ..engine import Engine
    from ..engine.sensors import SensorMonitor
    from ..store import open_store

    text = _read(source)
    readings, line_of, bad = parse_lines(text)
    with open_store(db_path) as store:
        result = SensorMonitor(Engine(store)).ingest(readings)
    rejected = sorted(bad + [(line_of[r.index], r.reason) for r in result.rejected])
    if as_json:
        data = result.to_dict()
        data["rejected"] = [{"line": n, "reason": why} for n, why in rejected]
        emit_json(data)
    else:
        for n, why in rejected:
            out(f"line {n}: {field(why)}", err=True)
        out(f"stored {result.stored}, opened {len(result.opened)}, cleared {len(result.cleared)}, "
            f"attached {result.attached}, rejected {len(rejected)}")
        for event_id in result.opened:
            out(f"opened {field(event_id)}")
    if rejected:
        sys.exit(2)


def _read(source: str) -> str:
    return sys.stdin.read() if source == "-" else read_text(source)


def parse_lines(text: str) -> tuple[list[tuple], list[int], list[tuple[int, str]]]:
    """Readings, the line number of each, and (line, reason) for lines that are not readings."""
    readings: list[tuple] = []
    line_of: list[int] = []
    bad: list[tuple[int, str]] = []
    first = True
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        is_first, first = first, False
        try:
            if line[0] in "{[":
                reading = _json_reading(line)
            else:
                fields = [f.strip() for f in line.split(",")]
                if is_first and fields[0].lower() in _HEADER_NAMES:
                    continue
                reading = _csv_reading(fields)
        except ValueError as exc:
            bad.append((n, str(exc)))
            continue
        readings.append(reading)
        line_of.append(n)
    return readings, line_of, bad


def _json_reading(line: str) -> tuple:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("not valid JSON") from None
    if isinstance(obj, list):
        if len(obj) != 3:
            raise ValueError(f"a JSON list reading needs 3 items, got {len(obj)}")
        code, at, value = obj
    elif isinstance(obj, dict):
        code = obj.get("sensor", obj.get("sensor_code"))
        if code is None or "measured_at" not in obj or "value" not in obj:
            raise ValueError("a JSON reading needs sensor, measured_at and value")
        code, at, value = code, obj["measured_at"], obj["value"]
    else:
        raise ValueError("a JSON reading is an object or a list")
    return code, _time(at), value


def _csv_reading(fields: list[str]) -> tuple:
    if len(fields) != 3:
        raise ValueError(f"expected sensor_code,measured_at,value; got {len(fields)} field(s)")
    code, at, value = fields
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"value {value[:40]!r} is not a number") from None
    return code, _time(at), number


def _time(at):
    """Epoch seconds as given; ISO-8601 text converted (the monitor judges plausibility)."""
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return at
    if isinstance(at, str):
        try:
            return float(at)
        except ValueError:
            pass
        try:
            moment = _dt.datetime.fromisoformat(at.strip())
        except ValueError:
            raise ValueError(f"time {at[:40]!r} is neither epoch seconds nor ISO-8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=CST)
        return moment.timestamp()
    return at
