"""The sync wire format: one Arrow IPC stream per response, one record batch, zstd-compressed buffers.

Each row is one change (or one snapshot row). Version 2 spends its bytes on
what changed, not on framing: every Arrow column costs ~160 bytes of IPC
metadata and zstd frames (a dictionary column ~400), so the entity fields are
not one column each but travel in a few *packs*, one per kind of value, each a
``fixed_size_list`` whose items are that kind's fields in canonical order:

* ``_codes``  low-cardinality strings (status, district, origin…), one shared dictionary;
* ``_times``  epoch-second floats, as int64 differences of their IEEE-754 bit patterns
  (see ``_time_refs``): exact for every double, small for nearby times, 0 for equal ones;
* ``_texts``  other strings; ``_ints``; ``_floats`` (lon/lat); ``_bools``.
  A list field (departments, targets) is one code holding its JSON text.

Envelope: ``_seq`` (int64, difference from the previous row's seq), ``_kind``
(uint8 index into ``KIND_TABLE``: entity and op), ``_uuid`` (16 bytes, for keys
that are canonical UUID text) or ``_key`` (string, any other key), and
``_present``, a bitset over the entity columns saying which fields a row
carries, so "set to null" (present, null) differs from "not sent" (absent). A
pack's items are exactly the fields some row marks present, so the receiver
derives them from ``_present``; an event's or directive's ``id`` is the key
and is never sent. The row's origin node is the first item of ``_codes``.

Decoding is strict: anything unexpected raises ``WireError`` and nothing is
returned, so a caller never applies half of a malformed delta.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..domain.attachments import Attachment
from ..domain.entities import AuditEntry, Directive, Event, Receipt
from ..domain.people import DutyOverride, Notification, Person, Task
from ..domain.schema import columns
from ..errors import BadInput

WIRE_VERSION = "2"
MEDIA_TYPE = "application/vnd.apache.arrow.stream"

# Entity name in the change log → declaration. Order fixes the wire column order.
ENTITIES: dict[str, type] = {"event": Event, "audit": AuditEntry, "directive": Directive, "receipt": Receipt,
                             "person": Person, "task": Task, "notification": Notification,
                             "attachment": Attachment,  # an attachment's row is its reference: never its bytes
                             "duty_override": DutyOverride}
FULL_OPS = frozenset({"create", "upsert", "append"})
OPS: dict[str, frozenset[str]] = {
    "event": frozenset({"create", "update", "upsert"}),
    "audit": frozenset({"append", "upsert"}),
    "directive": frozenset({"upsert"}),
    "receipt": frozenset({"upsert"}),
    "person": frozenset({"upsert"}),
    "task": frozenset({"upsert"}),
    "notification": frozenset({"upsert"}),
    "attachment": frozenset({"upsert"}),
    "duty_override": frozenset({"upsert"}),
}
# ``_kind`` indexes this fixed table, so entity and op cost one byte and no dictionary.
KIND_TABLE: tuple[tuple[str, str], ...] = tuple((e, op) for e in ENTITIES for op in sorted(OPS[e]))
_KIND_CODE = {k: i for i, k in enumerate(KIND_TABLE)}
KINDS = ("changes", "snapshot")
# Low-cardinality strings: coded against one dictionary shared by all of them.
DICT_COLUMNS = frozenset({
    "city_code", "district_code", "category_code", "colour", "status", "source", "sla_profile", "origin_tier",
    "origin_node", "supervised_by", "assignee", "tier", "role", "action", "from_status", "to_status", "node",
    "priority", "origin_code", "state",
})
# Floats that are not times; every other float column is an epoch-second time.
PLAIN_FLOATS = frozenset({"lon", "lat"})
# A single-column key: its present bit is set and decode fills it in from the row key.
IMPLIED_KEY = {"event": "id", "directive": "id", "task": "id", "notification": "id"}
ZSTD_LEVEL = 15  # measured on the bench delta: 9 → 15 saves 6% of the bytes for ~8 ms more encode, paid once per cached delta


class WireError(BadInput):
    """A payload that is not a valid cqgov sync message; nothing from it was applied."""


def _union_columns() -> tuple[list[tuple[str, str, pa.DataType]], dict[str, list[int]], dict[str, frozenset[str]]]:
    """(name, pack, item type) per entity column in canonical order; column indexes per entity; required fields."""
    union: dict[str, pa.DataType] = {}
    for cls in ENTITIES.values():
        for c in columns(cls):
            if c.name in union and union[c.name] != c.arrow:
                raise TypeError(f"wire: column {c.name} has two types ({union[c.name]}, {c.arrow})")
            union.setdefault(c.name, c.arrow)
    out = []
    for name, typ in union.items():
        if typ == pa.string() or typ == pa.list_(pa.string()):
            # A list (departments, targets) is one code: its JSON text. Few distinct lists recur.
            pack = "_codes" if name in DICT_COLUMNS or typ != pa.string() else "_texts"
        elif typ == pa.float64():
            pack = "_floats" if name in PLAIN_FLOATS else "_times"
        else:
            pack = {pa.int64(): "_ints", pa.bool_(): "_bools"}[typ]
        out.append((name, pack, typ))
    index = {n: i for i, (n, _, _) in enumerate(out)}
    per_entity = {e: [index[c.name] for c in columns(cls)] for e, cls in ENTITIES.items()}
    required = {e: frozenset(c.name for c in columns(cls) if not c.nullable) for e, cls in ENTITIES.items()}
    return out, per_entity, required


DATA_COLUMNS, _ENTITY_BITS, _REQUIRED = _union_columns()
DATA_NAMES = [n for n, _, _ in DATA_COLUMNS]
_DATA_INDEX = {n: i for i, n in enumerate(DATA_NAMES)}
_PRESENT_BYTES = (len(DATA_COLUMNS) + 7) // 8
_ENTITY_MASK = {e: sum(1 << i for i in bits) for e, bits in _ENTITY_BITS.items()}
_KEYS: dict[str, tuple[str, ...]] = {e: getattr(cls, "__key__") for e, cls in ENTITIES.items()}  # set by @table
_IMPLIED_BITS = {e: 1 << _DATA_INDEX[c] for e, c in IMPLIED_KEY.items()}
_NOT_SENT = sum(1 << _DATA_INDEX[c] for c in set(IMPLIED_KEY.values()))  # never in a pack

_CODE_INDEX = (pa.int16(), pa.int32())  # int32 only when a payload has more than 32,767 distinct codes
PACKS: dict[str, pa.DataType] = {
    "_codes": pa.dictionary(pa.int16(), pa.string()),
    "_times": pa.int64(),
    "_texts": pa.string(),
    "_ints": pa.int64(),
    "_floats": pa.float64(),
    "_bools": pa.bool_(),
}
_PACK_OF = [pack for _, pack, _ in DATA_COLUMNS]
_LISTS = frozenset(n for n, _, typ in DATA_COLUMNS if typ == pa.list_(pa.string()))
_LIST_BITS = frozenset(_DATA_INDEX[n] for n in _LISTS)
# A row's jurisdiction scope and change time are not sent: the receiver derives the scope
# from the row it holds (replica.apply_changes) and stamps its own log time.
ENVELOPE: list[tuple[str, pa.DataType, bool]] = [  # name, type, optional
    ("_seq", pa.int64(), False),
    ("_kind", pa.uint8(), False),
    ("_uuid", pa.binary(16), True),
    ("_key", pa.string(), True),
    ("_present", pa.binary(_PRESENT_BYTES), False),
]
_COLUMN_ORDER = [n for n, _, _ in ENVELOPE] + list(PACKS)
_META_REQUIRED = ("cqgov.wire", "cqgov.kind", "cqgov.epoch", "cqgov.cursor", "cqgov.has_more")
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", ZSTD_LEVEL))
_I64 = 1 << 64
_DOUBLE = struct.Struct("<d")
_LONG = struct.Struct("<q")


@dataclass
class Change:
    """One row of a delta or snapshot page: ``data`` holds only the fields that were sent."""

    seq: int
    entity: str
    key: str
    op: str
    origin: str
    scope: str = ""  # known on the sending side; derived by the receiver
    at: float = 0.0  # change time on the sending side (JSON only)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    meta: dict[str, str]
    changes: list[Change]

    @property
    def epoch(self) -> str:
        return self.meta["cqgov.epoch"]

    @property
    def cursor(self) -> str:
        return self.meta["cqgov.cursor"]

    @property
    def has_more(self) -> bool:
        return self.meta["cqgov.has_more"] == "1"


# ---------------------------------------------------------------- cursors


def format_cursor(epoch: str, seq: int) -> str:
    return f"{epoch}:{int(seq)}"


def parse_cursor(text: str) -> tuple[str, int]:
    """``EPOCH:SEQ`` → (epoch, seq); a malformed cursor is bad input."""
    epoch, sep, seq = (text or "").rpartition(":")
    if not sep or not epoch or not seq.isdigit() or len(seq) > 18:
        raise WireError(f"malformed cursor {text!r} (expected EPOCH:SEQ)")
    return epoch, int(seq)


# ---------------------------------------------------------------- packing helpers


def _members(union_mask: int) -> dict[str, list[int]]:
    """Pack → the column indexes it carries for rows whose present bits OR to ``union_mask``."""
    out: dict[str, list[int]] = {"_codes": [-1]}  # -1: the row's origin, always first in _codes
    bits = union_mask & ~_NOT_SENT
    while bits:
        i = (bits & -bits).bit_length() - 1
        bits &= bits - 1
        out.setdefault(_PACK_OF[i], []).append(i)
    return {p: out[p] for p in PACKS if p in out}


def _wrap(v: int) -> int:
    return (v + (1 << 63)) % _I64 - (1 << 63)


def _uuid_bytes(key: str) -> bytes | None:
    """16 bytes if ``key`` is a UUID in canonical lower-case text form (so decoding gives it back exactly)."""
    if len(key) != 36 or not key[8] == key[13] == key[18] == key[23] == "-":
        return None
    digits = key[:8] + key[9:13] + key[14:18] + key[19:23] + key[24:]
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return raw if len(raw) == 16 and raw.hex() == digits else None


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ---------------------------------------------------------------- encode


def encode(changes: list[Change], meta: dict[str, str]) -> bytes:
    """Changes + metadata → Arrow IPC stream bytes (one schema, one batch, zstd-compressed buffers)."""
    n = len(changes)
    masks, uuids, keys = [], [], []
    union = 0
    for ch in changes:
        mask = 0
        implied = IMPLIED_KEY.get(ch.entity)
        for name in ch.data:
            i = _DATA_INDEX.get(name)
            if i is None or not _ENTITY_MASK.get(ch.entity, 0) >> i & 1:
                raise WireError(f"{ch.entity} field {name!r} is not part of the wire schema")
            mask |= 1 << i
        if implied in ch.data and ch.data[implied] != ch.key:
            raise WireError(f"{ch.entity} {implied} {ch.data[implied]!r} differs from its key {ch.key!r}")
        masks.append(mask)
        union |= mask
        b = _uuid_bytes(ch.key)
        uuids.append(b)
        keys.append(None if b is not None else ch.key)
    try:
        kinds = [_KIND_CODE[(c.entity, c.op)] for c in changes]
    except KeyError as exc:
        raise WireError(f"no wire code for entity/op {exc.args[0]}") from None
    seqs, last = [], 0
    for c in changes:
        seqs.append(_wrap(c.seq - last))
        last = c.seq
    names = ["_seq", "_kind"]
    arrays = [pa.array(seqs, pa.int64()), pa.array(kinds, pa.uint8())]
    if any(b is not None for b in uuids):
        names.append("_uuid")
        arrays.append(pa.array(uuids, pa.binary(16)))
    if any(k is not None for k in keys):
        names.append("_key")
        arrays.append(pa.array(keys, pa.string()))
    names.append("_present")
    arrays.append(pa.array([m.to_bytes(_PRESENT_BYTES, "little") for m in masks], pa.binary(_PRESENT_BYTES)))
    if n:
        for pack, members in _members(union).items():
            names.append(pack)
            arrays.append(_pack(pack, members, changes, masks))
    full_meta = {"cqgov.wire": WIRE_VERSION, **meta}
    fields = [pa.field(nm, arr.type, nullable=nm in ("_uuid", "_key") or nm in PACKS) for nm, arr in zip(names, arrays)]
    schema = pa.schema(fields, metadata={k: str(v) for k, v in full_meta.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=_WRITE_OPTIONS) as writer:
        if n:
            writer.write_batch(pa.record_batch(arrays, schema=schema))
    return sink.getvalue().to_pybytes()


def _pack(pack: str, members: list[int], changes: list[Change], masks: list[int]) -> pa.Array:
    # Every member but the row's origin (-1), which leads ``_codes`` and is no data field.
    names = [DATA_NAMES[i] for i in members if i >= 0]
    flat: list[Any] = []
    if pack == "_codes":
        lists = [j + 1 for j, nm in enumerate(names) if nm in _LISTS]  # + 1: the origin is item 0 of a row
        for ch in changes:
            data = ch.data
            row: list[Any] = [ch.origin] + [data.get(nm) for nm in names]
            for j in lists:
                if row[j] is not None:
                    row[j] = json.dumps(row[j], ensure_ascii=False, separators=(",", ":"))
            flat.extend(row)
        values = pa.array(flat, pa.string()).dictionary_encode()
        index = pa.int16() if len(values.dictionary) < 1 << 15 else pa.int32()
        child = values.cast(pa.dictionary(index, pa.string()))
    elif pack == "_times":
        child = pa.array(_encode_times(changes, names), pa.int64())
    else:
        for ch in changes:
            data = ch.data
            flat.extend(data.get(nm) for nm in names)
        child = pa.array(flat, PACKS[pack])
    return pa.FixedSizeListArray.from_arrays(child, len(members))


def _encode_times(changes: list[Change], names: list[str]) -> list[int | None]:
    """Each time as the int64 difference of its IEEE-754 bits from a reference (see ``_time_refs``)."""
    out: list[int | None] = []
    anchor = 0
    for ch in changes:
        row_ref = None
        for nm in names:
            x = ch.data.get(nm)
            if x is None:
                out.append(None)
                continue
            bits = _LONG.unpack(_DOUBLE.pack(float(x)))[0]
            if row_ref is None:
                out.append(_wrap(bits - anchor))
                anchor = row_ref = bits
            else:
                out.append(_wrap(bits - row_ref))
    return out


def coalesce(changes: list[Change]) -> list[Change]:
    """Fold later updates of an event into its earlier change within one delta (same origin only):
    the receiver applies a delta atomically, so it needs each row's net change once."""
    out: list[Change | None] = []
    where: dict[str, int] = {}
    for ch in changes:
        i = where.get(ch.key) if ch.entity == "event" else None
        prev = out[i] if i is not None else None
        if prev is not None and i is not None and ch.op == "update" and prev.origin == ch.origin:
            out[i] = None
            ch = Change(ch.seq, "event", ch.key, prev.op, ch.origin, ch.scope, ch.at, {**prev.data, **ch.data})
        out.append(ch)
        if ch.entity == "event":
            where[ch.key] = len(out) - 1
    return [c for c in out if c is not None]


