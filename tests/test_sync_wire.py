"""The sync wire format: round trips, sparse updates, strict decoding of anything malformed."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.domain.entities import Directive, Receipt
from cqgov_tui.domain.schema import to_row
from cqgov_tui.sync import wire
from cqgov_tui.sync.wire import Change, WireError

from factories import make_event

META = {"cqgov.kind": "changes", "cqgov.epoch": "E1", "cqgov.cursor": "E1:9", "cqgov.has_more": "0"}


def _sample() -> list[Change]:
    e = make_event(text="人行道井盖缺失，夜间行人易跌倒")
    d = Directive("d1", "D-1", "city", "500000", "防汛", "全市进入防汛Ⅳ级应急响应", "urgent", ["500108", "500103"], True,
                  2.0, 1.0, "u", 1)
    r = Receipt("d1", "500108", "delivered", 1.5, None, None, None, None, 0, 1)
    return [
        # scope and change time are not sent (the receiver derives them), so samples leave them empty
        Change(1, "event", e.id, "create", "city-500000", data=to_row(e)),
        Change(2, "event", e.id, "update", "city-500000", data={"id": e.id, "status": "verified", "due_at": None,
                                                                 "version": 2}),
        Change(3, "directive", "d1", "upsert", "city-500000", data=to_row(d)),
        Change(4, "receipt", "d1/500108", "upsert", "district-500108", data=to_row(r)),
    ]


def test_round_trip_keeps_every_field_and_null_differs_from_absent():
    changes = _sample()
    msg = wire.decode(wire.encode(changes, META))
    assert msg.changes == changes
    update = msg.changes[1]
    assert "due_at" in update.data and update.data["due_at"] is None  # set to null: present
    assert "text" not in update.data and "closed_at" not in update.data  # not sent: absent
    assert msg.epoch == "E1" and msg.cursor == "E1:9" and not msg.has_more
    assert msg.meta["cqgov.wire"] == wire.WIRE_VERSION


def test_payload_is_arrow_ipc_with_zstd_buffers_and_only_used_columns():
    changes = _sample()[1:2]
    payload = wire.encode(changes, META)
    reader = pa.ipc.open_stream(payload)
    names = reader.schema.names
    assert "text" not in names and "status" in names  # a transition does not pay for text columns
    assert "id" not in names  # the key is sent once, in _key
    assert reader.schema.metadata[b"cqgov.epoch"] == b"E1"
    # zstd frames carry this magic number
    assert b"\x28\xb5\x2f\xfd" in payload


@pytest.mark.parametrize("mutate, message", [
    (lambda m: {**m, "cqgov.wire": "99"}, "wire version"),
    (lambda m: {k: v for k, v in m.items() if k != "cqgov.cursor"}, "lacks metadata"),
    (lambda m: {**m, "cqgov.cursor": "E2:9"}, "disagree"),
    (lambda m: {**m, "cqgov.has_more": "maybe"}, "has_more"),
    (lambda m: {**m, "cqgov.cursor": "E1:1"}, "behind"),
])
def test_bad_metadata_is_refused(mutate, message):
    payload = wire.encode(_sample(), {**META})
    reader = pa.ipc.open_stream(payload)
    table = reader.read_all()
    meta = {k.decode(): v.decode() for k, v in reader.schema.metadata.items()}
    forged = table.replace_schema_metadata(mutate(meta))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, forged.schema) as w:
        w.write_table(forged)
    with pytest.raises(WireError, match=message):
        wire.decode(sink.getvalue().to_pybytes())


def _rewrite(payload: bytes, fn) -> bytes:
    reader = pa.ipc.open_stream(payload)
    table = fn(reader.read_all())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_wrong_types_unknown_columns_and_bad_rows_are_refused():
    payload = wire.encode(_sample(), META)
    status_i = pa.ipc.open_stream(payload).schema.get_field_index("version")
    with pytest.raises(WireError, match="type"):
        wire.decode(_rewrite(payload, lambda t: t.set_column(status_i, pa.field("version", pa.string()),
                                                             pa.array([str(x) for x in t.column(status_i).to_pylist()]))))
    with pytest.raises(WireError, match="unexpected"):
        wire.decode(_rewrite(payload, lambda t: t.append_column("evil", pa.array([1] * t.num_rows))))
    with pytest.raises(WireError, match="unknown entity"):
        wire.decode(_rewrite(payload, lambda t: t.set_column(
            1, t.schema.field(1), pa.array(["ghost"] * t.num_rows).dictionary_encode().cast(t.schema.field(1).type))))
    with pytest.raises(WireError, match="out of order"):
        wire.decode(_rewrite(payload, lambda t: t.set_column(0, t.schema.field(0), pa.array([1, 1, 2, 3], pa.int64()))))
    # an update that nulls a NOT NULL field
    bad = _sample()[1]
    bad = dataclasses.replace(bad, data={**bad.data, "status": None})
    with pytest.raises(WireError, match="may not be null"):
        wire.decode(wire.encode([bad], META))
    # a full row missing required fields
    short = dataclasses.replace(_sample()[0], data={"id": _sample()[0].key, "status": "reported"})
    with pytest.raises(WireError, match="lacks"):
        wire.decode(wire.encode([short], META))


def test_truncated_and_garbage_payloads_are_refused():
    payload = wire.encode(_sample(), META)
    for cut in (0, 1, 8, len(payload) // 3, len(payload) // 2, len(payload) - 9):
        with pytest.raises(WireError):
            wire.decode(payload[:cut])
    with pytest.raises(WireError):
        wire.decode(b'{"meta": {}, "changes": []}')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_decode_of_arbitrary_bytes_raises_only_wire_error(data):
    try:
        wire.decode(data)
    except WireError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_decode_of_corrupted_valid_payloads_raises_only_wire_error(data):
    payload = bytearray(wire.encode(_sample(), META))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    try:
        wire.decode(bytes(payload))
    except WireError:
        pass


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_opt_float = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64))


@settings(max_examples=80, deadline=None)
@given(title=_text, text=_text, due=_opt_float, lon=_opt_float, depts=st.lists(_text, max_size=3),
       status=st.sampled_from(["reported", "verified", "closed"]), version=st.integers(1, 2**40),
       fields=st.sets(st.sampled_from(["status", "due_at", "assignee", "departments", "title"])))
def test_encode_decode_round_trips(title, text, due, lon, depts, status, version, fields):
    e = make_event(title=title, text=text, due_at=due, lon=lon, departments=depts, status=status, version=version)
    row = to_row(e)
    sparse = {"id": e.id, "version": version, **{f: row[f] for f in fields}}
    changes = [Change(5, "event", e.id, "create", "n", data=row),
               Change(7, "event", e.id, "update", "n", data=sparse)]
    meta = {**META, "cqgov.cursor": "E1:7"}
    assert wire.decode(wire.encode(changes, meta)).changes == changes
    assert wire.decode(wire.encode([], meta)).changes == []


def test_coalesce_folds_updates_of_one_event_into_its_net_change():
    e = make_event()
    row = to_row(e)
    changes = [Change(1, "event", e.id, "create", "n", data=row),
               Change(2, "event", "other", "update", "n", data={"id": "other", "status": "verified", "version": 2}),
               Change(3, "event", e.id, "update", "n", data={"id": e.id, "status": "verified", "version": 2}),
               Change(4, "event", e.id, "update", "m", data={"id": e.id, "status": "assessed", "version": 3})]
    out = wire.coalesce(changes)
    assert [c.seq for c in out] == [2, 3, 4]  # a different origin is never folded in
    assert out[1].op == "create" and out[1].data == {**row, "status": "verified", "version": 2}


def test_cursor_parsing():
    assert wire.parse_cursor("abc-def:42") == ("abc-def", 42)
    for bad in ("", "42", ":1", "e:", "e:-1", "e:1.5", "e:" + "9" * 30):
        with pytest.raises(WireError):
            wire.parse_cursor(bad)


def test_field_name_that_is_not_utf8_is_refused():
    payload = wire.encode(_sample(), META)
    i = payload.index(b"status")
    broken = payload[:i] + b"\xff\xfe" + payload[i + 2:]  # found by hypothesis: pyarrow raised UnicodeDecodeError
    with pytest.raises(WireError):
        wire.decode(broken)
