"""The sync wire format: round trips, sparse updates, strict decoding of anything malformed."""

from __future__ import annotations

import dataclasses
import struct

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
    schema = reader.schema
    # a transition does not pay for text: no _texts pack; its uuid key travels as 16 bytes, sent once
    assert schema.names == ["_seq", "_kind", "_uuid", "_present", "_codes", "_times", "_ints"]
    assert schema.field("_uuid").type == pa.binary(16)
    assert schema.field("_codes").type.list_size == 2  # the origin, then status
    assert schema.field("_times").type.list_size == 1  # due_at
    assert schema.metadata[b"cqgov.epoch"] == b"E1" and schema.metadata[b"cqgov.wire"] == b"2"
    # zstd frames carry this magic number
    assert b"\x28\xb5\x2f\xfd" in payload


def test_times_round_trip_bit_for_bit_and_equal_times_cost_nothing():
    e = make_event()
    row = to_row(e)
    odd = [-0.0, 5e-324, 1.7976931348623157e308, -1e300, 1795000000.123456789, 0.1 + 0.2]
    changes = [Change(i + 1, "event", e.id, "update", "n", data={"id": e.id, "updated_at": t, "due_at": -t})
               for i, t in enumerate(odd)]
    got = wire.decode(wire.encode(changes, {**META, "cqgov.cursor": "E1:9"})).changes
    for sent, back in zip(changes, got):
        for f in ("updated_at", "due_at"):
            assert struct.pack("<d", back.data[f]) == struct.pack("<d", sent.data[f])
    # stage_started_at equal to updated_at is sent as a zero difference
    same = Change(1, "event", e.id, "create", "n", data={**row, "stage_started_at": row["updated_at"]})
    table = pa.ipc.open_stream(wire.encode([same], META)).read_all()
    times = table.column("_times").combine_chunks().values.to_pylist()
    assert times.count(0) >= 1 and len(wire.encode([same], META)) > 0


def test_keys_that_are_not_canonical_uuids_travel_as_text():
    e = make_event()
    upper = e.id.upper()
    changes = [Change(1, "event", upper, "update", "n", data={"status": "verified", "version": 2}),
               Change(2, "audit", "node-a/0000000000000000007", "append", "n",
                      data={"seq": 7, "acted_at": 3.0, "event_id": e.id, "action": "verify", "from_status": None,
                            "to_status": "verified", "actor": "u", "role": "dispatcher", "tier": "city",
                            "node": "node-a", "note": "", "prev_hash": "0" * 64, "hash": "1" * 64}),
               Change(3, "event", e.id, "update", "n", data={"status": "verified", "version": 2})]
    payload = wire.encode(changes, META)
    names = pa.ipc.open_stream(payload).schema.names
    assert "_uuid" in names and "_key" in names
    assert wire.decode(payload).changes == changes


def test_an_implied_id_that_differs_from_the_key_is_refused_when_encoding():
    e = make_event()
    with pytest.raises(WireError, match="differs from its key"):
        wire.encode([Change(1, "event", e.id, "update", "n", data={"id": "other", "version": 2})], META)


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


def _set(t: pa.Table, name: str, array: pa.Array) -> pa.Table:
    i = t.schema.get_field_index(name)
    return t.set_column(i, pa.field(name, array.type, nullable=t.schema.field(i).nullable), array)


def _pack_with(t: pa.Table, name: str, change) -> pa.Table:
    """Rewrite one pack's flattened items with ``change(list) -> list``."""
    col = t.column(name).combine_chunks()
    items = pa.array(change(col.values.to_pylist()), col.type.value_type)
    return _set(t, name, pa.FixedSizeListArray.from_arrays(items, col.type.list_size))


def test_wrong_types_unknown_columns_and_bad_rows_are_refused():
    payload = wire.encode(_sample(), META)
    with pytest.raises(WireError, match="type"):
        wire.decode(_rewrite(payload, lambda t: _set(t, "_ints", pa.FixedSizeListArray.from_arrays(
            pa.array([str(x) for x in t.column("_ints").combine_chunks().values.to_pylist()]),
            t.column("_ints").type.list_size))))
    with pytest.raises(WireError, match="unexpected"):
        wire.decode(_rewrite(payload, lambda t: t.append_column("evil", pa.array([1] * t.num_rows))))
    with pytest.raises(WireError, match="unknown entity"):
        wire.decode(_rewrite(payload, lambda t: _set(t, "_kind", pa.array([200] * t.num_rows, pa.uint8()))))
    with pytest.raises(WireError, match="out of order"):
        wire.decode(_rewrite(payload, lambda t: _set(t, "_seq", pa.array([1, 0, 1, 1], pa.int64()))))
    with pytest.raises(WireError, match="lacks column _present"):
        wire.decode(_rewrite(payload, lambda t: t.drop_columns(["_present"])))
    with pytest.raises(WireError, match="out of order"):  # columns in another order
        wire.decode(_rewrite(payload, lambda t: t.select(["_kind", "_seq"] + t.schema.names[2:])))
    # an update that nulls a NOT NULL field
    bad = _sample()[1]
    bad = dataclasses.replace(bad, data={**bad.data, "status": None})
    with pytest.raises(WireError, match="may not be null"):
        wire.decode(wire.encode([bad], META))
    # a full row missing required fields
    first = _sample()[0]
    short = dataclasses.replace(first, data={"id": first.key, "status": "reported"})
    with pytest.raises(WireError, match="lacks"):
        wire.decode(wire.encode([short], META))


