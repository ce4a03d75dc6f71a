"""CAP 1.2 for directives: valid against the OASIS schema, round-tripped through an independent parser,
served by a real tier server (alert, Atom feed, GeoJSON), and imported from a hydrology bureau's warning."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.cli import main
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import directives
from cqgov_tui.errors import BadInput
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.standards import cap
from cqgov_tui.store import init_store
from synchost import ServerThread

SECRET = b"cap-secret-0123456789abcdef-0123456789"
DUTY = User("wang", "王值班", Role.DUTY_OFFICER, Tier.DISTRICT, "500108")


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    root = tmp_path_factory.mktemp("cap")
    store = init_store(str(root / "district.duckdb"), "district", "500108")
    server = TierServer(store, TokenAuthority(SECRET))
    http = ServerThread(create_app(server, start_background=False)).start()
    token = server.authority.issue(user="wang", role="duty_officer", tier="district", scope="500108",
                                   now=store.clock.now(), ttl=3600)
    evac = directives.send(store, server.engine.registry, actor=DUTY, targets=["500108001", "500108002", "网格员"],
                           title="涂山镇沿江低洼区立即转移", text="长江水位超警戒，请组织沿江低洼区群众立即转移，22点前反馈。",
                           deadline_at=store.clock.now() + 7200, priority="urgent")
    plain = directives.send(store, server.engine.registry, actor=DUTY, targets=["500108"],
                            text="渣土车夜查，今晚22点前反馈", deadline_at=store.clock.now() + 3600)
    yield server, http.url, token, evac, plain, root
    http.stop()
    store.close()


def schema():
    import xmlschema

    return xmlschema.XMLSchema(str(cap.schema_path()))


def test_a_directive_is_a_valid_cap_alert_and_round_trips_through_an_independent_parser(district):
    import capparser

    server, _, _, evac, _, _ = district
    xml = cap.alert(evac, server.engine.registry)
    schema().validate(xml.decode())  # raises on any violation of the OASIS CAP 1.2 schema
    alert = capparser.parse(stringXML=xml.decode())
    assert alert.identifier[0] == f"{evac.number}-v1" and alert.sender[0] == "cqgov-district-500108"
    assert alert.msgType[0] == "Alert" and alert.status[0] == "Actual" and alert.scope[0] == "Restricted"
    [info] = alert.info[0]
    assert info.event[0] == evac.title and info.description[0] == evac.text
    assert info.responseType[0] == "Evacuate"  # 立即转移
    assert info.urgency[0] == "Immediate" and info.severity[0] == "Extreme" and info.category[0] == "Met"
    assert "网格员" in info.audience[0]
    areas = info.area[0]
    assert [a.areaDesc[0] for a in areas] == [server.engine.registry.get(c).name for c in ("500108001", "500108002")]
    for area in areas:
        rings = area.polygon[0] if isinstance(area.polygon[0], list) else [area.polygon[0]]
        for ring in rings:
            pairs = ring.split()
            assert 4 <= len(pairs) <= cap.MAX_POINTS and pairs[0] == pairs[-1]
            lat, lon = map(float, pairs[0].split(","))
            assert 28 < lat < 33 and 105 < lon < 111  # lat,lon order, inside Chongqing
        [geocode] = area.geocode[0]
        assert geocode.valueName[0] == "GB/T 10114" and geocode.value[0].startswith("500108")


@pytest.mark.parametrize("wording, expected", [("准备转移", "Prepare"), ("通知转移", "Monitor"), ("夜查", "Execute")])
def test_response_types_follow_the_evacuation_wording(wording, expected):
    assert cap.response_type(f"请{wording}") == expected


def test_a_resent_directive_is_an_update_referencing_the_first(district):
    from dataclasses import replace

    server, _, _, _, plain, _ = district
    xml = cap.alert(replace(plain, version=2), server.engine.registry).decode()
    schema().validate(xml)
    assert "<msgType>Update</msgType>" in xml and f"{plain.number}-v1" in xml.split("<references>")[1]


def test_the_server_serves_the_alert_the_feed_and_geojson_and_the_cli_shows_the_same_alert(district):
    from geojson_pydantic import FeatureCollection
    from lxml import etree

    server, url, token, evac, plain, root = district
    auth = {"Authorization": f"Bearer {token}"}
    res = httpx.get(f"{url}/v1/directives/{evac.number}.cap", headers=auth)
    assert res.status_code == 200 and res.headers["content-type"].startswith(cap.MEDIA_TYPE)
    schema().validate(res.text)
    assert httpx.get(f"{url}/v1/directives/{evac.number}.cap").status_code == 401
    assert httpx.get(f"{url}/v1/directives/ZL-NOPE.cap", headers=auth).status_code == 404
    assert httpx.get(f"{url}/v1/directives/{evac.id}", headers=auth).json()["number"] == evac.number  # JSON route intact

    feed = etree.fromstring(httpx.get(f"{url}/v1/directives.atom", headers=auth).content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    links = feed.xpath("//a:entry/a:link[@type='application/cap+xml']/@href", namespaces=ns)
    assert len(links) == 2 and all(link.endswith(".cap") for link in links)
    for link in links:
        schema().validate(httpx.get(link, headers=auth).text)

    shown = CliRunner().invoke(main, ["directive", "show", evac.number, "--cap", "--server", url, "--token", token])
    assert shown.exit_code == 0, shown.output
    schema().validate(shown.output)

    server.engine.report(category="muck_spill", lon=106.57, lat=29.52, title="渣土车撒漏", actor=DUTY)
    server.engine.report(category="garbage", code="500108002", title="垃圾堆积", actor=DUTY)
    doc = httpx.get(f"{url}/v1/events.geojson", headers=auth, params={"risk_points": "true"}).json()
    collection = FeatureCollection.model_validate(doc)
    kinds = [f.properties["kind"] for f in collection.features]
    assert kinds.count("event") == 2 and kinds.count("risk_point") > 0
    for feature in collection.features:
        lon, lat = feature.geometry.coordinates
        assert 105 < lon < 111 and 28 < lat < 33 and feature.properties["marker-color"].startswith("#")


FLOOD = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>CQSW-2026-1124-017</identifier>
  <sender>hydrology@cq.example</sender>
  <sent>2026-11-24T06:10:00+08:00</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>洪水预警</event>
    <responseType>Prepare</responseType>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <expires>{expires}</expires>
    <senderName>重庆市水文监测总站</senderName>
    <headline>长江重庆段洪水黄色预警</headline>
    <description>受上游来水影响，长江寸滩站水位将超警戒水位1.2米。</description>
    <instruction>沿江低洼地带做好转移准备。</instruction>
    <area>
      <areaDesc>南岸区、渝中区沿江</areaDesc>
      {geocodes}
    </area>
  </info>
</alert>"""