def encode_json(changes: list[Change], meta: dict[str, str]) -> bytes:
    """The same message as JSON, for humans and scripts (``Accept: application/json``)."""
    doc = {
        "meta": {"cqgov.wire": WIRE_VERSION, **{k: str(v) for k, v in meta.items()}},
        "changes": [
            {"seq": c.seq, "entity": c.entity, "key": c.key, "op": c.op, "origin": c.origin, "scope": c.scope,
             "at": c.at, "data": c.data}
            for c in changes
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------- decode


def decode(payload: bytes) -> Message:
    """Arrow IPC bytes → Message, validated; raises ``WireError`` for anything malformed."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise WireError("sync payload is not bytes")
    if not payload:
        raise WireError("empty sync payload")
    try:
        reader = pa.ipc.open_stream(pa.BufferReader(bytes(payload)))
        schema = reader.schema
        batches = list(reader)
    except Exception as exc:  # pyarrow raises several types for corrupt IPC; all mean the same to a caller
        raise WireError(f"malformed Arrow IPC stream: {_first_line(exc)}") from None
    try:
        meta = _check_meta(schema)
        _check_columns(schema)
        if len(batches) > 1:
            raise WireError(f"sync payload has {len(batches)} record batches; it carries one")
        changes: list[Change] = []
        if batches:
            batch = batches[0]
            if not batch.schema.remove_metadata().equals(schema.remove_metadata()):
                raise WireError("the record batch differs from the stream schema")
            batch.validate(full=True)  # bad offsets or lengths must fail here, not while reading values
            changes = _rows(batch)
    except WireError:
        raise
    except Exception as exc:  # e.g. a field name or string that is not UTF-8
        raise WireError(f"unreadable sync payload: {_first_line(exc)}") from None
    _check_order(changes, meta)
    return Message(meta, changes)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _check_meta(schema: pa.Schema) -> dict[str, str]:
    raw = schema.metadata or {}
    try:
        meta = {k.decode("utf-8"): v.decode("utf-8") for k, v in raw.items()}
    except UnicodeDecodeError:
        raise WireError("sync metadata is not UTF-8") from None
    missing = [k for k in _META_REQUIRED if k not in meta]
    if missing:
        raise WireError(f"sync payload lacks metadata {', '.join(missing)}")
    if meta["cqgov.wire"] != WIRE_VERSION:
        raise WireError(f"sync wire version {meta['cqgov.wire']!r} is not supported (this cqgov speaks {WIRE_VERSION})")
    if meta["cqgov.kind"] not in KINDS:
        raise WireError(f"unknown sync message kind {meta['cqgov.kind']!r}")
    if meta["cqgov.has_more"] not in ("0", "1"):
        raise WireError(f"bad has_more flag {meta['cqgov.has_more']!r}")
    epoch, _ = parse_cursor(meta["cqgov.cursor"])
    if not meta["cqgov.epoch"] or epoch != meta["cqgov.epoch"]:
        raise WireError("sync cursor and epoch disagree")
    return meta


def _check_columns(schema: pa.Schema) -> None:
    """Known columns only, in canonical order, each typed right; the required envelope present.
    Pack widths are checked against the rows' present bits in ``_rows``."""
    last = -1
    for f in schema:
        try:
            pos = _COLUMN_ORDER.index(f.name)
        except ValueError:
            raise WireError(f"unexpected column {f.name!r} in sync payload") from None
        if pos <= last:
            raise WireError(f"column {f.name!r} repeated or out of order in sync payload")
        last = pos
        if f.name in PACKS:
            item = PACKS[f.name]
            ok = pa.types.is_fixed_size_list(f.type) and f.type.list_size > 0 and (
                f.type.value_type == item if f.name != "_codes" else
                pa.types.is_dictionary(f.type.value_type) and f.type.value_type.index_type in _CODE_INDEX
                and f.type.value_type.value_type == pa.string())
            if not ok:
                raise WireError(f"column {f.name!r} has type {f.type}, expected fixed_size_list<{item}>")
        else:
            typ = next(t for n, t, _ in ENVELOPE if n == f.name)
            if f.type != typ:
                raise WireError(f"column {f.name!r} has type {f.type}, expected {typ}")
    names = set(schema.names)
    for n, _, optional in ENVELOPE:
        if not optional and n not in names:
            raise WireError(f"sync payload lacks column {n}")


def _rows(batch: pa.RecordBatch) -> list[Change]:
    n = batch.num_rows
    col = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
    for name in ("_seq", "_kind", "_present"):
        if col[name].null_count:
            raise WireError(f"envelope column {name} has nulls")
    masks = [int.from_bytes(b, "little") for b in col["_present"].to_pylist()]
    union = 0
    for m in masks:
        union |= m
    expected = _members(union)
    packs: dict[str, tuple[list[int], list[Any]]] = {}
    for pack in PACKS:
        members = expected.get(pack)
        arr = col.get(pack)
        if (members is None) != (arr is None):
            raise WireError(f"pack {pack} is {'missing' if arr is None else 'sent'} but the rows "
                            f"{'need' if arr is None else 'do not need'} it")
        if arr is None or members is None:  # both absent (the check above)
            continue
        if arr.type.list_size != len(members):
            raise WireError(f"pack {pack} carries {arr.type.list_size} fields; the rows mark {len(members)} present")
        if arr.null_count:
            raise WireError(f"pack {pack} has a null row")
        flat = arr.values  # fixed-size lists without nulls: row r, item j is flat[r*k + j]
        _check_absent_are_null(pack, members, flat, masks, n)
        values: list[Any]
        if pack == "_codes":  # per-item dictionary lookups in pyarrow are slow; map the indices here
            vocab = flat.dictionary.to_pylist()
            values = [None if x is None else vocab[x] for x in flat.indices.to_pylist()]
        else:
            values = flat.to_pylist()
        packs[pack] = (members, values)
    uuids = col["_uuid"].to_pylist() if "_uuid" in col else [None] * n
    keys = col["_key"].to_pylist() if "_key" in col else [None] * n
    kinds = col["_kind"].to_pylist()
    seq_steps = col["_seq"].to_pylist()
    where: dict[int, tuple[str, int, int, list[Any]]] = {}  # column index → (pack, item, width, values)
    for pack, (members, values) in packs.items():
        for j, i in enumerate(members):
            where[i] = (pack, j, len(members), values)
    _, _, code_width, codes = where[-1]
    # Read only for fields in the _times pack, so only when there is one.
    times = _decode_times(packs["_times"], masks, n) if "_times" in packs else []
    out: list[Change] = []
    seq = 0
    for r in range(n):
        if kinds[r] >= len(KIND_TABLE):
            raise WireError(f"row {r}: unknown entity/op code {kinds[r]}")
        entity, op = KIND_TABLE[kinds[r]]
        if (uuids[r] is None) == (keys[r] is None):
            raise WireError(f"row {r}: needs exactly one of _uuid and _key")
        raw = uuids[r]
        key = _uuid_text(raw) if raw is not None else keys[r]
        if not key:
            raise WireError(f"row {r}: empty key")
        seq = _wrap(seq + seq_steps[r])
        origin = codes[r * code_width]
        if not origin:
            raise WireError(f"row {r}: no origin")
        mask = masks[r]
        if mask & ~_ENTITY_MASK[entity]:
            raise WireError(f"row {r}: fields sent that a {entity} does not have")
        data: dict[str, Any] = {}
        bits = mask
        while bits:
            i = (bits & -bits).bit_length() - 1
            bits &= bits - 1
            if _NOT_SENT >> i & 1:
                data[DATA_NAMES[i]] = key
                continue
            pack, j, width, values = where[i]
            value: Any = times[r * width + j] if pack == "_times" else values[r * width + j]
            if i in _LIST_BITS and value is not None:
                value = _parse_list(value, r, DATA_NAMES[i])
            data[DATA_NAMES[i]] = value
        for name, value in data.items():
            if value is None and name in _REQUIRED[entity]:
                raise WireError(f"row {r}: {entity}.{name} may not be null")
            if isinstance(value, float) and not math.isfinite(value) and name not in PLAIN_FLOATS:
                raise WireError(f"row {r}: {entity}.{name} is not a finite number")
        if op in FULL_OPS:
            missing = _REQUIRED[entity] - data.keys()
            if missing:
                raise WireError(f"row {r}: full {entity} row lacks {', '.join(sorted(missing))}")
            if not all(k in data for k in _KEYS[entity]):
                raise WireError(f"row {r}: {entity} row lacks its key")
        out.append(Change(seq, entity, key, op, origin, "", 0.0, data))
    return out


def _parse_list(text: str, r: int, name: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise WireError(f"row {r}: {name} is not a list of strings")
    return value


def _check_absent_are_null(pack: str, members: list[int], flat: pa.Array, masks: list[int], n: int) -> None:
    """A value in a cell whose field the row does not mark present is malformed, not ignorable."""
    k = len(members)
    valid = np.asarray(pc.is_valid(flat).to_numpy(zero_copy_only=False), dtype=bool).reshape(n, k)
    present = np.array([[i < 0 or bool(m >> i & 1) for i in members] for m in masks], dtype=bool).reshape(n, k)
    stray = valid & ~present
    if stray.any():
        r, j = map(int, np.argwhere(stray)[0])
        raise WireError(f"row {r}: {pack} carries a value for {DATA_NAMES[members[j]]}, which it does not mark present")


def _decode_times(pack: tuple[list[int], list[Any]], masks: list[int], n: int) -> list[float | None]:
    members, values = pack
    out: list[float | None] = []
    anchor = 0
    for r in range(n):
        row_ref = None
        for j in range(len(members)):
            v = values[r * len(members) + j]
            if v is None:
                out.append(None)
                continue
            if row_ref is None:
                bits = anchor = row_ref = _wrap(anchor + v)
            else:
                bits = _wrap(row_ref + v)
            out.append(_DOUBLE.unpack(_LONG.pack(bits))[0])
    return out


def _check_order(changes: list[Change], meta: dict[str, str]) -> None:
    if meta["cqgov.kind"] != "changes":
        return
    last = 0
    for c in changes:
        if c.seq <= last:
            raise WireError(f"change seq {c.seq} out of order (after {last})")
        last = c.seq
    _, cursor = parse_cursor(meta["cqgov.cursor"])
    if last > cursor:
        raise WireError(f"next cursor {cursor} is behind the last change {last}")
