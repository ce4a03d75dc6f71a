"""Sync benchmark: bytes and encode/decode time of a realistic delta, its time over a 128 kbit/s link,
and serving one delta to many pullers with and without the response cache.

The delta: 100 new events (with their Chinese text) and one state transition
each of 400 distinct events the client already holds (out of 1,000 reported
over two days) — 500 changes, written as the engine writes them (stage start
and update time from one clock read, the deadline counted from the report
time). The clock moves by fractional seconds, as a real one does, so times are
not conveniently round. The naive baseline is what an Open311-style
``updated_since`` feed serves for the same news: the current full row of each
changed event, once each, as JSON, gzipped — no easier (it is deduplicated)
and no harder (no envelope, no history) than that.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from cqgov_tui.clock import SimClock  # noqa: E402
from cqgov_tui.domain.entities import Event  # noqa: E402
from cqgov_tui.domain.schema import to_row  # noqa: E402
from cqgov_tui.ids import uuid7  # noqa: E402
from cqgov_tui.store import init_store  # noqa: E402
from cqgov_tui.sync import changelog, wire  # noqa: E402
from cqgov_tui.sync.client import SyncClient  # noqa: E402
from cqgov_tui.sync.router import DeltaCache, make_sync_router  # noqa: E402

from netproxy import NetProxy  # noqa: E402
from synchost import ServerThread, SyncTestHost  # noqa: E402

_DISTRICTS = ("500108", "500103", "500105", "500106", "500107", "500112")
_PLACES = ("南坪街道", "涂山镇", "菩提街道", "谢家湾街道", "陈家坝街道", "中山路街道")
_WHAT = ("井盖缺失", "道路塌陷", "垃圾满溢", "路灯不亮", "占道经营", "噪声扰民", "管道爆裂", "违章搭建")
# Phrase banks: real 12345 complaint texts differ event to event, so a delta's text does not
# compress away against itself the way one repeated template would.
_WHO = ("市民来电反映", "网格员巡查发现", "群众通过渝快办反映", "视频AI识别到", "社区工作人员报告", "商户投诉")
_WHERE = ("小区东门", "农贸市场旁", "学校门口", "公交站台附近", "地下通道入口", "人行天桥下", "老旧小区3栋楼下",
          "滨江路沿线", "菜市场后巷", "医院停车场出口", "轻轨站B出口", "社区广场")
_DETAIL = ("已持续多日无人处理", "夜间没有照明，行人经过容易摔倒", "雨后积水严重影响通行", "气味刺鼻，周边居民意见很大",
           "早晚高峰造成拥堵", "存在明显安全隐患", "老人小孩经过时很危险", "附近商户也多次反映过",
           "昨天已经有人受伤", "周末人流量大，情况更加严重")
_ASK = ("请尽快派人到现场核实处置", "希望相关部门尽快解决并回复", "请城管部门依法处理", "请安排维修并反馈结果",
        "请加强巡查防止再次发生", "请给个处理时限")
_FLOW = ("verified", "assessed", "dispatched", "accepted", "on_scene", "disposed", "feedback", "closed")


def row(name, value, unit, baseline=None, baseline_name="", note="", target=None, target_ok=None) -> dict:
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
            "ratio": ratio, "note": note, "target": target, "target_ok": target_ok}


def _event(rng: random.Random, now: float, i: int) -> Event:
    d = rng.randrange(len(_DISTRICTS))
    district = _DISTRICTS[d]
    street = f"{district}{rng.randint(1, 12):03d}"
    grid = f"{street}{rng.randint(1, 60):03d}"
    what = _WHAT[rng.randrange(len(_WHAT))]
    text = (f"{rng.choice(_WHO)}：{_PLACES[d]}{rng.randint(1, 400)}号{rng.choice(_WHERE)}{what}，"
            f"{rng.choice(_DETAIL)}，{rng.choice(_DETAIL)}。{rng.choice(_ASK)}。"
            f"联系电话1{rng.randint(3, 9)}{rng.randint(0, 999_999_999):09d}。")
    return Event(
        id=uuid7(int(now * 1000)), number=f"{district[-4:]}-20261118-{i:05d}", city_code="500000",
        district_code=district, street_code=street, grid_code=grid, category_code="c0" + str(i % 9 + 1),
        colour=rng.choice(("red", "orange", "yellow", "blue", "green")), status="reported", title=what, text=text,
        lon=106.4 + rng.random() * 0.5, lat=29.4 + rng.random() * 0.3, address=f"重庆市{_PLACES[d]}{rng.randint(1, 300)}号",
        source=rng.choice(("citizen", "grid", "sensor", "video")), reporter=f"user{rng.randint(1, 999)}",
        assignee=None, departments=[], sla_profile="standard", reported_at=now, stage_started_at=now,
        due_at=_due(now, "reported"), closed_at=None, updated_at=now, escalation_level=0, supervised_by=None,
        parent_id=None, merged_into=None, duplicate_of=None, inhibited_by=None, plan_code=None, origin_tier="city",
        origin_node="city-500000", version=1,
    )


def _due(reported_at: float, status: str) -> float | None:
    """As the engine does: the next stage's deadline counts from the report time (30 min per stage here)."""
    step = _FLOW.index(status) + 1 if status in _FLOW else 0
    return None if status == "closed" else reported_at + 1800.0 * (step + 1)


