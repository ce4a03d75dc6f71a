"""Hostile clients against a real `cqgov serve` process on 127.0.0.1 (issue 11: trust at the edge).

Hypothesis drives every endpoint the server's own OpenAPI lists, from outside the process: random JSON
command batches of every type (huge and deep values, lone surrogates, NUL, NaN, wrong types), raw bytes,
wrong content types, random query strings and path parameters, non-ASCII and garbage bearer tokens.
Nothing answers >= 500, and no event, directive or receipt changes: the change log after the fuzz holds
only the counted denial entries. Slow-loris connections are closed by the server's read timeouts, the
unauthenticated health is one line, and /docs works without a network.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.server import bodies
from cqgov_tui.server.auth import TokenAuthority, load_secret
from synchost import stop_process, until

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
USERS = 12  # fuzzing admins (each caller has its own denial budget, so 429s stay rare)
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`cqgov serve --tier district --code 500108` in its own process, with tokens; always stopped."""

    def __init__(self, tmp):
        self.db = str(tmp / "district-500108.duckdb")
        secret = str(tmp / "district.secret")
        self.authority = TokenAuthority(load_secret(secret))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "serve.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cqgov_tui", "serve", "--tier", "district", "--code", "500108", "--db", self.db,
             "--secret-file", secret, "--port", str(self.port), "--sweep-every", "3600", "--log-level", "warning",
             "--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", str(BODY_TIMEOUT_S)],
            stdout=self._log, stderr=subprocess.STDOUT)
        now = time.time()
        issue = self.authority.issue
        self.admins = [issue(user=f"fz{i}", role="admin", tier="district", scope="500108", now=now, ttl=3600)
                       for i in range(USERS)]
        self.peer = issue(user="peer", role="admin", tier="street", scope="500108001", now=now, ttl=3600, peer=True)
        self.street = issue(user="grid", role="grid_worker", tier="street", scope="500108001", now=now, ttl=3600)
        self.auth = {"Authorization": f"Bearer {self.admins[0]}"}
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def up(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-2000:]
        try:
            return self.http.get("/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.http.close()
        stop_process(self.proc)
        self._log.close()

    # ---- what must not change

    def state(self) -> dict:
        stats = self.http.get("/v1/stats", headers=self.auth).json()
        health = self.http.get("/v1/health", headers=self.auth).json()
        return {"events": stats["events"], "directives": stats["directives"], "receipts": stats["receipts"],
                "epoch": health["epoch"], "head": health["head"]}

    def changes_since(self, before: dict) -> list[dict]:
        r = self.http.get("/v1/changes", params={"cursor": f"{before['epoch']}:{before['head']}", "limit": 5000,
                                                 "wait": 0}, headers={**self.auth, "Accept": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()["changes"]

    def assert_unchanged(self, before: dict) -> None:
        after = self.state()
        assert {k: after[k] for k in ("events", "directives", "receipts")} == \
            {k: before[k] for k in ("events", "directives", "receipts")}
        # Only denials may have been written (counted per caller and minute, flushed by the scheduler).
        for change in self.changes_since(before):
            assert change["entity"] == "audit" and change["data"].get("action") == "denied", change


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = Served(tmp_path_factory.mktemp("fuzz"))
    try:
        until(s.up, "cqgov serve answers its health")
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------ strategies


def _nested(depth: int, leaf="x"):
    doc = leaf
    for i in range(depth):
        doc = [doc] if i % 2 else {"k": doc}
    return doc


POISON = ["\ud800", "a\x00b", "\udfff\ud800x", "999999999d", "1e400", "-1d", "9" * 5000 + "d", "x" * 5000,
          "\u202e\u200b", "500108", "500108001", "500112", "noise", "muck_spill", "verify", "read", "2h", "城管"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.sampled_from([10**400, -10**400, 2**63, 1e20, 1e308, -0.0, 1795000000, 29.5, 106.5]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Cf"]), max_size=5),
    st.sampled_from(POISON),
)
values = st.recursive(scalars | st.integers(17, 40).map(_nested),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4),
                      max_leaves=10)
FIELDS = sorted({name for model in bodies.BODIES.values() for name in model.model_fields}
                | {"csv", "user", "status", "to", "task", "items", "notification", "step", "river", "due_at"})
command_bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), values, max_size=6)
TYPES = sorted(bodies.BODIES) + ["roster.import", "person.status", "dispatch.person", "task.create", "task.act",
                                 "task.complete", "tasks.generate", "notify.ack", "flood.warn", "nope", "", "\ud800"]
command_ids = st.one_of(st.from_regex(r"\Afz[a-z0-9]{8,20}\Z"), st.sampled_from(["short", "\ud800" * 9, "x" * 65]))


DEEP = object()  # a body nested 50,000 levels deep, sent to every endpoint that takes one
DEEP_JSON = b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"


def _json(doc) -> bytes:
    # NaN, Infinity and escaped lone surrogates, as Python's json writes them: the server meets them all.
    return json.dumps(doc).encode()


def _check(r: httpx.Response) -> None:
    """Below 500, and a refusal's reason is one line."""
    assert r.status_code < 500, f"{r.request.method} {r.request.url} → {r.status_code}: {r.text[:300]}"
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        doc = r.json()
        detail = doc.get("detail") if isinstance(doc, dict) else None
        assert not isinstance(detail, str) or "\n" not in detail, detail


# ------------------------------------------------------------ fuzz


def test_random_command_batches_are_answered_below_500_and_change_nothing(served):
    before = served.state()

    @settings(FUZZ, max_examples=80)
    @given(commands=st.lists(st.fixed_dictionaries({"id": command_ids, "type": st.sampled_from(TYPES),
                                                    "body": command_bodies}), min_size=1, max_size=4),
           who=st.integers(0, USERS))
    def fuzz(commands, who):
        token = served.peer if who == USERS else served.admins[who]
        r = served.http.post("/v1/commands", content=_json({"commands": commands}),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        _check(r)
        if r.status_code == 200:
            reply = r.json()
            assert not reply["accepted"], reply
            assert all("\n" not in x["reason"] for x in reply["rejected"])

    fuzz()
    served.assert_unchanged(before)


def test_raw_bodies_and_wrong_content_types_are_4xx(served):
    before = served.state()

    @settings(FUZZ, max_examples=60)
    @given(raw=st.binary(max_size=200) | st.sampled_from([b"{" * 50_000 + b"}" * 50_000,
                                                          b'{"commands":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                                                          b'{"commands": [{"id": "\\ud800\\ud800\\ud800\\ud800", '
                                                          b'"type": "report", "body": {}}]}', b"\xff\xfe{}"]),
           ctype=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x", "", "application/json; charset=utf-8"]))
    def fuzz(raw, ctype):
        headers = {**served.auth, **({"Content-Type": ctype} if ctype else {})}
        r = served.http.post("/v1/commands", content=raw, headers=headers)
        _check(r)
        assert 400 <= r.status_code < 500, r.text
        if not ctype.startswith("application/json"):
            assert r.status_code == 415

    fuzz()
    # a well-formed batch as text/plain or a form is not read as JSON
    for ctype, raw in (("text/plain", b'{"commands": []}'), ("application/x-www-form-urlencoded", b"commands=1")):
        r = served.http.post("/v1/commands", content=raw, headers={**served.auth, "Content-Type": ctype})
        assert r.status_code == 415 and "application/json" in r.json()["detail"]
    served.assert_unchanged(before)


def _endpoints(served) -> list[tuple[str, str]]:
    spec = served.http.get("/openapi.json").json()
    return sorted((method.upper(), path) for path, ops in spec["paths"].items() for method in ops
                  if method in ("get", "post", "put", "patch", "delete"))


def test_every_endpoint_with_random_parameters_and_tokens_is_below_500(served):
    endpoints = _endpoints(served)
    assert ("POST", "/v1/commands") in endpoints and ("GET", "/v1/changes") in endpoints and len(endpoints) >= 10
    before = served.state()
    tokens = st.one_of(
        st.sampled_from([None, f"Bearer {served.admins[1]}", f"Bearer {served.street}", f"Bearer {served.peer}"]),
        # (bytes h11 can send at all: visible ASCII, blanks inside, and any byte >= 0x80)
        st.binary(max_size=40).map(lambda b: (b"Bearer x" + bytes(c for c in b if 0x20 <= c < 0x7f or c >= 0x80
                                                                   or c == 0x09)).rstrip()),
        st.sampled_from([b"Bearer \xc3\xa9.\xc3\xa9", b"Bearer a.\xff", "Bearer " + "a" * 5000 + ".b", "Basic x",
                         f"Bearer {served.admins[1][:-3]}zzz", f"Bearer {served.admins[1]}\u00e9".encode("utf-8")]))

    @settings(FUZZ, max_examples=120)
    @given(endpoint=st.sampled_from(endpoints),
           params=st.dictionaries(st.sampled_from(["cursor", "limit", "wait", "token", "include_closed", "node",
                                                   "empty", "role", "on_duty", "code", "mine", "all", "k", "since",
                                                   "format", "jurisdiction_id", "service_code", "x"]),
                                  st.text(max_size=40) | st.sampled_from(["-1", "0", "1e400", "99999999999999999999",
                                                                          "nan", "\ud800", "a:b:c"]), max_size=4),
           path_value=st.text(max_size=30) | st.sampled_from(["..", "%00", "\ud800", "x" * 300]),
           auth=tokens, body=st.none() | values | st.just(DEEP))
    def fuzz(endpoint, params, path_value, auth, body):
        method, template = endpoint
        path = re.sub(r"\{[^}]+\}", quote(path_value.encode("utf-8", "surrogatepass"), safe="") or "x", template)
        params = {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in params.items()}
        params["wait"] = "0"  # no long-poll holds the fuzz
        headers = {} if auth is None else {"Authorization": auth}
        content = None
        if method != "GET":
            headers["Content-Type"] = "application/json"
            content = DEEP_JSON if body is DEEP else _json(body)
        r = served.http.request(method, path, params=params, headers=headers, content=content)
        _check(r)

    fuzz()
    served.assert_unchanged(before)


# ------------------------------------------------------------ named cases from the issue


def test_the_issues_500s_are_4xx_with_one_line(served):
    before = served.state()
    for path in ("/v1/events", "/v1/stats", "/v1/directives", "/v1/directives/x", "/v1/sync/info", "/v1/snapshot",
                 "/v1/changes?cursor=a:0&wait=0"):
        r = served.http.get(path, headers={"Authorization": b"Bearer a.\xc3\xa9"})
        assert r.status_code == 401 and "\n" not in r.json()["detail"], (path, r.text)
    r = served.http.post("/v1/commands", content=b'{"commands": []}',
                         headers={"Authorization": b"Bearer \xc3\xa9.a", "Content-Type": "application/json"})
    assert r.status_code == 401
    deep = b'{"commands":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    r = served.http.post("/v1/commands", content=deep, headers={**served.auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]
    for method, path in _endpoints(served):  # every endpoint that takes a body
        if method != "GET":
            r = served.http.request(method, path.replace("{fmt}", "json").replace("{", "").replace("}", ""),
                                    content=DEEP_JSON, headers={**served.auth, "Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:200])
    deep_body = {"commands": [{"id": "deep-00001", "type": "report", "body": {"x": _nested(20)}}]}
    r = served.http.post("/v1/commands", content=_json(deep_body),
                         headers={**served.auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]
    poison = [("directive.send", {"targets": ["500108"], "text": "防汛", "deadline_at": 1e20}, "deadline_at"),
              ("directive.send", {"targets": ["500108"], "text": "防汛", "deadline": "999999999d"}, "a year"),
              ("report", {"category": "muck_spill", "lon": 10**400, "lat": 29.5}, "lon"),
              ("report", {"category": "muck_spill", "lon": 106.57, "lat": 29.52, "text": "\ud800"}, "Unicode"),
              ("report", {"category": "muck_spill", "lon": 106.57, "lat": 29.52, "title": "a\x00"}, "NUL"),
              ("report", {"category": "muck_spill", "lon": 106.57, "lat": 29.52, "x": _nested(9)}, "x")]
    batch = [{"id": f"poison-{i:04d}", "type": t, "body": b} for i, (t, b, _) in enumerate(poison)]
    r = served.http.post("/v1/commands", content=_json({"commands": batch}),
                         headers={**served.auth, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    reasons = {x["id"]: x["reason"] for x in r.json()["rejected"]}
    for i, (_, _, why) in enumerate(poison):
        assert why in reasons[f"poison-{i:04d}"], reasons
    # the same poison again: answered as before from the record, never re-run
    again = served.http.post("/v1/commands", content=_json({"commands": batch}),
                             headers={**served.auth, "Content-Type": "application/json"}).json()
    assert {x["id"]: x["reason"] for x in again["rejected"]} == reasons
    served.assert_unchanged(before)


def test_bad_query_parameters_are_one_line(served):
    r = served.http.get("/v1/events", params={"limit": "many"}, headers=served.auth)
    assert r.status_code == 422 and r.json() == {"detail": "limit: Input should be a valid integer, unable to parse "
                                                           "string as an integer"}
    r = served.http.get("/v1/events", params={"limit": "0"}, headers=served.auth)
    assert r.status_code == 422 and r.json()["detail"].startswith("limit: ")


def test_health_is_one_line_without_a_token_and_details_with_one(served):
    r = served.http.get("/v1/health")
    assert r.status_code == 200 and r.text == "ok\n" and r.headers["content-type"].startswith("text/plain")
    for bad in (f"Bearer {served.admins[0][:-2]}xx", "Bearer nonsense", b"Bearer \xc3\xa9"):
        r = served.http.get("/v1/health", headers={"Authorization": bad})
        assert r.text == "ok\n"  # nothing more without a valid token
    details = served.http.get("/v1/health", headers=served.auth).json()
    assert details["status"] == "ok" and details["node"] == "district-500108" and "epoch" in details \
        and "scheduler" in details and "upstream" in details["federation"]


def test_docs_are_served_by_the_server_itself(served):
    for page in ("/docs", "/redoc"):
        html = served.http.get(page).text
        urls = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', html) + re.findall(r'url:\s*["\']([^"\']+)', html)
        assert urls, html[:500]
        assert not re.search(r"https?://", html.replace("http://www.w3.org", "")), html  # no CDN, no fonts
        for url in urls:
            assert url.startswith("/"), url
            asset = served.http.get(url)
            assert asset.status_code == 200 and len(asset.content) > 0, url
    spec = served.http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    assert spec["paths"]["/v1/events"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/v1/health"]["get"]
    batch = spec["components"]["schemas"]["CommandBatch"]
    command = batch["properties"]["commands"]["items"]
    assert command["discriminator"]["propertyName"] == "type"
    assert set(bodies.BODIES) <= set(command["discriminator"]["mapping"])
    send = spec["components"]["schemas"]["DirectiveSendBody"]["properties"]
    assert any(s.get("maximum") == 180 for s in spec["components"]["schemas"]["ReportBody"]["properties"]["lon"]["anyOf"])
    assert "deadline_at" in send and "targets" in send


def test_slow_loris_connections_are_closed(served):
    """400 connections that trickle their headers (or a body) are closed by the read timeouts, and the server
    still answers everyone else."""
    socks = []
    try:
        for i in range(400):
            s = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" if i % 4 else
                      b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{")
            s.setblocking(False)
            socks.append(s)
        open_ = set(range(len(socks)))

        def all_closed() -> bool:
            for i in list(open_):
                try:
                    socks[i].send(b"X")  # one more byte: a slow client, not an idle one
                    while socks[i].recv(65536):  # whatever the server said before closing
                        pass
                    open_.discard(i)  # end of stream: closed by the server
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
            time.sleep(0.2)
            return not open_

        until(all_closed, f"the server closes 400 slow connections ({len(open_)} still open)")
        assert served.http.get("/v1/health").text == "ok\n"
    finally:
        for s in socks:
            s.close()
