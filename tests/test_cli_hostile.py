"""Hostile text never reaches the terminal raw (issue 11 item 6).

Text with terminal escapes (CSI clear-screen, OSC 0 window title, OSC 8 hyperlink, OSC 52 clipboard), a C1
CSI (U+009B), backspaces and a carriage return, RTL overrides and zero-width characters is put into a
store — as a citizen's report, an acting user's name and note, a federated copy's address — and into a
replica synced from a real server on 127.0.0.1; then every command that prints fields runs through
CliRunner and its stdout and stderr bytes are checked: no control byte, no C1, no bidi or zero-width
character, and the hostile text still shows (as visible marks), so nothing is silently lost either.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store, open_store
from cqgov_tui.textsafe import is_plain, json_text, plain
from synchost import ServerThread

HOSTILE = ("\x1b[2J\x1b[H"                       # clear the screen, cursor home
           "\x1b]0;pwned title\x07"               # OSC 0: window title
           "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: hyperlink
           "\x1b]52;c;cm0gLXJmIH4=\x07"           # OSC 52: write the clipboard
           "\x9b31m"                              # C1 CSI (U+009B)
           "abc\x08\x08\x08\rOK"                  # backspaces and carriage return overwrite
           "\u202egnp.exe\u202c"                  # RTL override
           "zero\u200bwidth\u200d\u2060\ufeff"    # zero-width characters
           "\x00\x7f\x85end")                     # NUL, DEL, NEL
SECRET = b"hostile-cli-secret-0123456789abcdef0123"
ADMIN = User("admin", "管理员", Role.ADMIN, Tier.DISTRICT, "500108")
EVIL_USER = User("ev\x1b]0;x\x07il\u202e", "evil", Role.ADMIN, Tier.DISTRICT, "500108")

_FORBIDDEN_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
_FORBIDDEN_CHARS = ["\u202e", "\u202c", "\u200b", "\u200d", "\u2060", "\ufeff", "\x9b", "\x85"]


def assert_inert(data: bytes, what: str) -> None:
    found = _FORBIDDEN_BYTES.search(data)
    assert found is None, f"{what}: raw control byte {found.group()!r} at {found.start()}: {data[:300]!r}"
    text = data.decode("utf-8")
    for ch in _FORBIDDEN_CHARS:
        assert ch not in text, f"{what}: raw U+{ord(ch):04X}"


def run(*args, shows: bool = True, code: int | None = 0):
    res = CliRunner().invoke(main, [str(a) for a in args])
    what = " ".join(str(a) for a in args[:3])
    if code is not None:
        assert res.exit_code == code, (what, res.exit_code, res.output)
    assert_inert(res.stdout_bytes, what + " (stdout)")
    assert_inert(res.stderr_bytes, what + " (stderr)")
    if shows:  # the hostile text was printed, made visible
        assert "␛" in res.output or "<U+202E>" in res.output or "\\u202e" in res.output, (what, res.output[:400])
    return res


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    """A district store: a hostile event (report, acting user, notes), a federated copy whose address and
    reporter are hostile, and a closed hostile event for the review."""
    root = tmp_path_factory.mktemp("hostile")
    path = str(root / "district.duckdb")
    store = init_store(path, "district", "500108")
    engine = Engine(store)
    event = engine.report(category="muck_spill", title=HOSTILE, text=HOSTILE + "\nsecond line", code="500108001",
                          reporter=EVIL_USER.user, actor=EVIL_USER)
    engine.act(event.id, "comment", EVIL_USER, note=HOSTILE)
    current = store.get_event(event.id)
    copy = dataclasses.replace(current, address=HOSTILE, reporter=HOSTILE, version=current.version + 1)
    store.upsert_event_copy(copy, origin="street-500108001")
    closed = engine.report(category="streetlight", title=HOSTILE, code="500108001", actor=ADMIN)
    for action in ("verify", "dispatch", "accept", "arrive", "dispose", "feedback", "close"):
        engine.act(closed.id, action, EVIL_USER, note=HOSTILE)
    numbers = (store.get_event(event.id).number, store.get_event(closed.id).number)
    store.close()
    (root / "district.secret").write_bytes(SECRET)
    return root, path, numbers


def test_the_store_really_holds_the_hostile_text(hostile_store):
    _, path, (number, _) = hostile_store
    with open_store(path) as store:
        event = store.resolve_event(number)
        assert event.title == HOSTILE and event.address == HOSTILE
        assert any(a.actor == EVIL_USER.user for a in store.audit_entries(event.id))


def test_every_local_command_prints_hostile_fields_inert(hostile_store, tmp_path):
    root, path, (number, closed) = hostile_store
    run("events", "list", "--db", path)
    run("events", "list", "--db", path, "--all", "--text", "end")
    listed = run("events", "list", "--db", path, "--json")
    assert HOSTILE in {e["title"] for e in json.loads(listed.stdout)["events"]}  # escaped, not lost
    shown = run("events", "show", "--db", path, number)
    assert len([l for l in shown.stdout.splitlines() if "second line" in l]) == 1  # a field cannot forge a line
    doc = json.loads(run("events", "show", "--db", path, number, "--json").stdout)
    assert doc["address"] == HOSTILE and EVIL_USER.user in {a["actor"] for a in doc["audit"]}
    run("events", "act", "--db", path, number, "comment", "--note", HOSTILE, "--user", HOSTILE, shows=False)
    run("events", "act", "--db", path, number, "comment", "--note", "x", "--json", shows=True)
    run("review", "--db", path, closed)
    run("review", "--db", path, closed, "--json")
    run("audit", "verify", "--db", path, shows=False)
    run("kpi", "--db", path, "--depth", "4", shows=False)
    run("kpi", "--db", path, "--json", shows=False)
    readings = tmp_path / "readings.csv"
    readings.write_text(json.dumps({"sensor": HOSTILE, "measured_at": 1795000000, "value": 3}) + "\n",
                        encoding="utf-8")
    run("sensors", "ingest", "--db", path, readings, code=2)
    run("sensors", "ingest", "--db", path, readings, "--json", code=2)


def test_errors_that_echo_what_was_typed_are_inert(hostile_store):
    _, path, _ = hostile_store
    run("events", "show", "--db", path, HOSTILE, code=2)
    run("events", "list", "--db", path, "--district", HOSTILE, code=2)
    run("events", "list", "--db", path, "--category", HOSTILE, code=2)
    run("events", "list", "--db", path, "--limit", HOSTILE, code=2)
    run("locate", HOSTILE, "29", code=2)
    run("map", "--code", HOSTILE, code=2)
    run("drill", "run", HOSTILE, code=2)
    run("events", "report", "--db", path, "--category", "muck_spill", "--code", "500108001", "--role", HOSTILE, code=2)


@pytest.fixture(scope="module")
def server(hostile_store):
    root, path, _ = hostile_store
    store = open_store(path)
    http = ServerThread(create_app(TierServer(store, TokenAuthority(SECRET)), start_background=False)).start()
    try:
        yield root, http.url
    finally:
        http.stop()
        store.close()


def _token(root, user="duty", role="duty_officer"):
    res = CliRunner().invoke(main, ["token", "create", "--secret-file", str(root / "district.secret"), "--user",
                                    user, "--role", role, "--tier", "district", "--scope", "500108"])
    assert res.exit_code == 0, res.output
    return res.stdout.strip()


def test_a_synced_replica_and_the_server_print_inert(server, tmp_path):
    root, url = server
    duty = _token(root)
    sent = CliRunner().invoke(main, ["directive", "send", "--server", url, "--token", duty, "--to", "500108001",
                                     "--deadline", "2h", "--title", HOSTILE, "--text", HOSTILE, "--json"])
    assert_inert(sent.stdout_bytes, "directive send")
    assert_inert(sent.stderr_bytes, "directive send")
    if sent.exit_code == 0:  # a server that refuses such text is fine too; then the events carry it
        ref = json.loads(sent.stdout)["number"]
        run("directive", "status", "--server", url, "--token", duty, ref)
        run("directive", "status", "--server", url, "--token", duty, ref, "--json")
    replica = tmp_path / "replica.duckdb"
    run("sync", "--server", url, "--token", duty, "--db", replica, "--once", shows=False)
    run("sync", "--server", url, "--token", duty, "--db", replica, "--once", "--json", shows=False)
    run("events", "list", "--db", replica)
    number = json.loads(run("events", "list", "--db", replica, "--json").stdout)["events"][0]["number"]
    for ref in {number} | {e["number"] for e in json.loads(
            run("events", "list", "--db", replica, "--json", "--all").stdout)["events"]}:
        run("events", "show", "--db", replica, ref)
    token = run("token", "create", "--secret-file", root / "district.secret", "--user", HOSTILE, "--name", HOSTILE,
                "--role", "admin", "--tier", "district", "--scope", "500108", "--json")
    assert json.loads(token.stdout)["user"] == HOSTILE


# ---- the one transformation


def test_plain_marks_every_kind_visibly():
    shown = plain(HOSTILE)
    assert is_plain(shown) and "\n" not in shown
    for mark in ("␛[2J", "␛]0;pwned title␇", "␛]52;", "<U+009B>31m", "abc␈␈␈␍OK", "<U+202E>gnp.exe<U+202C>",
                 "zero<U+200B>width<U+200D><U+2060><U+FEFF>", "␀␡<U+0085>end"):
        assert mark in shown
    assert plain("行一\n行二", multiline=True) == "行一\n行二" and plain("行一\n行二") == "行一␊行二"
    assert plain("南岸区\t南坪街道 渣土车撒漏 🙂") == "南岸区\t南坪街道 渣土车撒漏 🙂"  # ordinary text untouched


def test_json_text_escapes_what_json_dumps_leaves_raw():
    raw = json.dumps({"t": HOSTILE}, ensure_ascii=False)
    assert "\x9b" in raw and "\u202e" in raw  # json.dumps alone lets C1 and bidi through
    safe = json_text(raw)
    assert json.loads(safe) == {"t": HOSTILE}
    assert_inert(safe.encode(), "json_text")


def test_the_console_rows_show_bidi_and_zero_width_visibly(hostile_store):
    from cqgov_tui.console.names import Names
    from cqgov_tui.console.queue import row_of

    _, path, (number, _) = hostile_store
    with open_store(path) as store:
        row = row_of(store.resolve_event(number), Names())
    assert "<U+202E>" in row.title and "<U+200B>" in row.title and "␛" in row.title
    assert is_plain(row.title)


def test_no_command_prints_around_the_one_safe_way():
    """Every command module prints through ``cli.common.out`` (or ``emit_json``); only those two, the GeoJSON
    writer (escaped with ``json_text``) and CAP's XML bytes touch stdout themselves."""
    from pathlib import Path

    import cqgov_tui.cli as cli

    allowed = {"common.py": 2, "geojson_out.py": 1}
    for path in Path(cli.__file__).parent.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        calls = len(re.findall(r"click\.echo\(|click\.secho\(|(?<![.\w])print\(|sys\.stdout\.write\(", text))
        assert calls == allowed.get(path.name, 0), f"{path.name} prints {calls} time(s) around cli.common.out"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_plain_output_is_always_inert_and_stable(text):
    shown = plain(text)
    assert is_plain(shown) and plain(shown) == shown
    assert_inert(shown.encode(), "plain")


