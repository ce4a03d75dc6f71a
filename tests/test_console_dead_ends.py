"""Issue 13, "the console without dead ends": only actions the server would accept are offered; 督办 is one
of them on an event another tier owns; deadlines carry a date when not today."""

from __future__ import annotations

from factories import make_event

from cqgov_tui.clock import local
from cqgov_tui.console.detail import action_specs, deadline_text
from cqgov_tui.domain.entities import Role, Tier, User

CITY = User("duty", "值班长", Role.DUTY_OFFICER, Tier.CITY, "500000")
NOW = 1_795_000_000.0


def test_an_event_another_tier_owns_offers_supervise_and_no_lifecycle_action():
    event = make_event(status="accepted")
    own = [a.action for a in action_specs(event, CITY)]
    assert "supervise" not in own and "dispatch" not in own  # accepted: the city's own event
    theirs = [a.action for a in action_specs(event, CITY, owner="district-500108")]
    assert theirs == ["comment", "supervise"]  # no 到场 (refused by the server), supervise instead
    sup = next(a for a in action_specs(event, CITY, owner="district-500108") if a.action == "supervise")
    assert sup.needs_note and sup.zh == "督办"


def test_a_closed_event_offers_a_callback_and_no_supervision():
    event = make_event(status="closed")
    assert [a.action for a in action_specs(event, CITY, owner="district-500108")] == ["callback", "comment"]


def test_deadlines_show_a_date_unless_today():
    today = deadline_text(NOW + 60, NOW)
    assert today == local(NOW + 60).strftime("%H:%M:%S")
    tomorrow = NOW + 86400
    assert deadline_text(tomorrow, NOW) == local(tomorrow).strftime("%m-%d %H:%M")
