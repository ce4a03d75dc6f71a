"""The CLI's edges (issue 12 items 5, 7, 9): every mistake is one line on stderr, its documented exit code
and no change; one exit-code mapping; names accepted where codes are; one duration reader; the config
file and CQGOV_* variables with one precedence rule; --json's schema version and ISO times."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cqgov_tui import errors
from cqgov_tui.cli import main
from cqgov_tui.cli.values import parse_duration
from cqgov_tui.store import init_store, open_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """No developer's own config file or CQGOV_* variables leak in."""
    monkeypatch.setenv("CQGOV_CONFIG", str(tmp_path / "absent-config.toml"))
    for name in ("CQGOV_SERVER", "CQGOV_TOKEN", "CQGOV_LANG", "CQGOV_DB"):
        monkeypatch.delenv(name, raising=False)


def cqgov(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line(result, code):
    """The mistake's contract: the documented exit code, one line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cqgov: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def store_file(tmp_path_factory):
    """A district store (南岸区) with three events in 南坪街道."""
    path = str(tmp_path_factory.mktemp("edges") / "s.duckdb")
    init_store(path, "district", "500108").close()
    for i in range(3):
        res = CliRunner().invoke(main, ["events", "report", "--db", path, "--category", "muck_spill", "--code",
                                        "500108001", "--text", f"渣土车撒漏 {i}"])
        assert res.exit_code == 0, res.output
    return path


def _events(path):
    with open_store(path) as store:
        return store.count_events()


# ---- tracebacks (item 5)


def test_unknown_colour_is_one_line_not_a_traceback(store_file):
    line = one_line(cqgov("events", "list", "--db", store_file, "--colour", "purple"), errors.EXIT_BAD_INPUT)
    assert "unknown colour 'purple'" in line


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="Linux /proc")
def test_unreadable_secret_file_is_one_line():
    line = one_line(cqgov("token", "create", "--secret-file", "/proc/self/mem", "--user", "a", "--role", "admin",
                          "--tier", "city", "--scope", "500000"), errors.EXIT_BAD_INPUT)
    assert "/proc/self/mem" in line and "cannot read" in line


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_as_secret_file_is_refused_not_read_for_ever():
    line = one_line(cqgov("token", "create", "--secret-file", "/dev/zero", "--user", "a", "--role", "admin",
                          "--tier", "city", "--scope", "500000"), errors.EXIT_BAD_INPUT)
    assert "not a regular file" in line


def test_an_internal_error_is_one_line_and_exit_70_and_minus_v_shows_the_traceback(store_file, monkeypatch):
    import cqgov_tui.cli.kpi_cmd as kpi

    def broken(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("cqgov_tui.engine.runways.compute_board", broken)
    assert kpi  # the command module is loaded
    line = one_line(cqgov("kpi", "--db", store_file), errors.EXIT_INTERNAL)
    assert "internal error: ZeroDivisionError: boom" in line
    verbose = cqgov("-v", "kpi", "--db", store_file)
    assert verbose.exit_code == errors.EXIT_INTERNAL and "Traceback" in verbose.stderr


# ---- consistent exits and messages (item 7)


def test_outside_chongqing_is_the_same_exit_for_locate_and_report(store_file):
    before = _events(store_file)
    located = one_line(cqgov("locate", "0", "0"), errors.EXIT_BAD_INPUT)
    reported = one_line(cqgov("events", "report", "--db", store_file, "--category", "muck_spill", "--lon", "0",
                              "--lat", "0"), errors.EXIT_BAD_INPUT)
    assert "outside Chongqing" in located and "outside Chongqing" in reported
    assert _events(store_file) == before


def test_bad_utf8_in_text_is_bad_input_and_changes_nothing(store_file):
    before = _events(store_file)
    # A byte that is not UTF-8 reaches Python from argv as a lone surrogate (surrogateescape).
    line = one_line(cqgov("events", "report", "--db", store_file, "--category", "muck_spill", "--code", "500108001",
                          "--text", "渣土\udcff车"), errors.EXIT_BAD_INPUT)
    assert "not valid UTF-8" in line and "store error" not in line
    assert _events(store_file) == before


def test_bad_utf8_from_a_real_argv_is_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cqgov_tui", "locate", b"\xff\xfe", "29"], capture_output=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == errors.EXIT_BAD_INPUT, r.stderr
    assert r.stderr.decode().strip().count("\n") == 0 and b"not valid UTF-8" in r.stderr


def test_serve_on_a_busy_port_fails_before_creating_store_or_secret(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        db = tmp_path / "d.duckdb"
        line = one_line(cqgov("serve", "--tier", "district", "--code", "500108", "--db", db, "--port", port),
                        errors.EXIT_CANNOT_START)
        assert f"127.0.0.1:{port}" in line
        assert list(tmp_path.iterdir()) == []  # neither the store nor its secret
    finally:
        busy.close()


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    def _page(self):
        body = b"<!DOCTYPE html><html><body><h1>It works!</h1>\n<p>some other service</p></body></html>\n"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_a_wrong_port_serving_html_is_one_line(html_server, tmp_path):
    for args in (["directive", "status", "--server", html_server, "--token", "t", "1"],
                 ["directive", "send", "--server", html_server, "--token", "t", "--to", "500108", "--deadline", "1h",
                  "--text", "x"],
                 ["simulate", "--server", html_server, "--token", "t", "--for", "1s"],
                 ["sync", "--server", html_server, "--token", "t", "--db", tmp_path / "r.duckdb", "--once"]):
        line = one_line(cqgov(*args), errors.EXIT_REMOTE)
        assert "<" not in line and "text/html" in line, line
    assert not (tmp_path / "r.duckdb").exists()


def test_district_and_street_by_name_or_code_and_unknown_ones_refused(store_file):
    by_code = cqgov("events", "list", "--db", store_file, "--district", "500108", "--json")
    by_name = cqgov("events", "list", "--db", store_file, "--district", "南岸区", "--json")
    street = cqgov("events", "list", "--db", store_file, "--street", "南坪街道", "--json")
    assert by_code.exit_code == by_name.exit_code == street.exit_code == 0
    ids = {e["id"] for e in json.loads(by_code.stdout)["events"]}
    assert len(ids) == 3 and {e["id"] for e in json.loads(by_name.stdout)["events"]} == ids
    assert {e["id"] for e in json.loads(street.stdout)["events"]} == ids
    assert "unknown district 'nope'" in one_line(cqgov("events", "list", "--db", store_file, "--district", "nope"), 2)
    assert "unknown district code" in one_line(cqgov("events", "list", "--db", store_file, "--district", "500199"), 2)
    assert "is a street, not a district" in one_line(
        cqgov("events", "list", "--db", store_file, "--district", "500108001"), 2)
    assert "not in district" in one_line(
        cqgov("events", "list", "--db", store_file, "--district", "500108", "--street", "500112001"), 2)


def test_unknown_category_is_refused_and_a_name_is_accepted(store_file):
    assert "unknown category 'nope'" in one_line(cqgov("events", "list", "--db", store_file, "--category", "nope"), 2)
    from cqgov_tui.catalogue.loader import load_catalogue

    name = load_catalogue().categories["muck_spill"].name
    res = cqgov("events", "list", "--db", store_file, "--category", name, "--json")
    assert res.exit_code == 0 and len(json.loads(res.stdout)["events"]) == 3


def test_status_as_the_word_the_list_prints(store_file):
    listed = cqgov("events", "list", "--db", store_file)
    word = listed.stdout.split()[2]  # number, colour, status word …
    assert re.fullmatch(r"已\w+", word), listed.stdout
    again = cqgov("events", "list", "--db", store_file, "--status", word)
    numbers = [line.split()[0] for line in listed.stdout.splitlines()]
    assert again.exit_code == 0 and [line.split()[0] for line in again.stdout.splitlines()] == numbers
    assert "unknown status" in one_line(cqgov("events", "list", "--db", store_file, "--status", "已完成了"), 2)


def test_events_list_says_when_it_stops_at_its_limit(store_file):
    res = cqgov("events", "list", "--db", store_file, "--limit", "2")
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 2
    assert "first 2 events; more match" in res.stderr
    doc = json.loads(cqgov("events", "list", "--db", store_file, "--limit", "2", "--json").stdout)
    assert doc["truncated"] is True and doc["limit"] == 2 and len(doc["events"]) == 2
    whole = cqgov("events", "list", "--db", store_file, "--limit", "3")
    assert whole.exit_code == 0 and whole.stderr == ""


@pytest.mark.parametrize("text, seconds", [("1d", 86400), ("36h", 129600), ("90m", 5400), ("45s", 45), ("2w", 1209600),
                                           ("600", 600), ("1.5h", 5400), ("2小时", 7200), ("1天", 86400)])
def test_one_duration_reader(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0", "-1d", "1y", "1e400", "nan", "inf", "10dd", "1d2h"])
def test_unreadable_durations(text):
    with pytest.raises(errors.BadInput):
        parse_duration(text)


def test_demo_for_1d_reads_like_ttl_1d(tmp_path):
    secret = tmp_path / "s.secret"
    secret.write_text("x" * 64)
    tok = cqgov("token", "create", "--secret-file", secret, "--user", "u", "--role", "admin", "--tier", "city",
                "--scope", "500000", "--ttl", "1d", "--json")
    assert tok.exit_code == 0, tok.output
    claims = json.loads(tok.stdout)
    assert 86399 <= claims["expires_at"] - time.time() <= 86401
    # --for is read before the districts are checked: a refused duration would be named instead.
    line = one_line(cqgov("demo", "--headless", "--for", "1d", "--districts", "500108"), 2)
    assert "at least two districts" in line


def test_ctrl_c_during_init_leaves_nothing_that_blocks_a_rerun(tmp_path, monkeypatch):
    import cqgov_tui.cli.init_cmd as init_cmd

    real = init_cmd.init_store
    db = tmp_path / "i.duckdb"

    def interrupted(path, *a, **k):
        real(path, *a, **k).close()  # the file exists, then the user presses Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(init_cmd, "init_store", interrupted)
    res = cqgov("init", "--db", db, "--tier", "district", "--code", "500108")
    assert res.exit_code == errors.EXIT_INTERRUPTED and "interrupted" in res.stderr
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(init_cmd, "init_store", real)
    again = cqgov("init", "--db", db, "--tier", "district", "--code", "500108")
    assert again.exit_code == 0, again.output


def test_ctrl_c_during_drill_leaves_nothing_that_blocks_a_rerun(tmp_path, monkeypatch):
    import cqgov_tui.sim.drills as drills

    db = tmp_path / "drill.duckdb"

    def interrupted(scenario, db_path, progress=None):
        init_store(db_path, "district", "500108").close()
        raise KeyboardInterrupt

    monkeypatch.setattr(drills, "run_drill", interrupted)
    res = cqgov("drill", "run", "overdue", "--db", db)
    assert res.exit_code == errors.EXIT_INTERRUPTED and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("CQGOV_CONFIG", str(tmp_path / "absent.toml"))
    again = cqgov("drill", "run", "overdue", "--db", db, "--json")
    assert again.exit_code == 0, again.output


def test_tui_with_a_server_and_no_token_says_what_is_missing(tmp_path):
    line = one_line(cqgov("tui", "--server", "http://127.0.0.1:9", "--db", tmp_path / "c.duckdb"), 2)
    assert "needs a token" in line and "CQGOV_TOKEN" in line
    assert list(tmp_path.iterdir()) == []


def test_usage_mistakes_are_one_line_naming_the_help():
    line = one_line(cqgov("events", "list", "--db", "x.duckdb", "--limit", "many"), 2)
    assert "'--limit'" in line and "cqgov events list --help" in line
    assert "No such command" in one_line(cqgov("evnts"), 2)
    assert "not both" in one_line(cqgov("-v", "-q", "drill", "list"), 2)


@pytest.mark.parametrize("url", ["nope", "ftp://x", "http://[::1"])
def test_a_malformed_server_url_is_bad_input(url):
    line = one_line(cqgov("directive", "status", "--server", url, "--token", "t", "1"), 2)
    assert "'--server'" in line


# ---- config file, environment, precedence (item 9)


def _write_config(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def test_precedence_flag_over_env_over_config_over_default(tmp_path, monkeypatch, store_file):
    other = str(tmp_path / "other.duckdb")
    init_store(other, "street", "500108001").close()
    cfg = tmp_path / "config.toml"
    _write_config(cfg, f'db = "{store_file}"\nlang = "en"\n')
    monkeypatch.setenv("CQGOV_CONFIG", str(cfg))

    def listed(*args, env=None):
        res = cqgov("events", "list", "--json", *args, env=env)
        assert res.exit_code == 0, res.output
        return len(json.loads(res.stdout)["events"])

    assert listed() == 3  # the config file's store
    assert listed(env={"CQGOV_DB": other}) == 0  # the environment beats the file
    assert listed("--db", store_file, env={"CQGOV_DB": other}) == 3  # the flag beats both
    cfg.unlink()
    missing = one_line(cqgov("events", "list"), 2)  # no default at all: say which option
    assert "--db" in missing


@pytest.mark.parametrize("text, says", [
    ("db = \n", "not valid TOML"),
    ('colour = "red"\n', "colour"),
    ('lang = "fr"\n', "lang"),
    ('server = "ftp://x"\n', "server"),
    ("server = 5\n", "server"),
])
def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, monkeypatch, text, says):
    cfg = tmp_path / "config.toml"
    _write_config(cfg, text)
    monkeypatch.setenv("CQGOV_CONFIG", str(cfg))
    line = one_line(cqgov("events", "list"), 2)
    assert str(cfg) in line and says in line


def test_config_server_and_token_reach_remote_commands(tmp_path, monkeypatch, html_server):
    cfg = tmp_path / "config.toml"
    _write_config(cfg, f'server = "{html_server}"\ntoken = "abc.def"\n')
    monkeypatch.setenv("CQGOV_CONFIG", str(cfg))
    # No --server/--token given: the file's are used (the HTML server proves the URL was taken from it).
    line = one_line(cqgov("directive", "status", "1"), errors.EXIT_REMOTE)
    assert html_server in line


def test_a_token_in_a_world_readable_config_is_warned_about(tmp_path, monkeypatch, store_file):
    from cqgov_tui import config

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'token = "abc"\ndb = "{store_file}"\n')
    cfg.chmod(0o644)
    monkeypatch.setenv("CQGOV_CONFIG", str(cfg))
    config._cache.clear()
    res = cqgov("events", "list")
    assert res.exit_code == 0 and "readable by others" in res.stderr


def test_the_default_config_path_is_platformdirs(monkeypatch):
    import platformdirs

    from cqgov_tui import config

    monkeypatch.delenv("CQGOV_CONFIG")
    assert config.path() == Path(platformdirs.user_config_dir("cqgov", appauthor=False)) / "config.toml"


# ---- JSON, verbosity, completion, exit-code table


def test_json_has_a_schema_version_and_iso_times(store_file):
    doc = json.loads(cqgov("events", "show", "--db", store_file, "--json",
                           json.loads(cqgov("events", "list", "--db", store_file, "--json").stdout)["events"][0]["id"]
                           ).stdout)
    assert next(iter(doc)) == "schema_version" and doc["schema_version"] == 1
    assert doc["reported_at_iso"].endswith("+08:00")
    import datetime as dt

    assert dt.datetime.fromisoformat(doc["reported_at_iso"]).timestamp() == pytest.approx(doc["reported_at"], abs=0.001)
    assert doc["closed_at"] is None and doc["closed_at_iso"] is None
    assert all(a["acted_at_iso"] for a in doc["audit"])
    for args in (["drill", "list", "--json"], ["fixtures", "stats", "--json"], ["locate", "106.58", "29.56", "--json"]):
        assert json.loads(cqgov(*args).stdout)["schema_version"] == 1


def test_quiet_silences_progress_and_verbose_adds_logs(store_file, capsys):
    from cqgov_tui.cli import common

    try:
        common.set_verbosity(-1)
        common.progress("working …")
        assert capsys.readouterr().err == ""
        common.set_verbosity(1)
        common.progress("working …")
        import logging

        logging.getLogger("cqgov.test").info("an info line")
        err = capsys.readouterr().err
        assert "working …" in err and "an info line" in err
    finally:
        common.set_verbosity(0)


def test_serve_logs_to_its_log_file(tmp_path):
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "cqgov_tui", "serve", "--tier", "district", "--code", "500108",
                             "--db", str(tmp_path / "d.duckdb"), "--port", "0", "--log-file", str(log)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Application startup complete" not in (
                log.read_text() if log.exists() else ""):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert "district server for 500108 南岸区 on http://127.0.0.1:" in log.read_text()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "stopped; closing the store" in log.read_text()
    assert err == b"", err  # everything went to the log file


def test_shell_completion_works_as_documented():
    res = CliRunner().invoke(main, [], prog_name="cqgov", env={"_CQGOV_COMPLETE": "bash_source"})
    assert res.exit_code == 0 and "_cqgov_completion" in res.stdout
    res = CliRunner().invoke(main, [], prog_name="cqgov",
                             env={"_CQGOV_COMPLETE": "bash_complete", "COMP_WORDS": "cqgov events l", "COMP_CWORD": "2"})
    assert "plain,list" in res.stdout.split()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "_CQGOV_COMPLETE=bash_source cqgov" in readme


def test_readme_exit_code_table_is_the_one_mapping():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme, re.M))
    assert {int(k) for k in table} == set(errors.EXIT_CODES)
    for code, meaning in errors.EXIT_CODES.items():
        assert table[str(code)] == meaning
