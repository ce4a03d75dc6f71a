"""Sensor ingest at district scale, measured from outside over loopback HTTP.

A district (江北区 500105 here: its 2,143 septic-tank methane sensors) needs
~1,060 readings/s sustained: 319,000 sensors every 5 minutes ≈ 92M readings a
day. Rows:

1. ``sensor_ingest_readings_per_s@N`` — ``sensor.reading`` commands of 250
   readings each, 4 loopback clients against a real tier server (uvicorn in a
   thread), with N readings already stored (bulk-loaded straight into the store
   file with ``INSERT … SELECT FROM range()`` before the server opens it; the
   sensor state is rebuilt from them as a migrated store's would be). Baseline:
   the same readings, the same batches, appended straight into the same store's
   ``sensor_readings`` with DuckDB after the server stopped. Goal at 10M:
   ≥ 5,000/s.
2. ``sensor_request_p95_ms@N`` — p95 latency of those requests (goal ≤ 250 ms).
3. ``sensor_ingest_growth_slope`` — log-log slope of time per reading against
   readings stored (10k → largest): 0 is flat, 1 is linear in history.
4. ``sensor_rollup_*`` — the retention job on the largest store: readings
   rolled up per second and the longest single chunk (the longest ingest may
   wait behind it), and the store's projected size at district scale.

``--quick`` uses 10k / 100k / 1M stored readings instead of 10k / 1M / 10M.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import duckdb  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402

from cqgov_tui.catalogue.loader import load_catalogue  # noqa: E402
from cqgov_tui.clock import SystemClock  # noqa: E402
from cqgov_tui.ids import uuid7  # noqa: E402
from cqgov_tui.server.app import TierServer, create_app  # noqa: E402
from cqgov_tui.server.auth import TokenAuthority  # noqa: E402
from cqgov_tui.store import init_store, open_store  # noqa: E402

SECRET = b"bench-sensors-secret-0123456789abcdef0123"
DISTRICT = "500105"
BATCH = 250
CLIENTS = 4
CADENCE_S = 300.0  # preloaded history: every sensor every 5 minutes
DISTRICT_PER_DAY = 92_000_000


class Running:
    """A tier server on a loopback port in this process, stopped on exit (as bench_server's)."""

    def __init__(self, server: TierServer):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(create_app(server), host="127.0.0.1", port=port, log_level="error",
                                access_log=False, lifespan="on")
        self.uv = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uv.run, daemon=True)

    def __enter__(self) -> "Running":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.uv.should_exit = True
        self.thread.join(10)


def _codes() -> list[str]:
    cat = load_catalogue()
    return sorted(c for c, s in cat.sensors.items()
                  if cat.risk_points[s.risk_point_code].grid_code.startswith(DISTRICT))


def _quiet_levels(codes: list[str]) -> list[float]:
    """Per sensor, a ceiling for normal readings: under its clear level, so no alarm opens (alarms are
    rare at a district; their cost is the engine's report path, measured by bench_server)."""
    cat = load_catalogue()
    return [cat.sensors[c].clear_below * 0.9 for c in codes]


def _preload(path: str, codes: list[str], n: int, t0: float) -> float:
    """N readings, every sensor every 5 minutes back from t0, below any alarm; returns seconds taken."""
    start = time.perf_counter()
    conn = duckdb.connect(path)
    try:
        conn.execute(
            "INSERT INTO sensor_readings SELECT c[1 + (i % ?)], ? - (1 + i // ?) * ?, q[1 + (i % ?)] * ((i * 7) % 10) / 10.0 "
            "FROM range(?) t(i), (SELECT ?::VARCHAR[] AS c, ?::DOUBLE[] AS q) ORDER BY 2",
            [len(codes), t0, len(codes), CADENCE_S, len(codes), n, codes, _quiet_levels(codes)])
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    return time.perf_counter() - start


def _requests(codes: list[str], t0: float, rounds: int) -> list[list[list]]:
    """Per client, its requests in order: each client owns a slice of the sensors, so times per sensor rise."""
    rng = random.Random(5)
    per_client: list[list[list]] = [[] for _ in range(CLIENTS)]
    quiet = dict(zip(codes, _quiet_levels(codes)))
    slices = [codes[i::CLIENTS] for i in range(CLIENTS)]
    for r in range(rounds):
        at = t0 + 1.0 + r * 0.5
        for k, mine in enumerate(slices):
            readings = [[c, at, round(rng.uniform(0.0, quiet[c]), 2)] for c in mine]
            per_client[k] += [readings[i:i + BATCH] for i in range(0, len(readings), BATCH)]
    return per_client


