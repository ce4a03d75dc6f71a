"""Tokens and scoping for tier servers.

A token is ``<payload>.<signature>``: the payload is base64url of compact
JSON (user, name, role, tier, scope, issued, expiry, peer flag and node,
department), the signature is base64url HMAC-SHA256 of the payload under the
server's secret. No third-party JWT library: the format is small enough to own
and check. The claims are a pydantic model (``Claims``) whose one rule
(``claims_problem``) is applied when a token is issued and again whenever one
is presented: the tier matches the scope's level, a department user names
its department (and nobody else does), a peer token names its node.

``visible`` is the one scoping function: every row a server returns (change
log deltas, snapshots, directive status, event queries) and every command it
accepts is checked with it against the caller's jurisdiction subtree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..domain.entities import Role, Tier, User
from ..errors import BadInput, PermissionDenied
from ..ownership import Node, node_of, scope_tier
from ..scope import change_visible, covers

_MAX_TOKEN = 4096
_KNOWN_TOKENS = 4096  # verified tokens remembered per authority


class AuthError(PermissionDenied):
    """A missing, malformed, forged or expired token (answered 401)."""


@dataclass(frozen=True)
class Principal(User):
    """An authenticated caller: a domain ``User`` (so the engine takes it as is) plus token facts."""

    expires_at: float = 0.0
    peer: bool = False  # a lower tier's server syncing with this one (may send federate.* commands)
    node: str | None = None  # a peer's own node (``street-500108001``): the rows it may send are its subtree's

    @classmethod
    def of(cls, user: User, expires_at: float = float("inf"), peer: bool = False,
           node: str | None = None) -> "Principal":
        return cls(user.user, user.name, user.role, user.tier, user.scope_code, user.department, expires_at, peer,
                   node)


def claims_problem(role: Role, tier: Tier, scope: str, *, peer: bool, department: str | None,
                   node: str | None) -> str | None:
    """THE rule a token's claims must satisfy, at issue and at every use; None when they agree."""
    level = scope_tier(scope)
    if level is None:
        return f"scope {scope!r} is not a jurisdiction code"
    if level is not tier:
        return f"tier {tier.value} does not match scope {scope}, which is served by the {level.value} tier"
    if role is Role.DEPARTMENT and not department:
        return "a department user's token must name the department (--department)"
    if role is not Role.DEPARTMENT and department:
        return f"only department users carry a department, not a {role.value}"
    if peer:
        own = node_of(tier, scope)
        if tier is Tier.CITY or own is None:
            return f"a peer token is for a district or street server, not scope {scope}"
        if node != own.name:
            return f"a peer token for {own.name} must name that node"
    elif node is not None:
        return "only peer tokens name a node"
    return None