def _held_store(path: str, clock: SimClock, rng: random.Random, held_count: int = 1000):
    """A city store with ``held_count`` events reported over the last two days, some already moved on.
    The clock moves by fractional seconds, so times carry every bit a real clock's would."""
    store = init_store(path, "city", "500000", clock=clock)
    held = []
    with store.tx():
        for i in range(held_count):
            clock.advance(rng.uniform(0.0, 2 * 172_800 / held_count))
            e = _event(rng, clock.now(), i)
            for _ in range(rng.randrange(4)):
                e = replace(e, status=_FLOW[_FLOW.index(e.status) + 1 if e.status in _FLOW else 0], version=e.version + 1)
            held.append(store.insert_event(replace(e, due_at=_due(e.reported_at, e.status))))
    return store, held


def _make_delta(store, clock: SimClock, rng: random.Random, held: list) -> tuple[int, list[str]]:
    """The 500 changes: 100 new events, then one transition each of 400 distinct held events,
    written as the engine writes them. Returns (seq before the delta, touched ids)."""
    base = store.head()
    touched = []
    with store.tx():
        for i in range(100):
            clock.advance(rng.uniform(0.5, 5.5))
            touched.append(store.insert_event(_event(rng, clock.now(), 1000 + i)).id)
        for h in rng.sample(held, 400):
            clock.advance(rng.uniform(0.5, 5.5))
            e = store.get_event(h.id)
            nxt = _FLOW[min(_FLOW.index(e.status) + 1, len(_FLOW) - 1)] if e.status in _FLOW else _FLOW[0]
            now = clock.now()  # the engine reads the clock once per transition
            changes = {"status": nxt, "stage_started_at": now, "updated_at": now, "due_at": _due(e.reported_at, nxt)}
            if nxt == "closed":
                changes["closed_at"] = now
            if nxt == "dispatched":
                changes["assignee"] = "d_cg"
                changes["departments"] = ["d_sw"]
            store.update_event(replace(e, **changes), changes.keys())
            touched.append(e.id)
    return base, touched


def _build(path: str, clock: SimClock, seed: int = 1):
    """Held store plus the delta. Returns (store, base_seq, touched ids)."""
    rng = random.Random(seed)
    store, held = _held_store(path, clock, rng)
    base, touched = _make_delta(store, clock, rng, held)
    return store, base, touched


def _full_rows(store, touched) -> list[dict]:
    return [to_row(store.get_event(k)) for k in dict.fromkeys(touched)]


def _naive(rows: list[dict]) -> bytes:
    return gzip.compress(json.dumps(rows, ensure_ascii=False).encode(), 6)


def _best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best


def _pullers(url: str, params: dict, seconds: float, threads: int = 8) -> float:
    """Deltas per second served to ``threads`` pullers asking for the same cursor."""
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        with httpx.Client(timeout=30) as c:
            while time.monotonic() < stop:
                r = c.get(url + "/v1/changes", params=params)
                r.raise_for_status()
                with lock:
                    done[0] += 1

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / (time.monotonic() - t0)


