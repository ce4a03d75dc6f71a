"""一表通 ledgers (CSV, XLSX, Parquet read back by the standard readers; totals match `events list --json`) and
the incremental Hive-partitioned Parquet history (DuckDB and pyarrow.dataset; a second run adds nothing)."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cqgov_tui.cli import main
from cqgov_tui.clock import CST, SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine, directives
from cqgov_tui.errors import BadInput
from cqgov_tui.standards.ledgers import cell_width, period_bounds
from cqgov_tui.store import init_store, open_store

NOV = dt.datetime(2026, 11, 10, 9, 0, tzinfo=CST).timestamp()
DUTY = User("wang", "王值班", Role.DUTY_OFFICER, Tier.DISTRICT, "500108")
ADMIN = User("admin", "管理员", Role.ADMIN, Tier.DISTRICT, "500108")


def cqgov(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A district store with events in October and November, some closed, one overdue, a directive."""
    path = str(tmp_path_factory.mktemp("ledgers") / "district.duckdb")
    clock = SimClock(NOV - 40 * 86400)
    store = init_store(path, "district", "500108", clock=clock)
    engine = Engine(store, clock=clock)
    engine.report(category="garbage", code="500108003", title="十月的垃圾", actor=DUTY)  # October: not in 2026-11
    clock.set(NOV)
    made = []
    for i, (cat, lon, lat) in enumerate([("muck_spill", 106.57, 29.52), ("manhole_cover", 106.58, 29.53),
                                         ("garbage", 106.56, 29.51), ("streetlight", 106.59, 29.50),
                                         ("noise", 106.60, 29.54)]):
        clock.advance(600)
        made.append(engine.report(category=cat, lon=lon, lat=lat, title=f"十一月事件{i}", actor=DUTY))
    reported = [e for e in made if e.status == "reported"]
    engine.act(reported[0].id, "verify", ADMIN)
    walk_to_closed(engine, reported[1].id)
    clock.advance(3 * 86400)
    engine.sweep()  # the open ones are overdue now: supervision is raised
    directives.send(store, engine.registry, actor=DUTY, targets=["500108001", "500108002"], text="汛前排查，今晚反馈",
                    deadline_at=clock.now() + 3600)
    store.close()
    return path


def walk_to_closed(engine, event_id):
    for action in ("verify", "assess", "dispatch", "accept", "arrive", "dispose", "feedback", "close"):
        event = engine.store.get_event(event_id)
        for role in Role:
            user = User("t", "t", role, Tier.DISTRICT, "500108", "cgj" if role is Role.DEPARTMENT else None)
            if action in engine.allowed_actions(event, user):
                engine.act(event_id, action, user, departments=["cgj"] if action == "dispatch" else None)
                break
    assert engine.store.get_event(event_id).status == "closed"


def listed(db, *extra):
    res = cqgov("events", "list", "--db", db, "--all", "--json", "--limit", 1000, *extra)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    return data["events"] if isinstance(data, dict) else data


def in_month(events, month="2026-11"):
    start, end = period_bounds(month)
    return [e for e in events if start <= e["reported_at"] < end]


def read_back(path, fmt):
    """Rows as lists of strings, with the header, through each format's standard reader."""
    if fmt == "csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return list(csv.reader(fh))
    if fmt == "xlsx":
        from openpyxl import load_workbook

        ws = load_workbook(path).active
        return [["" if v is None else (v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, dt.datetime) else str(v))
                 for v in row] for row in ws.iter_rows(values_only=True)]
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows = [["" if v is None else (v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, dt.datetime) else str(v))
             for v in row] for row in zip(*(c.to_pylist() for c in table.columns))]
    return [table.column_names, *rows]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_every_ledger_opens_with_the_standard_readers_and_its_totals_match_the_event_list(db, tmp_path, fmt):
    events = in_month(listed(db))
    assert len(events) == 5
    tables = {}
    for name in ("event_disposal", "supervision", "directive_receipts", "grid_tasks", "risk_points"):
        out = tmp_path / f"{name}.{fmt}"
        res = cqgov("report", "ledger", name, "--db", db, "--period", "2026-11", "--format", fmt, "--out", out, "--json")
        assert res.exit_code == 0, res.output
        rows = read_back(out, fmt)
        assert len(rows) - 1 == json.loads(res.output)["rows"]
        tables[name] = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert sorted(r["事件编号"] for r in tables["event_disposal"]) == sorted(e["number"] for e in events)
    assert {r["区县"] for r in tables["event_disposal"]} == {"南岸区"}
    supervised = [e for e in events if e["escalation_level"] > 0]
    assert supervised and sorted(r["事件编号"] for r in tables["supervision"]) == sorted(e["number"] for e in supervised)
    grid = tables["grid_tasks"]
    assert sum(int(r["上报数"]) for r in grid) == len([e for e in events if e["grid_code"]])
    assert sum(int(r["办结数"]) for r in grid) == len([e for e in events if e["status"] in ("closed", "reviewed")])
    assert sum(int(r["在办数"]) for r in grid) == len([e for e in events if e["status"] not in
                                                       ("closed", "reviewed", "merged", "rejected")])
    receipts = tables["directive_receipts"]
    assert sorted(r["镇街"] for r in receipts) == ["南坪街道", "铜元局街道"] or len(receipts) == 2
    assert len(tables["risk_points"]) > 0


