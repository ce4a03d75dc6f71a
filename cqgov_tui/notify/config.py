"""A server's notification settings (``cqgov serve --notify-config FILE``), TOML validated by pydantic.

```toml
public_url = "http://127.0.0.1:8701"     # links in messages (acknowledge) point here

[email]
smtp_host = "127.0.0.1"
smtp_port = 8025
sender = "cqgov@example.org"
# username, password, starttls = true, timeout_s = 10

[webhook]
url = "http://127.0.0.1:9000/hook"       # HTTP POST of JSON: 渝快政, an SMS gateway, a chat bridge
# timeout_s = 5, headers = { "X-Token" = "…" }

[[route]]                                # which roles and priorities go to which channels
roles = ["duty_officer", "dispatcher"]   # (empty: every role)
priorities = ["urgent", "high"]          # (empty: every priority)
channels = ["email", "webhook"]

[escalation]
ack_after = "5m"                         # unacknowledged → the next person in the rotation, then the duty chief

[retry]
max_attempts = 6
base_s = 5                               # 5, 10, 20 … seconds between attempts, capped
cap_s = 300
```

Every message also lands in the recipient's console inbox. With no ``[[route]]``,
every configured channel is used for everyone who has an address.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..domain.entities import Role
from ..errors import BadInput

PRIORITIES = ("urgent", "high", "normal")


def parse_seconds(text: str | float | int) -> float:
    """``30s``, ``5m``, ``1h`` or a number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        t = str(text).strip()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
        except (ValueError, KeyError):
            raise ValueError(f"{text!r} is not a duration (30s, 5m, 1h)") from None
    if not 0 < value <= 7 * 86400:
        raise ValueError(f"{text!r} must be between 0 and 7 days")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EmailConfig(_Strict):
    smtp_host: str
    smtp_port: int = Field(25, ge=1, le=65535)
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if v.count("@") != 1:
            raise ValueError(f"{v!r} is not an e-mail address")
        return v


class WebhookConfig(_Strict):
    url: str
    timeout_s: float = Field(5.0, gt=0, le=120)
    headers: dict[str, str] = {}

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v


class Route(_Strict):
    roles: list[str] = []
    priorities: list[str] = []
    channels: list[Literal["email", "webhook"]]

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        known = {r.value for r in Role} | {"flood"}
        bad = [r for r in v if r not in known]
        if bad:
            raise ValueError(f"unknown role {bad[0]!r}")
        return v

    @field_validator("priorities")
    @classmethod
    def _priorities(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in PRIORITIES]
        if bad:
            raise ValueError(f"unknown priority {bad[0]!r} (expected {', '.join(PRIORITIES)})")
        return v

    def matches(self, role: str | None, priority: str) -> bool:
        return (not self.roles or role in self.roles) and (not self.priorities or priority in self.priorities)


class Escalation(_Strict):
    ack_after: float = 300.0

    @field_validator("ack_after", mode="before")
    @classmethod
    def _after(cls, v: object) -> float:
        return parse_seconds(v)  # type: ignore[arg-type]


class Retry(_Strict):
    max_attempts: int = Field(6, ge=1, le=100)
    base_s: float = Field(5.0, gt=0, le=3600)
    cap_s: float = Field(300.0, gt=0, le=86400)

    def delay(self, attempts: int) -> float:
        return float(min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1)))


class NotifyConfig(_Strict):
    public_url: str | None = None
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None
    route: list[Route] = []
    escalation: Escalation = Escalation()
    retry: Retry = Retry()

    def channels_for(self, role: str | None, priority: str) -> list[str]:
        """Channels beyond the inbox for a message to someone of ``role`` at ``priority``."""
        configured = [c for c, cfg in (("email", self.email), ("webhook", self.webhook)) if cfg is not None]
        if not self.route:
            return configured
        wanted: list[str] = []
        for r in self.route:
            if r.matches(role, priority):
                wanted += [c for c in r.channels if c in configured]
        return list(dict.fromkeys(wanted))


def load_config(path: str | Path) -> NotifyConfig:
    """Read and validate a notify config; any problem is one ``BadInput`` line naming the file and the field."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"{p}: cannot read notify config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{p}: not valid TOML ({str(exc).splitlines()[0]})") from None
    try:
        return NotifyConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "config"
        raise BadInput(f"{p}: {where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}") from None