def _rotating(urls: list[str], params: dict, seconds: float, turns: int = 6, threads: int = 8) -> list[float]:
    """Deltas per second from each server: 8 pullers (one kept-alive connection per server each) take
    ``turns`` short turns at every server in rotation, so a busy machine slows all of them alike."""
    clients = [[httpx.Client(base_url=url, timeout=30) for url in urls] for _ in range(threads)]
    done = [0] * len(urls)
    spent = [0.0] * len(urls)
    lock = threading.Lock()

    def worker(c: httpx.Client, stop: float, i: int) -> None:
        while time.monotonic() < stop:
            c.get("/v1/changes", params=params).raise_for_status()
            with lock:
                done[i] += 1

    try:
        for _ in range(turns):
            for i in range(len(urls)):
                t0 = time.monotonic()
                ts = [threading.Thread(target=worker, args=(clients[k][i], t0 + seconds / turns, i))
                      for k in range(threads)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                spent[i] += time.monotonic() - t0
    finally:
        for row_ in clients:
            for c in row_:
                c.close()
    return [d / s for d, s in zip(done, spent)]


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        clock = SimClock()
        rng = random.Random(1)
        store, held = _held_store(os.path.join(tmp, "city.duckdb"), clock, rng)
        host = SyncTestHost(store)
        naive_box: dict[str, bytes] = {}
        server = ServerThread(make_app_with_naive(host, naive_box)).start()
        proxy = NetProxy(server.port, rate_kbit=128).start()
        try:
            # the client holds the older events before the delta is made, as a live replica would
            rep = init_store(os.path.join(tmp, "replica.duckdb"), "city", "500000", node="bench-replica")
            boot = SyncClient(rep, server.url)
            boot.pull_until_caught_up()
            boot.close()

            base, touched = _make_delta(store, clock, rng, held)
            delta = changelog.read_changes(store, base, 500, "500000")
            assert len(delta.changes) == 500
            meta = {"cqgov.kind": "changes", "cqgov.epoch": store.epoch,
                    "cqgov.cursor": wire.format_cursor(store.epoch, delta.next_seq), "cqgov.has_more": "0"}
            sent = wire.coalesce(delta.changes)  # what the router sends for this cursor
            ours = wire.encode(sent, meta)
            full = _full_rows(store, touched)
            naive = naive_box["payload"] = _naive(full)
            rows.append(row("delta bytes (500 changes)", len(ours), "B", len(naive), "full rows JSON+gzip",
                            note=f"100 new events with text + 1 transition each of 400 distinct held events "
                                 f"({len(sent)} rows); wire v{wire.WIRE_VERSION}: packed Arrow IPC, zstd "
                                 f"{wire.ZSTD_LEVEL}. Baseline = what an Open311 updated_since feed serves for the "
                                 f"same news: the current full row of each of the {len(full)} changed events, "
                                 "once each, JSON + gzip -6",
                            target="≤ 0.35×", target_ok=len(ours) <= 0.35 * len(naive)))
            repeat = 5 if quick else 20
            enc_ms = _best_ms(lambda: wire.encode(wire.coalesce(delta.changes), meta), repeat)
            naive_ms = _best_ms(lambda: _naive(full), repeat)
            rows.append(row("delta encode CPU", enc_ms, "ms", naive_ms, "full rows JSON+gzip",
                            note="best of %d; rows already read on both sides; paid once per cached delta" % repeat))
            dec_ms = _best_ms(lambda: wire.decode(ours), repeat)
            rows.append(row("delta decode CPU", dec_ms, "ms",
                            _best_ms(lambda: json.loads(gzip.decompress(naive)), repeat),
                            "gunzip + json.loads", note="strict validation included"))

            # (b) the client receives the delta through a 128 kbit/s link
            client = SyncClient(rep, proxy.url, limit=500)
            t0 = time.perf_counter()
            got = client.pull_until_caught_up()
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            httpx.get(proxy.url + "/naive", timeout=120).raise_for_status()
            naive_s = time.perf_counter() - t0
            client.close()
            rows.append(row("receive delta at 128 kbit/s", ours_s, "s", naive_s, "naive payload over same link",
                            note=f"{got.rows} changes applied incl. decode + one DuckDB transaction",
                            target="≤ 3 s", target_ok=ours_s <= 3.0))
        finally:
            proxy.stop()
            server.stop()

        # (c) one delta, many pullers: cached encoded responses vs re-query + re-encode, and vs a bare
        # ASGI app that only writes the same pre-encoded bytes (what serving a delta could cost at best)
        seconds = 1.0 if quick else 3.0
        params = {"cursor": wire.format_cursor(store.epoch, base), "limit": 500, "node": "bench-puller"}
        cached = ServerThread(make_app_with_cache(host, DeltaCache())).start()
        uncached = ServerThread(make_app_with_cache(host, DeltaCache(max_entries=0))).start()
        try:
            sample = httpx.get(cached.url + "/v1/changes", params=params, timeout=30)
            sample.raise_for_status()
            bare = ServerThread(bare_app(sample.content, sample.headers)).start()
            try:
                # Short turns taken in rotation, so a busy machine slows all three alike.
                with_cache, without, bare_rate = _rotating([cached.url, uncached.url, bare.url], params, seconds)
            finally:
                bare.stop()
        finally:
            cached.stop()
            uncached.stop()
        rows.append(row("same delta to 8 pullers", with_cache, "deltas/s", without, "re-query + re-encode each",
                        note="HTTP on loopback, 500-change delta"))
        rows.append(row("one delta to 8 pullers vs a bare server, in-process", with_cache, "deltas/s", bare_rate,
                        "bare ASGI app writing the same pre-encoded bytes",
                        note=f"same uvicorn, same 8 httpx pullers (threads of this process, sharing its GIL with "
                             f"the server), same {len(sample.content):,} B reply and headers"))
        store.close()

        # (d) the same from outside: each server alone in its own process, 8 pullers on bare asyncio
        # connections here, so the figure is the server's cost and not the pullers'
        payload_path, headers_path = os.path.join(tmp, "payload.bin"), os.path.join(tmp, "headers.json")
        Path(payload_path).write_bytes(sample.content)
        keep = ("content-type", "x-cqgov-cursor", "x-cqgov-has-more")
        Path(headers_path).write_text(json.dumps([[k, sample.headers[k]] for k in keep if k in sample.headers]))
        procs = []
        try:
            procs.append(_spawn([sys.executable, str(ROOT / "tests" / "synchost.py"), "--db",
                                 os.path.join(tmp, "city.duckdb")]))
            procs.append(_spawn([sys.executable, "-c", BARE_SERVER, payload_path, headers_path]))
            target = "/v1/changes?" + urlencode(params)
            (ours_out, ours_len), (bare_out, bare_len) = asyncio.run(
                _rotating_raw([port for _, port in procs], target, seconds * 2))
        finally:
            for proc, _ in procs:
                _stop_proc(proc)
        rows.append(row("one delta to 8 pullers vs a bare server", ours_out, "deltas/s", bare_out,
                        "bare ASGI app (own process) writing the same pre-encoded bytes",
                        note=f"each server alone in its own process under the same uvicorn; 8 keep-alive "
                             f"connections from bare asyncio pullers taking turns at both; replies {ours_len:,} B "
                             f"vs {bare_len:,} B; the router adds auth, cursor checks and the cache lookup",
                        target="≥ 0.5×", target_ok=ours_out >= 0.5 * bare_out))
    return rows


BARE_SERVER = r"""
import json, socket, sys
import uvicorn
payload = open(sys.argv[1], "rb").read()
headers = [(k.encode(), v.encode()) for k, v in json.load(open(sys.argv[2]))]
start = {"type": "http.response.start", "status": 200,
         "headers": headers + [(b"content-length", str(len(payload)).encode())]}
body = {"type": "http.response.body", "body": payload}
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send(start)
        await send(body)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print("READY", sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off", access_log=False)).run(sockets=[sock])
"""


def _spawn(argv: list[str]) -> tuple[subprocess.Popen, int]:
    """A server subprocess that prints ``READY <port>``; returns it and its port (bounded wait)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    box: dict = {}
    reader = threading.Thread(target=lambda: box.setdefault("line", proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    line = box.get("line", "")
    if not line.startswith("READY "):
        _stop_proc(proc)
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def _stop_proc(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def _rotating_raw(ports: list[int], target: str, seconds: float, turns: int = 6,
                        conns: int = 8) -> list[tuple[float, int]]:
    """(replies per second, reply bytes) from each server; ``conns`` keep-alive connections to each take
    ``turns`` turns in rotation. Bare asyncio streams: httpx would cost more than a bare server."""
    links = [[await asyncio.open_connection("127.0.0.1", port) for _ in range(conns)] for port in ports]
    done, spent, size = [0] * len(ports), [0.0] * len(ports), [0] * len(ports)

    async def pull(i: int, reader, writer, stop: float) -> None:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{ports[i]}\r\n\r\n".encode()
        while time.monotonic() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"puller got {head.splitlines()[0]!r}")
            size[i] = len(body)
            done[i] += 1

    try:
        for _ in range(turns):
            for i in range(len(ports)):
                t0 = time.monotonic()
                await asyncio.gather(*(pull(i, r, w, t0 + seconds / turns) for r, w in links[i]))
                spent[i] += time.monotonic() - t0
    finally:
        for row_ in links:
            for _, w in row_:
                w.close()
    return [(d / s, n) for d, s, n in zip(done, spent, size)]


def bare_app(payload: bytes, headers) -> object:
    """A minimal ASGI app that answers every request with ``payload`` and the router's reply headers."""
    keep = ("content-type", "x-cqgov-cursor", "x-cqgov-has-more")
    start = {"type": "http.response.start", "status": 200,
             "headers": [(k.encode(), headers[k].encode()) for k in keep if k in headers]
             + [(b"content-length", str(len(payload)).encode())]}
    body = {"type": "http.response.body", "body": payload}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send(start)
        await send(body)

    return app


def make_app_with_naive(host, naive_box: dict) -> FastAPI:
    app = make_app_with_cache(host, DeltaCache())

    @app.get("/naive")
    def _naive_payload():
        return Response(naive_box["payload"], media_type="application/json", headers={"Content-Encoding": "gzip"})

    return app


def make_app_with_cache(host, cache: DeltaCache) -> FastAPI:
    app = FastAPI()
    app.include_router(make_sync_router(host, cache=cache))
    return app


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']:32} {r['value']:>12.3f} {r['unit']:9} baseline {r['baseline']:>12.3f}  ratio "
              f"{(r['ratio'] or 0):.3f}  {r['target'] or ''} {'' if r['target_ok'] is None else ('ok' if r['target_ok'] else 'MISSED')}")
