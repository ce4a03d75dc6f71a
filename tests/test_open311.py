"""Open311 GeoReport v2 on a real district server on 127.0.0.1: a third-party client (georeport) and raw HTTP."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.domain.entities import Role, Status, Tier, User
from cqgov_tui.errors import BadInput
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.standards import open311
from cqgov_tui.store import init_store
from synchost import ServerThread

SECRET = b"open311-secret-0123456789abcdef-xyz"
SPOT = {"lat": "29.52", "long": "106.57"}  # 南岸区 南坪街道


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    root = tmp_path_factory.mktemp("open311")
    store = init_store(str(root / "district.duckdb"), "district", "500108")
    server = TierServer(store, TokenAuthority(SECRET))
    http = ServerThread(create_app(server, start_background=False)).start()
    token = server.authority.issue(user="hotline-12345", role="dispatcher", tier="district", scope="500108",
                                   now=store.clock.now(), ttl=3600)
    yield server, http.url, token
    http.stop()
    store.close()


def post(url, fmt="json", **fields):
    return httpx.post(f"{url}/open311/v2/requests.{fmt}", data=fields, timeout=10)


def walk_to_closed(engine, event_id):
    """Move an event round the loop with whichever role may take each step."""
    for action in ("verify", "assess", "dispatch", "accept", "arrive", "dispose", "feedback", "close"):
        event = engine.store.get_event(event_id)
        if not Status(event.status).is_open:
            return
        for role in Role:
            user = User("t", "t", role, Tier.DISTRICT, "500108", "cgj" if role is Role.DEPARTMENT else None)
            if action in engine.allowed_actions(event, user):
                engine.act(event_id, action, user, departments=["cgj"] if action == "dispatch" else None)
                break


def test_the_georeport_client_lists_services_and_reads_a_posted_request_in_json_and_xml(district):
    from georeport import GeoReport

    server, url, token = district
    client = GeoReport(f"{url}/open311/v2", jurisdiction="500108")
    services = client.get_service_list()
    assert len(services) == 40
    by_code = {s["service_code"]: s for s in services}
    assert by_code["muck_spill"]["service_name"] == "渣土车撒漏" and by_code["muck_spill"]["group"]
    assert client.get_service_definition("muck_spill")["service_code"] == "muck_spill"
    xml_services = GeoReport(f"{url}/open311/v2", output_format="xml").get_service_list()
    assert [s["service_code"] for s in xml_services] == [s["service_code"] for s in services]

    res = post(url, api_key=token, service_code="manhole_cover", description="人行道井盖缺失，行人易踩空",
               phone="023-12345678", media_url="https://photos.example/manhole.jpg", **SPOT)
    assert res.status_code == 200, res.text
    [made] = res.json()
    request_id, req_token = made["service_request_id"], made["token"]

    one = client.get_service_request(request_id)
    assert one["service_code"] == "manhole_cover" and one["status"] == "open"
    assert one["description"] == "人行道井盖缺失，行人易踩空" and one["media_url"] == "https://photos.example/manhole.jpg"
    assert one["address_id"].startswith("500108") and one["agency_responsible"]
    assert "phone" not in one and "023-12345678" not in str(one)  # contact details stay with the intake
    listed = client.get_service_requests(service_code="manhole_cover", status="open")
    assert request_id in [r["service_request_id"] for r in listed]
    as_xml = GeoReport(f"{url}/open311/v2", output_format="xml").get_service_request(request_id)
    assert as_xml["service_request_id"] == request_id and as_xml["status"] == "open"

    event = server.store.get_event(req_token)
    assert event.source == "citizen" and event.category_code == "manhole_cover" and event.reporter == "023-12345678"
    tok = httpx.get(f"{url}/open311/v2/tokens/{req_token}.json").json()
    assert tok == [{"service_request_id": request_id, "token": req_token}]


def test_a_posted_request_walks_the_loop_and_its_open311_status_follows(district):
    server, url, token = district
    res = post(url, api_key=token, service_code="garbage", description="小区门口垃圾三天未清运", **SPOT)
    assert res.status_code == 200, res.text
    rid, event_id = res.json()[0]["service_request_id"], res.json()[0]["token"]
    first = httpx.get(f"{url}/open311/v2/requests/{rid}.json").json()[0]
    assert first["status"] == "open" and first["expected_datetime"] > first["requested_datetime"]

    walk_to_closed(server.engine, event_id)
    assert server.store.get_event(event_id).status == "closed"
    done = httpx.get(f"{url}/open311/v2/requests/{rid}.json").json()[0]
    assert done["status"] == "closed" and "已办结" in done["status_notes"]
    assert done["updated_datetime"] >= first["updated_datetime"]
    assert rid in [r["service_request_id"] for r in
                   httpx.get(f"{url}/open311/v2/requests.json", params={"status": "closed"}).json()]
    assert rid not in [r["service_request_id"] for r in
                       httpx.get(f"{url}/open311/v2/requests.json", params={"status": "open"}).json()]
    xml = httpx.get(f"{url}/open311/v2/requests/{rid}.xml")
    assert xml.headers["content-type"].startswith("application/xml") and "<status>closed</status>" in xml.text


def test_a_request_by_address_id_is_placed_at_that_street(district):
    _, url, token = district
    res = post(url, api_key=token, service_code="streetlight", address_id="500108001", description="路灯不亮")
    assert res.status_code == 200, res.text
    got = httpx.get(f"{url}/open311/v2/requests/{res.json()[0]['service_request_id']}.json").json()[0]
    assert got["address_id"] == "500108001"


@pytest.mark.parametrize("fields, status, says", [
    ({"service_code": "garbage", **SPOT}, 400, "api_key"),
    ({"api_key": "forged.token", "service_code": "garbage", **SPOT}, 403, "token"),
    ({"service_code": "no_such_service", **SPOT}, 400, "unknown category"),
    ({"service_code": "garbage"}, 400, "a request needs a location"),
    ({"service_code": "garbage", "lat": "29.52"}, 400, "give both lat and long"),
    ({"service_code": "garbage", "lat": "north", "long": "106.57"}, 400, "lat"),
    ({"service_code": "garbage", "lat": "95", "long": "106.57"}, 400, "lat"),
    ({"service_code": "garbage", "address_id": "500108;DROP"}, 400, "address_id"),
    ({"service_code": "garbage", "address_id": "999999999"}, 400, "999999999"),
    ({"service_code": "garbage", "lat": "29.56", "long": "106.45"}, 403, "outside"),  # 沙坪坝区, not this district
    ({"service_code": "garbage", "email": "not-an-address", **SPOT}, 400, "email"),
    ({"service_code": "garbage", "jurisdiction_id": "500112", **SPOT}, 404, "jurisdiction_id"),
])
def test_bad_posts_get_one_open311_error_and_change_nothing(district, fields, status, says):
    server, url, token = district
    if "api_key" not in fields and says != "api_key":
        fields = {"api_key": token, **fields}
    before = server.store.count_rows("events")
    for fmt in ("json", "xml"):
        res = post(url, fmt, **fields)
        assert res.status_code == status, res.text
        if fmt == "json":
            [err] = res.json()
            assert err["code"] == status and says in err["description"] and "\n" not in err["description"]
        else:
            assert "<errors><error><code>" in res.text and says in res.text
    assert server.store.count_rows("events") == before


def test_get_errors_and_unknown_ids(district):
    _, url, _ = district
    assert httpx.get(f"{url}/open311/v2/requests/NOPE-1.json").status_code == 404
    assert httpx.get(f"{url}/open311/v2/tokens/nope.xml").status_code == 404
    assert httpx.get(f"{url}/open311/v2/services.yaml").status_code == 404
    bad = httpx.get(f"{url}/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert bad.status_code == 400 and "start_date" in bad.json()[0]["description"]
    wide = httpx.get(f"{url}/open311/v2/requests.json",
                     params={"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-12-01T00:00:00+08:00"})
    assert wide.status_code == 400 and "90 days" in wide.json()[0]["description"]
    junk = httpx.post(f"{url}/open311/v2/requests.json", content=b"\xff\xfe", headers={"content-type": "text/plain"})
    assert junk.status_code == 400


_fields = st.dictionaries(
    st.sampled_from(["api_key", "service_code", "lat", "long", "address_id", "description", "media_url", "email",
                     "phone", "first_name", "jurisdiction_id", "attribute[x]"]),
    st.one_of(st.text(max_size=40), st.floats(allow_nan=True), st.integers(), st.none()), max_size=8)


@settings(max_examples=200, deadline=None)
@given(_fields)
def test_the_post_parser_accepts_or_refuses_in_one_line(form):
    try:
        req = open311.parse_request(form)
    except BadInput as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert req.api_key and req.service_code
    assert (req.lat is not None and req.long is not None) or req.address_id
