"""Sensor readings (物联感知) → alarm episodes → events.

A reading at or above its sensor's threshold opens an *alarm episode*: one
event (category of the sensor's risk point, at the risk point, source
``sensor``, reporter = the sensor code, colour from the reading's band).
Later over-threshold readings attach to that episode — no new event; a worse
band raises the event's colour (audited ``alarm_raise``). A reading under the
sensor's ``clear_below`` ends the episode with an audited ``alarm_clear``
entry on the event; the event itself carries on through the loop (someone
still has to dispose of the cause and close it). Readings between
``clear_below`` and the threshold change nothing (hysteresis).

If the episode's event was closed or rejected while the sensor still reads
over threshold, the next over-threshold reading ends that episode
(``alarm_clear`` noting why) and opens a new event: the hazard is still
there. An event merged into another follows its survivor.

Episode state lives in the store (the latest sensor event without an
``alarm_clear`` entry), kept per sensor in ``sensor_state`` and followed from
the change log (``store.sensors``), so it survives restarts and costs a batch
no scan of readings or events.

Batches: each reading is validated on its own; bad ones are rejected with a
one-line reason and nothing is stored for them, the good ones are stored and
acted on in a single transaction (all of them or, on an unexpected failure,
none). Readings are processed in time order; a reading not later than the
sensor's latest stored one is rejected, since alarm state runs forward in
time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence

from ..domain.colour import Colour
from ..domain.entities import Event, Role, Sensor, SensorKind, SensorState, Source, Status, Tier
from ..scope import covers

if TYPE_CHECKING:
    from ..store import Store
    from .core import Engine

# Readings before this (2000-01-01) are a unit error (ms, or a zero clock), not history.
EARLIEST = 946_684_800.0
# A device clock may run a little fast; more than this into the future is refused.
MAX_AHEAD_S = 3600.0
# How many merge hops to follow to an episode's surviving event.
_MAX_HOPS = 8
_ENDED = frozenset({Status.CLOSED.value, Status.REVIEWED.value, Status.REJECTED.value})


@dataclass(frozen=True)
class Rejection:
    index: int  # position in the batch given to ``ingest``
    sensor_code: str
    reason: str

    def __str__(self) -> str:
        return f"reading {self.index + 1}: {self.reason}"


@dataclass
class IngestResult:
    opened: list[str] = field(default_factory=list)  # event ids of new alarm episodes
    cleared: list[str] = field(default_factory=list)  # event ids whose alarm cleared
    stored: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    attached: int = 0  # over-threshold readings added to a running episode
    raised: list[str] = field(default_factory=list)  # event ids whose colour a reading raised

    def to_dict(self) -> dict:
        return {"stored": self.stored, "opened": self.opened, "cleared": self.cleared, "attached": self.attached,
                "raised": self.raised,
                "rejected": [{"index": r.index, "sensor": r.sensor_code, "reason": r.reason} for r in self.rejected]}


def band_colour(bands: tuple[float, float, float, float], value: float) -> Colour:
    """Five-colour band of a reading (bands ascend; orange from the alarm threshold up)."""
    steps = sum(value >= b for b in bands)
    return (Colour.GREEN, Colour.BLUE, Colour.YELLOW, Colour.ORANGE, Colour.RED)[steps]


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class SensorMonitor:
    """Turns readings into alarm episodes through the engine's public ``report``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.catalogue = engine.catalogue
        self.clock = engine.clock
        # Code → its sensor or the reason it cannot report here: a district's 319,000 sensors are
        # looked up and placed once, not on each of their 288 readings a day.
        self._placed: dict[str, Sensor | str] = {}

    # ------------------------------------------------------------ validation

    def check(self, reading: Any, now: float) -> tuple[Sensor, float, float] | str:
        """The sensor, time and value of a good reading, or the reason it is refused."""
        if not isinstance(reading, (tuple, list)) or len(reading) != 3:
            return f"expected (sensor_code, measured_at, value), got {_short(reading)}"
        code, at, value = reading
        if not isinstance(code, str) or not code.strip():
            return f"sensor code must be text, got {_short(code)}"
        sensor = self._placed.get(code)
        if sensor is None:
            sensor = self._placed[code] = self._place(code.strip())
        if isinstance(sensor, str):
            return sensor
        if not _is_number(at):
            return f"{sensor.code}: time must be epoch seconds, got {_short(at)}"
        at = float(at)
        if not math.isfinite(at) or at < EARLIEST:
            return f"{sensor.code}: time {at:g} is not a plausible epoch-seconds timestamp"
        if at > now + MAX_AHEAD_S:
            return f"{sensor.code}: time {at:.0f} is {(at - now) / 3600:.1f} h in the future"
        if not _is_number(value):
            return f"{sensor.code}: value must be a number, got {_short(value)}"
        value = float(value)
        if not math.isfinite(value):
            return f"{sensor.code}: value {value} is not a finite number"
        return sensor, at, value

    def _place(self, code: str) -> Sensor | str:
        """The sensor of a code that may report here, or why not (memoised per code by ``check``)."""
        sensor = self.catalogue.sensors.get(code)
        if sensor is None:
            return f"unknown sensor {code!r}"
        rp = self.catalogue.risk_points.get(sensor.risk_point_code)
        if rp is None:
            return f"sensor {sensor.code} sits on unknown risk point {sensor.risk_point_code!r}"
        if not covers(self.engine.system.scope_code, rp.grid_code):
            return f"sensor {sensor.code} is outside this store's jurisdiction {self.engine.system.scope_code}"
        return sensor

    # ------------------------------------------------------------ ingest

    def ingest(self, readings: Sequence[Any], states: dict[str, SensorState] | None = None) -> IngestResult:
        """Validate, store and act on a batch of (sensor_code, measured_at, value).

        ``states``: the sensors' states as the caller just read them inside its own transaction
        (``store.sensor_states``), so they are not looked up twice."""
        now = self.clock.now()
        result = IngestResult()
        good: list[tuple[int, Sensor, float, float]] = []
        for i, reading in enumerate(readings):
            checked = self.check(reading, now)
            if isinstance(checked, str):
                code = reading[0] if isinstance(reading, (tuple, list)) and reading and isinstance(reading[0], str) else ""
                result.rejected.append(Rejection(i, code, checked))
            else:
                good.append((i, *checked))
        good.sort(key=lambda g: (g[2], g[0]))
        with self.store.tx():
            codes = sorted({g[1].code for g in good})
            # Keyed state (store.sensors): the latest reading and running episode per sensor, no scans.
            if states is None:
                states = self.store.sensor_states(codes)
            latest = {c: s.last_at for c, s in states.items() if s.last_at is not None}
            episodes: dict[str, Event | None] = dict(self.store.episode_events(states))
            accepted: list[tuple[str, float, float]] = []
            for i, sensor, at, value in good:
                last = latest.get(sensor.code)
                if last is not None and at <= last:
                    why = "repeats" if at == last else "is older than"
                    result.rejected.append(Rejection(i, sensor.code,
                                                     f"{sensor.code}: time {at:.0f} {why} the latest reading ({last:.0f})"))
                    continue
                latest[sensor.code] = at
                accepted.append((sensor.code, at, value))
                episodes[sensor.code] = self._step(sensor, at, value, episodes.get(sensor.code), result)
            result.stored = self.store.record_readings(accepted)
        result.rejected.sort(key=lambda r: r.index)
        return result

    def _step(self, sensor: Sensor, at: float, value: float, episode: Event | None,
              result: IngestResult) -> Event | None:
        """Advance one sensor's alarm state by one reading; returns the running episode's event."""
        if value >= sensor.threshold:
            kind = self.catalogue.sensor_kind(sensor.kind)  # only alarms need the bands
            if episode is not None:
                handling = self._handling(episode)
                if handling.status not in _ENDED:
                    self._attach(handling, sensor, at, value, kind, result)
                    return episode
                self._clear(episode, sensor, at, value,
                            f"still over threshold after the event was {handling.status}; a new alarm opens")
            event = self._open(sensor, at, value, kind)
            result.opened.append(event.id)
            return event
        if episode is not None and value < sensor.clear_below:
            self._clear(episode, sensor, at, value, f"back under {sensor.clear_below:g} {sensor.unit}")
            result.cleared.append(episode.id)
            return None
        return episode

    def _open(self, sensor: Sensor, at: float, value: float, kind: SensorKind) -> Event:
        rp = self.catalogue.risk_points[sensor.risk_point_code]
        colour = band_colour(kind.bands, value)
        return self.engine.report(
            category=rp.category_code,
            title=f"{kind.name}超限 {rp.name}",
            text=(f"{sensor.code} 读数 {value:g} {sensor.unit}（阈值 {sensor.threshold:g}），"
                  f"测于 {at:.0f}；risk point {rp.code}"),
            lon=rp.lon, lat=rp.lat, colour=colour.value, source=Source.SENSOR.value, reporter=sensor.code,
        )

    def _attach(self, event: Event, sensor: Sensor, at: float, value: float, kind: SensorKind,
                result: IngestResult) -> None:
        result.attached += 1
        colour = band_colour(kind.bands, value)
        if colour.rank >= Colour(event.colour).rank:
            return  # only a worse band is worth an audit entry; readings themselves are in sensor_readings
        previous = event.colour
        event = self.store.update_event(replace(event, colour=colour.value, updated_at=self.clock.now()),
                                        ["colour", "updated_at"])
        self._audit(event, "alarm_raise", sensor,
                    f"{sensor.code} 读数 {value:g} {sensor.unit} at {at:.0f}; colour {previous} → {colour.value}")
        result.raised.append(event.id)

    def _clear(self, episode: Event, sensor: Sensor, at: float, value: float, why: str) -> None:
        current = self.store.get_event(episode.id) or episode
        self._audit(current, "alarm_clear", sensor, f"alarm cleared: {sensor.code} 读数 {value:g} {sensor.unit} "
                                                    f"at {at:.0f}; {why}")

    def _handling(self, event: Event) -> Event:
        """The event now handling an episode: itself, or the survivor it was merged into."""
        current = self.store.get_event(event.id) or event
        for _ in range(_MAX_HOPS):
            if current.status != Status.MERGED.value or not current.merged_into:
                break
            survivor = self.store.get_event(current.merged_into)
            if survivor is None:
                break
            current = survivor
        return current

    def _audit(self, event: Event, action: str, sensor: Sensor, note: str) -> None:
        system = self.engine.system
        self.store.append_audit(event_id=event.id, action=action, from_status=event.status, to_status=event.status,
                                actor=sensor.code, role=Role(system.role).value, tier=Tier(system.tier).value,
                                note=note)

    # ------------------------------------------------------------ state

    def alarms(self) -> dict[str, Event]:
        """Sensor code → event of each running alarm episode (from the store's keyed sensor state)."""
        return self.store.sensor_alarm_events(list(self.catalogue.sensors))


def maintain(store: Store, now: float, max_chunks: int = 40) -> dict[str, Any]:
    """The tier server's periodic sensor upkeep (engine clock ``now``): fold the latest readings into
    ``sensor_state`` and roll raw readings older than the retention window up into buckets.

    Each roll-up chunk is its own short transaction (the store lock is free between chunks, so
    ingest never waits behind more than one); at most ``max_chunks`` per call, the rest next time
    (40 × 50k readings every 5 minutes is 6,700/s, over six times a district's 1,060/s).
    """
    folded = store.fold_sensor_state()
    rolled = buckets = chunks = 0
    done = False
    while chunks < max_chunks and not done:
        r = store.roll_up_readings(now)
        chunks += 1
        rolled += r.rolled
        buckets += r.buckets
        done = r.done
    return {"folded": folded, "rolled": rolled, "buckets": buckets, "chunks": chunks, "done": done}


def _short(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."