def test_the_xlsx_has_a_bold_frozen_header_and_widths_that_fit_chinese(db, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "e.xlsx"
    assert cqgov("report", "ledger", "事件处置台账", "--db", db, "--period", "2026-11", "--format", "xlsx",
                 "--out", out).exit_code == 0
    ws = load_workbook(out).active
    assert ws.title == "事件处置台账" and ws.freeze_panes == "A2"
    assert all(c.font.bold for c in ws[1])
    for cell in ws[1]:
        column = ws.column_dimensions[cell.column_letter]
        longest = max(cell_width(str(c.value or "")) for c in ws[cell.column_letter])
        assert column.width >= min(60, longest), cell.value


@pytest.mark.parametrize("args, says", [
    (["nope", "--period", "2026-11"], "unknown ledger 'nope'"),
    (["grid_tasks", "--period", "2026-13"], "no such period"),
    (["grid_tasks", "--period", "November"], "unreadable period"),
    (["grid_tasks"], "needs --period"),
])
def test_bad_ledger_requests_are_one_line_and_write_nothing(db, tmp_path, args, says):
    out = tmp_path / "x.csv"
    res = cqgov("report", "ledger", *args, "--db", db, "--out", out)
    assert res.exit_code != 0 and says in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not out.exists()


@given(st.integers(1970, 2200), st.integers(1, 12))
def test_months_tile_the_calendar(year, month):
    start, end = period_bounds(f"{year}-{month:02d}")
    nxt = period_bounds(f"{year + (month == 12)}-{month % 12 + 1:02d}")
    assert start < end == nxt[0]


@given(st.text(max_size=20))
def test_the_period_parser_refuses_in_one_line(text):
    try:
        period_bounds(text)
    except BadInput as exc:
        assert "\n" not in str(exc)


def test_parquet_history_is_incremental_and_reads_back_with_duckdb_and_pyarrow(db, tmp_path):
    import duckdb
    import pyarrow.dataset as ds

    out = tmp_path / "history"
    first = cqgov("export", "--db", db, "--out", out, "--format", "parquet", "--json")
    assert first.exit_code == 0, first.output
    rows = json.loads(first.output)["rows"]
    assert rows["events"] == 6 and rows["audit"] > 6 and rows["directives"] == 1
    again = json.loads(cqgov("export", "--db", db, "--out", out, "--json").output)
    assert again["rows"] == {k: 0 for k in rows} and again["files"] == 0

    clock = SimClock(NOV + 4 * 86400)
    with open_store(db, clock=clock) as store:  # a day's work: one event moves on, readings and indicators arrive
        engine = Engine(store, clock=clock)
        target = next(e for e in store.all_events() if e.status == "verified")
        engine.act(target.id, "assess", ADMIN)
        with store.tx():
            store.insert_readings([("GAS-0001", clock.now(), 1.5), ("GAS-0002", clock.now(), 0.2)])
        store.append_indicator_history("500108", clock.now(), [("cs01.01.open", 3.0, "yellow")])
    third = json.loads(cqgov("export", "--db", db, "--out", out, "--json").output)
    assert third["rows"]["events"] == 1 and third["rows"]["readings"] == 2 and third["rows"]["indicators"] == 1
    assert json.loads(cqgov("export", "--db", db, "--out", out, "--json").output)["files"] == 0

    events = duckdb.sql(f"SELECT id, version, status, tier, district, date FROM read_parquet('{out}/events/**/*.parquet', "
                        "hive_partitioning=true)").fetchall()
    assert len(events) == 7 and len({(e[0], e[1]) for e in events}) == 7  # never the same version twice
    assert {e[3] for e in events} == {"district"} and {str(e[4]) for e in events} == {"500108"}
    latest = duckdb.sql(f"SELECT status FROM read_parquet('{out}/events/**/*.parquet', hive_partitioning=true) "
                        f"WHERE id = '{target.id}' ORDER BY version DESC LIMIT 1").fetchall()
    assert latest == [("assessed",)]
    audit = ds.dataset(str(out / "audit"), format="parquet", partitioning="hive").to_table()
    keys = list(zip(audit.column("node").to_pylist(), audit.column("seq").to_pylist()))
    assert len(keys) == len(set(keys)) and "actor_tier" in audit.column_names
    readings = ds.dataset(str(out / "readings"), format="parquet", partitioning="hive").to_table()
    assert readings.num_rows == 2


def test_an_unfinished_export_is_undone_by_the_next_run(db, tmp_path):
    import pyarrow.dataset as ds

    out = tmp_path / "history"
    assert cqgov("export", "--db", db, "--out", out).exit_code == 0
    state = out / "_cqgov" / "district-500108.json"
    data = json.loads(state.read_text())
    stray = out / "events" / "tier=district" / "district=500108" / "date=2026-11-10" / "part-district-500108-0-1-0.parquet"
    existing = next((out / "events").rglob("*.parquet"))
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(existing.read_bytes())  # as if a run died after writing this file
    state.write_text(json.dumps({**data, "pending": "part-district-500108-0-1"}))
    res = json.loads(cqgov("export", "--db", db, "--out", out, "--json").output)
    assert res["removed_unfinished"] == 1 and not stray.exists()
    ids = ds.dataset(str(out / "events"), format="parquet", partitioning="hive").to_table().column("id").to_pylist()
    assert len(ids) == len(set(ids))


def test_a_corrupt_cursor_is_one_line(db, tmp_path):
    out = tmp_path / "history"
    (out / "_cqgov").mkdir(parents=True)
    (out / "_cqgov" / "district-500108.json").write_text("{not json")
    res = cqgov("export", "--db", db, "--out", out)
    assert res.exit_code != 0 and "unreadable export cursor" in res.output and len(res.output.strip().splitlines()) == 1
