"""Typed command bodies (issue 11 item 3): poison commands are rejected with their reason and never wedge an
outbox; deferral only while the store is unavailable. The models are checked directly (hypothesis: any JSON
body is a model or one line of BadInput), through a real tier server and the real sync client, and through
the CLI."""

from __future__ import annotations

import math
import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.errors import BadInput
from cqgov_tui.server import bodies
from cqgov_tui.server.app import TierServer
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.server.people_api import BODIES as PEOPLE_BODIES
from cqgov_tui.store import init_store
from cqgov_tui.store.outbox import ACKED, PENDING, REJECTED
from cqgov_tui.sync.client import SyncClient

from synchost import TierServing

SECRET = b"command-bodies-test-secret-0123456789abcdef"
NOW = 1_795_000_000.0
DEADLINE_S = 60.0


def _nested(depth: int):
    doc: object = "x"
    for i in range(depth):
        doc = [doc] if i % 2 else {"k": doc}
    return doc


# ------------------------------------------------------------ the models


@pytest.mark.parametrize("ctype, body, why", [
    ("directive.send", {"targets": ["500108"], "text": "防汛", "deadline_at": 1e20}, "deadline_at: must be a time"),
    ("directive.send", {"targets": ["500108"], "text": "防汛", "deadline": "999999999d"}, "more than a year ahead"),
    ("directive.send", {"targets": ["500108"], "text": "防汛", "deadline": "1e400"}, "more than a year ahead"),
    ("directive.send", {"targets": ["500108"], "text": "防汛", "deadline_at": NOW - 1}, "in the past"),
    ("directive.send", {"targets": ["500108"], "text": "防汛", "deadline_at": NOW + 367 * 86400}, "a year ahead"),
    ("directive.send", {"targets": ["500108"], "text": "防汛"}, "give a deadline"),
    ("directive.send", {"targets": [], "text": "防汛", "deadline": "2h"}, "targets: must be a non-empty list"),
    ("report", {"category": "muck_spill", "lon": 10**400, "lat": 29.5}, "lon: Input should be a valid number"),
    ("report", {"category": "muck_spill", "lon": 106.5, "lat": 91}, "lat:"),
    ("report", {"category": "muck_spill", "lon": math.inf, "lat": 29.5}, "lon: must be a finite number"),
    ("report", {"category": "muck_spill", "lon": True, "lat": 29.5}, "not true or false"),
    ("report", {"category": "muck_spill", "lon": 106.5}, "give both lon and lat"),
    ("report", {"category": "muck_spill", "code": "500108001", "text": "\ud800"}, "text: is not valid Unicode"),
    ("report", {"category": "muck_spill", "code": "500108001", "title": "a\x00b"}, "title: must not contain a NUL"),
    ("report", {"category": "muck_spill", "code": "500108001", "title": "x" * 201}, "title:"),
    ("report", {"category": "  ", "code": "500108001"}, "category: is empty"),
    ("report", {"category": "noise", "code": "500108001", "source": "sensor"}, "send them as sensor.reading"),
    ("report", {"category": "noise", "code": "500108001", "colur": "red"}, "colur: is not a field"),
    ("act", {"event": "x", "action": "verify", "departments": [[]]}, "departments.0"),
    ("supervise", {"event": "x", "note": "快", "deadline_at": "soon"}, "deadline_at"),
    ("receipt", {"directive": "d", "state": 3}, "state"),
    ("sensor.reading", {"readings": []}, "non-empty list"),
    ("sensor.reading", {"readings": [["SN-1", 10**400, 1.0]]}, "readings.0.1"),
    ("sensor.reading", {"readings": [["SN-1", NOW, 1.0]] * 501}, "readings"),
    ("federate.event", {"event": {"id": "x"}}, "event."),
    ("nope", {}, "unknown command type"),
])
def test_a_poison_body_is_refused_with_one_line_naming_the_field(ctype, body, why):
    with pytest.raises(BadInput) as err:
        bodies.parse(ctype, body, NOW)
    message = str(err.value)
    assert why in message and "\n" not in message and len(message) <= 300, message


