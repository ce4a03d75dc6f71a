"""`cqgov token create`: issue a signed token (user, role, tier, scope, expiry) with a server's secret."""

from __future__ import annotations

import click

from ..domain.entities import Role, Tier
from . import main
from .common import check_secret_file, emit_json, handle_errors, json_option, out


def parse_ttl(text: str) -> float:
    from .values import parse_duration  # the CLI's one duration reader (`demo --for 1d` reads the same)

    return parse_duration(text, "token lifetime")


@main.group("token")
def token() -> None:
    """Issue access tokens for tier servers."""


@token.command("create")
@click.option("--secret-file", required=True, type=click.Path(dir_okay=False),
              help="The server's secret (its <db>.secret unless it was started with --secret-file).")
@click.option("--user", required=True, help="User id recorded in the audit log.")
@click.option("--name", default=None, help="Display name.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--tier", required=True, type=click.Choice([t.value for t in Tier]))
@click.option("--scope", required=True, help="Jurisdiction code the user may see and act in (500000 for all).")
@click.option("--ttl", default="12h", show_default=True, help="Lifetime: 30m, 12h, 7d or seconds.")
@click.option("--peer", is_flag=True, help="A lower tier's server (may send federate.* commands).")
@click.option("--department", default=None,
              help="A department user's department (cgj, 城管 …): answers directives addressed to it.")
@json_option
@handle_errors
def create(secret_file, user, name, role, tier, scope, ttl, peer, department, as_json) -> None:
    """Create a token; prints it (or JSON with its claims)."""
    from ..clock import SystemClock
    from ..geo.registry import get_registry
    from ..server.auth import TokenAuthority, load_secret

    get_registry().get(scope)  # an unknown scope is refused here, not at first use
    if department is not None:
        department = _department(department, role)
    now = SystemClock().now()
    lifetime = parse_ttl(ttl)
    check_secret_file(secret_file)
    authority = TokenAuthority(load_secret(secret_file, create=False))
    value = authority.issue(user=user, name=name, role=role, tier=tier, scope=scope, now=now, ttl=lifetime, peer=peer,
                            department=department)
    if as_json:
        emit_json({"token": value, "user": user, "role": role, "tier": tier, "scope": scope,
                   "expires_at": now + lifetime, "peer": peer, "department": department})
    else:
        out(value)


def _department(text: str, role: str) -> str:
    """A catalogue department code from a code or a name (cgj, 城管); only department users carry one."""
    from ..engine import audience
    from ..errors import BadInput

    if role != Role.DEPARTMENT.value:
        raise BadInput(f"--department is for department users (--role department), not {role}")
    target = audience.normalise(text)
    if not target.startswith(audience.DEPT):
        raise BadInput(f"unknown department {text!r}")
    return target[len(audience.DEPT):]
