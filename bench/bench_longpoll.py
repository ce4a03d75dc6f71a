"""Long-poll benchmark: what idle clients cost a tier server, how fast a new event reaches them, and what
an idle laptop's sync sends over a day.

* 1,000 long-polls (``wait=25``) parked on a server in a subprocess: its CPU (from /proc/<pid>/stat)
  over a window while they wait, beside the same server with no waiters.
* Then one event is reported (``POST /v1/commands``) and every waiter's reply is timed from just before
  the POST: p50 and p95 over all 1,000, measured in this process (so client-side parsing is included).
* The traffic of an idle street laptop: ``cqgov sync``'s client and the console's client (built by
  ``console.session.open_backend``, as ``cqgov tui`` builds it), each against a real tier server with a
  real token, through a loopback TCP proxy that counts every byte both ways. Bytes are counted between
  the first and the last caught-up reply seen in the window, i.e. over whole idle round trips, and
  extrapolated to a day. The baseline is what the day's news itself costs: the reply that carries one
  new event to this client (measured at the end) times 24 (an event an hour reaching a street).

Only 127.0.0.1 is used; every loop is bounded in count and time; every server and client is stopped.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from cqgov_tui.ids import uuid7  # noqa: E402

WAITERS = 1000
WAIT_S = 25
DAY = 86400.0
MB = 1_000_000


def row(name, value, unit, baseline=None, baseline_name="", note="", target=None, target_ok=None) -> dict:
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
            "ratio": ratio, "note": note, "target": target, "target_ok": target_ok}


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_share(pid: int, seconds: float) -> float:
    """Share of one core the process used over ``seconds`` of wall time."""
    c0, t0 = _cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_s(pid) - c0) / (time.monotonic() - t0)


def _start_server(db: str) -> tuple[subprocess.Popen, int]:
    """tests/synchost.py (the real router and engine under uvicorn) in a subprocess; returns it and its port."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "synchost.py"), "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    box: dict = {}
    reader = threading.Thread(target=lambda: box.setdefault("line", proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    line = box.get("line", "")
    if not line.startswith("READY "):
        _stop(proc)
        raise RuntimeError(f"test server did not start: {line!r}")
    return proc, int(line.split()[1])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _report_command(rng: random.Random, i: int) -> dict:
    from synchost import report_body

    return {"commands": [{"id": uuid7(), "type": "report", "body": report_body(rng, i, "500108")}]}


async def _raw_get(port: int, target: str, connected: list) -> tuple[int, float]:
    """One GET on its own connection with a bare asyncio stream (httpx's pool does O(connections) work per
    reply, which with 1,000 connections would time the client, not the server). Returns (status, reply time)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        connected[0] += 1
        head = await reader.readuntil(b"\r\n\r\n")
        at = time.perf_counter()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return int(head.split(b" ", 2)[1]), at
    finally:
        writer.close()


async def _idle_waiters(url: str, port: int, pid: int, window: float) -> dict:
    """Park WAITERS long-polls, measure the server's CPU while they wait, then report one event and time
    every waiter's reply."""
    info = httpx.get(url + "/v1/sync/info", timeout=30).json()
    cursor = f"{info['epoch']}:{info['head']}"
    connected = [0]
    tasks = []
    for start in range(0, WAITERS, 100):  # connect in waves: the server's listen backlog is 128
        tasks += [asyncio.create_task(_raw_get(
            port, f"/v1/changes?cursor={cursor}&wait={WAIT_S}&node=street-{i:04d}&empty=204", connected))
            for i in range(start, min(start + 100, WAITERS))]
        deadline = time.monotonic() + 10
        while connected[0] < len(tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    await asyncio.sleep(2.0)  # let the server finish parking the last wave
    cpu = await asyncio.to_thread(_cpu_share, pid, window)
    early = sum(t.done() for t in tasks)  # replies before the event: none expected (their wait has not run out)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        t0 = time.perf_counter()
        r = await http.post("/v1/commands", json=_report_command(random.Random(2), 0))
        r.raise_for_status()
    done, pending = await asyncio.wait(tasks, timeout=WAIT_S + 10)
    for t in pending:
        t.cancel()
    replies = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    lat = sorted(at - t0 for status, at in replies if status == 200 and at >= t0)
    return {"cpu": cpu, "sent": connected[0], "early": early, "late": WAITERS - len(lat) - early, "lat": lat}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("inf")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _waiter_rows(quick: bool) -> list[dict]:
    window = 5.0 if quick else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _start_server(os.path.join(tmp, "city.duckdb"))
        try:
            url = f"http://127.0.0.1:{port}"
            rng = random.Random(1)
            for i in range(5):  # a store with some history
                httpx.post(url + "/v1/commands", json=_report_command(rng, i), timeout=30).raise_for_status()
            time.sleep(0.5)
            idle_cpu = _cpu_share(proc.pid, window)
            res = asyncio.run(_idle_waiters(url, port, proc.pid, window))
        finally:
            _stop(proc)
    lat = res["lat"]
    p50, p95 = _pct(lat, 0.5), _pct(lat, 0.95)
    missing = res["early"] + res["late"]
    return [
        row(f"{WAITERS:,} idle long-polls: server CPU while idle", res["cpu"] * 100, "% core", idle_cpu * 100,
            "same server, no waiters", note=f"wait={WAIT_S}; {res['sent']} requests sent; CPU of the server "
            f"process over {window:.0f} s from /proc/<pid>/stat", target="< 10 %", target_ok=res["cpu"] < 0.10),
        row(f"new event → all {WAITERS:,} waiters, p95", p95, "s",
            note=f"p50 {p50:.3f} s, max {lat[-1] if lat else float('inf'):.3f} s; timed from just before the "
                 f"report's POST to each reply, in the client process; {len(lat)} of {WAITERS} got the event"
                 + (f", {missing} did not" if missing else ""),
            target="≤ 1 s", target_ok=p95 <= 1.0 and not missing),
    ]


# ------------------------------------------------------------------ idle traffic


class _Meter:
    """Samples a NetProxy's counters; keeps (time, bytes) at each new reply."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.marks: list[tuple[float, int, int]] = []  # (t, replies, bytes up + down)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = -1
        while not self._stop.wait(0.005):
            st = self.proxy.stats
            if st["replies"] != last:
                last = st["replies"]
                self.marks.append((time.monotonic(), last, st["bytes_up"] + st["bytes_down"]))

    def start(self) -> "_Meter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def per_day(self) -> tuple[float, int, float]:
        """(bytes per day, round trips measured, mean seconds per round trip) between the first and last reply."""
        if len(self.marks) < 2:
            return float("inf"), 0, 0.0
        (t0, r0, b0), (t1, r1, b1) = self.marks[0], self.marks[-1]
        if t1 <= t0:
            return float("inf"), 0, 0.0
        return (b1 - b0) * DAY / (t1 - t0), r1 - r0, (t1 - t0) / max(1, r1 - r0)


def _until(cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _traffic_rows(quick: bool) -> list[dict]:
    from cqgov_tui.console.session import open_backend
    from cqgov_tui.store import init_store
    from cqgov_tui.sync.client import SyncClient

    from netproxy import NetProxy
    from synchost import TierServing

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, TierServing(Path(tmp), "district", "500108",
                                                          b"bench-longpoll-secret-0123456789abcd") as serving:
        for i in range(3):
            serving.server.engine.report(category="garbage", title=f"历史事件{i}", code="500108001",
                                         actor=_admin(serving), apply_plans=False)
        proxies = {name: NetProxy(serving.sock.getsockname()[1]).start() for name in ("sync", "console")}
        # `cqgov sync` builds its client with the CLI's default wait; the console through open_backend.
        from cqgov_tui.cli.sync_cmd import sync as sync_cmd

        cli_wait = next(p.default for p in sync_cmd.params if p.name == "wait")
        rep = init_store(os.path.join(tmp, "laptop.duckdb"), "district", "500108", node="replica-laptop01")
        sync_client = SyncClient(rep, proxies["sync"].url, token=serving.token, limit=500, wait=cli_wait)
        console = open_backend(proxies["console"].url, serving.token, os.path.join(tmp, "console.duckdb"))
        clients = {"sync": sync_client, "console": console.client}
        # Quick runs shorten the waits to 10 s and scale the day by the real wait (same request bytes:
        # "wait=10" and "wait=55" are as long); full runs use the real waits over two round trips or more.
        real_wait = {k: c.wait for k, c in clients.items()}
        if quick:
            for c in clients.values():
                c.wait = min(c.wait, 10.0)
        window = max(c.wait for c in clients.values()) * (2.2 if not quick else 2.5) + 2.0
        meters = {}
        try:
            sync_client.start()
            console.start()
            ok = _until(lambda: all(c.status().state == "live" for c in clients.values()), 60)
            meters = {k: _Meter(p).start() for k, p in proxies.items()}
            time.sleep(window)
            for m in meters.values():
                m.stop()
            # the news itself: one event for this laptop, and how soon each client sees it
            before = {k: p.stats["bytes_down"] for k, p in proxies.items()}
            t0 = time.monotonic()
            ev = serving.server.engine.report(category="garbage", title="新上报", code="500108001",
                                              actor=_admin(serving), apply_plans=False)
            seen = {k: _until(lambda c=c: c.store.get_event(ev.id) is not None, 10) for k, c in clients.items()}
            seen_s = time.monotonic() - t0
            news = {k: p.stats["bytes_down"] - before[k] for k, p in proxies.items()}
        finally:
            sync_client.close()
            console.stop()
            rep.close()
            console.store.close()
            for p in proxies.values():
                p.stop()
    labels = {"sync": "`cqgov sync`", "console": "the console's sync"}
    for k in ("sync", "console"):
        per_day, trips, per_trip_s = meters[k].per_day() if k in meters else (float("inf"), 0, 0.0)
        scale = real_wait[k] / clients[k].wait
        per_day /= scale
        baseline = news[k] * 24.0
        rows.append(row(f"idle laptop traffic per day: {labels[k]}", per_day / MB, "MB/day", baseline / MB,
                        "the day's news: 24 new events' deltas",
                        note=f"up + down through a loopback TCP proxy over {trips} idle round trips "
                             f"({per_trip_s:.1f} s each{'' if scale == 1 else f', scaled ×{1 / scale:.2f} to the real {real_wait[k]:.0f} s wait'}); "
                             f"real token; a new event seen {'within %.2f s' % seen_s if seen[k] else 'NOT within 10 s'}"
                             + ("" if ok else "; client never reached 'live'"),
                        target="≤ 1 MB/day", target_ok=per_day <= MB and seen[k]))
    return rows


def _admin(serving):
    from cqgov_tui.domain.entities import Role, Tier, User

    return User("li", "li", Role.ADMIN, Tier.DISTRICT, "500108")


def run(quick: bool = False) -> list[dict]:
    _raise_nofile(4 * WAITERS + 256)  # the subprocess server inherits it
    return _waiter_rows(quick) + _traffic_rows(quick)


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        ok = "" if r["target_ok"] is None else ("ok" if r["target_ok"] else "MISSED")
        print(f"{r['name']:52} {r['value']:>10.3f} {r['unit']:8} base {r['baseline'] or 0:>10.3f}  "
              f"{r['target'] or ''} {ok}  {r['note']}")
