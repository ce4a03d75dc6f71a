"""GeoJSON on stdout for `cqgov events list --geojson` (the document itself is built in ``standards.geojson``)."""

from __future__ import annotations

import json

import click

from ..textsafe import json_text


def emit_geojson(store, events, with_risk_points: bool) -> None:
    from ..catalogue.loader import load_catalogue
    from ..geo.registry import get_registry
    from ..scope import CITY_CODE
    from ..standards import geojson

    catalogue = load_catalogue()
    scope = CITY_CODE if store.tier.value == "city" else store.code
    points = geojson.risk_points_in(catalogue, scope) if with_risk_points else []
    doc = geojson.collection(events, points, catalogue=catalogue, registry=get_registry())
    click.echo(json_text(json.dumps(doc, ensure_ascii=False)))  # C1, bidi and zero-width \u-escaped
