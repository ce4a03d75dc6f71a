"""Three-step flood warnings (万州: 通知转移 → 准备转移 → 立即转移) as a kind of directive.

A flood warning is a directive to streets whose title names its step; each
street's receipt is its answer (消息必达), and at each street the notifier
tells the street's 防汛责任人 (roster duty ``flood``) rather than the duty
officer. Steps only go up: a street is never sent a lower step than the one it
already has. A river-level sensor alarm (category ``flood_warning`` from a
``river_level`` sensor) issues step 1 to every street of its district at once;
steps 2 and 3 follow by hand (``cqgov notify flood``), or from the gauge: while
the alarm is open, its sensor's latest reading (metres over the warning line)
at or over ``STEP_LEVELS[1]`` sends 准备转移 and at or over ``STEP_LEVELS[2]``
立即转移 (``from_levels``, each once per alarm; a gauge that jumps straight past
both sends only 立即转移, since steps only go up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.entities import Directive, Event, Role, Status, Tier, User
from ..engine import directives
from ..errors import BadInput
from ..scope import CITY_CODE

if TYPE_CHECKING:
    from ..geo.registry import Registry
    from ..store import Store

STEPS = ("通知转移", "准备转移", "立即转移")
PRIORITY = {1: "high", 2: "urgent", 3: "urgent"}
DEADLINE_S = {1: 3600.0, 2: 1800.0, 3: 600.0}
STEP_LEVELS = (0.0, 0.5, 1.0)  # metres over the warning line for steps 1, 2, 3


def title(step: int, river: str) -> str:
    return f"【{STEPS[step - 1]}】{river}"


def step_of(directive: Directive) -> int | None:
    for i, s in enumerate(STEPS, start=1):
        if directive.title.startswith(f"【{s}】"):
            return i
    return None


def warn(store: Store, registry: Registry, actor: User, targets: list[str], step: int, river: str = "",
         text: str = "") -> Directive:
    """Send flood warning ``step`` (1-3) to streets or districts (a district means all its streets)."""
    if step not in (1, 2, 3):
        raise BadInput(f"flood warning step must be 1 ({STEPS[0]}), 2 ({STEPS[1]}) or 3 ({STEPS[2]})")
    river = (river or "").strip()[:60] or "河道水位超警戒"
    body = text.strip() or {
        1: f"{river}: 水位达到警戒线，请各镇街防汛责任人通知沿河低洼区域群众做好转移准备。",
        2: f"{river}: 水位持续上涨，请立即组织沿河群众准备转移，清点人员、打开避险点。",
        3: f"{river}: 水位超保证水位，请立即组织沿河群众转移至避险点，逐户清点，确保不漏一人。",
    }[step]
    now = store.clock.now()
    return directives.send(store, registry, actor=actor, targets=targets, title=title(step, river), text=body,
                           priority=PRIORITY[step], deadline_at=now + DEADLINE_S[step], require_ack=True)


def from_alarm(store: Store, registry: Registry, event: Event) -> Directive | None:
    """A river-level alarm at this district: step 1 to every street of the district, once per alarm."""
    if store.tier is Tier.STREET or event.category_code != "flood_warning" or event.source != "sensor":
        return None
    key = f"flood_warned:{event.id}"
    if store.meta(key) is not None:
        return None
    system = User("system", "系统", Role.ADMIN, store.tier, CITY_CODE if store.tier is Tier.CITY else store.code)
    with store.tx():
        d = warn(store, registry, system, [event.district_code], 1, f"{event.address or event.title}")
        store.set_meta(key, d.id)
        store.append_audit(event_id=event.id, action="flood.warn", from_status=event.status, to_status=event.status,
                           actor="system", role=Role.ADMIN.value, tier=store.tier.value,
                           note=f"{d.number} {d.title} → {event.district_code}")
    return d


def _system(store: Store) -> User:
    return User("system", "系统", Role.ADMIN, store.tier, CITY_CODE if store.tier is Tier.CITY else store.code)


def level_step(value: float) -> int:
    """The step a river level (metres over the warning line) calls for: 0 under the line, else 1-3."""
    return sum(1 for level in STEP_LEVELS if value >= level)


def from_levels(store: Store, registry: Registry, now: float) -> list[Directive]:
    """Steps 2 and 3 from rising gauges: for each open river-level alarm this node warned for, the step its
    sensor's latest reading calls for, sent once when it is above the step already sent."""
    if store.tier is Tier.STREET:
        return []
    sent: list[Directive] = []
    for event_id in store.flood_alarms():
        event = store.get_event(event_id)
        if event is None or not Status(event.status).is_open or not event.reporter:
            continue
        reading = store.latest_readings([event.reporter], until=now).get(event.reporter)
        if reading is None:
            continue
        key = f"flood_step:{event.id}"
        step = level_step(reading[1])
        with store.tx():
            done = int(store.meta(key, "1") or 1)
            if step <= done:
                continue
            d = warn(store, registry, _system(store), [event.district_code], step,
                     f"{event.address or event.title}")
            store.set_meta(key, str(step))
            store.append_audit(event_id=event.id, action="flood.warn", from_status=event.status,
                               to_status=event.status, actor="system", role=Role.ADMIN.value, tier=store.tier.value,
                               note=f"{d.number} {d.title} → {event.district_code}; {event.reporter} "
                                    f"{reading[1]:g} m ≥ {STEP_LEVELS[step - 1]:g}", at=now)
        sent.append(d)
    return sent
