"""Event simulator: citizen reports, grid-worker patrols and sensor alarms with a city's daily rhythm.

Categories and places come from the catalogue and the geo registry; time
comes from an injectable clock. Each tick draws a Poisson number of new
events (the base rate scaled by the hour of day), and walks some earlier
events one step along the closed loop, the way a street's staff would —
so the stores fill with events at every stage, some of them overdue.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field

from ..catalogue import Catalogue
from ..clock import Clock, local
from ..domain.entities import Source
from ..ids import uuid7

# Hourly activity relative to the day's mean (Chongqing: quiet 01–06, morning and evening peaks).
RHYTHM = (0.35, 0.25, 0.2, 0.18, 0.2, 0.3, 0.55, 0.95, 1.35, 1.55, 1.5, 1.35,
          1.15, 1.15, 1.3, 1.4, 1.45, 1.55, 1.45, 1.25, 1.05, 0.85, 0.65, 0.45)
_MEAN = sum(RHYTHM) / len(RHYTHM)

# Which categories each source tends to produce (weights); unknown codes are ignored.
CITIZEN = {"noise": 6, "garbage": 5, "street_vending": 4, "streetlight": 3, "dispute": 4, "manhole_cover": 3,
           "waterlogging": 2, "traffic_jam": 2, "food_safety": 2, "elderly_help": 2, "wage_arrears": 1,
           "enterprise_appeal": 1, "traffic_accident": 1, "elevator_trap": 1, "ebike_fire": 0.5, "highrise_fire": 0.2}
GRID = {"garbage": 5, "illegal_construction": 4, "street_vending": 4, "manhole_cover": 3, "site_hazard": 3,
        "dust": 2, "open_burning": 1, "construction_waste_dump": 2, "muck_spill": 2, "crowd_gathering": 0.5,
        "road_collapse": 0.5, "water_main_burst": 0.5}
SOURCE_MIX = ((Source.CITIZEN.value, 0.5), (Source.GRID.value, 0.35), (Source.SENSOR.value, 0.15))
# The next loop step the street's staff take from each state (plans may already have done some).
NEXT_ACTION = {"reported": "verify", "verified": "dispatch", "assessed": "dispatch", "escalated": "dispatch",
               "dispatched": "accept", "accepted": "arrive", "on_scene": "dispose", "disposed": "feedback",
               "feedback": "close"}


def rhythm(t: float) -> float:
    """Activity multiplier at local time ``t`` (mean 1 over a day), interpolated between hours."""
    dt = local(t)
    h = dt.hour + dt.minute / 60.0
    i = int(h) % 24
    frac = h - int(h)
    return (RHYTHM[i] * (1 - frac) + RHYTHM[(i + 1) % 24] * frac) / _MEAN


@dataclass
class Target:
    """A server to feed and the jurisdiction its events fall in."""

    url: str
    token: str
    code: str  # street (or district) code; events are placed inside it
    sender: object = None  # anything with .commands(list) → reply (a Remote)


@dataclass
class SimStats:
    generated: int = 0
    accepted: int = 0
    rejected: int = 0
    actions: int = 0
    failures: int = 0
    by_source: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # normal approximation keeps large rates cheap
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Simulator:
    def __init__(self, targets: list[Target], catalogue: Catalogue, registry, clock: Clock, rate: float,
                 seed: int | None = None, progress: float = 0.6):
        if rate < 0:
            raise ValueError("rate must be non-negative")
        self.targets = targets
        self.catalogue = catalogue
        self.registry = registry
        self.clock = clock
        self.rate = rate
        self.progress = progress  # share of ticks' open events that move one step
        self.rng = random.Random(seed)
        self.stats = SimStats()
        self._open: list[tuple[int, str, str]] = []  # (target index, event id, status as last answered)
        self._stop = threading.Event()
        self._carry = 0.0
        sensor_cats = {}
        for kind in catalogue.sensor_kinds.values():
            if kind.category_code in catalogue.categories:
                sensor_cats[kind.code] = kind
        self.sensor_kinds = list(sensor_cats.values())
        self._weights = {
            Source.CITIZEN.value: self._weighted(CITIZEN),
            Source.GRID.value: self._weighted(GRID),
        }

    def _weighted(self, table: dict) -> tuple[list[str], list[float]]:
        codes = [c for c in table if c in self.catalogue.categories]
        if not codes:  # a catalogue without these codes: draw from grid-scope categories evenly
            codes = [c.code for c in self.catalogue.categories.values() if c.scope == "grid"]
            return codes, [1.0] * len(codes)
        return codes, [float(table[c]) for c in codes]

    # ---- drawing events

    def draw(self, target_index: int) -> dict:
        """One realistic report command (envelope) for a target."""
        rng = self.rng
        target = self.targets[target_index]
        r, acc, source = rng.random(), 0.0, Source.CITIZEN.value
        for name, share in SOURCE_MIX:
            acc += share
            if r < acc:
                source = name
                break
        lon, lat = self.registry.random_point(target.code, rng)
        body = {"lon": round(lon, 6), "lat": round(lat, 6), "source": source, "event_id": uuid7(int(self.clock.now() * 1000))}
        if source == Source.SENSOR.value and self.sensor_kinds:
            kind = rng.choice(self.sensor_kinds)
            value = kind.threshold * (1.0 + rng.random() * 0.8)
            cat = self.catalogue.categories[kind.category_code]
            body.update(category=cat.code, title=f"{kind.name}超限", reporter=f"sensor-{kind.code}",
                        text=f"{kind.name} {value:.2f}{kind.unit} ≥ 阈值 {kind.threshold:g}{kind.unit}")
        else:
            if source == Source.SENSOR.value:
                source = Source.GRID.value
                body["source"] = source
            codes, weights = self._weights[source]
            code = rng.choices(codes, weights)[0]
            cat = self.catalogue.categories[code]
            who = "市民" if source == Source.CITIZEN.value else "网格员"
            body.update(category=code, title=cat.name, reporter=f"{source}-{rng.randrange(1, 500):03d}",
                        text=f"{who}报告: {cat.name}")
            # Most events keep the category's colour; a few are judged more or less serious on the spot.
            roll = rng.random()
            if roll < 0.08:
                body["colour"] = "orange"
            elif roll < 0.1:
                body["colour"] = "red"
        self.stats.by_source[source] = self.stats.by_source.get(source, 0) + 1
        return {"id": uuid7(int(self.clock.now() * 1000)), "type": "report", "body": body, "_target": target_index}

    def _actions(self) -> list[dict]:
        """Move some open events one step along the loop."""
        out, keep = [], []
        for item in self._open:
            ti, event_id, status = item
            action = NEXT_ACTION.get(status)
            if action is None:
                continue  # closed, merged or rejected: nothing more to do
            if self.rng.random() < self.progress:
                body = {"event": event_id, "action": action, "note": "模拟处置"}
                out.append({"id": uuid7(int(self.clock.now() * 1000)), "type": "act", "body": body, "_target": ti})
            else:
                keep.append(item)
        self._open = keep[-5000:]
        return out

    def plan_tick(self, dt: float) -> list[dict]:
        """The commands for ``dt`` seconds of simulated time."""
        if not self.targets:
            return []
        mean = self.rate * dt * rhythm(self.clock.now()) + self._carry
        n = _poisson(self.rng, mean)
        self._carry = 0.0
        cmds = [self.draw(self.rng.randrange(len(self.targets))) for _ in range(n)]
        return self._actions() + cmds

    def send(self, cmds: list[dict]) -> None:
        by_target: dict[int, list[dict]] = {}
        for c in cmds:
            by_target.setdefault(c.pop("_target"), []).append(c)
        for ti, batch in by_target.items():
            sender = self.targets[ti].sender
            try:
                reply = sender.commands(batch)
            except Exception as exc:  # a server that is down or restarting: count it, go on
                self.stats.failures += len(batch)
                key = type(exc).__name__
                self.stats.reasons[key] = self.stats.reasons.get(key, 0) + 1
                continue
            results = {}
            for key in ("accepted", "duplicate"):
                for x in reply.get(key) or []:
                    if isinstance(x, dict):
                        results[x.get("id")] = x.get("result") or {}
            for c in batch:
                if c["id"] in results:
                    status = results[c["id"]].get("status", "reported")
                    if c["type"] == "report":
                        self.stats.accepted += 1
                    else:
                        self.stats.actions += 1
                    self._open.append((ti, results[c["id"]].get("event_id") or c["body"].get("event_id")
                                       or c["body"].get("event"), status))
                else:
                    self.stats.rejected += 1
            for x in reply.get("rejected") or []:
                reason = str(x.get("reason", "?"))[:60] if isinstance(x, dict) else "?"
                self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
        self.stats.generated += sum(1 for c in cmds if c["type"] == "report")

    def tick(self, dt: float) -> int:
        cmds = self.plan_tick(dt)
        if cmds:
            self.send(cmds)
        return len(cmds)

    def run(self, duration: float | None = None, tick: float = 0.25, wall=None) -> SimStats:
        """Feed until ``stop()`` or ``duration`` wall seconds; the clock supplies event times."""
        import time

        wall = wall or time.monotonic
        start = last = wall()
        while not self._stop.is_set():
            now = wall()
            if duration is not None and now - start >= duration:
                break
            self.tick(max(0.0, now - last))
            last = now
            self._stop.wait(tick)
        return self.stats

    def stop(self) -> None:
        self._stop.set()


