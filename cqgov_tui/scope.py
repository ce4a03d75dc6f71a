"""Jurisdiction scoping: the one function every read, snapshot and command goes through.

Codes nest by prefix (500108 → 500108001 → 500108001007), and the city code
500000 covers everything.
"""

from __future__ import annotations

CITY_CODE = "500000"


def covers(scope_code: str, code: str | None) -> bool:
    """True when ``code`` lies inside the subtree rooted at ``scope_code``."""
    if not code:
        return False
    if scope_code == CITY_CODE:
        return True
    return code.startswith(scope_code)


def event_in_scope(scope_code: str, district_code: str, street_code: str | None, grid_code: str | None) -> bool:
    return covers(scope_code, grid_code or street_code or district_code)


def sql_filter(scope_code: str) -> tuple[str, list]:
    """WHERE fragment restricting event rows to a scope (used by the store and the server)."""
    if scope_code == CITY_CODE:
        return "TRUE", []
    if len(scope_code) <= 6:
        return "district_code = ?", [scope_code]
    if len(scope_code) <= 9:
        return "street_code = ?", [scope_code]
    return "grid_code = ?", [scope_code]


def change_visible(scope_code: str, entity: str, scope_field: str) -> bool:
    """Whether a change-log row (or snapshot row) may be shown to a caller scoped at ``scope_code``.

    Events, audit entries and receipts carry the jurisdiction they belong to and
    are visible inside the caller's subtree. A directive carries its targets
    (comma-separated): it is visible to every jurisdiction inside a target's
    subtree and to every caller whose subtree holds a target. Its audience
    targets (``dept:…``, ``role:…``) say who answers inside those
    jurisdictions and play no part in visibility: every directive names at
    least one jurisdiction.
    """
    if entity == "directive":
        for t in (scope_field or "").split(","):
            if t.isdigit() and (covers(scope_code, t) or covers(t, scope_code)):
                return True
        return False
    return covers(scope_code, scope_field)
