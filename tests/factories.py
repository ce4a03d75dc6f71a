"""Test helpers: entities built without the catalogue or geography, the sample console backend, Pilot settling."""

from __future__ import annotations

from cqgov_tui.domain.entities import Event
from cqgov_tui.ids import uuid7


def make_event(**over) -> Event:
    now = over.pop("now", 1_795_000_000.0)
    base = dict(
        id=uuid7(int(now * 1000)), number="0108-20261118-00001", city_code="500000", district_code="500108",
        street_code="500108001", grid_code="500108001001", category_code="c01", colour="yellow",
        status="reported", title="井盖缺失", text="人行道井盖缺失", lon=106.57, lat=29.52, address="南岸区",
        source="citizen", reporter="tester", assignee=None, departments=[], sla_profile="standard",
        reported_at=now, stage_started_at=now, due_at=now + 1800, closed_at=None, updated_at=now,
        escalation_level=0, supervised_by=None, parent_id=None, merged_into=None, duplicate_of=None,
        inhibited_by=None, plan_code=None, origin_tier="district", origin_node="district-500108", version=1,
    )
    base.update(over)
    return Event(**base)


SAMPLE_START = 1_795_000_000.0  # the sample city's clock (console tests and snapshots)


def sample_backend(sample_file: str, tmp_path, now: float, role=None):
    """A LocalBackend on a private copy of the sample city, its clock at ``now`` (caller closes ``.store``)."""
    import shutil

    from cqgov_tui.clock import SimClock
    from cqgov_tui.console.backend import LocalBackend
    from cqgov_tui.console.sample import sample_user
    from cqgov_tui.store import open_store

    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    clock = SimClock(now)
    store = open_store(path, clock)
    user = sample_user(role) if role is not None else sample_user()
    return LocalBackend(store, user=user, clock=clock, sweep=False)


READY_DEADLINE_S = 30.0


async def until_ready(pilot, deadline_s: float = READY_DEADLINE_S) -> None:
    """Until the console says every pane shows real content (``ConsoleApp.ready``) or shows a failure
    (a broken backend never fills); fails, naming the panes still loading, after ``deadline_s``."""
    import time

    app = pilot.app
    give_up = time.monotonic() + deadline_s
    while not app.ready and not app.last_error:
        if time.monotonic() > give_up:
            missing = ", ".join(app.progress.missing)
            raise AssertionError(f"console not ready after {deadline_s:.0f} s: still loading {missing}")
        await pilot.pause(0.01)


async def wait_for(pilot, cond, what: str, deadline_s: float = READY_DEADLINE_S) -> None:
    """Until ``cond()`` holds (a screen pushed, a message shown): a loaded machine may take a while, so
    a test waits for the condition it asserts, bounded, instead of for a fixed settle."""
    import time

    give_up = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > give_up:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        await pilot.pause(0.01)


async def settle(pilot) -> None:
    """Until every pane is filled, then until no worker runs after a repaint (at most three rounds: a
    finished worker may start another)."""
    from textual.worker import WorkerCancelled

    await until_ready(pilot)
    app = pilot.app
    for _ in range(3):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:  # an exclusive refresh replaced by a newer one
            pass
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            return
