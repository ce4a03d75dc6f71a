"""Who, inside the jurisdictions a directive reaches, must answer it: departments and roles.

A directive's targets are jurisdiction codes (which streets get a receipt) and, optionally, an
audience: ``dept:<code>`` for a department (城管 cgj, 应急 yjj …) and ``role:<role>`` for a role
(网格员 grid_worker …). Receipts stay one per street — 消息必达 is counted per street — but only the
audience may read, acknowledge or execute it there. A street's duty officer (值班长) and admins
always may: they answer for the whole centre. With no jurisdiction given, the audience is addressed
across the sender's own jurisdiction.

Input is forgiving — ``cgj``, ``dept:cgj``, ``城管`` and ``区城市管理局`` all name one department;
``grid_worker``, ``role:grid_worker`` and ``网格员`` one role — and stored in the prefixed form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..domain.entities import Department, Role, User
from ..errors import UnknownCode
from . import access

DEPT = "dept:"
ROLE = "role:"
# Roles a directive can be addressed to (auditors review, they do not answer directives).
ADDRESSABLE_ROLES = (Role.GRID_WORKER, Role.DEPARTMENT, Role.DISPATCHER, Role.DUTY_OFFICER)
_ANSWER_FOR_ALL = (Role.ADMIN, Role.DUTY_OFFICER)


@dataclass(frozen=True)
class Audience:
    departments: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.departments or self.roles)

    def admits(self, user: User) -> bool:
        """May ``user`` answer (read, acknowledge, execute) a directive with this audience?"""
        if not self:
            return True
        role = Role(user.role)
        if role in _ANSWER_FOR_ALL or role.value in self.roles:
            return True
        return role is Role.DEPARTMENT and access.assigned(user, self.departments)  # the one department rule

    def describe(self, departments: Mapping[str, Department] | None = None) -> str:
        """``城管, 应急 · 网格员``: departments by short name (``departments``: code → Department,
        the installed catalogue's unless given)."""
        known = installed_departments() if departments is None else departments
        depts = [known[code].short if code in known else code for code in self.departments]
        roles = [Role(r).zh for r in self.roles]
        return " · ".join(part for part in (", ".join(depts), ", ".join(roles)) if part)


def installed_departments() -> dict[str, Department]:
    """The installed catalogue's departments (code → Department), loaded once and cached."""
    from ..catalogue.loader import load_catalogue

    return load_catalogue().departments


def is_jurisdiction(target: str) -> bool:
    return target.isascii() and target.isdigit()  # 500108, not "²" (str.isdigit accepts any digit)


def audience_of(targets: Iterable[str]) -> Audience:
    depts = tuple(t[len(DEPT):] for t in targets if t.startswith(DEPT))
    roles = tuple(t[len(ROLE):] for t in targets if t.startswith(ROLE))
    return Audience(depts, roles)


def jurisdictions_of(targets: Iterable[str]) -> list[str]:
    return [t for t in targets if is_jurisdiction(t)]


def normalise(target: str, departments: Mapping[str, Department] | None = None) -> str:
    """One target as stored: a jurisdiction code as given, a department or role with its prefix.

    ``departments`` maps code → ``Department`` (the installed catalogue's unless given). Unknown
    words are refused.
    """
    t = str(target).strip()
    if departments is None:
        departments = installed_departments()
    if is_jurisdiction(t):
        return t
    if t.startswith(DEPT):
        code = t[len(DEPT):]
        if code in departments:
            return DEPT + code
        raise UnknownCode(f"unknown department {code!r} in directive targets")
    if t.startswith(ROLE):
        return ROLE + _role(t[len(ROLE):], t)
    if t in departments:
        return DEPT + t
    for code, dept in departments.items():
        if t in (dept.short, dept.name):
            return DEPT + code
    for role in ADDRESSABLE_ROLES:
        if t in (role.value, role.zh):
            return ROLE + role.value
    raise UnknownCode(f"unknown target {t!r}: not a jurisdiction code, a department (cgj, 城管 …) "
                      f"or a role ({', '.join(r.value for r in ADDRESSABLE_ROLES)})")


def _role(word: str, raw: str) -> str:
    for role in ADDRESSABLE_ROLES:
        if word in (role.value, role.zh):
            return role.value
    raise UnknownCode(f"unknown role in directive target {raw!r} "
                      f"(expected one of {', '.join(r.value for r in ADDRESSABLE_ROLES)})")
