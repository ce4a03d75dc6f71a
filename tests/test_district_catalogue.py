"""A district's own catalogue over the shipped one (issue 13 item 2): `serve|tui|init --catalogue DIR` and
CQGOV_CATALOGUE — a plan, a category and a 特色子跑道 with an indicator, validated at start in one line, and
used by a real `cqgov serve` process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from cqgov_tui.catalogue.cached import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.errors import EXIT_BAD_INPUT, BadInput
from synchost import stop_process

CATEGORY = """\
# 九龙坡区's own category
muck_night_transport: {name: 渣土车夜间违规运输, department: cgj, co: [jtj], colour: yellow, sla: standard, sector: cs}
"""
PLAN = """\
- code: jlp_muck_night
  name: 九龙坡渣土车夜间运输联动
  categories: [muck_night_transport, muck_spill]
  auto_sign: true
  dispatch: true
  co_departments: [jtj]
"""
RUNWAYS = """\
cs:
  runways:
    市容秩序:
      - name: 九龙坡渣土车夜间监管
        places: ["500107"]
        cats: [muck_night_transport]
        kpis:
          - {name: 渣土车夜间违规在办, unit: 件, metric: "open:muck_night_transport", bands: [1, 3, 5, 10], kind: kpi}
"""


def write_catalogue(root, category=CATEGORY, plan=PLAN, runways=RUNWAYS):
    (root / "plans").mkdir(parents=True, exist_ok=True)
    (root / "categories.yaml").write_text(category, encoding="utf-8")
    (root / "plans" / "jiulongpo.yaml").write_text(plan, encoding="utf-8")
    (root / "runways.yaml").write_text(runways, encoding="utf-8")
    return root


def test_the_district_catalogue_is_layered_over_the_shipped_one(tmp_path):
    shipped = load_catalogue()
    cat = load_catalogue(overlay=write_catalogue(tmp_path / "jlp"))
    assert set(cat.categories) - set(shipped.categories) == {"muck_night_transport"}
    assert [p.code for p in cat.plans] == [p.code for p in shipped.plans] + ["jlp_muck_night"]
    [sub] = [s for s in cat.sub_runways.values() if s.name == "九龙坡渣土车夜间监管"]
    runway = cat.runways[sub.runway_code]
    assert runway.name == "市容秩序" and sub.places == ("500107",)  # under the shipped runway of that name
    own = {i.code: i for i in cat.indicators.values() if i.sub_runway_code == sub.code}
    assert own[f"{sub.code}.k1"].metric == "open:muck_night_transport" and own[f"{sub.code}.k1"].kind == "kpi"
    assert len(cat.indicators) == len(shipped.indicators) + len(own)
    assert load_catalogue() is shipped  # the shipped catalogue is untouched
    # The 特色子跑道 is on 九龙坡's board (no data yet: grey, never a number) and on no other district's.
    from cqgov_tui.engine.runways import compute_board
    from cqgov_tui.store import init_store

    for code, shown in (("500107", True), ("500108", False)):
        store = init_store(str(tmp_path / f"{code}.duckdb"), "district", code)
        try:
            board = compute_board(store, cat, store.clock.now(), code)
            found = [i for s in board.sectors for r in s.runways for b in r.sub_runways for i in b.indicators
                     if i.code == f"{sub.code}.k1"]
        finally:
            store.close()
        assert bool(found) is shown
        if shown:
            assert found[0].value == 0 and found[0].colour is not None  # open events counted: none


@pytest.mark.parametrize("files, where, words", [
    ({"category": "garbage: {name: 垃圾, department: cgj, colour: yellow, sla: standard, sector: cs}\n"},
     "categories.yaml:1", "already in the shipped catalogue"),
    ({"plan": PLAN.replace("muck_spill]", "no_such_category]")}, "jiulongpo.yaml:3", "unknown category"),
    ({"plan": PLAN.replace("jlp_muck_night", "highrise_fire")}, "jiulongpo.yaml:1", "shipped plan"),
    ({"runways": RUNWAYS.replace("cs:", "xx:")}, "runways.yaml:1", "unknown sector 'xx'"),
    ({"runways": RUNWAYS.replace("open:muck_night_transport", "const:3")}, "runways.yaml:8", "constants are not measurements"),
    ({"category": "muck_night_transport: {name: [\n"}, "categories.yaml:", "YAML syntax error"),
])
def test_a_broken_district_catalogue_is_one_line_naming_file_and_line(tmp_path, files, where, words):
    root = write_catalogue(tmp_path / "bad", **files)
    with pytest.raises(BadInput) as err:
        load_catalogue(overlay=root)
    assert where in str(err.value) and words in str(err.value) and "\n" not in str(err.value)
    # `init` refuses it the same way, in one line, exit 2, and makes no store.
    db = tmp_path / "d.duckdb"
    res = CliRunner().invoke(main, ["init", "--db", str(db), "--tier", "district", "--code", "500107",
                                    "--catalogue", str(root)])
    assert res.exit_code == EXIT_BAD_INPUT and where in res.output and res.output.strip().count("\n") == 0
    assert not db.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, *extra, env=None):
    port = _free_port()
    log = open(tmp_path / f"serve-{port}.log", "wb")
    args = [sys.executable, "-m", "cqgov_tui", "serve", "--tier", "district", "--code", "500107",
            "--db", str(tmp_path / "jlp.duckdb"), "--secret-file", str(tmp_path / "jlp.secret"), "--port", str(port),
            "--sweep-every", "3600", *extra]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    return proc, f"http://127.0.0.1:{port}", tmp_path / f"serve-{port}.log"


def test_serve_uses_the_district_catalogue(tmp_path):
    from cqgov_tui.server.auth import TokenAuthority, load_secret

    root = write_catalogue(tmp_path / "jlp")
    runner = CliRunner()
    db = str(tmp_path / "jlp.duckdb")
    res = runner.invoke(main, ["init", "--db", db, "--tier", "district", "--code", "500107", "--catalogue", str(root),
                               "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["catalogue"] == str(root.resolve()), res.output
    assert "CQGOV_CATALOGUE" not in os.environ  # init records it; only serve and tui make it their process's
    # serve takes the catalogue init recorded in the store (no --catalogue needed).
    proc, url, log = _serve(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(encoding="utf-8", errors="replace")
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "cqgov serve did not answer"
            time.sleep(0.1)
        token = TokenAuthority(load_secret(str(tmp_path / "jlp.secret"))).issue(
            user="li", role="admin", tier="district", scope="500107", now=time.time(), ttl=600)
        body = {"category": "muck_night_transport", "code": "500107001", "title": "渣土车夜间抛洒"}
        r = httpx.post(url + "/v1/commands", json={"commands": [{"id": "jlp-report-0001", "type": "report",
                                                                 "body": body}]},
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
        reply = r.json()
        assert r.status_code == 200 and reply["accepted"], reply  # a category only the district's catalogue has
        [event] = [e for e in httpx.get(url + "/v1/events", headers={"Authorization": f"Bearer {token}"},
                                        timeout=30).json() if e["category_code"] == "muck_night_transport"]
        assert event["plan_code"] == "jlp_muck_night" and event["status"] == "dispatched"  # its own plan ran
    finally:
        stop_process(proc)
    # A broken catalogue stops serve at start: one line, exit 2, before the port is bound.
    bad = write_catalogue(tmp_path / "bad", plan=PLAN.replace("muck_spill]", "no_such_category]"))
    proc, url, log = _serve(tmp_path, "--catalogue", str(bad))
    try:
        assert proc.wait(60) == EXIT_BAD_INPUT
    finally:
        stop_process(proc)
    text = log.read_text(encoding="utf-8").strip()
    assert "jiulongpo.yaml:3" in text and "unknown category" in text and text.count("\n") == 0, text
