"""Tier server benchmarks.

1. Ingest: report commands per second accepted by one district server over
   loopback HTTP (validated, applied by the engine, audited, recorded for
   idempotency), beside the raw ceiling of the same events upserted straight
   into DuckDB in the same run. Target: ≥ 0.5× of the raw ceiling.
2. Directive fan-out: a city directive to all 1,031 streets; 1,031 simulated
   street clients (concurrent threads on loopback) each post their
   'delivered' and 'acknowledged' receipts back to the city, and the city's
   status shows every one. Target ≤ 10 s; baseline: the same receipts written
   straight into the store.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
import uvicorn  # noqa: E402

from cqgov_tui.clock import SystemClock  # noqa: E402
from cqgov_tui.domain.entities import Event, Receipt  # noqa: E402
from cqgov_tui.domain.schema import arrow_schema, to_row  # noqa: E402
from cqgov_tui.engine import directives  # noqa: E402
from cqgov_tui.geo.registry import get_registry  # noqa: E402
from cqgov_tui.ids import uuid7  # noqa: E402
from cqgov_tui.server.app import TierServer, create_app  # noqa: E402
from cqgov_tui.server.auth import TokenAuthority  # noqa: E402
from cqgov_tui.store import init_store  # noqa: E402

SECRET = b"bench-server-secret-0123456789abcdef01234"


class Running:
    """A tier server on a loopback port in this process, stopped on exit."""

    def __init__(self, server: TierServer):
        sock_port = _free_port()
        self.url = f"http://127.0.0.1:{sock_port}"
        config = uvicorn.Config(create_app(server), host="127.0.0.1", port=sock_port, log_level="error",
                                access_log=False, lifespan="on")
        self.uv = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uv.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.uv.should_exit = True
        self.thread.join(10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reports(n: int, street: str, rng_seed: int = 7) -> list[dict]:
    import random

    rng = random.Random(rng_seed)
    reg = get_registry()
    cats = ["noise", "garbage", "street_vending", "streetlight", "dispute", "illegal_construction"]
    out = []
    for _ in range(n):
        lon, lat = reg.random_point(street, rng)
        out.append({"id": uuid7(), "type": "report", "body": {"category": rng.choice(cats), "lon": lon, "lat": lat,
                                                             "source": "citizen", "text": "bench"}})
    return out


def bench_ingest(quick: bool) -> list[dict]:
    n, batch, clients = (600, 50, 4) if quick else (3000, 100, 8)
    tmp = tempfile.mkdtemp(prefix="cqgov-bench-server-")
    store = init_store(os.path.join(tmp, "d.duckdb"), "district", "500108")
    server = TierServer(store, TokenAuthority(SECRET), sweep_every=3600)
    token = server.authority.issue(user="bench", role="admin", tier="district", scope="500108",
                                   now=SystemClock().now(), ttl=3600)
    commands = _reports(n, "500108001")
    batches = [commands[i:i + batch] for i in range(0, n, batch)]
    accepted = 0
    lock = threading.Lock()
    with Running(server) as running:
        def post(b):
            nonlocal accepted
            with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
                r = http.post("/v1/commands", json={"commands": b})
                with lock:
                    accepted += len(r.json()["accepted"])

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(post, batches))
        served = time.perf_counter() - t0
    events = store.all_events()
    store.close()

    # Raw ceiling: the same event rows, batch by batch, upserted straight into a DuckDB table.
    raw = init_store(os.path.join(tmp, "raw.duckdb"), "district", "500108")
    schema = arrow_schema(Event)
    rows = [to_row(e) for e in events]
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        part = pa.Table.from_pylist(rows[i:i + batch], schema=schema)
        with raw.tx():
            raw.conn.register("_b", part)
            raw.conn.execute("INSERT OR REPLACE INTO events SELECT * FROM _b")
            raw.conn.unregister("_b")
    raw_s = time.perf_counter() - t0
    raw.close()
    rate, ceiling = accepted / served, len(rows) / raw_s
    return [{"name": "server_ingest_commands_per_s", "value": round(rate, 1), "unit": "commands/s",
             "baseline": round(ceiling, 1), "baseline_name": "same rows upserted straight into DuckDB",
             "ratio": round(rate / ceiling, 3), "target": ">= 0.5",
             "note": f"{accepted}/{n} report commands, batches of {batch}, {clients} loopback clients; "
                     "each validated, placed, planned, deduped, audited and recorded for idempotency"}]


def bench_fanout(quick: bool) -> list[dict]:
    reg = get_registry()
    streets = sorted(reg.streets)
    if quick:
        streets = streets[:200]
    tmp = tempfile.mkdtemp(prefix="cqgov-bench-fanout-")
    store = init_store(os.path.join(tmp, "city.duckdb"), "city", "500000")
    server = TierServer(store, TokenAuthority(SECRET), sweep_every=3600)
    now = SystemClock().now()
    admin = server.authority.issue(user="duty", role="duty_officer", tier="city", scope="500000", now=now, ttl=3600)
    peers = {s: server.authority.issue(user=f"node:street-{s}", role="admin", tier="district", scope=s, now=now,
                                       ttl=3600, peer=True) for s in streets}
    complete = False
    with Running(server) as running:
        t0 = time.perf_counter()
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as http:
            r = http.post("/v1/commands", json={"commands": [{"id": uuid7(), "type": "directive.send", "body": {
                "targets": streets if quick else ["500000"], "text": "全市防汛", "deadline": "1h"}}]}).json()
            d_id = r["accepted"][0]["result"]["directive_id"]

        def street_client(code: str) -> None:
            # One street: fetch the directive, then answer delivered and acknowledged in one batch.
            with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {peers[code]}"}, timeout=60) as c:
                c.get("/v1/directives", params={"limit": 5})
                t = SystemClock().now()
                body = []
                for state, stamps in (("delivered", (t, None, None)), ("acknowledged", (t, t, t))):
                    rec = Receipt(d_id, code, state, stamps[0], stamps[1], stamps[2], None, code, 0, 1 if state == "delivered" else 2)
                    body.append({"id": uuid7(), "type": "federate.receipt", "body": {"receipt": to_row(rec)}})
                c.post("/v1/commands", json={"commands": body})

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(street_client, streets))
        status = directives.status(store, reg, d_id)
        elapsed = time.perf_counter() - t0
        complete = status["counts"]["acknowledged"] == len(streets)
    # Baseline: the same receipts (delivered, then acknowledged) for a second directive, merged straight into
    # the store one street per transaction, no HTTP.
    from cqgov_tui.engine import system_user

    twin = directives.send(store, reg, actor=system_user(store), targets=["500000"], text="基线",
                           deadline_at=SystemClock().now() + 3600)
    t0 = time.perf_counter()
    for code in streets:
        t = SystemClock().now()
        with store.tx():
            directives.apply_receipt(store, Receipt(twin.id, code, "delivered", t, None, None, None, code, 0, 1))
            directives.apply_receipt(store, Receipt(twin.id, code, "acknowledged", t, t, t, None, code, 0, 2))
    direct = time.perf_counter() - t0
    store.close()
    return [{"name": "directive_fanout_receipts_s", "value": round(elapsed, 2), "unit": "s",
             "baseline": round(direct, 2), "baseline_name": "same receipts written straight into the store",
             "ratio": round(elapsed / direct, 2) if direct else None, "target": "<= 10 s",
             "note": f"{len(streets)} street clients (64 concurrent) on loopback; all acknowledged: {complete}"}]


def run(quick: bool = False) -> list[dict]:
    return bench_ingest(quick) + bench_fanout(quick)


if __name__ == "__main__":
    import json

    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row, ensure_ascii=False))
