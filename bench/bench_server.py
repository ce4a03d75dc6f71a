"""Tier server benchmarks, measured from outside against a real ``cqgov serve`` on loopback.

Every server here is a separate process (``python -m cqgov_tui serve`` on
127.0.0.1), so the load generator's threads never share its interpreter; it is
stopped with SIGINT (SIGKILL after a bound) before its store is read back.

1. Command ingest. 4–8 HTTP clients post batches of 50–100 commands: ~30 %
   ``report`` and ~70 % ``act`` walking events the client saw earlier through
   the loop (verify → dispatch → accept → arrive → dispose → feedback →
   close), referring to them by number from the replies, as a user would. An
   admin token of the district is used, so every step is allowed. Rate =
   accepted commands / wall time of the measured window (a time budget per
   size: a slow server finishes early, the rate is over what completed).
   Baseline in the same run: the resulting event rows of each accepted batch
   (same batches, same sizes) upserted with ``INSERT OR REPLACE`` into a DuckDB
   events table holding the same stored events (best of 3 replays). In quick
   mode a refused command or failed request raises: the workload must be valid.
   Goal ≥ 0.5×.
2. Growth: the same ingest with 10k / 100k / 1M events already stored (mostly
   closed, ≤ 3,000 open, 3–8 audit entries per event, one change-log row per
   event holding its latest image; the federation pump's cursor at the head;
   the audit hashes are stand-ins, and no applied-command history is loaded),
   pre-loaded in bulk before the server opens the store and cached under the
   temp dir by size and schema. Rows per size, "1M / 10k" (goal ≥ 0.8) and the
   log-log slope of rate vs stored events. The clients start from the open
   events this server owns, so every measured batch already has the mix.
3. Directive fan-out: a city directive to all 1,031 streets; 1,031 street
   clients (64 at a time, one connection each) fetch it and post 'delivered'
   and 'acknowledged'; done when the city's status counts every street
   acknowledged (bounded: streets not started within 150 s are skipped and the
   row says INCOMPLETE). Goal ≤ 10 s; baseline: the same receipts written
   straight into the store (in process, after the server stopped; bounded to
   60 s and extrapolated).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import math
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from bench.synth import CATEGORY_CODES, synth_events  # noqa: E402
from cqgov_tui.clock import SystemClock  # noqa: E402
from cqgov_tui.domain.entities import Event, Receipt  # noqa: E402
from cqgov_tui.domain.schema import arrow_schema, to_row  # noqa: E402
from cqgov_tui.ids import uuid7  # noqa: E402
from cqgov_tui.server.auth import TokenAuthority  # noqa: E402
from cqgov_tui.store.check import AUDIT_MARK_KEY  # noqa: E402

DISTRICT = "500108"
CITY = "500000"
NODE = f"district-{DISTRICT}"
HOST = "127.0.0.1"  # loopback only
# Everyday categories a district sees (some have plans that auto-sign and dispatch; none opens sub-tasks).
REPORT_CATEGORIES = ("noise", "garbage", "street_vending", "streetlight", "dispute", "illegal_construction",
                     "manhole_cover", "muck_spill", "traffic_jam", "elderly_help")
# The next step of the loop from each open status.
NEXT_ACTION = {"reported": "verify", "verified": "dispatch", "assessed": "dispatch", "escalated": "dispatch",
               "dispatched": "accept", "accepted": "arrive", "on_scene": "dispose", "disposed": "feedback",
               "feedback": "close"}
ACT_SHARE = 0.7
MAX_OPEN_STORED = 3000  # open events in a pre-loaded store ("a few thousand")
BUILD_VERSION = 4  # bump when the pre-loaded stores change shape
_LOOP_ACTIONS = ["report", "verify", "dispatch", "accept", "arrive", "dispose", "feedback", "close", "review"]
_LOOP_STATES = [None, "reported", "verified", "dispatched", "accepted", "on_scene", "disposed", "feedback", "closed",
                "reviewed"]


_AUTO = object()


def row(name, value, unit, baseline=None, baseline_name="", note="", target=None, target_ok=None, ratio=_AUTO) -> dict:
    if ratio is _AUTO:
        ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
            "ratio": ratio, "target": target, "target_ok": target_ok, "note": note}


# ------------------------------------------------------------ a server in its own process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``cqgov serve`` on a loopback port, in a child process; stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, tier: str, code: str, db: str, secret: str, start_timeout: float = 120.0):
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.db, self.log_path = db, db + ".log"
        self.tier, self.code, self.secret = tier, code, secret
        self.cmd = [sys.executable, "-m", "cqgov_tui", "serve", "--tier", tier, "--code", code, "--db", db,
                    "--secret-file", secret, "--host", HOST, "--port", str(self.port), "--sweep-every", "3600",
                    "--log-level", "error"]
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None

    def __enter__(self) -> "ServerProcess":
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)
        try:
            self.ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def health(self, timeout: float = 5.0) -> dict:
        """The server's details (health without a token is one line: ok or degraded)."""
        from cqgov_tui.server.auth import TokenAuthority, load_secret

        token = TokenAuthority(load_secret(self.secret, create=False)).issue(
            user="bench-health", role="admin", tier=self.tier, scope=self.code, now=time.time(), ttl=600)
        return httpx.get(self.url + "/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=timeout).json()

    def ready(self) -> None:
        """Up, and the scheduler's first tick (its start-up sweep of overdue events) done before measuring."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode} at start: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if self.health(timeout=2.0)["scheduler"]["ticks"] >= 1:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready within {self.start_timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 600) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log_path).read_text(errors="replace")[-n:].strip()
        return ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self.exit_code = self.proc.returncode
        self._log.close()


def _secret(dirpath: str) -> tuple[str, TokenAuthority]:
    path = os.path.join(dirpath, "bench.secret")
    raw = hashlib.sha256(b"cqgov-bench-server").hexdigest().encode()
    Path(path).write_bytes(raw + b"\n")
    os.chmod(path, 0o600)
    return path, TokenAuthority(raw)


# ------------------------------------------------------------ pre-loaded district stores


def _schema_key() -> str:
    from cqgov_tui.store.migrations import MIGRATIONS

    return hashlib.sha256(repr((BUILD_VERSION, MIGRATIONS)).encode()).hexdigest()[:12]


def _cache_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "cqgov-bench-server-cache" / _schema_key()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _synth_district(n: int, now: float, catalogue) -> pa.Table:
    """``n`` events of this district over the 90 days up to ``now``; at most MAX_OPEN_STORED open."""
    table = synth_events(n, seed=n, open_ratio=min(0.03, MAX_OPEN_STORED / n), start=now - 90 * 86400.0,
                         district_codes=[DISTRICT], days=90)
    codes = list(catalogue.categories)
    mapping = pa.array([codes[i % len(codes)] for i in range(len(CATEGORY_CODES))])
    idx = pc.index_in(table["category_code"], pa.array(CATEGORY_CODES))
    return table.set_column(table.schema.get_field_index("category_code"), "category_code", pc.take(mapping, idx))


def _pump_cursor_key() -> str:
    try:
        from cqgov_tui.server.federation import PUMP_CURSOR
    except ImportError:
        return "federation:pump_seq"
    return PUMP_CURSOR


def _build_store(path: str, n: int) -> dict:
    """A district store with ``n`` events, their audit entries and change-log rows, loaded in bulk."""
    from cqgov_tui.engine.core import Engine
    from cqgov_tui.store import init_store

    import duckdb

    t0 = time.perf_counter()
    now = SystemClock().now()
    store = init_store(path, "district", DISTRICT)
    try:
        store.bulk_load_events(_synth_district(n, now, Engine(store).catalogue))
    finally:
        store.close()
    # The rest straight in SQL on the closed store's file (bench-only history; the server opens it afterwards).
    conn = duckdb.connect(path)
    try:
        actions = "[" + ", ".join(f"'{a}'" for a in _LOOP_ACTIONS) + "]"
        states = "[" + ", ".join("NULL" if s is None else f"'{s}'" for s in _LOOP_STATES) + "]"
        conn.execute("BEGIN TRANSACTION")
        # 3–8 audit entries per event, in report order (the events were loaded sorted by report time, so no sort
        # here); the chain's hashes are stand-ins (the server only chains onto the last one).
        conn.execute(f"""
            INSERT INTO audit_log (seq, acted_at, event_id, action, from_status, to_status, actor, role, tier, node,
                                   note, prev_hash, hash)
            SELECT row_number() OVER (), least(reported_at + j * 900.0, {now}), id, {actions}[j + 1],
                   {states}[j + 1], {states}[j + 2], 'bench', 'dispatcher', 'district', '{NODE}', '', '', 'h'
            FROM (SELECT id, reported_at, unnest(range(3 + CAST(hash(id) % 6 AS BIGINT))) AS j FROM events)""")
        # The change log: each event's latest row image (the audit entries' own change rows are left out to
        # keep a 1M build to seconds; the log's length and seqs still run past every stored event).
        conn.execute("""
            INSERT INTO changes (seq, changed_at, entity, key, op, data, origin, scope)
            SELECT row_number() OVER (), e.updated_at, 'event', e.id, 'upsert', to_json(e), e.origin_node,
                   coalesce(e.grid_code, e.street_code, e.district_code)
            FROM events e""")
        # The daily serials the stored numbers used, so new reports get fresh numbers.
        conn.execute("""
            INSERT OR REPLACE INTO store_meta
            SELECT 'serial:' || split_part(number, '-', 2), CAST(max(CAST(split_part(number, '-', 3) AS BIGINT)) AS VARCHAR)
            FROM events GROUP BY 1""")
        # A running server's federation pump has long since read that history: its cursor is at the head
        # (otherwise the first tick spends minutes re-reading every stored change before the bench can start).
        conn.execute("INSERT OR REPLACE INTO store_meta SELECT ?, CAST(max(seq) AS VARCHAR) FROM changes",
                     [_pump_cursor_key()])
        # The stand-in chain is vouched for as a past start-up check would have: the server verifies only
        # what it appends (a real district's server does the same after its first check).
        conn.execute("INSERT OR REPLACE INTO store_meta SELECT ?, max(seq) || ' h' FROM audit_log",
                     [AUDIT_MARK_KEY])
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("events", "event_queue", "audit_log", "changes")}
    finally:
        conn.close()
    counts["build_s"] = time.perf_counter() - t0
    return counts


def _drop_stale(keep: Path, idle_s: float = 3600.0) -> None:
    """Stores built for another schema are gigabytes nobody will read again; drop those idle for an hour
    (not sooner: another run, on a working tree one edit away, may be building or serving one now)."""
    now = time.time()
    for stale in keep.parent.iterdir():
        if not stale.is_dir() or stale == keep:
            continue
        with contextlib.suppress(OSError):
            newest = max((f.stat().st_mtime for f in stale.iterdir()), default=0.0)
            if now - newest > idle_s:
                shutil.rmtree(stale, ignore_errors=True)


def stored_district(n: int) -> tuple[str, dict]:
    """Path of a cached pre-loaded store of ``n`` events (built on first use), and its table counts."""
    import json

    cache = _cache_dir()
    path, info = cache / f"district-{DISTRICT}-{n}.duckdb", cache / f"district-{DISTRICT}-{n}.json"
    if path.exists() and info.exists():
        counts = json.loads(info.read_text())
        counts["cached"] = True
        return str(path), counts
    _drop_stale(cache)
    tmp = cache / f".building-{os.getpid()}-{n}.duckdb"
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    try:
        counts = _build_store(str(tmp), n)
        os.replace(tmp, path)
    finally:
        for p in (tmp, Path(str(tmp) + ".wal")):
            p.unlink(missing_ok=True)
    info.write_text(json.dumps(counts))
    counts["cached"] = False
    return str(path), counts


def _walkable(db: str, limit: int) -> list[tuple[str, str]]:
    """(number, status) of open events this server owns and may walk, oldest first."""
    import duckdb

    conn = duckdb.connect(db, read_only=True)
    try:
        return conn.execute(
            "SELECT number, status FROM event_queue WHERE origin_node = ? AND parent_id IS NULL AND merged_into IS NULL "
            f"AND status IN ({', '.join('?' for _ in NEXT_ACTION)}) ORDER BY reported_at LIMIT ?",
            [NODE, *NEXT_ACTION, limit]).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------ the ingest workload


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = collections.Counter()  # by command type
        self.rejected = collections.Counter()
        self.reasons: collections.Counter = collections.Counter()
        self.deferred = 0
        self.failed_requests = 0
        self.errors: list[str] = []
        self.closed = 0
        self.merged = 0
        self.batches: list[list[str]] = []  # event ids each accepted batch touched, for the baseline
        self.batch_sizes: list[int] = []

    @property
    def n_accepted(self) -> int:
        return sum(self.accepted.values())

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())


class IngestClient:
    """One client: batches of 50–100 commands; acts walk events it learnt of from earlier replies."""

    def __init__(self, idx: int, url: str, token: str, backlog: list[tuple[str, str]], streets: list[str],
                 tally: Tally, request_timeout: float):
        self.rng = random.Random(1000 + idx)
        self.url, self.token = url, token
        self.backlog = collections.deque(backlog)
        self.streets = streets
        self.tally = tally
        self.request_timeout = request_timeout
        self.retry: list[dict] = []
        from cqgov_tui.geo.registry import get_registry

        self.registry = get_registry()

    def _report(self) -> dict:
        lon, lat = self.registry.random_point(self.rng.choice(self.streets), self.rng)
        return {"id": uuid7(), "type": "report", "body": {
            "category": self.rng.choice(REPORT_CATEGORIES), "lon": lon, "lat": lat, "source": "citizen",
            "text": "市民来电反映：bench 负载", "reporter": "12345热线"}}

    @staticmethod
    def _act(number: str, status: str) -> dict:
        return {"id": uuid7(), "type": "act", "body": {"event": number, "action": NEXT_ACTION[status],
                                                       "note": "bench"}}

    def next_batch(self) -> list[dict]:
        size = self.rng.randint(50, 100)
        batch = self.retry[:size]
        self.retry = self.retry[size:]
        acts = min(len(self.backlog), max(0, round(size * ACT_SHARE) - len(batch)))
        batch += [self._act(*self.backlog.popleft()) for _ in range(acts)]
        batch += [self._report() for _ in range(size - len(batch))]
        return batch

    def post(self, http: httpx.Client, batch: list[dict]) -> bool:
        try:
            r = http.post("/v1/commands", json={"commands": batch})
            reply = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            with self.tally.lock:
                self.tally.failed_requests += 1
                self.tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return False
        if r.status_code not in (200, 503) or "accepted" not in reply:
            with self.tally.lock:
                self.tally.failed_requests += 1
                self.tally.errors.append(f"HTTP {r.status_code}: {str(reply)[:200]}")
            return False
        by_id = {c["id"]: c for c in batch}
        touched: list[str] = []
        closed = merged = 0
        for a in reply["accepted"]:
            res = a["result"]
            touched.append(res["event_id"])
            status = res["status"]
            if status in NEXT_ACTION:
                self.backlog.append((res["number"], status))
            elif status == "closed":
                closed += 1
            elif status == "merged":
                merged += 1
        deferred = reply.get("deferred") or []
        self.retry = [by_id[i] for i in deferred if i in by_id] + self.retry
        with self.tally.lock:
            for a in reply["accepted"]:
                self.tally.accepted[by_id[a["id"]]["type"]] += 1
            for rej in reply["rejected"]:
                c = by_id.get(rej["id"], {})
                self.tally.rejected[c.get("type", "?")] += 1
                self.tally.reasons[str(rej.get("reason"))[:120]] += 1
            self.tally.deferred += len(deferred)
            self.tally.closed += closed
            self.tally.merged += merged
            if touched:
                self.tally.batches.append(list(dict.fromkeys(touched)))
                self.tally.batch_sizes.append(len(batch))
        return True

    def run(self, deadline: float, max_commands: int) -> None:
        sent = 0
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"},
                          timeout=self.request_timeout) as http:
            # At least one batch whatever the budget: a loaded machine may start a client after its deadline.
            while sent < max_commands and (sent == 0 or time.monotonic() < deadline):
                batch = self.next_batch()
                if not self.post(http, batch):
                    return  # a failed request ends this client (bounded: no retry storm)
                sent += len(batch)


def _warm_backlog(url: str, token: str, clients: int, streets: list[str], timeout: float) -> list[list[tuple[str, str]]]:
    """An empty store has nothing to walk: one report batch per client first (concurrent, not timed)."""
    tally = Tally()
    warm = [IngestClient(500 + i, url, token, [], streets, tally, timeout) for i in range(clients)]

    def one(c: IngestClient) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as http:
            c.post(http, [c._report() for _ in range(c.rng.randint(50, 100))])

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, warm))
    if tally.n_rejected or tally.failed_requests:
        raise AssertionError(f"warm-up reports refused: {dict(tally.reasons) or tally.errors}")
    return [list(c.backlog) for c in warm]


def _fetch_rows(db: str, ids: list[str]) -> dict[str, dict]:
    import duckdb

    cols = ", ".join(arrow_schema(Event).names)
    conn = duckdb.connect(db, read_only=True)
    try:
        conn.register("_ids", pa.table({"id": pa.array(ids, pa.string())}))
        table = conn.sql(f"SELECT {cols} FROM events WHERE id IN (SELECT id FROM _ids)").to_arrow_table()
    finally:
        conn.close()
    return {r["id"]: r for r in table.to_pylist()}


def _raw_upserts(db: str, batches: list[list[str]], rows: dict[str, dict], passes: int = 3) -> tuple[int, float]:
    """The baseline: each accepted batch's resulting event rows, ``INSERT OR REPLACE``d, one transaction each.

    Replayed ``passes`` times on the same table (the first pass inserts the new events, later passes replace
    them); the fastest pass counts, so a moment of load from other work on a shared machine (the replay
    lasts a second or so, the measured ingest ~40 s) does not sink the baseline."""
    import duckdb

    schema = arrow_schema(Event)
    tables = [pa.Table.from_pylist([rows[i] for i in b if i in rows], schema=schema) for b in batches]
    n = sum(t.num_rows for t in tables)
    conn = duckdb.connect(db)
    best = float("inf")
    try:
        conn.execute("SELECT count(*) FROM events WHERE id = ?", ["warm-up"]).fetchall()  # open the key's index
        for _ in range(passes):
            t0 = time.perf_counter()
            for _b in tables:  # found by its Python name (a replacement scan), as the server's own flush does
                conn.execute("BEGIN TRANSACTION")
                conn.execute("INSERT OR REPLACE INTO events SELECT * FROM _b")
                conn.execute("COMMIT")
            best = min(best, time.perf_counter() - t0)
    finally:
        conn.close()
    return n, best


def ingest_once(stored: int, *, clients: int, budget_s: float, max_commands: int, workdir: str,
                secret: str, authority: TokenAuthority, request_timeout: float = 180.0) -> dict:
    """One server, one store with ``stored`` events already in it: measured ingest and its raw baseline."""
    from cqgov_tui.geo.registry import get_registry
    from cqgov_tui.store import init_store

    run_dir = tempfile.mkdtemp(prefix=f"ingest-{stored}-", dir=workdir)
    db, raw_db = os.path.join(run_dir, "d.duckdb"), os.path.join(run_dir, "raw.duckdb")
    counts: dict = {"events": 0, "event_queue": 0, "audit_log": 0, "changes": 0, "cached": None, "build_s": 0.0}
    t_copy = time.perf_counter()
    if stored:
        src, counts = stored_district(stored)
        shutil.copyfile(src, db)
        shutil.copyfile(src, raw_db)
        seeds = _walkable(src, 40 * clients * 10)
    else:
        init_store(db, "district", DISTRICT).close()
        init_store(raw_db, "district", DISTRICT).close()
        seeds = []
    prep_s = time.perf_counter() - t_copy
    streets = [j.code for j in get_registry().children(DISTRICT)]
    now = SystemClock().now()
    token = authority.issue(user="bench-ops", role="admin", tier="district", scope=DISTRICT, now=now, ttl=7200)
    tally = Tally()
    phases = {"prepare": prep_s}
    t_start = time.perf_counter()
    with ServerProcess("district", DISTRICT, db, secret) as server:
        phases["start"] = time.perf_counter() - t_start
        t_warm = time.perf_counter()
        if seeds:
            backlogs = [seeds[i::clients] for i in range(clients)]
        else:
            backlogs = _warm_backlog(server.url, token, clients, streets, request_timeout)
        phases["warm-up"] = time.perf_counter() - t_warm
        workers = [IngestClient(i, server.url, token, backlogs[i], streets, tally, request_timeout)
                   for i in range(clients)]
        share = max(100, max_commands // clients)
        t0 = time.perf_counter()
        deadline = time.monotonic() + budget_s
        threads = [threading.Thread(target=w.run, args=(deadline, share), daemon=True) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(budget_s + request_timeout + 30)
        elapsed = time.perf_counter() - t0
        alive = sum(t.is_alive() for t in threads)
        t_stop = time.perf_counter()
    phases["stop"] = time.perf_counter() - t_stop
    rate = tally.n_accepted / elapsed if elapsed > 0 else 0.0
    rows = _fetch_rows(db, sorted({i for b in tally.batches for i in b}))
    n_raw, raw_s = _raw_upserts(raw_db, tally.batches, rows)
    phases["raw"] = raw_s
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"stored": stored, "rate": rate, "raw_rate": n_raw / raw_s if raw_s > 0 else 0.0, "elapsed": elapsed,
            "tally": tally, "clients": clients, "counts": counts, "prep_s": prep_s, "alive": alive,
            "server_exit": server.exit_code, "n_raw": n_raw, "phases": phases,
            "mean_batch": (sum(tally.batch_sizes) / len(tally.batch_sizes)) if tally.batch_sizes else 0.0}


def _note(m: dict) -> str:
    t: Tally = m["tally"]
    acc = t.accepted
    parts = [f"{t.n_accepted} accepted ({acc['report']} report, {acc['act']} act) / {t.n_rejected} rejected"
             f" in {m['elapsed']:.1f} s", f"{len(t.batches)} batches of ~{m['mean_batch']:.0f}, {m['clients']} clients",
             f"{t.closed} walked to closed"]
    if t.merged:
        parts.append(f"{t.merged} auto-merged duplicates")
    if t.deferred:
        parts.append(f"{t.deferred} deferred and resent")
    if t.failed_requests:
        parts.append(f"{t.failed_requests} FAILED requests ({t.errors[0]})")
    if t.n_rejected:
        parts.append("REJECTED: " + "; ".join(f"{n}× {r}" for r, n in t.reasons.most_common(2)))
    if m["alive"]:
        parts.append(f"{m['alive']} clients still running at the bound")
    if m["server_exit"] not in (0, 130, None):  # 130: the CLI's exit after a clean Ctrl-C
        parts.append(f"server exit {m['server_exit']}")
    parts.append("server start " + f"{m['phases']['start']:.1f} s, stop {m['phases']['stop']:.1f} s")
    c = m["counts"]
    if m["stored"]:
        parts.append(f"store: {c['events']:,} events ({c['event_queue']:,} open), {c['audit_log']:,} audit, "
                     f"{c['changes']:,} changes" + (" (cached)" if c.get("cached") else f" (built in {c['build_s']:.0f} s)"))
    return "; ".join(parts)


def _check_valid(m: dict) -> None:
    t: Tally = m["tally"]
    if t.n_rejected or t.failed_requests or not t.n_accepted or not t.accepted["act"]:
        raise AssertionError(f"ingest workload invalid at {m['stored']} stored: {_note(m)}")


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


def ingest_sizes(quick: bool) -> tuple[int, ...]:
    """Stored events for the growth rows (--quick never builds or serves the 1M store)."""
    return (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)


def bench_ingest(quick: bool = False, *, sizes: tuple[int, ...] | None = None, budget_s: float | None = None,
                 max_commands: int | None = None, clients: int | None = None, check: bool | None = None) -> list[dict]:
    """Ingest rows: empty store, then each stored size. ``check`` (default: in quick mode) raises if any command
    was refused or any request failed: a refused command is a bug in this workload, not a measurement."""
    sizes = sizes if sizes is not None else ingest_sizes(quick)
    check = quick if check is None else check
    budget_s = budget_s if budget_s is not None else (8.0 if quick else 40.0)
    max_commands = max_commands if max_commands is not None else (2_000 if quick else 40_000)
    clients = clients if clients is not None else (4 if quick else 8)
    workdir = tempfile.mkdtemp(prefix="cqgov-bench-server-")
    secret, authority = _secret(workdir)
    kw = dict(clients=clients, budget_s=budget_s, max_commands=max_commands, workdir=workdir, secret=secret,
              authority=authority)
    out: list[dict] = []
    try:
        base = ingest_once(0, **kw)
        if check:
            _check_valid(base)
        out.append(row("server_ingest_commands_per_s", round(base["rate"], 1), "commands/s", round(base["raw_rate"], 1),
                       "the same resulting event rows, same batches, INSERT OR REPLACE into DuckDB (best of 3 replays)",
                       _note(base) + "; empty store, reports + loop transitions by number", target="ratio >= 0.5",
                       target_ok=base["raw_rate"] > 0 and base["rate"] / base["raw_rate"] >= 0.5))
        grown = []
        for n in sizes:
            m = ingest_once(n, **kw)
            if check:
                _check_valid(m)
            grown.append(m)
            out.append(row(f"server_ingest_with_{_label(n)}_stored", round(m["rate"], 1), "commands/s",
                           round(m["raw_rate"], 1), f"same rows upserted into DuckDB holding the same {_label(n)} events (best of 3)",
                           _note(m), target="ratio >= 0.5",
                           target_ok=m["raw_rate"] > 0 and m["rate"] / m["raw_rate"] >= 0.5))
        out += growth_rows([(m["stored"], m["rate"], m["raw_rate"]) for m in grown])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def growth_rows(grown: list[tuple[int, float, float]]) -> list[dict]:
    """From (stored events, commands/s, raw rows/s) per size: largest / smallest, and the log-log slope."""
    if len(grown) < 2:
        return []
    goal = math.log(0.8) / math.log(100)  # 1M ≥ 0.8× 10k, as a slope over two decades
    (lo_n, lo, lo_raw), (hi_n, hi, hi_raw) = grown[0], grown[-1]
    flat = hi / lo if lo else 0.0
    raw_flat = hi_raw / lo_raw if lo_raw else 0.0
    xs = [math.log(n) for n, _, _ in grown]
    slope = _slope(xs, [math.log(max(r, 1e-9)) for _, r, _ in grown])
    raw_slope = _slope(xs, [math.log(max(r, 1e-9)) for _, _, r in grown])
    return [
        row(f"server_ingest_{_label(hi_n)}_over_{_label(lo_n)}", round(flat, 3), "×", round(raw_flat, 3),
            f"raw upsert at {_label(hi_n)} / at {_label(lo_n)}", f"{hi:.1f} / {lo:.1f} commands/s",
            target="value >= 0.8", target_ok=flat >= 0.8),
        row("server_ingest_loglog_slope", round(slope, 3), "d log(rate) / d log(stored)", round(raw_slope, 3),
            "the raw upsert's slope", ratio=None,
            note=f"least squares of log(commands/s) on log(stored) over {', '.join(_label(n) for n, _, _ in grown)}; "
                 f"0 = flat; 1M ≥ 0.8× 10k is ≥ {goal:.3f}",
            target=f">= {goal:.3f}", target_ok=slope >= goal),
    ]


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


# ------------------------------------------------------------ directive fan-out


def bench_fanout(quick: bool = False, *, n_streets: int | None = None, deadline_s: float = 150.0) -> list[dict]:
    from cqgov_tui.engine import directives, system_user
    from cqgov_tui.geo.registry import get_registry
    from cqgov_tui.store import init_store, open_store

    reg = get_registry()
    streets = sorted(reg.streets)
    limit = n_streets if n_streets is not None else (100 if quick else None)
    whole_city = limit is None or limit >= len(streets)
    if not whole_city:
        streets = streets[:limit]
    workdir = tempfile.mkdtemp(prefix="cqgov-bench-fanout-")
    secret, authority = _secret(workdir)
    db = os.path.join(workdir, "city.duckdb")
    init_store(db, "city", CITY).close()
    now = SystemClock().now()
    duty = authority.issue(user="duty", role="duty_officer", tier="city", scope=CITY, now=now, ttl=3600)
    # Each street's receipts reach the city as its district relays them: with the district's peer token.
    districts = {s[:6]: authority.issue(user=f"node:district-{s[:6]}", role="admin", tier="district", scope=s[:6],
                                        now=now, ttl=3600, peer=True) for s in streets}
    peers = {s: districts[s[:6]] for s in streets}
    tally = collections.Counter()
    errors: list[str] = []
    lock = threading.Lock()
    acknowledged, elapsed, done = 0, float("nan"), 0
    try:
        with ServerProcess("city", CITY, db, secret) as server:
            stop_at = time.monotonic() + deadline_s
            t0 = time.perf_counter()
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {duty}"}, timeout=60) as http:
                r = http.post("/v1/commands", json={"commands": [{"id": uuid7(), "type": "directive.send", "body": {
                    "targets": [CITY] if whole_city else streets, "text": "全市防汛", "deadline": "1h"}}]}).json()
                d_id = r["accepted"][0]["result"]["directive_id"]

            # Each street is its own client and connection, as on its own machine; but the one TLS context is
            # shared: httpx builds one per client otherwise (loading the CA bundle, ~10 ms of this process's
            # CPU each), and the load generator, not the server, was what the row measured.
            tls = ssl.create_default_context()

            def street_client(code: str) -> None:
                # One street: fetch the directive, then answer delivered and acknowledged in one batch.
                if time.monotonic() > stop_at:
                    with lock:
                        tally["skipped"] += 1
                    return
                try:
                    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {peers[code]}"}, verify=tls,
                                      timeout=30) as c:
                        got = c.get("/v1/directives", params={"limit": 5})
                        seen = got.status_code == 200 and any(d["id"] == d_id for d in got.json())
                        t = SystemClock().now()
                        body = []
                        for state, stamps in (("delivered", (t, None, None)), ("acknowledged", (t, t, t))):
                            rec = Receipt(d_id, code, state, stamps[0], stamps[1], stamps[2], None, code, 0,
                                          1 if state == "delivered" else 2)
                            body.append({"id": uuid7(), "type": "federate.receipt", "body": {"receipt": to_row(rec)}})
                        reply = c.post("/v1/commands", json={"commands": body}).json()
                    with lock:
                        tally["seen"] += seen
                        tally["accepted"] += len(reply.get("accepted", []))
                        tally["rejected"] += len(reply.get("rejected", []))
                        tally["deferred"] += len(reply.get("deferred") or [])
                except (httpx.HTTPError, ValueError) as exc:
                    with lock:
                        tally["failed"] += 1
                        errors.append(f"{type(exc).__name__}: {exc}"[:160])

            with ThreadPoolExecutor(64) as pool:  # the with-block joins every thread; each request is time-bounded
                list(pool.map(street_client, streets))
            # Done when the city's own status shows every street acknowledged (polled, bounded).
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {duty}"}, timeout=30) as http:
                while True:
                    status = http.get(f"/v1/directives/{d_id}").json()
                    acknowledged = status["counts"].get("acknowledged", 0)
                    if acknowledged >= len(streets) or time.monotonic() > stop_at:
                        break
                    time.sleep(0.05)
            elapsed = time.perf_counter() - t0
        # Baseline: the same receipts for a second directive, merged straight into the store, one street per
        # transaction, no HTTP (the server has stopped; its store is opened here).
        store = open_store(db)
        try:
            twin = directives.send(store, reg, actor=system_user(store), targets=[CITY] if whole_city else streets,
                                   text="基线", deadline_at=SystemClock().now() + 3600)
            t0 = time.perf_counter()
            done = 0
            for code in streets:
                if time.perf_counter() - t0 > min(deadline_s, 60.0):
                    break  # bounded: the rest is extrapolated from the streets done (said in the note)
                done += 1
                t = SystemClock().now()
                with store.tx():
                    directives.apply_receipt(store, Receipt(twin.id, code, "delivered", t, None, None, None, code, 0, 1))
                    directives.apply_receipt(store, Receipt(twin.id, code, "acknowledged", t, t, t, None, code, 0, 2))
            direct = (time.perf_counter() - t0) * len(streets) / max(done, 1)
        finally:
            store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    complete = acknowledged == len(streets)
    note = (f"{len(streets)} street clients (64 concurrent, one connection each) against a `cqgov serve` city process; "
            f"{acknowledged}/{len(streets)} acknowledged in the city's status; receipts {tally['accepted']} accepted, "
            f"{tally['rejected']} rejected; directive seen by {tally['seen']}")
    for k in ("deferred", "failed", "skipped"):
        if tally[k]:
            note += f"; {tally[k]} {k}" + (f" ({errors[0]})" if k == "failed" and errors else "")
    if not complete:
        note += "; INCOMPLETE"
    if done < len(streets):
        note += f"; baseline extrapolated from the {done} streets written in its first 60 s"
    return [row("directive_fanout_receipts_s", round(elapsed, 2), "s", round(direct, 2),
                "same receipts written straight into the store", note, target="<= 10 s",
                target_ok=complete and elapsed <= 10.0)]


def run(quick: bool = False) -> list[dict]:
    return bench_ingest(quick) + bench_fanout(quick)


if __name__ == "__main__":
    import json

    for r in run(quick="--quick" in sys.argv):
        print(json.dumps(r, ensure_ascii=False))