def _one_size(tmp: str, codes: list[str], stored: int, rounds: int) -> dict:
    path = os.path.join(tmp, f"d{stored}.duckdb")
    clock = SystemClock()
    t0 = clock.now() - 600.0
    store = init_store(path, "district", DISTRICT, clock=clock)
    store.close()
    load_s = _preload(path, codes, stored, t0)
    store = open_store(path, clock=clock)
    t = time.perf_counter()
    if hasattr(store, "rebuild_sensor_state"):  # (absent before sensor_state existed: a "before" run)
        store.rebuild_sensor_state()
    state_s = time.perf_counter() - t
    store.set_meta("sensor_retention_s", str(90 * 86400))  # keep all of it while measuring
    server = TierServer(store, TokenAuthority(SECRET), sweep_every=3600)
    token = server.authority.issue(user="bench", role="admin", tier="district", scope=DISTRICT,
                                   now=clock.now(), ttl=3600)
    work = _requests(codes, t0, rounds)
    latencies: list[float] = []
    stored_new = 0
    refused: list[str] = []
    lock = threading.Lock()
    with Running(server) as running:
        def client(batches: list[list]) -> None:
            nonlocal stored_new
            with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {token}"},
                              timeout=120) as http:
                for readings in batches:
                    a = time.perf_counter()
                    r = http.post("/v1/commands", json={"commands": [
                        {"id": uuid7(), "type": "sensor.reading", "body": {"readings": readings}}]})
                    took = time.perf_counter() - a
                    reply = r.json()
                    with lock:
                        latencies.append(took)
                        for ok in reply.get("accepted", []):
                            stored_new += ok["result"]["stored"]
                        refused.extend(x.get("reason", "") for x in reply.get("rejected", []))

        t = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, work))
        served = time.perf_counter() - t
    store.close()

    # Baseline: the same batches appended straight into the same store's readings table.
    conn = duckdb.connect(path)
    flat = [b for batches in work for b in batches]
    shifted = 10_000.0  # later than anything stored; the table has no key, so only time matters
    t = time.perf_counter()
    for readings in flat:
        codes_b = [x[0] for x in readings]
        conn.execute("BEGIN")
        conn.execute("INSERT INTO sensor_readings SELECT unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), "
                     "unnest(?::DOUBLE[])", [codes_b, [x[1] + shifted for x in readings], [x[2] for x in readings]])
        conn.execute("COMMIT")
    raw_s = time.perf_counter() - t
    conn.execute("CHECKPOINT")
    conn.close()
    sent = sum(len(b) for b in flat)
    latencies.sort()
    return {"stored": stored, "rate": stored_new / served, "raw": sent / raw_s, "p95": latencies[int(0.95 * (len(latencies) - 1))],
            "p50": latencies[len(latencies) // 2], "requests": len(latencies), "sent": sent, "accepted": stored_new,
            "refused": refused[:2], "load_s": load_s, "sensors": len(codes), "state_s": state_s, "path": path,
            "bytes": os.path.getsize(path)}


def _rollup(res: dict) -> list[dict]:
    """The retention job over the largest store: its oldest fifth rolled up, chunk by chunk."""
    store = open_store(res["path"])
    span = res["stored"] / res["sensors"] * CADENCE_S
    store.set_meta("sensor_retention_s", str(int(span * 0.8)))
    now = store.clock.now()
    before = store.count_rows("sensor_readings")
    chunks, rolled, longest = 0, 0, 0.0
    t = time.perf_counter()
    while True:
        a = time.perf_counter()
        r = store.roll_up_readings(now)
        longest = max(longest, time.perf_counter() - a)
        chunks += 1
        rolled += r.rolled
        if r.done:
            break
    took = time.perf_counter() - t
    store.close()
    conn = duckdb.connect(res["path"])
    conn.execute("CHECKPOINT")
    left = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    buckets = conn.execute("SELECT count(*) FROM sensor_rollup").fetchone()[0]
    conn.close()
    # Bytes per raw reading from the preloaded store; per bucket from the roll-ups copied to a fresh file
    # (a store file does not shrink when rows are deleted, so its size says nothing about buckets).
    per_reading = res["bytes"] / max(before, 1)
    probe = res["path"] + ".rollup.duckdb"
    conn = duckdb.connect(probe)
    conn.execute(f"ATTACH '{res['path']}' AS s (READ_ONLY)")
    conn.execute("CREATE TABLE r AS SELECT * FROM s.sensor_rollup")
    conn.execute("DETACH s")
    conn.execute("CHECKPOINT")
    conn.close()
    per_bucket = os.path.getsize(probe) / max(buckets, 1)
    # District steady state at the default 2-day window: 2 days of raw readings, plus hourly buckets
    # (319,000 sensors × 24 a day) kept until archived — 30 days here.
    projected = per_reading * DISTRICT_PER_DAY * 2 + per_bucket * 319_000 * 24 * 30
    return [
        {"name": "sensor_rollup_readings_per_s", "value": round(rolled / took), "unit": "readings/s",
         "baseline": round(res["raw"]), "baseline_name": "raw append rate, same run",
         "ratio": round(rolled / took / res["raw"], 2),
         "note": f"{rolled:,} of {before:,} readings older than the window → {buckets:,} hourly buckets in "
                 f"{chunks} chunks"},
        {"name": "sensor_rollup_longest_chunk_ms", "value": round(longest * 1000, 1), "unit": "ms",
         "baseline": round(res["p95"] * 1000, 1), "baseline_name": "ingest request p95, same run",
         "ratio": round(longest / res["p95"], 2), "target": "<= 250 ms", "target_ok": longest <= 0.25,
         "note": "one roll-up transaction (≤ 50k readings); ingest waits at most this long behind it"},
        {"name": "sensor_store_projected_gb", "value": round(projected / 1e9, 1), "unit": "GB",
         "baseline": round(per_reading * DISTRICT_PER_DAY * 32 / 1e9, 1),
         "baseline_name": "32 days of raw readings, no roll-up",
         "ratio": round(projected / (per_reading * DISTRICT_PER_DAY * 32), 3),
         "note": f"district (92M readings/day): 2 days raw at {per_reading:.1f} B/reading + 30 days of hourly "
                 f"buckets at {per_bucket:.0f} B/bucket (measured on this store; older ones go to "
                 "`cqgov store archive`)"},
    ]


def _has_rollup(path: str) -> bool:
    conn = duckdb.connect(path, read_only=True)
    try:
        return bool(conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'sensor_rollup'")
                    .fetchone()[0])
    finally:
        conn.close()


def run(quick: bool = False) -> list[dict]:
    sizes = [10_000, 100_000, 1_000_000] if quick else [10_000, 1_000_000, 10_000_000]
    rounds = 30 if quick else 60
    codes = _codes()
    tmp = tempfile.mkdtemp(prefix="cqgov-bench-sensors-")
    rows: list[dict] = []
    results = []
    try:
        for n in sizes:
            res = _one_size(tmp, codes, n, rounds)
            results.append(res)
            label = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n // 1000}k"
            final = n == sizes[-1]
            note = (f"{res['accepted']:,}/{res['sent']:,} readings in {res['requests']} requests of ≤ {BATCH} "
                    f"({len(codes):,} sensors, {CLIENTS} loopback clients); {n:,} preloaded in {res['load_s']:.1f} s, "
                    f"state rebuilt in {res['state_s']:.1f} s")
            if res["refused"]:
                note += f"; refused: {res['refused'][0][:80]}"
            rows.append({"name": f"sensor_ingest_readings_per_s@{label}", "value": round(res["rate"]),
                         "unit": "readings/s", "baseline": round(res["raw"]),
                         "baseline_name": "same batches appended straight into DuckDB",
                         "ratio": round(res["rate"] / res["raw"], 3),
                         "target": ">= 5000/s" if final else None,
                         "target_ok": res["rate"] >= 5000 if final else None, "note": note})
            rows.append({"name": f"sensor_request_p95_ms@{label}", "value": round(res["p95"] * 1000, 1), "unit": "ms",
                         "baseline": round(BATCH / res["raw"] * 1000, 1),
                         "baseline_name": "one batch appended straight into DuckDB",
                         "ratio": round(res["p95"] / (BATCH / res["raw"]), 1),
                         "target": "<= 250 ms" if final else None, "target_ok": res["p95"] <= 0.25 if final else None,
                         "note": f"p50 {res['p50'] * 1000:.1f} ms"})
        first, last = results[0], results[-1]
        slope = math.log((1 / last["rate"]) / (1 / first["rate"])) / math.log(last["stored"] / first["stored"])
        raw_slope = math.log((1 / last["raw"]) / (1 / first["raw"])) / math.log(last["stored"] / first["stored"])
        rows.append({"name": "sensor_ingest_growth_slope", "value": round(slope, 3), "unit": "log-log",
                     "baseline": round(raw_slope, 3), "baseline_name": "raw append, same sizes",
                     "ratio": None, "target": "<= 0.05", "target_ok": slope <= 0.05,
                     "note": "d log(time per reading) / d log(readings stored), "
                             + " / ".join(f"{r['stored']:,}: {r['rate']:,.0f}/s" for r in results)})
        if _has_rollup(last["path"]):
            rows += _rollup(last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    import json

    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row, ensure_ascii=False))
