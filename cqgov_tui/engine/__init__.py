"""The closed-loop engine: lifecycle, SLA clocks, plans, dedup, inhibition, 多跨, sensors, runways, reviews."""

from .core import Engine, SweepResult, system_user

__all__ = ["Engine", "SweepResult", "system_user"]
