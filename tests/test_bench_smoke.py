"""The benchmark harness runs end to end on tiny data. Shapes only: timings are never asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is not installed with the package
    sys.path.insert(0, str(ROOT))

from bench import bench_store  # noqa: E402
from bench.synth import DISTRICT_CODES, OPEN_STATUSES, synth_events  # noqa: E402
from cqgov_tui.domain.entities import Event  # noqa: E402
from cqgov_tui.domain.schema import arrow_schema  # noqa: E402

ROW_KEYS = {"name", "value", "unit", "baseline", "baseline_name", "ratio", "note"}


def test_synth_matches_event_schema_and_is_deterministic():
    table = synth_events(1000)
    assert isinstance(table, pa.Table)
    assert table.num_rows == 1000
    assert table.schema.equals(arrow_schema(Event))
    assert table.equals(synth_events(1000))
    assert not table.equals(synth_events(1000, seed=1))
    assert len(set(table["id"].to_pylist())) == 1000
    for field in table.schema:
        if not field.nullable:
            assert table[field.name].null_count == 0, field.name


def test_synth_codes_and_open_mix():
    rows = synth_events(20_000, seed=3).to_pylist()
    assert len(DISTRICT_CODES) == 41 and {"500190", "500191", "500192", "500108"} <= set(DISTRICT_CODES)
    assert {r["district_code"] for r in rows} <= set(DISTRICT_CODES)
    for r in rows[:500]:
        if r["street_code"]:
            assert r["street_code"][:6] == r["district_code"] and len(r["street_code"]) == 9
        if r["grid_code"]:
            assert r["grid_code"][:9] == r["street_code"] and len(r["grid_code"]) == 12
    assert {r["category_code"] for r in rows} <= {f"c{i:02d}" for i in range(1, 41)}
    open_rows = [r for r in rows if r["status"] in OPEN_STATUSES]
    assert 0.02 < len(open_rows) / len(rows) < 0.04
    assert all(r["due_at"] is not None and r["closed_at"] is None for r in open_rows)
    reds = sum(r["colour"] == "red" for r in rows)
    assert 0 < reds < len(rows) * 0.05


def test_synth_honours_district_codes():
    table = synth_events(500, district_codes=["500108", "500103"])
    assert set(table["district_code"].to_pylist()) == {"500108", "500103"}


def test_bench_store_rows_have_the_harness_shape():
    rows = bench_store.run(n=5000)
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)) >= 5
    for r in rows:
        assert ROW_KEYS <= set(r), r
        assert isinstance(r["value"], float) and r["value"] > 0, r
        assert r["baseline"] and r["baseline_name"], r
        assert abs(r["ratio"] - r["value"] / r["baseline"]) < 1e-9
    notes = " ".join(r["note"] for r in rows)
    assert "DIFFER" not in notes  # the store and its baselines returned the same answers


def test_bench_server_runs_its_workload_against_a_real_server():
    """Tiny sizes (never the 1M store): every row has the harness shape and no command of the mix is refused."""
    from bench import bench_server

    assert max(bench_server.ingest_sizes(quick=True)) < 1_000_000
    rows = bench_server.bench_ingest(sizes=(2_000,), budget_s=1.0, max_commands=200, clients=2, check=True)
    rows += bench_server.bench_fanout(n_streets=8, deadline_s=60)
    assert [r["name"] for r in rows] == ["server_ingest_commands_per_s", "server_ingest_with_2k_stored",
                                         "directive_fanout_receipts_s"]
    for r in rows:
        assert ROW_KEYS <= set(r), r
        assert r["value"] > 0 and r["baseline"] > 0, r
        assert abs(r["ratio"] - r["value"] / r["baseline"]) < 1e-9
        assert isinstance(r["target_ok"], bool), r
        for bad in ("REJECTED", "FAILED", "INCOMPLETE", "still running", "server exit"):
            assert bad not in r["note"], r
    assert " 0 rejected" in rows[0]["note"] and " act)" in rows[0]["note"]
    assert "8/8 acknowledged" in rows[-1]["note"]


def test_bench_server_growth_rows():
    from bench import bench_server

    rows = bench_server.growth_rows([(10_000, 100.0, 4000.0), (100_000, 50.0, 4000.0), (1_000_000, 25.0, 4000.0)])
    assert [r["name"] for r in rows] == ["server_ingest_1M_over_10k", "server_ingest_loglog_slope"]
    assert rows[0]["value"] == 0.25 and rows[0]["target_ok"] is False and rows[0]["baseline"] == 1.0
    assert abs(rows[1]["value"] - (-0.301)) < 1e-3 and rows[1]["baseline"] == 0.0 and rows[1]["ratio"] is None
    assert rows[1]["target_ok"] is False
    flat = bench_server.growth_rows([(10_000, 100.0, 4000.0), (1_000_000, 90.0, 3900.0)])
    assert flat[0]["target_ok"] and flat[1]["target_ok"]