def test_good_bodies_parse_and_deadlines_come_from_the_servers_clock():
    d = bodies.parse("directive.send", {"targets": "500108，城管", "text": "防汛", "deadline": "2h"}, NOW)
    assert d.targets == ["500108", "城管"] and d.deadline_at == NOW + 7200 and d.require_ack is True
    r = bodies.parse("report", {"category": "muck_spill", "lon": "106.57", "lat": 29, "text": "渣土车撒漏"}, NOW)
    assert (r.lon, r.lat, r.source) == (106.57, 29.0, "citizen")
    s = bodies.parse("sensor.reading", {"readings": [["SN-1", NOW, math.nan], ["SN-2", "x", None]]}, NOW)
    assert len(s.readings) == 2  # shape and NaN are refused per reading by the monitor, the rest applied


def test_every_command_type_of_a_tier_server_has_a_declared_body(tmp_path):
    store = init_store(str(tmp_path / "d.duckdb"), "district", "500108", clock=SimClock(NOW))
    try:
        server = TierServer(store, TokenAuthority(SECRET), clock=store.clock)
        assert set(server.handler.types) == set(bodies.BODIES) | set(PEOPLE_BODIES)
        batch = bodies.command_batch(PEOPLE_BODIES).model_json_schema()
        mapping = batch["properties"]["commands"]["items"]["discriminator"]["mapping"]
        assert set(mapping) == set(server.handler.types)
    finally:
        store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, 2**70]) | st.floats()
    | st.text(max_size=20) | st.sampled_from(["\ud800", "a\x00", "999999999d", "2h", "500108", "noise"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
FIELDS = sorted({name for model in bodies.BODIES.values() for name in model.model_fields})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ctype=st.sampled_from(sorted(bodies.BODIES)),
       body=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6) | json_values)
def test_any_json_body_is_a_bounded_model_or_one_line_of_bad_input(ctype, body):
    try:
        model = bodies.parse(ctype, body, NOW)
    except BadInput as exc:
        assert "\n" not in str(exc) and str(exc).startswith(ctype)
        return
    for name, value in model:
        if isinstance(value, float):
            assert math.isfinite(value)
            if name.endswith("_at"):
                assert bodies.EARLIEST <= value < bodies.LATEST
                if ctype in ("directive.send", "supervise"):
                    assert NOW < value <= NOW + bodies.MAX_AHEAD_S
        if isinstance(value, str):
            assert "\x00" not in value
            value.encode("utf-8")  # no lone surrogate


# ------------------------------------------------------------ through a real server and the sync client


def _until(cond, what: str):
    give_up = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > give_up:
            raise AssertionError(f"not within {DEADLINE_S:.0f} s: {what}")
        time.sleep(0.05)


def _no_local_effect(_store) -> None:
    pass  # the test's commands are judged by the server only


@pytest.fixture
def serving(tmp_path):
    with TierServing(tmp_path, "district", "500108", SECRET) as s:
        replica = init_store(str(tmp_path / "console.duckdb"), "district", "500108", node="console-test")
        client = SyncClient(replica, s.url, token=s.token, backoff_base=0.01, backoff_cap=0.05)
        try:
            client.pull_until_caught_up()
            yield s, client
        finally:
            client.close()
            replica.close()


def _drain(client: SyncClient) -> None:
    def drained() -> bool:
        client.push_once(force=True)
        return client.outbox.count(PENDING) == 0

    _until(drained, "the outbox drains")