# Ordinary text: no control, format, surrogate or separator character, and none of the tag block
# (U+E0000–U+E007F), which ``plain`` marks whole: its unassigned code points (category Cn, such as U+E0000)
# are invisible tags to a terminal too.
_ORDINARY = st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zl", "Zp"]).filter(
    lambda c: not 0xE0000 <= ord(c) <= 0xE007F)


@settings(max_examples=300, deadline=None)
@given(st.text(_ORDINARY))
def test_plain_leaves_ordinary_text_alone(text):
    assert plain(text) == text


def test_plain_marks_the_whole_tag_block():
    for cp in (0xE0000, 0xE0001, 0xE0020, 0xE007F):
        assert chr(cp) not in plain(f"a{chr(cp)}b")


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20))
def test_json_text_is_the_same_json_and_inert(value):
    safe = json_text(json.dumps(value, ensure_ascii=False))
    assert json.loads(safe) == value
    if not re.search("[\ud800-\udfff]", safe):
        assert_inert(safe.encode(), "json_text")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5_000), st.sampled_from([("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800),
                                                 ("", 1), ("小时", 3600), ("天", 86400)]))
def test_every_duration_form_reads_as_its_seconds(n, unit):
    from cqgov_tui.cli.values import parse_duration

    assert parse_duration(f"{n}{unit[0]}") == n * unit[1]
    assert parse_duration(f" {n} {unit[0].upper()} ") == n * unit[1]
