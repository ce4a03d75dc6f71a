"""Event simulator: citizen reports, grid-worker patrols and sensor readings with a city's daily rhythm.

Categories and places come from the catalogue and the geo registry; time
comes from an injectable clock. Each tick draws a Poisson number of new
events (the base rate scaled by the hour of day), and walks some earlier
events one step along the closed loop, the way a street's staff would —
so the stores fill with events at every stage, some of them overdue.

Sensors are not reported as events: a bounded sample of the catalogue's
sensors inside each target sends readings (``sensor.reading``) every few
simulated seconds, near a quiet baseline. The sensor share of the new
events starts *alarm episodes* instead: a sampled sensor's readings rise
over its threshold, stay there for a few minutes and fall back under its
``clear_below``, so the server opens one event per episode and clears it.
Staff walk a sensor event to the scene but dispose of it only once its
alarm has cleared (closing it while the sensor still alarms would make the
server open a fresh event for the same hazard).
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field

from ..catalogue import Catalogue
from ..clock import Clock, local
from ..domain.entities import Sensor, Source
from ..ids import uuid7
from ..scope import CITY_CODE, covers

# Hourly activity relative to the day's mean (Chongqing: quiet 01–06, morning and evening peaks).
RHYTHM = (0.35, 0.25, 0.2, 0.18, 0.2, 0.3, 0.55, 0.95, 1.35, 1.55, 1.5, 1.35,
          1.15, 1.15, 1.3, 1.4, 1.45, 1.55, 1.45, 1.25, 1.05, 0.85, 0.65, 0.45)
_MEAN = sum(RHYTHM) / len(RHYTHM)

# The seeds' volumes: a district hub takes about 400 events a day (谢家湾 alone reported 4,642 grid events in a
# quarter, ~50 a day) across the 40 categories. Events per district and day by source and category; the
# simulator draws with these as weights, so the mix follows them at any rate. Fires are rare.
CITIZEN = {"noise": 45, "garbage": 16, "street_vending": 14, "streetlight": 15, "dispute": 28, "manhole_cover": 9,
           "waterlogging": 5, "underpass_flooding": 1, "traffic_jam": 12, "food_safety": 9, "elderly_help": 11,
           "wage_arrears": 6, "enterprise_appeal": 8, "petition": 10, "traffic_accident": 6, "elevator_trap": 3,
           "power_outage": 1, "public_health": 0.3, "ebike_fire": 0.4, "highrise_fire": 0.05}
GRID = {"garbage": 50, "illegal_construction": 22, "street_vending": 35, "manhole_cover": 11, "site_hazard": 17,
        "dust": 14, "open_burning": 4, "construction_waste_dump": 11, "muck_spill": 12, "crowd_gathering": 2,
        "road_collapse": 0.5, "water_main_burst": 1, "water_pollution": 2, "grid_vacancy": 2, "correction_absent": 0.5,
        "scenic_overcrowding": 1, "work_safety": 1, "landslide": 0.3, "forest_fire": 0.1, "hazchem_leak": 0.1,
        "gas_leak": 1}
SENSOR_ALARMS_PER_DAY = 12.0  # alarm episodes a district's sensors raise (methane tanks most, smoke and water less)
EVENTS_PER_DISTRICT_DAY = sum(CITIZEN.values()) + sum(GRID.values()) + SENSOR_ALARMS_PER_DAY  # ≈ 400
SOURCE_MIX = ((Source.CITIZEN.value, sum(CITIZEN.values()) / EVENTS_PER_DISTRICT_DAY),
              (Source.GRID.value, sum(GRID.values()) / EVENTS_PER_DISTRICT_DAY),
              (Source.SENSOR.value, SENSOR_ALARMS_PER_DAY / EVENTS_PER_DISTRICT_DAY))
# How often each kind of sensor reports (seconds): detectors every minute, levels and ground every few minutes.
READING_EVERY_BY_KIND = {"methane": 60.0, "gas": 30.0, "smoke": 30.0, "noise": 60.0, "pm10": 300.0,
                         "water_level": 300.0, "river_level": 600.0, "displacement": 600.0}


def seeds_rate(districts: int, speed: float = 1.0) -> float:
    """Events per second for ``districts`` districts at the seeds' volume, ``speed`` times faster than life."""
    return districts * EVENTS_PER_DISTRICT_DAY / 86400.0 * speed
# Sensor readings: how many sensors each target feeds, how often each reads, and the episodes' shape.
SENSORS_PER_TARGET = 50
READING_EVERY_S = 5.0
EPISODE_S = (150.0, 420.0)  # whole episode: rise, a few minutes over threshold, fall back under clear_below
COOLDOWN_S = (600.0, 1800.0)  # a sensor rests this long after an episode before another can start
READINGS_PER_COMMAND = 500  # the server's bound per sensor.reading command
# A sensor far behind the clock (a stalled feed) skips ahead rather than sending a burst of old readings.
MAX_BACKLOG_READINGS = 10
# Loop steps that wait for a sensor event's alarm to clear (the hazard must be gone to dispose of it).
_AFTER_CLEAR = frozenset({"dispose", "feedback", "close"})
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
    accepted: int = 0  # events reported, including those sensor readings opened
    rejected: int = 0
    actions: int = 0
    failures: int = 0
    by_source: dict = field(default_factory=dict)  # new events drawn per source (sensor: alarm episodes started)
    reasons: dict = field(default_factory=dict)
    sensors: int = 0  # sensors sending readings
    readings: int = 0  # readings the servers stored
    readings_refused: int = 0
    alarms_opened: int = 0
    alarms_cleared: int = 0


