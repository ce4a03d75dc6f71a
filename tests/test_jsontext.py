"""The write path's JSON (store/jsontext.py): the audit chain's canonical bytes must stay exactly what the
standard library made when the stored hashes were computed, and text must read back as the same values."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.domain.entities import AuditEntry
from cqgov_tui.store import audit, jsontext


def _stdlib_canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Every code point but the surrogates (which are refused by orjson and handled by the fallback, tested below).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_FLAT = st.one_of(st.none(), st.integers(-(2 ** 63), 2 ** 63 - 1), _TEXT, st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_TEXT, _FLAT, max_size=12))
def test_canonical_is_byte_for_byte_the_standard_librarys(value):
    assert jsontext.canonical(value) == _stdlib_canonical(value)


def test_canonical_over_every_code_point_and_a_lone_surrogate():
    for cp in [*range(0, 0xD800), *range(0xE000, 0x10000), 0x1F600, 0x10FFFF]:
        value = {"note": f"a{chr(cp)}b", "seq": cp, "to_status": None}
        assert jsontext.canonical(value) == _stdlib_canonical(value), hex(cp)
    lone = {"note": "\ud800"}  # not UTF-8: refused as the standard library's form was (bodies never carry one)
    with pytest.raises(UnicodeEncodeError):
        _stdlib_canonical(lone)
    with pytest.raises(UnicodeEncodeError):
        jsontext.canonical(lone)


def test_an_audit_hash_made_before_is_still_the_same():
    entry = AuditEntry(seq=7, acted_at=1764300000.123456, event_id="e1", action="verify", from_status="reported",
                       to_status="verified", actor="张伟", role="duty_officer", tier="district", node="district-500108",
                       note="核实：\x1b[31m 燃气\u2028", prev_hash="0" * 64, hash="")
    data = {name: getattr(entry, name) for name in audit._FIELDS}
    data["acted_at"] = repr(float(data["acted_at"]))
    assert audit.entry_hash("0" * 64, entry) == hashlib.sha256(
        ("0" * 64).encode() + _stdlib_canonical(data)).hexdigest()


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_TEXT, inner, max_size=5)),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_text_reads_back_as_the_same_values(value):
    assert json.loads(jsontext.text(value)) == value
    assert jsontext.parse(jsontext.text(value)) == value


def test_what_orjson_refuses_goes_through_the_standard_library():
    assert json.loads(jsontext.text({"n": 2 ** 70})) == {"n": 2 ** 70}
    assert jsontext.parse(jsontext.text({"s": "\ud800"})) == {"s": "\ud800"}
    assert jsontext.text({"at": object()}, default=lambda o: "x") == '{"at":"x"}'


def test_parse_accepts_and_refuses_what_the_standard_library_did():
    """A request body goes through ``parse``: what orjson refuses must end as the standard library ends it."""
    assert jsontext.parse(b'{"a": "\\ud800"}') == {"a": "\ud800"}  # a lone surrogate escape: the body model refuses it
    assert math.isnan(jsontext.parse(b'{"x": NaN}')["x"])  # likewise non-finite numbers
    # Past 64 bits orjson reads a float (the body models refuse such numbers either way); past a double's
    # range the standard library reads the exact integer, as before (``lon: 10**400`` is refused by name).
    assert jsontext.parse(b'{"n": 123456789012345678901234567890}')["n"] == pytest.approx(1.2345678901234568e29)
    assert jsontext.parse(b'{"lon": 1' + b"0" * 400 + b"}") == {"lon": 10 ** 400}
    with pytest.raises(RecursionError):
        jsontext.parse(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(UnicodeDecodeError):
        jsontext.parse(b'{"a": "\xff"}')
    with pytest.raises(ValueError):
        jsontext.parse(b'{"a": ')
    assert jsontext.encode({"燃气": [1, None, 2.5]}) == '{"燃气":[1,null,2.5]}'.encode()