def test_poison_commands_end_rejected_and_the_commands_behind_them_reach_the_server(serving):
    s, client = serving
    add = lambda t, b: client.enqueue(t, b, local_effect=_no_local_effect)  # noqa: E731
    first = add("report", {"category": "noise", "code": "500108001", "title": "夜间施工噪声"})
    poison = {
        add("directive.send", {"targets": ["500108"], "text": "防汛", "deadline_at": 1e20}): "deadline_at",
        add("directive.send", {"targets": ["500108"], "text": "防汛", "deadline": "999999999d"}): "a year ahead",
        add("report", {"category": "muck_spill", "lon": 10**400, "lat": 29.5}): "lon",
        add("report", {"category": "noise", "code": "500108001", "text": "\ud800"}): "Unicode",
        add("report", {"category": "noise", "code": "500108001", "x": _nested(20)}): "nested too deeply",
    }
    behind = [add("report", {"category": "noise", "code": "500108002", "title": "广场舞噪声"}),
              add("directive.send", {"targets": ["500108001"], "text": "今晚防汛值守", "deadline": "2h"})]
    _drain(client)
    for cid, why in poison.items():
        row = client.outbox.get(cid)
        assert row.state == REJECTED and why in row.result["reason"], (why, row.result)
    for cid in [first, *behind]:
        row = client.outbox.get(cid)
        assert row.state == ACKED, row
    assert {e.title for e in s.store.all_events()} == {"夜间施工噪声", "广场舞噪声"}
    assert [d.text for d in s.store.directives()] == ["今晚防汛值守"]


def test_a_handler_failure_with_the_store_up_is_rejected_not_retried(serving):
    s, client = serving
    report = s.server.handler.handlers["report"]

    def buggy(actor, body):
        if body.title == "触发缺陷":
            raise OverflowError("timestamp out of range for platform time_t")
        return report(actor, body)

    s.server.handler.handlers["report"] = buggy
    bad = client.enqueue("report", {"category": "noise", "code": "500108001", "title": "触发缺陷"},
                         local_effect=_no_local_effect)
    good = client.enqueue("report", {"category": "noise", "code": "500108001", "title": "正常上报"},
                          local_effect=_no_local_effect)
    _drain(client)
    row = client.outbox.get(bad)
    assert row.state == REJECTED and "OverflowError" in row.result["reason"] and "time_t" not in row.result["reason"]
    assert client.outbox.get(good).state == ACKED
    assert [e.title for e in s.store.all_events()] == ["正常上报"]


def test_deferred_only_while_the_store_is_unavailable_then_everything_applies_in_order(serving):
    s, client = serving
    execute = s.server.handler.execute
    outage = {"calls": 0}

    def unavailable(user, ctype, body):
        if outage["calls"] < 2:  # the batch's transaction and its one-by-one retry both meet the outage
            outage["calls"] += 1
            raise OSError(28, "No space left on device")
        return execute(user, ctype, body)

    s.server.handler.execute = unavailable
    ids = [client.enqueue("report", {"category": "noise", "code": f"50010800{i}", "title": f"第{i}件"},
                          local_effect=_no_local_effect) for i in range(1, 4)]
    first = client.push_once(force=True)
    assert first.deferred == 3 and first.accepted == first.rejected == 0, first
    assert client.outbox.count(PENDING) == 3  # kept, to be retried
    _drain(client)
    assert all(client.outbox.get(c).state == ACKED for c in ids)
    events = sorted(s.store.all_events(), key=lambda e: e.number)
    assert [e.title for e in events] == ["第1件", "第2件", "第3件"]  # applied in the order they were made


# ------------------------------------------------------------ the CLI


def test_cli_directive_send_with_a_poison_deadline_is_one_line_and_exit_2(tmp_path):
    with TierServing(tmp_path, "district", "500108", SECRET) as s:
        args = ["directive", "send", "--server", s.url, "--token", s.token, "--to", "500108",
                "--deadline", "999999999d", "--text", "防汛值守"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "more than a year ahead" in lines[0] and "{" not in lines[0], res.output
        # the store unavailable: one line, exit 6 (a server that failed), nothing applied
        execute = s.server.handler.execute

        def unavailable(user, ctype, body):
            raise OSError(5, "Input/output error")

        s.server.handler.execute = unavailable
        res = CliRunner().invoke(main, [*args[:-4], "--deadline", "2h", "--text", "防汛值守"])
        s.server.handler.execute = execute
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 6 and len(lines) == 1 and "try again later" in lines[0] \
            and "deferred" not in lines[0], res.output
        assert s.store.directives() == []
