"""The demo's people: a roster for the hierarchy, imported at the city (it replicates down by jurisdiction),
and the clients of people on duty reporting their status and position now and then."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..geo.registry import Registry
    from ..server.remote import Remote

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "军", "杰", "涛", "明", "超", "霞", "平", "刚", "思宇", "晓燕")


def _name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN)


def demo_roster(city_user: str, districts: list[str], streets: list[str], registry: Registry,
                grids_per_street: int = 3, seed: int = 0) -> str:
    """CSV: the city's duty officer (the console's user), two duty officers and a dispatcher per district, a
    duty officer, a 防汛责任人 and grid workers for the first grids of each street."""
    rng = random.Random(seed)
    rows = ["user,name,role,department,jurisdiction,phone,email,on_duty,rotation,duties",
            f"{city_user},市值班长{_name(rng)},duty_officer,,500000,13800000000,,yes,0,"]
    phone = 13800000001
    for d in districts:
        for i, (user, role) in enumerate(((f"duty-{d}", "duty_officer"), (f"duty2-{d}", "duty_officer"),
                                          (f"disp-{d}", "dispatcher"))):
            rows.append(f"{user},{_name(rng)},{role},,{d},{phone},,yes,{i if role == 'duty_officer' else 0},")
            phone += 1
    for s in streets:
        rows.append(f"duty-{s},{_name(rng)},duty_officer,,{s},{phone},,yes,0,")
        rows.append(f"flood-{s},{_name(rng)},grid_worker,,{s},{phone + 1},,yes,0,flood")
        phone += 2
        for g in registry.grid_codes(s)[:grids_per_street]:
            rows.append(f"gw-{g},{_name(rng)},grid_worker,,{g},{phone},,yes,0,")
            phone += 1
    return "\n".join(rows) + "\n"


def report_positions(remote: Remote, registry: Registry, people: list[dict], rng: random.Random, k: int = 6) -> int:
    """A few people's clients report status and position (near their jurisdiction's anchor)."""
    sent = 0
    for p in rng.sample(people, min(k, len(people))):
        j = registry.get(p["jurisdiction"]) if p["jurisdiction"] != "500000" else None
        if j is None:
            continue
        status = rng.choices(["on_duty", "busy", "off"], weights=[6, 3, 1])[0]
        remote.command("person.status", {"user": p["user"], "status": status,
                                         "lon": round(j.lon + rng.uniform(-0.004, 0.004), 6),
                                         "lat": round(j.lat + rng.uniform(-0.004, 0.004), 6)})
        sent += 1
    return sent
