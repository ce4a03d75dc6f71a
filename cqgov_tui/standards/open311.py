"""Open311 GeoReport v2: the service list, service requests and their status, in JSON and XML.

A service is one of the 40 event categories (``service_code`` = category code,
``group`` = its 八大板块 sector); a service request is a citizen event. Its
Open311 ``status`` is ``open`` while the event is in the loop and ``closed``
once it is closed, reviewed, merged or rejected; ``status_notes`` says where
in the loop it is, ``agency_responsible`` is the owning department and
``expected_datetime`` is the deadline of the SLA profile's last stage.

POST bodies are validated by ``RequestIn`` (pydantic) — the same declaration
gives the error message — and become ``engine.report`` calls.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..clock import CST, local
from ..domain.entities import Event, ServiceRequestIntake, Status
from ..errors import BadInput

if TYPE_CHECKING:
    from ..catalogue import Catalogue

FORMATS = ("json", "xml")
MAX_REQUESTS = 1000  # per GET, as the spec's reference servers cap it
DEFAULT_WINDOW_S = 90 * 86400.0  # GeoReport v2: the default and the widest date range


# ------------------------------------------------------------ services


def services(catalogue: Catalogue) -> list[dict[str, Any]]:
    """GET services: every category, in catalogue order."""
    out = []
    for cat in catalogue.categories.values():
        dept = catalogue.departments.get(cat.department_code)
        sector = catalogue.sectors.get(cat.sector_code)
        out.append({
            "service_code": cat.code,
            "service_name": cat.name,
            "description": f"{cat.name}（{dept.name if dept else cat.department_code}）",
            "metadata": False,  # no extra attributes: a description and a place are all a request needs
            "type": "realtime",
            "keywords": ",".join(k for k in (cat.code, dept.short if dept else "") if k),
            "group": sector.name if sector else cat.sector_code,
        })
    return out


# ------------------------------------------------------------ requests


def w3c(t: float | None) -> str | None:
    """A time as the spec writes it (W3C / ISO 8601 with the offset), in China Standard Time."""
    return None if t is None else local(t).isoformat(timespec="seconds")


def parse_w3c(text: str, name: str) -> float:
    try:
        dt = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{name}: not a W3C date-time ({text!r}; e.g. 2026-11-01T00:00:00+08:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CST)
    return dt.timestamp()


def open_or_closed(status: str) -> str:
    return "open" if Status(status).is_open else "closed"


def status_notes(event: Event, numbers: dict[str, str] | None = None) -> str:
    status = Status(event.status)
    note = f"{status.zh}（{status.value}）"
    if event.merged_into:
        note += f"；已并入 {(numbers or {}).get(event.merged_into, event.merged_into)}"
    if event.supervised_by:
        note += f"；{event.supervised_by} 督办中"
    return note


def expected_at(event: Event, catalogue: Catalogue) -> float | None:
    """When the loop is due to be complete: the report time plus the SLA profile's last stage."""
    try:
        profile = catalogue.sla(event.sla_profile)
    except BadInput:
        return None
    if not profile.stages:
        return None
    return event.reported_at + profile.stages[-1].minutes * 60.0


def request_dict(event: Event, catalogue: Catalogue, intake: ServiceRequestIntake | None = None,
                 numbers: dict[str, str] | None = None) -> dict[str, Any]:
    """One service request as GeoReport v2 shows it (no contact details: the GETs are public)."""
    cat = catalogue.categories.get(event.category_code)
    dept_code = event.assignee or (cat.department_code if cat else None)
    dept = catalogue.departments.get(dept_code) if dept_code else None
    return {
        "service_request_id": event.number,
        "token": intake.token if intake else event.id,
        "status": open_or_closed(event.status),
        "status_notes": status_notes(event, numbers),
        "service_name": cat.name if cat else event.category_code,
        "service_code": event.category_code,
        "description": event.text or event.title,
        "agency_responsible": dept.name if dept else (dept_code or ""),
        "service_notice": "",
        "requested_datetime": w3c(event.reported_at),
        "updated_datetime": w3c(event.updated_at),
        "expected_datetime": w3c(expected_at(event, catalogue)),
        "address": event.address,
        "address_id": event.grid_code or event.street_code or event.district_code,
        "zipcode": None,
        "lat": event.lat,
        "long": event.lon,
        "media_url": intake.media_url if intake else None,
    }