def flood(msg_type="Alert", expires=None, geocodes=("500108", "500103")) -> str:
    import time

    expires = expires or cap.cap_time(time.time() + 6 * 3600)
    codes = "".join(f"<geocode><valueName>GB/T 2260</valueName><value>{c}</value></geocode>" for c in geocodes)
    return FLOOD.format(msg_type=msg_type, expires=expires, geocodes=codes)


def test_a_cap_import_makes_a_directive_once_and_bad_alerts_change_nothing(district, tmp_path):
    server, url, token, *_ = district
    path = tmp_path / "flood.xml"
    path.write_text(flood(), "utf-8")
    args = ["directive", "import", "--cap", str(path), "--server", url, "--token", token, "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    made = json.loads(res.output)
    assert made["targets"] == ["500108"]  # 渝中区 (500103) is not this district's to direct
    d = server.store.get_directive(made["directive_id"])
    assert d.priority == "urgent" and d.title == "长江重庆段洪水黄色预警" and "【准备转移】" in d.text
    assert "重庆市水文监测总站" in d.text and d.require_ack
    back = cap.alert(d, server.engine.registry).decode()
    schema().validate(back)
    assert "<responseType>Prepare</responseType>" in back

    before = server.store.count_rows("directives")
    again = CliRunner().invoke(main, args)  # the same alert: its directive id is taken, so it is refused
    assert again.exit_code != 0 and len(again.output.strip().splitlines()) == 1, again.output
    for text, says in [
        (flood(msg_type="Cancel"), "not withdrawn"),
        (flood(geocodes=("500112",)), "no area of the alert lies within"),
        (flood().replace("<status>Actual</status>", "<status>Real</status>"), "not valid CAP 1.2"),
        ("<alert>unclosed", "not well-formed"),
        ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>',
         "DOCTYPE"),
        ("<feed xmlns='http://www.w3.org/2005/Atom'/>", "not a CAP 1.2 <alert>"),
    ]:
        path.write_text(text, "utf-8")
        res = CliRunner().invoke(main, args)
        assert res.exit_code != 0 and says in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert server.store.count_rows("directives") == before


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_the_cap_parser_refuses_anything_else_in_one_line(raw):
    try:
        cap.parse_alert(raw)
    except BadInput as exc:
        assert "\n" not in str(exc)
