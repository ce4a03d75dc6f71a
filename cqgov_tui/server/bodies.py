"""Typed command bodies: one pydantic model per command type, a union discriminated on ``type``.

``parse(type, body, now)`` is the only gate a command body passes before its
handler runs: finite numbers, coordinates on the globe, times inside a sane
window (2000–2100), deadlines in the future and at most a year ahead, bounded
strings without NUL or lone surrogates, bounded lists, no unknown fields. A
body that fails is refused with one line naming the field, so a malformed
command is *rejected* (and leaves the client's outbox) instead of failing
inside a handler. The same declarations give ``/docs`` its schemas
(``CommandBatch``).

The federated copies (``federate.event``, ``federate.receipt``) carry whole
rows; their models are derived from the ``Event`` and ``Receipt`` entities
(declared once, in ``domain.entities``) with the same bounds by field kind.
"""

import math
import typing
from dataclasses import fields as dc_fields
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints,
                      TypeAdapter, ValidationError, ValidationInfo, create_model, field_validator, model_validator)

from ..domain.entities import Event, Receipt, Status, Tier
from ..errors import BadInput
from ..sync.envelope import COMMAND_ID_PATTERN

EARLIEST = 946_684_800.0  # 2000-01-01T00:00Z: no operations data is older
LATEST = 4_102_444_800.0  # 2100-01-01T00:00Z
MAX_AHEAD_S = 366 * 86400.0  # a deadline is at most a year (leap day included) ahead
MAX_TEXT = 4000
MAX_CODES = 2000  # targets of one directive (1,031 streets fit)
MAX_READINGS = 500  # per sensor.reading command: a bounded transaction


# ------------------------------------------------------------ field kinds


def _not_bool(value: Any) -> Any:
    # JSON true/false are not numbers (pydantic's lax mode would read them as 1.0 / 0.0).
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def Text(max_length: int = MAX_TEXT, *, min_length: int = 0) -> Any:
    """A string of at most ``max_length`` characters, no NUL (lone surrogates fail as invalid Unicode);
    ``min_length=1`` also refuses one of blanks only."""
    checks = (AfterValidator(_no_nul), AfterValidator(_not_blank)) if min_length else (AfterValidator(_no_nul),)
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), *checks]


# (Constraints before the validator: they stay in the number's own schema, so /docs shows them.)
Number = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_not_bool)]
Timestamp = Annotated[float, Field(allow_inf_nan=False, ge=EARLIEST, lt=LATEST,
                                   description="UTC epoch seconds between 2000-01-01 and 2100-01-01"),
                      BeforeValidator(_not_bool)]
Lon = Annotated[float, Field(allow_inf_nan=False, ge=-180.0, le=180.0), BeforeValidator(_not_bool)]
Lat = Annotated[float, Field(allow_inf_nan=False, ge=-90.0, le=90.0), BeforeValidator(_not_bool)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1), BeforeValidator(_not_bool)]
Code = Text(64, min_length=1)
Codes = Annotated[list[Code], Field(max_length=MAX_CODES)]


class Body(BaseModel):
    """Every body: unknown fields are refused (a misspelt field is an error, not silently ignored)."""

    model_config = ConfigDict(extra="forbid")


def _deadline_window(value: float, info: ValidationInfo, name: str = "") -> float:
    """A deadline after the server's ``now`` (the validation context) and at most a year ahead."""
    now = (info.context or {}).get("now")
    if now is None:
        return value
    subject = f"{name} " if name else ""
    if value <= now:
        raise ValueError(f"{subject}is in the past")
    if value > now + MAX_AHEAD_S:
        raise ValueError(f"{subject}is more than a year ahead")
    return value


def _split_codes(value: Any) -> Any:
    # The CLI and scripts may give one comma-separated string (full-width commas too).
    if isinstance(value, str):
        return [c.strip() for c in value.replace("，", ",").split(",") if c.strip()]
    return value


# ------------------------------------------------------------ the closed loop


