"""Directive audiences: departments and roles inside the jurisdictions a directive reaches."""

from __future__ import annotations

import pytest

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import audience
from cqgov_tui.errors import UnknownCode
from cqgov_tui.server.auth import TokenAuthority

DEPTS = load_catalogue().departments


@pytest.mark.parametrize("typed, stored", [
    ("500108", "500108"), ("cgj", "dept:cgj"), ("dept:cgj", "dept:cgj"), ("城管", "dept:cgj"),
    ("区城市管理局", "dept:cgj"), (" 应急 ", "dept:yjj"), ("grid_worker", "role:grid_worker"),
    ("网格员", "role:grid_worker"), ("role:值班长", "role:duty_officer"), ("职能部门", "role:department"),
])
def test_a_target_is_read_the_way_a_dispatcher_types_it(typed, stored):
    assert audience.normalise(typed, DEPTS) == stored


@pytest.mark.parametrize("typed", ["交警大队", "dept:nope", "role:emperor", "role:auditor", "", "500108;DROP"])
def test_unknown_targets_are_refused(typed):
    with pytest.raises(UnknownCode):
        audience.normalise(typed, DEPTS)


def _user(role: Role, department: str | None = None) -> User:
    return User("u", "u", role, Tier.STREET, "500108001", department)


def test_who_may_answer():
    who = audience.audience_of(["500108", "dept:cgj", "role:grid_worker"])
    assert who == audience.Audience(("cgj",), ("grid_worker",)) and who.describe() == "城管 · 网格员"
    assert who.admits(_user(Role.GRID_WORKER))
    assert who.admits(_user(Role.DEPARTMENT, "cgj"))
    assert who.admits(_user(Role.DUTY_OFFICER)) and who.admits(_user(Role.ADMIN))  # they answer for the centre
    assert not who.admits(_user(Role.DEPARTMENT, "yjj"))
    assert not who.admits(_user(Role.DEPARTMENT))  # a department token without its department
    assert not who.admits(_user(Role.DISPATCHER))
    everyone = audience.audience_of(["500108"])
    assert not everyone and everyone.admits(_user(Role.DISPATCHER))


def test_a_department_travels_in_the_token():
    authority = TokenAuthority(b"k" * 32)
    token = authority.issue(user="wang", role="department", tier="street", scope="500108001", now=0, ttl=60,
                            department="cgj")
    assert authority.verify(token, now=1).department == "cgj"
    plain = authority.issue(user="li", role="grid_worker", tier="street", scope="500108001", now=0, ttl=60)
    assert authority.verify(plain, now=1).department is None


from hypothesis import given, strategies as st  # noqa: E402

_WORDS = st.sampled_from(["cgj", "城管", "网格员", "role:grid_worker", "dept:yjj", "500108", "role:", "dept:", ":"])


@given(st.one_of(st.text(max_size=20), _WORDS, st.builds(lambda a, b: a + b, _WORDS, st.text(max_size=4))))
def test_any_text_is_a_stored_target_or_one_clear_refusal(text):
    try:
        stored = audience.normalise(text, DEPTS)
    except UnknownCode as exc:
        assert "\n" not in str(exc)
        return
    # A stored target reads back as itself, and splits into exactly one of the three kinds.
    assert audience.normalise(stored, DEPTS) == stored
    kinds = [audience.is_jurisdiction(stored), stored.startswith(audience.DEPT), stored.startswith(audience.ROLE)]
    assert kinds.count(True) == 1