class Claims(BaseModel):
    """A token's payload as signed (short keys keep tokens small)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    u: str = Field(min_length=1, max_length=128)
    n: str = Field(max_length=128)
    r: Role
    t: Tier
    s: str = Field(min_length=1, max_length=32)
    iat: float
    exp: float
    p: int = Field(0, ge=0, le=1)
    d: Optional[str] = Field(None, max_length=64)
    nd: Optional[str] = Field(None, max_length=64)

    @model_validator(mode="after")
    def _agree(self) -> "Claims":
        if not (math.isfinite(self.iat) and math.isfinite(self.exp)):
            raise ValueError("token times must be finite")
        problem = claims_problem(self.r, self.t, self.s, peer=bool(self.p), department=self.d, node=self.nd)
        if problem:
            raise ValueError(problem)
        return self


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    where = ".".join(str(part) for part in err.get("loc", ()))
    return f"claim {where}: {msg}" if where else msg


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(path: str, create: bool = True) -> bytes:
    """Read the server's HMAC secret; create it (0600, 32 random bytes) when missing."""
    if os.path.exists(path):
        with open(path, "rb") as fh:
            raw = fh.read().strip()
        if len(raw) < 32:
            raise BadInput(f"{path}: secret is too short (need at least 32 bytes)")
        return raw
    if not create:
        raise BadInput(f"{path}: no such secret file")
    raw = secrets.token_hex(32).encode()
    # O_EXCL so two servers starting at once never overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_secret(path, create=False)
    except OSError as exc:
        raise BadInput(f"{path}: cannot create secret ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw + b"\n")
    return raw


class TokenAuthority:
    """Issues and verifies tokens for one server (or a set of servers sharing a secret)."""

    def __init__(self, secret: bytes):
        if len(secret) < 32:
            raise BadInput("token secret must be at least 32 bytes")
        self._secret = secret
        # Tokens already verified (signature and claims): a client presents the same one on every request,
        # and checking the claims again costs more than the rest of serving a cached delta.
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        self._lock = threading.Lock()

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, *, user: str, role: str, tier: str, scope: str, now: float, ttl: float,
              name: str | None = None, peer: bool = False, department: str | None = None) -> str:
        try:
            role_v, tier_v = Role(role), Tier(tier)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        if not user or not scope:
            raise BadInput("a token needs a user and a scope")
        if ttl <= 0:
            raise BadInput("token lifetime must be positive")
        body: dict[str, object] = {"u": user, "n": name or user, "r": role_v.value, "t": tier_v.value, "s": scope,
                                   "iat": round(now, 3), "exp": round(now + ttl, 3)}
        if peer:
            body["p"] = 1
            body["nd"] = Node(tier_v, scope).name  # a peer token names the node it belongs to
        if department:
            body["d"] = str(department)
        try:
            Claims.model_validate(body)
        except ValidationError as exc:
            raise BadInput(f"cannot issue this token: {_first_error(exc)}") from None
        payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str | None, now: float) -> Principal:
        if not token:
            raise AuthError("missing bearer token")
        with self._lock:
            known = self._verified.get(token)
        if known is not None:
            if known.expires_at <= now:
                raise AuthError(f"token for {known.user} has expired")
            return known
        # Base64url and a dot only: anything else (a non-ASCII byte) is refused before any comparison.
        if len(token) > _MAX_TOKEN or token.count(".") != 1 or not token.isascii():
            raise AuthError("malformed token")
        payload, sig = token.split(".")
        if not hmac.compare_digest(self._sign(payload).encode(), sig.encode()):
            raise AuthError("token signature does not match this server's secret")
        try:
            claims = Claims.model_validate_json(_unb64(payload))
        except (ValueError, binascii.Error) as exc:
            detail = _first_error(exc) if isinstance(exc, ValidationError) else "malformed token payload"
            raise AuthError(f"token refused: {detail}") from None
        principal = Principal(claims.u, claims.n or claims.u, claims.r, claims.t, claims.s, claims.d or None,
                              claims.exp, bool(claims.p), claims.nd)
        if principal.expires_at <= now:
            raise AuthError(f"token for {principal.user} has expired")
        with self._lock:
            self._verified[token] = principal
            if len(self._verified) > _KNOWN_TOKENS:
                self._verified.popitem(last=False)
        return principal


def bearer(header: str | None) -> str | None:
    """Extract the token from an ``Authorization: Bearer …`` header."""
    if not header:
        return None
    kind, _, value = header.partition(" ")
    return value.strip() if kind.lower() == "bearer" and value.strip() else None


# ------------------------------------------------------------ scoping


def visible(scope_code: str, row_scope: str | None, entity: str = "event") -> bool:
    """THE scoping rule for servers: may a caller scoped to ``scope_code`` see or touch a row?

    ``row_scope`` is what the change log records: a jurisdiction code, or a
    comma-separated list of a directive's targets. It delegates to
    ``scope.change_visible`` so the sync router's delta filter, snapshots,
    status queries and command checks all agree on one rule.
    """
    return change_visible(scope_code, entity, row_scope or "")


def require_visible(principal: User, row_scope: str | None, what: str, entity: str = "event") -> None:
    if not visible(principal.scope_code, row_scope, entity):
        raise PermissionDenied(f"{principal.user} may not touch {what}: outside {principal.scope_code}",
                               code="not_in_jurisdiction")


def check_server_scope(principal: User, server_tier: Tier, server_code: str) -> None:
    """A token must be for this server's subtree: a district token cannot be used at another district."""
    if not (covers(principal.scope_code, server_code) or covers(server_code, principal.scope_code)):
        raise PermissionDenied(
            f"{principal.user} (scope {principal.scope_code}) has no access to the {server_tier.value} server {server_code}"
        )
