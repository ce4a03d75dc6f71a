"""The closed-loop engine: lifecycle, SLA clocks, plans, dedup, inhibition, 多跨, sensors, runways, reviews.

``Engine`` and friends load on first use (PEP 562), so importing a light submodule such as
``engine.directives`` or ``engine.audience`` does not import the store and DuckDB: the console
imports those before its first frame and opens the store on a thread meanwhile.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Engine, SweepResult, system_user

__all__ = ["Engine", "SweepResult", "system_user"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