class ReportBody(Body):
    """Report an event at a point (``lon``/``lat``) or in a jurisdiction or grid (``code``)."""

    category: Text(64, min_length=1) = Field(description="category code from the catalogue, e.g. muck_spill")
    title: Text(200) = ""
    text: Text() = ""
    lon: Lon | None = None
    lat: Lat | None = None
    code: Text(32) | None = Field(None, description="grid, street or district code when no point is given")
    colour: Text(16) | None = Field(None, description="blue/yellow/orange/red/black; default: the category's")
    source: Text(32) = "citizen"
    reporter: Text(64) = ""
    address: Text(200) = ""
    event_id: Text(64, min_length=1) | None = Field(None, description="id chosen by the client (UUIDv7)")

    @model_validator(mode="after")
    def _both_or_neither(self) -> "ReportBody":
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat, or a code")
        if self.source == "sensor":
            # Sensor alarms open from readings only, so a client cannot fake (or mask) a sensor's episode.
            raise ValueError("sensor events open from readings: send them as sensor.reading")
        return self


class ActBody(Body):
    """A lifecycle action on an event (verify, dispatch, accept, …, comment)."""

    event: Text(64, min_length=1) = Field(description="event id, or its number")
    action: Text(32, min_length=1)
    note: Text() = ""
    departments: Annotated[list[Code], Field(max_length=64)] | None = None
    target: Text(64) | None = None


class SuperviseBody(Body):
    """督办: a directive to the owning jurisdiction, noted on the event (default deadline: one hour)."""

    event: Text(64, min_length=1)
    note: Text(min_length=1)
    deadline_at: Timestamp | None = None

    @field_validator("deadline_at")
    @classmethod
    def _window(cls, value: float | None, info: ValidationInfo) -> float | None:
        return None if value is None else _deadline_window(value, info)


class DirectiveSendBody(Body):
    """A directive (政令) to jurisdictions below the sender, with a deadline (``deadline_at`` or ``deadline``)."""

    targets: Annotated[list[Code], BeforeValidator(_split_codes), Field(min_length=1, max_length=MAX_CODES)] = Field(
        description="jurisdiction codes, departments and roles; a list or one comma-separated string")
    text: Text(min_length=1)
    title: Text(200) = ""
    priority: Text(16) = "normal"
    deadline_at: Timestamp | None = None
    deadline: Text(40, min_length=1) | None = Field(None, description="30m, 2h, 1d or YYYY-MM-DD HH:MM")
    require_ack: bool = True
    directive_id: Text(64, min_length=1) | None = None

    @model_validator(mode="after")
    def _deadline(self, info: ValidationInfo) -> "DirectiveSendBody":
        if self.deadline_at is None:
            if self.deadline is None:
                raise ValueError("give a deadline (30m, 2h, 1d, YYYY-MM-DD HH:MM) or deadline_at")
            now = (info.context or {}).get("now")
            if now is not None:
                from ..engine.directives import parse_deadline

                try:
                    at = parse_deadline(self.deadline, now)
                except BadInput as exc:
                    raise ValueError(str(exc)) from None
                if not math.isfinite(at):
                    raise ValueError("deadline is more than a year ahead")
                self.deadline_at = _deadline_window(at, info, "deadline")
        return self

    @field_validator("deadline_at")
    @classmethod
    def _window(cls, value: float | None, info: ValidationInfo) -> float | None:
        return None if value is None else _deadline_window(value, info)


class ReceiptBody(Body):
    """Answer a directive at a street: read, acknowledged or executed."""

    directive: Text(64, min_length=1) = Field(description="directive id or number")
    state: Text(16, min_length=1)
    code: Text(32, min_length=1) | None = Field(None, description="answering street (default: this server's)")


# ------------------------------------------------------------ sensors


# A reading is [sensor_code, measured_at, value]; the monitor refuses bad readings one by one (the rest
# apply), so the shape is checked there; here only that nothing in it is huge, deep or not a JSON scalar.
ReadingItem = Union[Annotated[float, BeforeValidator(_not_bool)], Text(64), bool, None]  # NaN: refused per reading
Reading = Annotated[list[ReadingItem], Field(max_length=8)]


