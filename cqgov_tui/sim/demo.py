"""One demo run: the hierarchy, the simulator, directives from the city, the streets answering, the checks.

Used by ``cqgov demo``; kept out of the CLI so tests can drive it directly.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time

from ..catalogue.loader import load_catalogue
from ..clock import SystemClock
from ..domain.entities import Role
from ..server.remote import Remote
from ..store import open_store
from .hierarchy import Hierarchy
from .simulator import Simulator, SimStats, Target

RECEIPT_NEXT = {"delivered": "read", "read": "acknowledged", "acknowledged": "executed"}
# Share of open events the demo's staff move one step on each 0.25 s tick: a step every ~8 s on average, so an
# event spends about a minute on the loop's eight steps and a person at the console sees the queue fill and
# drain (at the simulator's default, 0.6, every event was closed within a few seconds of its report).
STEP_SHARE = 0.03
# The city duty officer's shift in the console demo (seconds after the feed starts): directives down the
# tiers and 督办 of the oldest serious open event, so the Directives pane and its receipts move at once.
DIRECTIVES = (
    ("streets", "今晚强降雨，请各镇街立即排查下穿通道、低洼地带并落实值守", 900.0, "urgent"),
    ("district", "开展燃气安全专项检查，48小时内上报隐患清单", 7200.0, "normal"),
    ("streets", "高层建筑消防安全检查：本周内完成辖区高层建筑消防隐患排查", 3600.0, "high"),
    ("district", "渣土车夜间运输专项整治，今晚22时前报送巡查安排", 5400.0, "high"),
    ("streets", "化粪池甲烷浓度监测点位巡检，发现超标立即处置并回告", 1800.0, "high"),
)
FIRST_DIRECTIVE_S, SECOND_DIRECTIVE_S, DIRECTIVE_EVERY_S = 4.0, 15.0, 90.0
FIRST_SUPERVISION_S, SUPERVISE_EVERY_S = 25.0, 60.0


class DemoRun:
    def __init__(self, data_dir: str, layout, registry, *, rate: float = 4.0, seed: int = 0, sweep_every: float = 2.0):
        self.data_dir = data_dir
        self.registry = registry
        self.clock = SystemClock()
        self.hierarchy = Hierarchy(data_dir, layout, registry, clock=self.clock, sweep_every=sweep_every)
        self.rate = rate
        self.rng = random.Random(seed)
        self.seed = seed
        self.city_token = ""
        self.remotes: dict[str, Remote] = {}
        self.sim: Simulator | None = None
        self._threads: list[threading.Thread] = []
        self._halt = threading.Event()
        self.directive_ids: list[str] = []
        self.supervised: set[str] = set()  # events the city's duty officer has supervised in this run
        self.answers = 0
        self.started_at = 0.0
        self._stopped = False
        self.killed: list[str] = []
        self.people: dict = {}

    # ---- lifecycle

    def start(self, progress=None) -> None:
        """Start every server, tier by tier; ``progress`` (a callable) hears as each tier comes up."""
        self.started_at = time.monotonic()
        self.hierarchy.start(progress=progress)
        h = self.hierarchy
        self.city_token = h.token(h.city, Role.DUTY_OFFICER.value, user="duty-city")
        for node in h.nodes:
            self.remotes[node.node] = Remote(node.url, h.token(node, Role.ADMIN.value, user=f"staff-{node.code}"))

    def start_people(self) -> None:
        """The roster (imported at the city; it replicates down) and people's clients reporting (issue 14)."""
        from .people import demo_roster

        h = self.hierarchy
        csv = demo_roster("duty-city", [n.code for n in h.of_tier("district")], [n.code for n in h.of_tier("street")],
                          self.registry, seed=self.seed)
        with contextlib.suppress(Exception):  # the demo runs on without people if the import fails
            self.people = self.remotes[h.city.node].command("roster.import", {"csv": csv, "source": "demo-roster"})
            self._spawn(self._people_loop, "people-clients")

    def _people_loop(self) -> None:
        from .people import report_positions

        city = self.remotes[self.hierarchy.city.node]
        people = []
        with contextlib.suppress(Exception):
            people = city._get("/v1/roster", "roster")
        rng = random.Random(self.seed + 1)
        while people and not self._halt.wait(2.0):
            with contextlib.suppress(Exception):
                report_positions(city, self.registry, people, rng)

    def start_feed(self, duty_officer: bool = False) -> None:
        """The simulator and the streets' staff; with ``duty_officer`` also the city's shift (directives and
        督办 on a schedule, for the console demo: the headless run sends its own two directives)."""
        from .simulator import READING_EVERY_BY_KIND

        self.start_people()
        h = self.hierarchy
        targets = [Target(n.url, "", n.code, self.remotes[n.node]) for n in h.of_tier("street")]
        self.sim = Simulator(targets, load_catalogue(), self.registry, self.clock, self.rate, seed=self.seed,
                             progress=STEP_SHARE, reading_every_by_kind=READING_EVERY_BY_KIND)
        self._spawn(self._feed, "simulator")
        self._spawn(self._answer_loop, "street-staff")
        if duty_officer:
            self._spawn(self._duty_loop, "city-duty-officer")

    def _duty_loop(self) -> None:
        """The city's duty officer: a directive at once, another soon, then one every minute and a half; 督办
        of the oldest unsupervised red or orange event once a minute. A failure (a busy city) is tried again in
        5 s; the demo runs on whatever happens here."""
        t0 = time.monotonic()
        next_directive, n = FIRST_DIRECTIVE_S, 0
        next_supervision = FIRST_SUPERVISION_S
        while not self._halt.wait(1.0):
            elapsed = time.monotonic() - t0
            if elapsed >= next_directive:
                try:
                    self.scheduled_directive(n)
                except Exception:  # a city busy starting up: the same directive again shortly
                    next_directive = elapsed + 5.0
                    continue
                n += 1
                next_directive = SECOND_DIRECTIVE_S if n == 1 else next_directive + DIRECTIVE_EVERY_S
            if elapsed >= next_supervision:
                done = None
                with contextlib.suppress(Exception):
                    done = self.supervise_oldest()
                # Nothing serious at the city yet (or a busy server): look again shortly, not in a minute.
                next_supervision = elapsed + (SUPERVISE_EVERY_S if done is not None else 5.0)

    def scheduled_directive(self, n: int) -> dict:
        """The ``n``-th directive of the shift (``DIRECTIVES`` in turn): to every street, or to one district."""
        h = self.hierarchy
        to, text, deadline_s, priority = DIRECTIVES[n % len(DIRECTIVES)]
        districts = h.of_tier("district")
        district = districts[(n // 2) % len(districts)].code
        # One district's streets that run in the demo (not the district itself: its other streets have no
        # server here, so such a directive could never be acknowledged by all and the run's end would wait).
        streets = [s.code for s in h.of_tier("street")]
        targets = streets if to == "streets" else [c for c in streets if c.startswith(district)]
        return self.send_directive(targets, text, deadline_s=deadline_s, priority=priority)

    def supervise_oldest(self) -> dict | None:
        """督办 the oldest open red or orange event nobody above has supervised yet (None when there is none)."""
        duty = Remote(self.hierarchy.city.url, self.city_token)
        try:
            events = duty.events(limit=500)
            serious = [e for e in events if e.get("colour") in ("red", "orange") and not e.get("supervised_by")
                       and e.get("id") not in self.supervised]
            if not serious:
                return None
            oldest = min(serious, key=lambda e: (e.get("reported_at") or 0.0, e.get("number") or ""))
            result = duty.command("supervise", {"event": oldest["id"],
                                                "note": "市级督办：请立即核实处置，30分钟内回告进展"})
        finally:
            duty.close()
        self.supervised.add(oldest["id"])
        self.directive_ids.append(result["directive_id"])
        return result

    def _feed(self) -> None:
        self.sim.opening()
        self.sim.run(None, tick=0.25)

    def _spawn(self, fn, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _answer_loop(self) -> None:
        """Street staff: read, acknowledge and later execute directives that reached their street."""
        while not self._halt.wait(1.0):
            for node in self.hierarchy.of_tier("street"):
                remote = self.remotes[node.node]
                with contextlib.suppress(Exception):
                    for d in remote._get("/v1/directives", "directives", limit=50):
                        status = remote.directive_status(d["id"])
                        mine = next((r for r in status["receipts"] if r["jurisdiction_code"] == node.code), None)
                        if mine is None or mine["state"] not in RECEIPT_NEXT:
                            continue
                        if mine["state"] == "acknowledged" and self.rng.random() < 0.5:
                            continue  # execution takes a while longer
                        remote.command("receipt", {"directive": d["id"], "state": RECEIPT_NEXT[mine["state"]]})
                        self.answers += 1

    def send_directive(self, targets: list[str], text: str, deadline_s: float = 900.0, priority: str = "high") -> dict:
        duty = Remote(self.hierarchy.city.url, self.city_token)  # sent as the city's duty officer, not as staff
        try:
            result = duty.command("directive.send", {
                "targets": targets, "text": text, "deadline_at": self.clock.now() + deadline_s, "priority": priority,
                "require_ack": True,
            })
        finally:
            duty.close()
        self.directive_ids.append(result["directive_id"])
        return result

    def run_for(self, seconds: float, progress=None) -> dict:
        self.start_feed()
        t0 = time.monotonic()
        h = self.hierarchy
        plan = [
            (0.25, lambda: self.send_directive([n.code for n in h.of_tier("street")],
                                               "今晚强降雨，请各镇街立即排查下穿通道、低洼地带并落实值守")),
            (0.4, lambda: self.send_directive([h.of_tier("district")[0].code],
                                              "开展燃气安全专项检查，48小时内上报隐患清单", deadline_s=7200.0,
                                              priority="normal")),
        ]
        while not self._halt.is_set():
            elapsed = time.monotonic() - t0
            if elapsed >= seconds:
                break
            while plan and elapsed >= plan[0][0] * seconds:
                _, action = plan.pop(0)
                try:
                    r = action()
                    if progress:
                        progress(f"directive {r['number']} sent to {r['recipients']} streets")
                except Exception as exc:  # reported in the summary's checks; the run goes on
                    if progress:
                        progress(f"directive failed: {exc}")
            self._halt.wait(min(1.0, max(0.05, seconds - elapsed)))
        return self.finish()

    def _stop_feed(self) -> None:
        if self.sim is not None:
            self.sim.stop()
        self._halt.set()
        for t in self._threads:
            t.join(5)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait for every pump and outbox to empty and the city's log to stop growing."""
        deadline = time.monotonic() + timeout
        last_head, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            busy = False
            for node in self.hierarchy.nodes:
                try:
                    health = self.remotes[node.node].health()
                except Exception:
                    busy = True
                    continue
                fed = health.get("federation", {})
                sync = fed.get("sync") or {}
                if fed.get("pump_backlog", 0) or _outbox_pending(sync):
                    busy = True
                if node is self.hierarchy.city:
                    if health["head"] != last_head:
                        last_head, stable_since = health["head"], time.monotonic()
            if not busy and time.monotonic() - stable_since >= 1.5:
                return True
            time.sleep(0.3)
        return False

    def await_receipts(self, timeout: float = 45.0) -> bool:
        """Before stopping, give the streets (still answering) the time to acknowledge every directive sent:
        the summary then reports the loop, not how far a loaded machine got by the last second."""
        deadline = time.monotonic() + timeout
        city = Remote(self.hierarchy.city.url, self.city_token)
        try:
            while time.monotonic() < deadline:
                try:
                    if all(city.directive_status(d)["complete"] for d in self.directive_ids):
                        return True
                except Exception:  # noqa: BLE001 - a busy or restarting city: ask again
                    pass
                time.sleep(0.5)
            return False
        finally:
            city.close()

    def finish(self) -> dict:
        self.await_receipts()
        self._stop_feed()
        drained = self.drain()
        nodes = self._collect()
        statuses = []
        city = Remote(self.hierarchy.city.url, self.city_token)
        for d_id in self.directive_ids:
            with contextlib.suppress(Exception):
                s = city.directive_status(d_id)
                statuses.append({k: s[k] for k in ("id", "number", "targets", "expected", "counts", "complete")}
                                | {"missing_acknowledged": s["missing"]["acknowledged"][:20]})
        city.close()
        self.abort()
        checks = self._check_stores()
        checks["drained"] = drained
        checks["killed_on_stop"] = self.killed
        checks["processes_left"] = self.hierarchy.alive()
        tiers = {"city": [], "district": [], "street": []}
        for n in nodes:
            tiers[n["tier"]].append(n)
        ok = (len(checks["city_districts_with_events"]) >= 2 and checks["city_duplicate_events"] == 0
              and checks["city_events_sharing_a_number"] == 0
              and checks["city_events_missing_from_district"] == 0 and not checks["processes_left"])
        sim = self.sim.stats if self.sim else SimStats()
        return {
            "ok": ok, "data_dir": self.data_dir, "duration_s": round(time.monotonic() - self.started_at, 1),
            "servers": len(self.hierarchy.nodes),
            "simulator": {"reported": sim.accepted, "refused": sim.rejected, "undelivered": sim.failures,
                          "loop_actions": sim.actions, "by_source": sim.by_source, "directive_answers": self.answers,
                          "sensors": sim.sensors, "readings": sim.readings, "readings_refused": sim.readings_refused,
                          "alarms_opened": sim.alarms_opened, "alarms_cleared": sim.alarms_cleared,
                          "refusals": dict(sorted(sim.reasons.items(), key=lambda kv: -kv[1])[:5])},
            "tiers": tiers, "directives": statuses, "checks": checks, "people": self.people,
        }

    def abort(self) -> None:
        """Stop everything (idempotent): the feed, then every server."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_feed()
        for r in self.remotes.values():
            with contextlib.suppress(Exception):
                r.close()
        self.killed = self.hierarchy.stop()

    # ---- summary

    def _collect(self) -> list[dict]:
        out = []
        for node in self.hierarchy.nodes:
            remote = self.remotes[node.node]
            row = {"node": node.node, "tier": node.tier, "code": node.code, "name": node.name, "url": node.url,
                   "db": node.db}
            try:
                stats = remote.stats()
                health = remote.health()
            except Exception as exc:
                row["error"] = str(exc)
                out.append(row)
                continue
            row.update(events=stats["events"], open_events=stats["open_events"],
                       events_by_origin_tier=stats["events_by_origin_tier"], directives=stats["directives"],
                       receipts=stats["receipts"], audit_entries=stats["audit_entries"],
                       audit_intact=stats["audit_intact"])
            sync = (health.get("federation") or {}).get("sync") or {}
            row["sync_lag_s"] = _first(sync, ("lag_s", "lag_seconds", "lag"))
            row["bytes_transferred"] = _bytes(sync)
            row["upstream"] = node.upstream
            row["federated_up"] = (health.get("federation") or {}).get("enqueued")
            out.append(row)
        return out

    def _check_stores(self) -> dict:
        """Open the stopped servers' stores read-only and check the city against its districts."""
        h = self.hierarchy
        city = open_store(h.city.db, read_only=True)
        try:
            by_district = {d: n for d, n in city.event_counts_by("district_code").items()}
            city_ids_by_district = {}
            for d in by_district:
                city_ids_by_district[d] = {e.id for e in city.all_events(district=d)}
            duplicates = city.duplicate_event_ids()
            shared_numbers = city.duplicate_event_numbers()
        finally:
            city.close()
        missing, served = 0, []
        for dn in h.of_tier("district"):
            store = open_store(dn.db, read_only=True)
            try:
                ids = set(store.event_ids())
            finally:
                store.close()
            wanted = city_ids_by_district.get(dn.code, set())
            missing += len(wanted - ids)
            if wanted:
                served.append(dn.code)
        return {
            "city_events_by_district": by_district,
            "city_districts_with_events": sorted(served),
            "city_duplicate_events": duplicates,
            "city_events_sharing_a_number": shared_numbers,
            "city_events_missing_from_district": missing,
        }


def _outbox_pending(sync: dict) -> int:
    for key in ("outbox_pending", "outbox", "pending"):
        v = sync.get(key)
        if isinstance(v, int):
            return v
        if isinstance(v, dict) and isinstance(v.get("pending"), int):
            return v["pending"]
    return 0


def _first(d: dict, keys):
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _bytes(sync: dict):
    total = 0
    found = False
    for k, v in sync.items():
        if "bytes" in k and isinstance(v, (int, float)):
            total += v
            found = True
    return total if found else None