def test_packs_must_match_the_present_bits():
    payload = wire.encode(_sample(), META)
    width = pa.ipc.open_stream(payload).schema.field("_ints").type.list_size
    # a value in a cell whose field the row does not mark present
    with pytest.raises(WireError, match="does not mark present"):
        wire.decode(_rewrite(payload, lambda t: _pack_with(t, "_ints", lambda v: [x if x is not None else 5 for x in v])))
    # a present field whose pack is not sent
    with pytest.raises(WireError, match="missing"):
        wire.decode(_rewrite(payload, lambda t: t.drop_columns(["_times"])))
    # a pack narrower than the present bits say
    with pytest.raises(WireError, match="carries"):
        wire.decode(_rewrite(payload, lambda t: _set(t, "_ints", pa.FixedSizeListArray.from_arrays(
            pa.array([1] * (t.num_rows * (width - 1)), pa.int64()), width - 1))))
    # a row with neither key column set, and a row with both
    with pytest.raises(WireError, match="exactly one"):
        wire.decode(_rewrite(payload, lambda t: _set(t, "_uuid", pa.nulls(t.num_rows, pa.binary(16)))))
    with pytest.raises(WireError, match="exactly one"):
        wire.decode(_rewrite(payload, lambda t: _set(t, "_uuid", pa.array([b"0" * 16] * t.num_rows, pa.binary(16)))))
    # a list field whose code is not a JSON list of strings
    dispatched = Change(1, "event", _sample()[0].key, "update", "n", data={"departments": ["d_sw"], "version": 3})
    with pytest.raises(WireError, match="not a list of strings"):
        wire.decode(_rewrite(wire.encode([dispatched], META), lambda t: _set(
            t, "_codes", pa.FixedSizeListArray.from_arrays(pa.array(["n", '{"d_sw": 1}']).dictionary_encode().cast(
                pa.dictionary(pa.int16(), pa.string())), 2))))


def test_more_than_one_record_batch_is_refused():
    t = pa.ipc.open_stream(wire.encode(_sample(), META)).read_all()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t.slice(0, 2))
        w.write_table(t.slice(2))
    with pytest.raises(WireError, match="one"):
        wire.decode(sink.getvalue().to_pybytes())


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
_any_time = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64),
                      st.floats(1.7e9, 1.9e9))


@settings(max_examples=80, deadline=None)
@given(title=_text, text=_text, due=_any_time, updated=_any_time.filter(lambda t: t is not None), lon=_opt_float,
       depts=st.lists(_text, max_size=3), status=st.sampled_from(["reported", "verified", "closed"]),
       version=st.integers(1, 2**40),
       fields=st.sets(st.sampled_from(["status", "due_at", "updated_at", "assignee", "departments", "title"])))
def test_encode_decode_round_trips(title, text, due, updated, lon, depts, status, version, fields):
    e = make_event(title=title, text=text, due_at=due, updated_at=updated, lon=lon, departments=depts, status=status,
                   version=version)
    row = to_row(e)
    sparse = {"id": e.id, "version": version, **{f: row[f] for f in fields}}
    changes = [Change(5, "event", e.id, "create", "n", data=row),
               Change(7, "event", e.id, "update", "n", data=sparse)]
    meta = {**META, "cqgov.cursor": "E1:7"}
    got = wire.decode(wire.encode(changes, meta)).changes
    assert got == changes
    for sent, back in zip(changes, got):  # == cannot tell -0.0 from 0.0; the bits can
        for f, v in sent.data.items():
            if isinstance(v, float):
                assert struct.pack("<d", back.data[f]) == struct.pack("<d", v)
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
    i = payload.index(b"_present")
    broken = payload[:i] + b"\xff\xfe" + payload[i + 2:]  # found by hypothesis: pyarrow raised UnicodeDecodeError
    with pytest.raises(WireError):
        wire.decode(broken)