# ------------------------------------------------------------ POST


_PHONE = r"^\+?[0-9][0-9 \-()]{2,30}$"
_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$"
_CODE = r"^[0-9]{6,15}$"


class RequestIn(BaseModel):
    """POST requests: what a GeoReport v2 client may send (unknown keys, e.g. attribute[...], are ignored)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    api_key: str = Field(min_length=1, max_length=4096, description="a cqgov token (`cqgov token create`)")
    service_code: str = Field(min_length=1, max_length=64)
    jurisdiction_id: str | None = Field(None, max_length=64)
    lat: float | None = Field(None, ge=-90, le=90)
    long: float | None = Field(None, ge=-180, le=180)
    address_string: str | None = Field(None, max_length=200)
    address_id: str | None = Field(None, pattern=_CODE, description="a street or grid code")
    description: str | None = Field(None, max_length=4000)
    media_url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    email: str | None = Field(None, max_length=254, pattern=_EMAIL)
    phone: str | None = Field(None, max_length=32, pattern=_PHONE)
    first_name: str | None = Field(None, max_length=64)
    last_name: str | None = Field(None, max_length=64)
    device_id: str | None = Field(None, max_length=128)
    account_id: str | None = Field(None, max_length=128)

    @field_validator("lat", "long")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, v: Any) -> Any:
        # Form posts send empty fields as ""; the spec treats them as not given.
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _placed(self) -> "RequestIn":
        if (self.lat is None) != (self.long is None):
            raise ValueError("give both lat and long")
        if self.lat is None and self.address_id is None:
            raise ValueError("a request needs a location: lat and long, or address_id (a street or grid code)")
        return self


def parse_request(form: dict[str, Any]) -> RequestIn:
    """Validate a POST body (form fields or JSON); one line naming the first bad field."""
    try:
        return RequestIn.model_validate(form)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = re.sub(r"^Value error, ", "", err.get("msg", "invalid"))
        if "pattern" in err.get("type", ""):
            msg = "malformed value"
        raise BadInput(f"{where}: {msg}" if where else msg) from None


def report_body(req: RequestIn) -> dict[str, Any]:
    """The engine's report arguments for a request (a citizen event, placed by point or by code)."""
    text = req.description or ""
    return {
        "category": req.service_code, "title": "", "text": text,
        "lon": req.long, "lat": req.lat, "code": None if req.lat is not None else req.address_id,
        "source": "citizen", "address": req.address_string or "",
    }


def reporter_of(req: RequestIn, api_user: str) -> str:
    """Who reported it, as dispatchers see it: the citizen's name or contact if given, else the channel."""
    name = " ".join(p for p in (req.last_name, req.first_name) if p)
    return (name or req.phone or req.email or api_user)[:64]


# ------------------------------------------------------------ XML


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _fill(parent: ET.Element, tag: str, data: dict[str, Any]) -> ET.Element:
    node = ET.SubElement(parent, tag)
    for key, value in data.items():
        child = ET.SubElement(node, key)
        if value is None:
            continue
        child.text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return node


def services_xml(items: list[dict[str, Any]]) -> bytes:
    root = ET.Element("services")
    for item in items:
        _fill(root, "service", item)
    return _xml(root)


def requests_xml(items: list[dict[str, Any]]) -> bytes:
    root = ET.Element("service_requests")
    for item in items:
        _fill(root, "request", item)
    return _xml(root)


def errors_xml(errors: list[dict[str, Any]]) -> bytes:
    root = ET.Element("errors")
    for item in errors:
        _fill(root, "error", item)
    return _xml(root)


def definition_xml(data: dict[str, Any]) -> bytes:
    root = ET.Element("service_definition")
    ET.SubElement(root, "service_code").text = data["service_code"]
    ET.SubElement(root, "attributes")
    return _xml(root)
