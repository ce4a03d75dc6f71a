"""Open311 GeoReport v2 on a tier server, under ``/open311/v2/`` (formats in ``standards.open311``).

GETs are public, as in the spec (and as FixMyStreet-style clients expect): they
answer from citizen events inside this server's jurisdiction and show no
contact details. A POST needs ``api_key`` = a cqgov token whose scope covers
the place; it runs the ``report`` command through the same handler as
``POST /v1/commands`` (so plans, dedup, inhibition and SLA apply) and records
the intake in the same transaction. Errors are the spec's error list, in the
format the URL asked for.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..domain.entities import ServiceRequestIntake
from ..errors import BadInput, CqgovError, PermissionDenied, UnknownCode
from ..scope import CITY_CODE
from ..standards import open311 as fmt311
from .auth import AuthError, check_server_scope
from ..sync.router import too_deep
from .commands import safe_message

if TYPE_CHECKING:
    from .app import TierServer

PREFIX = "/open311/v2"


class _NotFound(CqgovError):
    pass


def _reply(fmt: str, data: list[dict[str, Any]], xml, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(xml(data), status_code=status, media_type="application/xml; charset=utf-8")
    return JSONResponse(data, status_code=status)


def _error(fmt: str, status: int, description: str) -> Response:
    errors = [{"code": status, "description": description}]
    if fmt not in fmt311.FORMATS:
        fmt = "json"
    return _reply(fmt, errors, fmt311.errors_xml, status)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, _NotFound) or (isinstance(exc, UnknownCode) and str(exc).startswith("no ")):
        return 404
    if isinstance(exc, (AuthError, PermissionDenied)):
        return 403
    return 400


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def make_open311_router(server: TierServer) -> APIRouter:
    store = server.store
    router = APIRouter(prefix=PREFIX, tags=["open311"])
    scope = CITY_CODE if store.tier.value == "city" else store.code

    def catalogue():
        return server.engine.catalogue

    def answer(fmt: str, xml, work) -> Response:
        if fmt not in fmt311.FORMATS:
            return _error("json", 404, f"unknown format {fmt!r} (json or xml)")
        try:
            return _reply(fmt, work(), xml)
        except CqgovError as exc:
            return _error(fmt, _status_of(exc), safe_message(exc))

    def check_jurisdiction(jurisdiction_id: str | None) -> None:
        if jurisdiction_id and jurisdiction_id not in (store.code, scope):
            raise _NotFound(f"jurisdiction_id {jurisdiction_id!r} is not served here (this server: {store.code})")

    def as_requests(events) -> list[dict[str, Any]]:
        from ..store.open311 import intakes

        held = intakes(store, [e.id for e in events])
        merged = {e.merged_into for e in events if e.merged_into}
        numbers = {i: ev.number for i in merged if (ev := store.get_event(i)) is not None}
        return [fmt311.request_dict(e, catalogue(), held.get(e.id), numbers) for e in events]

    @router.get("/services.{fmt}", summary="GeoReport v2: the 40 categories as services")
    def services(fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work():
            check_jurisdiction(jurisdiction_id)
            return fmt311.services(catalogue())

        return answer(fmt, fmt311.services_xml, work)

    @router.get("/services/{code}.{fmt}", summary="GeoReport v2: a service definition (no extra attributes)")
    def service_definition(code: str, fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work():
            check_jurisdiction(jurisdiction_id)
            if code not in catalogue().categories:
                raise _NotFound(f"no service {code!r}")
            return [{"service_code": code, "attributes": []}]

        if fmt == "json":
            # A definition is one object, not a list.
            try:
                return JSONResponse(work()[0])
            except CqgovError as exc:
                return _error(fmt, _status_of(exc), safe_message(exc))
        return answer(fmt, lambda d: fmt311.definition_xml(d[0]), work)

    @router.get("/requests.{fmt}", summary="GeoReport v2: citizen requests (public fields only)")
    def list_requests(fmt: str, service_request_id: str | None = None, service_code: str | None = None,
                      start_date: str | None = None, end_date: str | None = None, status: str | None = None,
                      jurisdiction_id: str | None = None) -> Response:
        def work():
            check_jurisdiction(jurisdiction_id)
            refs = _split(service_request_id)
            codes = _split(service_code)
            unknown = [c for c in codes if c not in catalogue().categories]
            if unknown:
                raise BadInput(f"unknown service_code {unknown[0]!r}")
            states = set(_split(status))
            if states - {"open", "closed"}:
                raise BadInput(f"status must be open, closed or both (got {status!r})")
            closed = None if len(states) != 1 else states == {"closed"}
            now = store.clock.now()
            end = fmt311.parse_w3c(end_date, "end_date") if end_date else now
            start = fmt311.parse_w3c(start_date, "start_date") if start_date else end - fmt311.DEFAULT_WINDOW_S
            if end < start:
                raise BadInput("end_date is before start_date")
            if end - start > fmt311.DEFAULT_WINDOW_S + 1:
                raise BadInput("start_date to end_date may span at most 90 days")
            from ..store.open311 import citizen_requests

            events = citizen_requests(store, scope_code=scope, refs=refs, categories=codes, start=start, end=end,
                                      closed=closed, limit=fmt311.MAX_REQUESTS)
            return as_requests(events)

        return answer(fmt, fmt311.requests_xml, work)

    @router.get("/requests/{ref}.{fmt}", summary="GeoReport v2: one request by service_request_id")
    def one_request(ref: str, fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work():
            check_jurisdiction(jurisdiction_id)
            from ..store.open311 import citizen_requests

            found = citizen_requests(store, scope_code=scope, refs=[ref], limit=1)
            if not found:
                raise _NotFound(f"no service request {ref!r}")
            return as_requests(found)

        return answer(fmt, fmt311.requests_xml, work)

    @router.get("/tokens/{token}.{fmt}", summary="GeoReport v2: the service_request_id a token stands for")
    def token(token: str, fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work():
            check_jurisdiction(jurisdiction_id)
            from ..store.open311 import event_for_token

            event = event_for_token(store, token)
            if event is None or event.source != "citizen":
                raise _NotFound(f"no service request for token {token!r}")
            return [{"service_request_id": event.number, "token": token}]

        return answer(fmt, fmt311.requests_xml, work)

    @router.post("/requests.{fmt}", summary="GeoReport v2: report a problem (api_key = a cqgov token)")
    async def create_request(fmt: str, request: Request) -> Response:
        if fmt not in fmt311.FORMATS:
            return _error("json", 404, f"unknown format {fmt!r} (json or xml)")
        try:
            form = _form(request.headers.get("content-type", ""), await request.body())
        except BadInput as exc:
            return _error(fmt, 400, str(exc))
        from starlette.concurrency import run_in_threadpool

        try:
            data = await run_in_threadpool(_create, form)
        except CqgovError as exc:
            return _error(fmt, _status_of(exc), safe_message(exc))
        return _reply(fmt, data, fmt311.requests_xml)

    def _create(form: dict[str, Any]) -> list[dict[str, Any]]:
        from ..store.open311 import put_intake

        req = fmt311.parse_request(form)
        check_jurisdiction(req.jurisdiction_id)
        now = store.clock.now()
        principal = server.authority.verify(req.api_key, now)
        check_server_scope(principal, store.tier, store.code)
        body = fmt311.report_body(req)
        body["reporter"] = fmt311.reporter_of(req, principal.user)
        with store.lock, store.tx():
            result = server.execute(principal, "report", body)
            put_intake(store, ServiceRequestIntake(
                event_id=result["event_id"], token=result["event_id"], service_code=req.service_code,
                media_url=req.media_url, email=req.email, phone=req.phone, first_name=req.first_name,
                last_name=req.last_name, device_id=req.device_id, account_id=req.account_id,
                api_user=principal.user, requested_at=now))
        return [{"service_request_id": result["number"], "token": result["event_id"], "service_notice": "",
                 "account_id": req.account_id}]

    return router


def _form(content_type: str, raw: bytes) -> dict[str, Any]:
    """A POST body as fields: form-encoded (the spec's) or a JSON object; one value per field."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("request body is not UTF-8") from None
    if kind == "application/json":
        try:
            doc = json.loads(text or "null")
        except RecursionError:
            raise BadInput("request body is nested too deeply") from None
        except ValueError:
            raise BadInput("request body is not valid JSON") from None
        if isinstance(doc, dict) and too_deep(doc):
            raise BadInput("request body is nested too deeply")
        if not isinstance(doc, dict):
            raise BadInput("request body must be a JSON object")
        return doc
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
        except ValueError as exc:
            raise BadInput(f"malformed form body ({exc})") from None
        twice = [k for k, v in fields.items() if len(v) > 1]
        if twice:
            raise BadInput(f"field {twice[0]!r} is given more than once")
        return {k: v[0] for k, v in fields.items()}
    raise BadInput(f"unsupported content type {kind!r}: send form fields (media as media_url) or JSON")

