"""The metric language of runway indicators: how each indicator's value is computed.

A metric is ``<kind>:<argument>``.  Event metrics take a target — ``*`` for every
category or a comma-separated list of category codes — and count within the
jurisdiction subtree the runway is evaluated for:

==========================  ==============================================================
``open:<T>``                events of T not yet closed/reviewed/merged/rejected (件)
``reported_24h:<T>``        events of T reported in the last 24 h (件)
``closed_24h:<T>``          events of T that reached closed in the last 24 h (件)
``overdue_ratio:<T>``       % of open events of T past the deadline of their current stage
``mean_response_min:<T>``   mean minutes from report to the first milestone of the event's
                            SLA profile, over events of T that reached it in the last 24 h
``risk_high:<T>``           risk points of T whose colour is red or orange (个)
==========================  ==============================================================

Sensor metrics take a sensor kind (``sensor_kinds.yaml``):

==========================  ==============================================================
``sensor_max:<kind>``       highest latest reading among sensors of that kind
``sensor_alarms:<kind>``    sensors of that kind whose latest reading is at/over threshold
==========================  ==============================================================

``const:<number>`` marks an indicator fed from outside (another system, a form):
the number is its value until something else supplies one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection

EVENT_KINDS = ("open", "reported_24h", "closed_24h", "overdue_ratio", "mean_response_min", "risk_high")
SENSOR_KINDS = ("sensor_max", "sensor_alarms")
KINDS = EVENT_KINDS + SENSOR_KINDS + ("const",)


@dataclass(frozen=True)
class Metric:
    kind: str
    categories: tuple[str, ...] | None = None  # None means every category ("*")
    sensor_kind: str | None = None
    value: float | None = None  # const metrics only

    def __str__(self) -> str:
        if self.kind == "const":
            return f"const:{self.value:g}"
        if self.kind in SENSOR_KINDS:
            return f"{self.kind}:{self.sensor_kind}"
        return f"{self.kind}:{'*' if self.categories is None else ','.join(self.categories)}"


def parse_metric(text: str, categories: Collection[str] | None = None,
                 sensor_kinds: Collection[str] | None = None) -> Metric:
    """Parse ``text``; with ``categories``/``sensor_kinds`` given, references must be among them.

    Raises ``ValueError`` with a reason fit for a one-line message.
    """
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"metric {text!r} is not <kind>:<argument> (kinds: {', '.join(KINDS)})")
    kind, _, arg = text.partition(":")
    kind, arg = kind.strip(), arg.strip()
    if kind not in KINDS:
        raise ValueError(f"unknown metric kind {kind!r} (kinds: {', '.join(KINDS)})")
    if not arg:
        raise ValueError(f"metric {text!r} has no argument")
    if kind == "const":
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"const metric needs a number, got {arg!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"const metric needs a finite number, got {arg!r}")
        return Metric(kind, value=value)
    if kind in SENSOR_KINDS:
        if sensor_kinds is not None and arg not in sensor_kinds:
            raise ValueError(f"unknown sensor kind {arg!r} in metric {text!r}")
        return Metric(kind, sensor_kind=arg)
    if arg == "*":
        return Metric(kind, categories=None)
    codes = tuple(c.strip() for c in arg.split(","))
    for code in codes:
        if not code:
            raise ValueError(f"empty category in metric {text!r}")
        if categories is not None and code not in categories:
            raise ValueError(f"unknown category {code!r} in metric {text!r}")
    if len(set(codes)) != len(codes):
        raise ValueError(f"category listed twice in metric {text!r}")
    return Metric(kind, categories=codes)
