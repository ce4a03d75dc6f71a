"""Issue 14 item 1: a status and position report reaches the server that holds the roster row.

A district tier server and a street tier server (its upstream the district, a peer token) run for real on
127.0.0.1. The roster is imported at the district; a grid worker's client reports to the street server, which
sends the report up (``federate.person_status`` through its outbox); the district applies it and the new
version comes back down. A row the street holds itself is applied there; an older report than the one applied
is not; only a peer whose jurisdiction holds the person may send one.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn

from cqgov_tui.clock import SimClock
from synchost import TierServing, _listen

SECRET = b"r" * 32
T0 = 1_795_000_000.0
DEADLINE_S = 30.0


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class StreetServing:
    """A street tier server whose upstream is ``district_url``, under uvicorn on a loopback port."""

    def __init__(self, tmp_path, code: str, district_url: str, clock: SimClock):
        from cqgov_tui.server.app import TierServer, TierUvicorn, create_app
        from cqgov_tui.server.auth import TokenAuthority
        from cqgov_tui.store import init_store

        self.authority = TokenAuthority(SECRET)
        peer = self.authority.issue(user=f"node:street-{code}", role="admin", tier="street", scope=code,
                                    now=clock.now(), ttl=86400, peer=True)
        self.store = init_store(str(tmp_path / f"street-{code}.duckdb"), "street", code, clock=clock)
        self.server = TierServer(self.store, self.authority, clock=clock, sweep_every=3600, upstream=district_url,
                                 upstream_token=peer)
        self.sock = _listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.server), log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=1, access_log=False)
        self.uv = TierUvicorn(config, self.server)
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        try:
            wait_for(lambda: self.uv.started or not self.thread.is_alive(), "the street server to start", 20)
            assert self.uv.started, "the street server did not start"
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.uv.should_exit = True
        self.thread.join(15)
        self.sock.close()
        self.store.close()


def command(url: str, token: str, ctype: str, body: dict) -> dict:
    from cqgov_tui.server.remote import Remote

    with Remote(url, token) as r:
        return r.command(ctype, body)


def test_a_report_at_the_street_reaches_the_district_that_holds_the_row_and_comes_back_down(tmp_path):
    from cqgov_tui.geo.registry import get_registry

    registry = get_registry()
    streets = [s.code for s in registry.children("500105")[:2]]
    grid = registry.grid_codes(streets[0])[0]
    clock = SimClock(T0)
    with TierServing(tmp_path, "district", "500105", SECRET, clock=clock) as district:
        command(district.url, district.token, "roster.import",
                {"csv": "user,name,role,department,jurisdiction,phone,email,on_duty\n"
                        f"gw1,陈思宇,grid_worker,,{grid},1,,yes\n"})
        with StreetServing(tmp_path, streets[0], district.url, clock) as street:
            wait_for(lambda: street.store.get_person("gw1"), "the roster row to reach the street")
            worker = street.authority.issue(user="gw1", role="grid_worker", tier="street", scope=streets[0],
                                            now=clock.now(), ttl=86400)
            out = command(street.url, worker, "person.status", {"status": "busy", "lon": 106.55, "lat": 29.57})
            assert out["forwarded_to"] == "district-500105"
            held = wait_for(lambda: (p := district.store.get_person("gw1")) is not None and p.status == "busy"
                            and p, "the report to reach the district")
            assert (held.lon, held.lat, held.seen_at) == (106.55, 29.57, T0)
            back = wait_for(lambda: (p := street.store.get_person("gw1")) is not None and p.status == "busy"
                            and p, "the district's new version to come back down")
            assert back.version == held.version and street.store.row_origin("person", "gw1") == "district-500105"
            # a bad report is refused at the street in one line, before anything is sent up
            with pytest.raises(Exception, match="person.status: body: give both lon and lat"):
                command(street.url, worker, "person.status", {"lon": 106.5})
            with pytest.raises(Exception, match="person.status: status:"):
                command(street.url, worker, "person.status", {"status": "asleep"})

            # a row the street holds itself (imported there) is applied there
            admin = street.authority.issue(user="adm", role="admin", tier="street", scope=streets[0],
                                           now=clock.now(), ttl=86400)
            command(street.url, admin, "roster.import",
                    {"csv": "user,name,role,department,jurisdiction,phone,email,on_duty\n"
                            f"gw9,本地网格员,grid_worker,,{grid},9,,yes\n"})
            local = command(street.url, admin, "person.status", {"user": "gw9", "status": "off"})
            assert "forwarded_to" not in local and street.store.get_person("gw9").status == "off"

            # only a peer, only for its own jurisdiction's people, and an older report never wins
            auth = district.server.authority
            own = auth.issue(user=f"node:street-{streets[0]}", role="admin", tier="street", scope=streets[0],
                             now=clock.now(), ttl=86400, peer=True)
            other = auth.issue(user=f"node:street-{streets[1]}", role="admin", tier="street", scope=streets[1],
                               now=clock.now(), ttl=86400, peer=True)
            old = {"user": "gw1", "status": "off", "at": T0 - 100}
            with pytest.raises(Exception, match="not a street-tier server|peer"):
                command(district.url, district.token, "federate.person_status", old)
            with pytest.raises(Exception, match=f"works outside street-{streets[1]}"):
                command(district.url, other, "federate.person_status", old)
            assert command(district.url, own, "federate.person_status", old)["stale"] is True
            assert district.store.get_person("gw1").status == "busy"
            with pytest.raises(Exception, match="federate.person_status: at:"):
                command(district.url, own, "federate.person_status", {"user": "gw1", "status": "off", "at": "now"})
