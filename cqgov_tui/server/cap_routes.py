"""Standards on the tier server's /v1 API: a directive as CAP 1.2, the directives' Atom feed, events as GeoJSON.

Same token and the same scoping rule (``auth.visible``) as the JSON routes
beside them. Included before ``/v1/directives/{ref}`` so that ``….cap`` is
routed here rather than read as part of a directive reference.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from ..scope import CITY_CODE
from ..standards import cap, geojson
from .auth import visible

if TYPE_CHECKING:
    from .app import TierServer


def make_standards_router(server: TierServer) -> APIRouter:
    store = server.store
    router = APIRouter(prefix="/v1")

    def directive_for(ref: str, request: Request):
        user = server.authenticate(request)
        d = store.get_directive(ref)
        if d is None or not visible(user.scope_code, ",".join(d.targets), "directive"):
            raise HTTPException(404, f"no directive {ref!r}")
        return d

    @router.get("/directives/{ref}.cap", tags=["directives"], response_class=Response,
                summary="A directive as a CAP 1.2 alert (OASIS), with its areas' shapes and codes")
    def directive_cap(ref: str, request: Request) -> Response:
        d = directive_for(ref, request)
        return Response(cap.alert(d, server.engine.registry), media_type=cap.MEDIA_TYPE)

    @router.get("/directives.atom", tags=["directives"], response_class=Response,
                summary="Atom feed of the directives in the caller's scope, each linking to its CAP alert")
    def directive_feed(request: Request, limit: int = Query(100, ge=1, le=1000)) -> Response:
        user = server.authenticate(request)
        shown = [d for d in store.directives(limit=limit) if visible(user.scope_code, ",".join(d.targets), "directive")]
        base = str(request.base_url).rstrip("/")
        body = cap.feed(shown, server.engine.registry, base_url=base, feed_id=f"urn:cqgov:feed:{store.node}",
                        title=f"cqgov {store.tier.zh} {store.code} 政令", now=server.clock.now())
        return Response(body, media_type="application/atom+xml")

    @router.get("/events.geojson", tags=["events"], response_class=Response,
                summary="Events in the caller's scope (and optionally risk points) as a GeoJSON FeatureCollection")
    def events_geojson(request: Request, limit: int = Query(1000, ge=1, le=20000), include_closed: bool = False,
                       risk_points: bool = False) -> Response:
        user = server.authenticate(request)
        rows = store.queue(include_closed=include_closed, limit=limit * 4 if user.scope_code != CITY_CODE else limit)
        shown = [e for e in rows if visible(user.scope_code, e.grid_code or e.street_code or e.district_code)][:limit]
        catalogue = server.engine.catalogue
        points = geojson.risk_points_in(catalogue, user.scope_code) if risk_points else []
        doc = geojson.collection(shown, points, catalogue=catalogue, registry=server.engine.registry)
        return Response(json.dumps(doc, ensure_ascii=False), media_type=geojson.MEDIA_TYPE)

    return router