@dataclass
class SensorTrack:
    """One simulated sensor: a noisy baseline, and now and then an alarm episode."""

    sensor: Sensor
    target: int
    baseline: float
    noise: float  # standard deviation of a reading around its level
    next_at: float  # time of its next reading
    every: float = READING_EVERY_S  # seconds between its readings
    episode: tuple[float, float, float] | None = None  # (start, duration, peak)
    rest_until: float = 0.0  # no new episode before this

    def idle(self, t: float) -> bool:
        return self.episode is None and t >= self.rest_until

    def level(self, t: float) -> float:
        """Noise-free value at ``t``: the baseline, or the episode's rise, plateau over threshold and fall."""
        if self.episode is None:
            return self.baseline
        start, duration, peak = self.episode
        p = (t - start) / duration
        if p < 0.05:  # gas and water build up over seconds to tens of seconds
            shape = max(0.0, p / 0.05)
        elif p < 0.75:
            shape = 1.0
        else:
            shape = max(0.0, (1.0 - p) / 0.25)
        return self.baseline + (peak - self.baseline) * shape

    def reading(self, t: float, rng: random.Random) -> float:
        s = self.sensor
        value = self.level(t) + rng.gauss(0.0, self.noise)
        if self.episode is None:
            # Quiet readings stay under clear_below, so only episodes open (and clear) alarms.
            value = min(value, s.clear_below - self.noise * 0.5)
        elif self.level(t) >= s.threshold:
            value = max(value, s.threshold)  # over threshold means over: noise never splits a plateau
        if s.clear_below > 0:  # concentrations, depths and levels of this kind cannot go negative
            value = max(0.0, value)
        return round(value, 3)