class SensorReadingBody(Body):
    """Readings of sensors in the caller's jurisdiction (at most 500 per command)."""

    readings: Annotated[list[Reading], Field(min_length=1, max_length=MAX_READINGS)] = Field(
        description="[[sensor_code, measured_at (epoch s), value], …]")


# ------------------------------------------------------------ federation (rows from the tier below)


def _row_field(name: str, hint: Any) -> Any:
    """The bounded pydantic type of one entity field, by its declared type and name."""
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    kind: Any
    if base is float:
        kind = Lon if name == "lon" else Lat if name == "lat" else Timestamp
    elif base is int:
        kind = Count
    elif base is str:
        kind = Text()
    elif typing.get_origin(base) is list:
        kind = Annotated[list[Code], Field(max_length=64)]
    else:  # a new field kind must be given its bounds here before it can travel
        raise TypeError(f"no wire bounds for {name}: {hint}")
    return (kind | None, ...) if optional else (kind, ...)


def _row_model(entity: type, model_name: str) -> type[BaseModel]:
    hints = typing.get_type_hints(entity)
    spec = {f.name: _row_field(f.name, hints[f.name]) for f in dc_fields(entity)}
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **spec)


_EventRow = _row_model(Event, "EventRowBase")
_ReceiptRow = _row_model(Receipt, "ReceiptRowBase")


class EventRow(_EventRow):  # type: ignore[misc, valid-type]
    """A whole event row as the owning tier holds it (every field of ``Event``)."""

    @model_validator(mode="after")
    def _sane(self) -> "EventRow":
        for required in ("id", "district_code", "status", "colour", "origin_node", "origin_tier"):
            if not getattr(self, required):
                raise ValueError(f"{required} is empty")
        try:
            Status(self.status)
            Tier(self.origin_tier)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if self.version < 1:
            raise ValueError("version must be at least 1")
        return self

    def entity(self) -> Event:
        return Event(**{f.name: getattr(self, f.name) for f in dc_fields(Event)})


class ReceiptRow(_ReceiptRow):  # type: ignore[misc, valid-type]
    """A whole receipt row (every field of ``Receipt``)."""

    @model_validator(mode="after")
    def _sane(self) -> "ReceiptRow":
        from ..engine.directives import RANK

        for required in ("directive_id", "jurisdiction_code"):
            if not getattr(self, required) or len(getattr(self, required)) > 64:
                raise ValueError(f"{required} must be a non-empty code")
        if self.state not in RANK:
            raise ValueError(f"unknown receipt state {self.state!r}")
        return self

    def entity(self) -> Receipt:
        return Receipt(**{f.name: getattr(self, f.name) for f in dc_fields(Receipt)})


class FederateEventBody(Body):
    """A lower tier's server sends a copy of an event it owns (peer tokens only)."""

    event: EventRow


class FederateReceiptBody(Body):
    """A lower tier's server sends a directive receipt (peer tokens only)."""

    receipt: ReceiptRow
    origin: Text(64, min_length=1) | None = None


# ------------------------------------------------------------ the board's inputs (issue 13)


class RiskInspectBody(Body):
    """巡查 of a risk point in the caller's jurisdiction: ``ok`` or ``hazard``; its grade is recomputed (audited)."""

    point: Text(64, min_length=1) = Field(description="risk point code, e.g. RP-500105-septic_methane-00001")
    result: Literal["ok", "hazard"]
    note: Text(500) = ""


