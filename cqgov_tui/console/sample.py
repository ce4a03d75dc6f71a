"""A small deterministic city for tests, snapshots and `cqgov tui` without a server.

Events are reported and walked along the loop through the real ``Engine``
(so audit trails and SLA clocks are genuine); with a ``SimClock`` the result
is identical on every run.
"""

from __future__ import annotations

import numpy as np

from ..clock import Clock, SimClock
from ..domain.entities import Role, Tier, User
from ..scope import CITY_CODE
from .directives import DirectiveDraft

# (district, category, title, text, steps along the loop)
_SCRIPT = (
    ("500108", "highrise_fire", "南坪万达广场高层冒烟", "12楼窗口有浓烟, 有人被困", ()),
    ("500105", "gas_leak", "观音桥小区燃气泄漏", "楼道内有明显燃气味", ("verify",)),
    ("500106", "waterlogging", "沙坪坝下穿道积水", "积水约40厘米, 车辆熄火", ("verify", "dispatch")),
    ("500107", "waterlogging", "杨家坪步行街积水", "暴雨后路面积水", ("verify", "dispatch", "accept")),
    ("500112", "waterlogging", "渝北两路路口积水", "", ("verify", "dispatch", "accept", "arrive")),
    ("500103", "waterlogging", "解放碑路面积水", "", ("verify", "dispatch", "accept", "arrive", "dispose")),
    ("500104", "waterlogging", "大渡口积水已处置", "", ("verify", "dispatch", "accept", "arrive", "dispose", "feedback")),
    ("500101", "waterlogging", "万州滨江路积水", "", ()),
    ("500113", "waterlogging", "巴南鱼洞积水", "", ("verify",)),
    ("500116", "waterlogging", "江津几江积水", "", ()),
    ("500110", "waterlogging", "綦江古南积水", "", ("verify", "dispatch")),
    ("500118", "waterlogging", "永川中山路积水", "", ()),
)


def sample_user(role: Role = Role.ADMIN) -> User:
    return User("operator", "值班员", role, Tier.CITY, CITY_CODE)


def build_sample_store(clock: Clock | None = None, path: str = ":memory:", catalogue=None, registry=None,
                       extra: int = 24, seed: int = 7, directives: bool = True):
    """A city store with a few dozen events in every state of the loop, and two directives."""
    from ..engine import Engine
    from ..store import init_store
    from ..engine import directives as directive_engine
    from .backend import local_directive

    clock = clock or SimClock()
    store = init_store(path, "city", CITY_CODE, clock)
    engine = Engine(store, catalogue, registry, clock)
    reg, cat = engine.registry, engine.catalogue
    user = sample_user()
    rng = np.random.default_rng(seed)
    categories = sorted(cat.categories)
    script = list(_SCRIPT)
    streets = sorted(reg.streets)
    for i in range(extra):
        street = streets[int(rng.integers(len(streets)))]
        code = categories[int(rng.integers(len(categories)))]
        steps = ("verify", "dispatch", "accept", "arrive", "dispose", "feedback")[: int(rng.integers(0, 7))]
        script.append((street, code, f"{cat.categories[code].name}（{reg.get(street).name}）", "", steps))
    for place, category, title, text, steps in script:
        if category not in cat.categories:
            category = categories[0]
        code = _a_grid(reg, place, rng)
        # Plans stay off so the sample does not depend on plan fixtures; the loop is walked explicitly.
        event = engine.report(category=category, title=title, text=text, code=code, source="grid", apply_plans=False)
        clock.advance(20)
        for step in steps:
            engine.act(event.id, step, user, note="")
            clock.advance(15)
    if directives:
        districts = sorted(reg.districts)[:6]
        local_directive(store, reg, cat, user, DirectiveDraft("防汛四级应急响应", "各区县立即开展积水点巡查",
                                                              tuple(districts), "urgent", 30, True))
        d2 = local_directive(store, reg, cat, user, DirectiveDraft("高层建筑消防检查", "本周内完成辖区高层消防隐患排查",
                                                                   tuple(districts[:2]) + ("城管", "网格员"), "normal",
                                                                   240, True))
        streets_of_d2 = directive_engine.recipients(reg, d2.targets)
        for code in streets_of_d2[:5]:
            directive_engine.advance(store, d2.id, code, "acknowledged", user)
        for code in streets_of_d2[5:8]:
            directive_engine.advance(store, d2.id, code, "read", user)
    return store, engine


def _a_grid(reg, code: str, rng) -> str:
    """A grid inside ``code`` (a district or a street), picked by the seeded RNG."""
    if len(code) == 6:
        streets = [s.code for s in reg.children(code)]
        code = streets[int(rng.integers(len(streets)))]
    grids = reg.grid_codes(code)
    return grids[int(rng.integers(len(grids)))]