def track_for(sensor: Sensor, target: int, t: float, every: float, rng: random.Random) -> SensorTrack:
    """A sensor's quiet level: under ``clear_below`` by a share of its hysteresis gap, never negative."""
    gap = max(sensor.threshold - sensor.clear_below, abs(sensor.clear_below) * 0.5, 1e-3)
    baseline = sensor.clear_below - gap * rng.uniform(0.2, 0.6)
    if sensor.clear_below > 0:
        baseline = max(baseline, sensor.clear_below * 0.2)
    return SensorTrack(sensor, target, baseline, gap * 0.04, t + rng.uniform(0.0, every), every)


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
                 seed: int | None = None, progress: float = 0.6, *, sensors_per_target: int = SENSORS_PER_TARGET,
                 reading_every: float = READING_EVERY_S, episode_s: tuple[float, float] = EPISODE_S,
                 cooldown_s: tuple[float, float] = COOLDOWN_S, source_mix=SOURCE_MIX,
                 reading_every_by_kind: dict[str, float] | None = None):
        if rate < 0:
            raise ValueError("rate must be non-negative")
        if reading_every <= 0 or not 0 < episode_s[0] <= episode_s[1] or sensors_per_target < 0:
            raise ValueError("reading_every and episode lengths must be positive, sensors_per_target non-negative")
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
        self.source_mix = tuple(source_mix)
        self.reading_every = reading_every
        # Each kind at its own rate (READING_EVERY_BY_KIND: real detectors), or every sensor at reading_every.
        self.reading_every_by_kind = dict(reading_every_by_kind or {})
        self.episode_s = episode_s
        self.cooldown_s = cooldown_s
        self._alarming: set[str] = set()  # sensor events whose alarm has not cleared yet
        self.tracks = self._sample_sensors(sensors_per_target)
        self._idle_by_target: dict[int, list[SensorTrack]] = {}
        for track in self.tracks:
            self._idle_by_target.setdefault(track.target, []).append(track)
        self.stats.sensors = len(self.tracks)
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

    # ---- sensors

    def _sample_sensors(self, per_target: int) -> list[SensorTrack]:
        """Up to ``per_target`` sensors inside each target; a sensor feeds only the most specific target
        holding it (its street's server rather than its district's), and the city ingests none."""
        owner: dict[str, int] = {}
        points = self.catalogue.risk_points
        for code in sorted(self.catalogue.sensors):
            point = points.get(self.catalogue.sensors[code].risk_point_code)
            if point is None:
                continue
            best = None
            for ti, target in enumerate(self.targets):
                if target.code != CITY_CODE and covers(target.code, point.grid_code):
                    if best is None or len(target.code) > len(self.targets[best].code):
                        best = ti
            if best is not None:
                owner[code] = best
        now = self.clock.now()
        tracks = []
        for ti in range(len(self.targets)):
            mine = [code for code, t in owner.items() if t == ti]
            chosen = sorted(self.rng.sample(mine, min(per_target, len(mine))))
            tracks += [track_for(self.catalogue.sensors[c], ti, now, self._every(self.catalogue.sensors[c]), self.rng)
                       for c in chosen]
        return tracks

    def _every(self, sensor: Sensor) -> float:
        return self.reading_every_by_kind.get(getattr(sensor, "kind", ""), self.reading_every)

    def start_episode(self, target_index: int) -> SensorTrack | None:
        """Start an alarm episode on an idle sensor of the target (None when it has no idle sensor)."""
        now = self.clock.now()
        idle = [t for t in self._idle_by_target.get(target_index, ()) if t.idle(now)]
        if not idle:
            return None
        track = self.rng.choice(idle)
        s = track.sensor
        gap = max(s.threshold - s.clear_below, 1e-3)
        track.episode = (now, self.rng.uniform(*self.episode_s), s.threshold + gap * self.rng.uniform(0.3, 1.5))
        return track

    def _readings(self) -> list[dict]:
        """Every reading due by now, as sensor.reading commands per target (episodes end here too)."""
        now, rng = self.clock.now(), self.rng
        due: dict[int, list[list]] = {}
        for track in self.tracks:
            every = track.every
            if now - track.next_at > every * MAX_BACKLOG_READINGS:
                track.next_at = now - every * rng.random()
            while track.next_at <= now:
                at = track.next_at
                if track.episode is not None and at >= track.episode[0] + track.episode[1]:
                    track.episode = None
                    track.rest_until = at + rng.uniform(*self.cooldown_s)
                due.setdefault(track.target, []).append([track.sensor.code, round(at, 3), track.reading(at, rng)])
                track.next_at = at + every * rng.uniform(0.9, 1.1)
        cmds = []
        for ti, rows in due.items():
            for i in range(0, len(rows), READINGS_PER_COMMAND):
                cmds.append({"id": uuid7(int(now * 1000)), "type": "sensor.reading",
                             "body": {"readings": rows[i:i + READINGS_PER_COMMAND]}, "_target": ti})
        return cmds

    # ---- drawing events

    def draw(self, target_index: int) -> dict | None:
        """One realistic report command (envelope) for a target, or None when it starts a sensor episode."""
        rng = self.rng
        target = self.targets[target_index]
        r, acc, source = rng.random(), 0.0, Source.CITIZEN.value
        for name, share in self.source_mix:
            acc += share
            if r < acc:
                source = name
                break
        if source == Source.SENSOR.value:
            if self.start_episode(target_index) is not None:
                self.stats.by_source[source] = self.stats.by_source.get(source, 0) + 1
                return None
            source = Source.GRID.value  # no idle sensor here: a patrol finds something instead
        lon, lat = self.registry.random_point(target.code, rng)
        body = {"lon": round(lon, 6), "lat": round(lat, 6), "source": source, "event_id": uuid7(int(self.clock.now() * 1000))}
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

    def opening(self, colour: str = "orange") -> int:
        """One report the upper tiers must see from every target (the shift's hot list), whatever the
        hour's rhythm: a demo shows the street → district → city path from its first seconds."""
        cmds = []
        for ti in range(len(self.targets)):
            cmd = None
            while cmd is None:  # draw() may start a sensor episode instead; keep drawing for a report
                cmd = self.draw(ti)
            cmd["body"]["colour"] = colour
            cmds.append(cmd)
        self.send(cmds)
        return len(cmds)

    def _actions(self) -> list[dict]:
        """Move some open events one step along the loop."""
        out, keep = [], []
        for item in self._open:
            ti, event_id, status = item
            action = NEXT_ACTION.get(status)
            if action is None:
                continue  # closed, merged or rejected: nothing more to do
            if action in _AFTER_CLEAR and event_id in self._alarming:
                keep.append(item)  # the crew is there; the hazard is not gone yet
                continue
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
        drawn = [self.draw(self.rng.randrange(len(self.targets))) for _ in range(n)]
        return self._actions() + [c for c in drawn if c is not None] + self._readings()

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
                if c["type"] == "sensor.reading":
                    self._readings_answered(ti, c, results.get(c["id"]))
                elif c["id"] in results:
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

    def _readings_answered(self, ti: int, command: dict, result: dict | None) -> None:
        """Count a sensor.reading command's outcome; its opened events join the staff's work."""
        if result is None:  # refused as a whole; the reason is counted with the other refusals
            self.stats.readings_refused += len(command["body"]["readings"])
            return
        self.stats.readings += int(result.get("stored") or 0)
        refused = result.get("rejected") or []
        self.stats.readings_refused += len(refused)
        for r in refused:
            reason = str(r.get("reason", "?") if isinstance(r, dict) else r)[:60]
            self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
        status = {e.get("event_id"): e.get("status") for e in result.get("opened_events") or [] if isinstance(e, dict)}
        for event_id in result.get("opened") or []:
            self.stats.accepted += 1
            self.stats.alarms_opened += 1
            self._alarming.add(event_id)
            self._open.append((ti, event_id, status.get(event_id) or "reported"))
        for event_id in result.get("cleared") or []:
            self.stats.alarms_cleared += 1
            self._alarming.discard(event_id)

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