class FigureFeedBody(Body):
    """A 一表通 figure for a jurisdiction (indicators with ``figure:NAME`` read its latest value)."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] = Field(
        description="figure name, e.g. cs01.04.rate")
    value: Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_not_bool)]
    scope: Text(12) | None = Field(None, description="jurisdiction code (default: the server's own)")
    source: Text(64) = "一表通"


# ------------------------------------------------------------ the union


BODIES: dict[str, type[Body]] = {
    "report": ReportBody,
    "act": ActBody,
    "supervise": SuperviseBody,
    "directive.send": DirectiveSendBody,
    "receipt": ReceiptBody,
    "sensor.reading": SensorReadingBody,
    "federate.event": FederateEventBody,
    "federate.receipt": FederateReceiptBody,
    "risk.inspect": RiskInspectBody,
    "figure.feed": FigureFeedBody,
}


def _envelope(command_type: str, body: type[BaseModel]) -> type[BaseModel]:
    name = "".join(part.capitalize() for part in command_type.replace(".", "_").split("_")) + "Command"
    return create_model(
        name, __config__=ConfigDict(extra="forbid"), __doc__=body.__doc__,
        id=(Annotated[str, Field(pattern=COMMAND_ID_PATTERN, description="client-made id (UUIDv7); a retry "
                                 "with the same id is answered as before, never applied twice")], ...),
        type=(Literal[command_type], ...),  # type: ignore[valid-type]
        body=(body, ...),
    )


def command_batch(extra: Mapping[str, type[BaseModel]] | None = None) -> type[BaseModel]:
    """The batch model: a list of commands discriminated on ``type`` (these types, plus ``extra``'s:
    command types other modules declare, e.g. the people commands)."""
    every = {**BODIES, **(extra or {})}
    command = Annotated[Union[tuple(_envelope(t, b) for t, b in every.items())],  # type: ignore[misc]
                        Field(discriminator="type")]
    return create_model("CommandBatch", __doc__="``POST /v1/commands``: up to 500 commands, applied in order, "
                        "each answered on its own.",
                        commands=(Annotated[list[command], Field(max_length=500)], ...))  # type: ignore[valid-type]


CommandBatch = command_batch()


class Rejection(BaseModel):
    id: str
    reason: str
    code: str = Field("refused", description="stable refusal code (errors.REFUSAL_CODES), e.g. not_in_jurisdiction")


class Outcome(BaseModel):
    id: str
    result: dict[str, Any]


class BatchReply(BaseModel):
    """Each command accepted (with its result), duplicate (answered before) or rejected (with its reason);
    ``deferred`` (HTTP 503 when nothing else was answered) only while the store is unavailable."""

    accepted: list[Outcome]
    duplicate: list[Outcome]
    rejected: list[Rejection]
    epoch: str
    deferred: list[str] | None = None
    error: str | None = None


# ------------------------------------------------------------ parsing


_ADAPTERS = {t: TypeAdapter(b) for t, b in BODIES.items()}

_MESSAGES = {  # pydantic's wording where it is unclear to a caller
    "string_unicode": "is not valid Unicode (a lone surrogate?)",
    "extra_forbidden": "is not a field of this command",
    "finite_number": "must be a finite number",
}


def describe(command_type: str, exc: ValidationError) -> str:
    """One line: the command type, the first failing field and why (+ how many more)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "union[")))
    msg = _MESSAGES.get(first["type"], first["msg"])
    bounds = first.get("ctx") or {}
    if first["type"] == "too_short":
        msg = "must be a non-empty list"
    elif bounds.get("lt") == LATEST or bounds.get("ge") == EARLIEST:
        msg = "must be a time between 2000-01-01 and 2100-01-01 (epoch seconds)"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    line = f"{command_type}: {where + ': ' if where else ''}{msg}{more}"
    return line.encode("utf-8", "replace").decode("utf-8").splitlines()[0][:300]


def parse(command_type: str, body: Any, now: float | None = None) -> Body:
    """The typed body of one command, or ``BadInput`` with the reason. ``now`` bounds deadlines."""
    adapter = _ADAPTERS.get(command_type)
    if adapter is None:
        raise BadInput(f"unknown command type {command_type!r} (expected one of {', '.join(sorted(BODIES))})")
    if not isinstance(body, dict):
        raise BadInput(f"{command_type}: body must be a JSON object")
    try:
        return adapter.validate_python(body, context={"now": now})
    except ValidationError as exc:
        raise BadInput(describe(command_type, exc)) from None
