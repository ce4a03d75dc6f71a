"""The sync wire format: one sparse, wide Arrow IPC stream per response (zstd buffers).

Each row is one change (or one snapshot row). Envelope columns start with an
underscore; the entity columns are the union of the replicated entities'
declared columns, all nullable. ``_present`` is a bitset over the entity
columns saying which fields the row carries, so "set to null" (present, null)
differs from "not sent" (absent). A created event carries its whole row; an
update carries only the fields that changed, as the change log recorded them.

Decoding is strict: anything unexpected raises ``WireError`` and nothing is
returned, so a caller never applies half of a malformed delta.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..domain.entities import AuditEntry, Directive, Event, Receipt
from ..domain.schema import columns
from ..errors import BadInput

WIRE_VERSION = "1"
MEDIA_TYPE = "application/vnd.apache.arrow.stream"

# Entity name in the change log → declaration. Order fixes the wire column order.
ENTITIES: dict[str, type] = {"event": Event, "audit": AuditEntry, "directive": Directive, "receipt": Receipt}
FULL_OPS = frozenset({"create", "upsert", "append"})
OPS: dict[str, frozenset[str]] = {
    "event": frozenset({"create", "update", "upsert"}),
    "audit": frozenset({"append", "upsert"}),
    "directive": frozenset({"upsert"}),
    "receipt": frozenset({"upsert"}),
}
KINDS = ("changes", "snapshot")
# Low-cardinality strings travel dictionary-encoded: the benchmark shows their int32
# offsets otherwise cost more after zstd than the values themselves.
_DICT = pa.dictionary(pa.int16(), pa.string())
DICT_COLUMNS = frozenset({
    "city_code", "district_code", "category_code", "colour", "status", "source", "sla_profile", "origin_tier",
    "origin_node", "supervised_by", "assignee", "tier", "role", "action", "from_status", "to_status", "node",
    "priority", "origin_code", "state",
})
# A single-column key equal to ``_key`` is not sent twice: its present bit is set and decode fills it in.
IMPLIED_KEY = {"event": "id", "directive": "id"}
ZSTD_LEVEL = 9


class WireError(BadInput):
    """A payload that is not a valid cqgov sync message; nothing from it was applied."""


def _union_columns() -> tuple[list[tuple[str, pa.DataType]], dict[str, list[int]], dict[str, frozenset[str]]]:
    union: dict[str, pa.DataType] = {}
    for cls in ENTITIES.values():
        for c in columns(cls):
            typ = _DICT if c.name in DICT_COLUMNS and c.arrow == pa.string() else c.arrow
            if c.name in union and union[c.name] != typ:
                raise TypeError(f"wire: column {c.name} has two types ({union[c.name]}, {typ})")
            union.setdefault(c.name, typ)
    names = list(union)
    index = {n: i for i, n in enumerate(names)}
    per_entity = {e: [index[c.name] for c in columns(cls)] for e, cls in ENTITIES.items()}
    required = {e: frozenset(c.name for c in columns(cls) if not c.nullable) for e, cls in ENTITIES.items()}
    return [(n, union[n]) for n in names], per_entity, required


DATA_COLUMNS, _ENTITY_BITS, _REQUIRED = _union_columns()
DATA_NAMES = [n for n, _ in DATA_COLUMNS]
_DATA_INDEX = {n: i for i, n in enumerate(DATA_NAMES)}
_PRESENT_BYTES = (len(DATA_COLUMNS) + 7) // 8
_ENTITY_MASK = {e: sum(1 << i for i in bits) for e, bits in _ENTITY_BITS.items()}
_KEYS = {e: cls.__key__ for e, cls in ENTITIES.items()}

# A row's jurisdiction scope and change time are not sent: the receiver derives the scope
# from the row it holds (replica.apply_changes) and stamps its own log time.
ENVELOPE = [
    ("_seq", pa.int64()),
    ("_entity", _DICT),
    ("_key", pa.string()),
    ("_op", _DICT),
    ("_origin", _DICT),
    ("_present", pa.binary(_PRESENT_BYTES)),
]
SCHEMA = pa.schema(
    [pa.field(n, t, nullable=False) for n, t in ENVELOPE] + [pa.field(n, t, nullable=True) for n, t in DATA_COLUMNS]
)
_META_REQUIRED = ("cqgov.wire", "cqgov.kind", "cqgov.epoch", "cqgov.cursor", "cqgov.has_more")
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", ZSTD_LEVEL))


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


# ---------------------------------------------------------------- encode


def encode(changes: list[Change], meta: dict[str, str]) -> bytes:
    """Changes + metadata → Arrow IPC stream bytes (one schema, zstd-compressed buffers).

    Only the entity columns some row uses are sent (in canonical order), so a
    delta of state transitions does not pay for the text columns it lacks.
    """
    n = len(changes)
    cols: dict[int, list] = {}
    present = []
    for r, ch in enumerate(changes):
        mask = 0
        implied = IMPLIED_KEY.get(ch.entity)
        for name, value in ch.data.items():
            i = _DATA_INDEX.get(name)
            if i is None:
                raise WireError(f"{ch.entity} field {name!r} is not part of the wire schema")
            if name == implied and value == ch.key:
                mask |= 1 << i
                continue
            col = cols.get(i)
            if col is None:
                col = cols[i] = [None] * n
            col[r] = value
            mask |= 1 << i
        present.append(mask.to_bytes(_PRESENT_BYTES, "little"))
    used = sorted(cols)
    fields = [SCHEMA.field(n_) for n_, _ in ENVELOPE] + [SCHEMA.field(len(ENVELOPE) + i) for i in used]
    arrays = [
        pa.array([c.seq for c in changes], pa.int64()),
        _dict_array([c.entity for c in changes]),
        pa.array([c.key for c in changes], pa.string()),
        _dict_array([c.op for c in changes]),
        _dict_array([c.origin for c in changes]),
        pa.array(present, pa.binary(_PRESENT_BYTES)),
    ] + [_dict_array(cols[i]) if DATA_COLUMNS[i][1] == _DICT else pa.array(cols[i], DATA_COLUMNS[i][1]) for i in used]
    full_meta = {"cqgov.wire": WIRE_VERSION, **meta}
    schema = pa.schema(fields, metadata={k: str(v) for k, v in full_meta.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=_WRITE_OPTIONS) as writer:
        if n:
            writer.write_batch(pa.record_batch(arrays, schema=schema))
    return sink.getvalue().to_pybytes()


def _dict_array(values: list) -> pa.Array:
    return pa.array(values, pa.string()).dictionary_encode().cast(_DICT)


def coalesce(changes: list[Change]) -> list[Change]:
    """Fold later updates of an event into its earlier change within one delta (same origin only):
    the receiver applies a delta atomically, so it needs each row's net change once."""
    out: list[Change | None] = []
    where: dict[str, int] = {}
    for ch in changes:
        i = where.get(ch.key) if ch.entity == "event" else None
        prev = out[i] if i is not None else None
        if prev is not None and ch.op == "update" and prev.origin == ch.origin:
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
    changes: list[Change] = []
    try:
        meta = _check_meta(schema)
        positions = _check_columns(schema)
        for batch in batches:
            if not batch.schema.remove_metadata().equals(schema.remove_metadata()):
                raise WireError("a record batch differs from the stream schema")
            batch.validate(full=True)  # bad offsets or lengths must fail here, not while reading values
            changes.extend(_rows(batch, positions))
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


def _check_columns(schema: pa.Schema) -> dict[int, int]:
    """The envelope must match exactly; data columns must be known, typed right and in canonical order.
    Returns union column index → position in this payload."""
    if len(schema) < len(ENVELOPE):
        raise WireError(f"sync payload has {len(schema)} columns; the envelope alone has {len(ENVELOPE)}")
    for i in range(len(ENVELOPE)):
        if not schema.field(i).equals(SCHEMA.field(i)):
            raise WireError(f"sync payload column {i} is {schema.field(i).name}:{schema.field(i).type}, "
                            f"expected {ENVELOPE[i][0]}:{ENVELOPE[i][1]}")
    positions: dict[int, int] = {}
    last = -1
    for pos in range(len(ENVELOPE), len(schema)):
        f = schema.field(pos)
        i = _DATA_INDEX.get(f.name)
        if i is None or i <= last:
            raise WireError(f"unexpected or repeated column {f.name!r} in sync payload")
        if not f.equals(SCHEMA.field(len(ENVELOPE) + i)):
            raise WireError(f"column {f.name!r} has type {f.type}, expected {DATA_COLUMNS[i][1]}")
        positions[i] = pos
        last = i
    return positions


def _rows(batch: pa.RecordBatch, positions: dict[int, int]) -> list[Change]:
    env = {name: batch.column(i).to_pylist() for i, (name, _) in enumerate(ENVELOPE)}
    data_cols = {i: batch.column(pos) for i, pos in positions.items()}
    implied_bit = {e: _DATA_INDEX[c] for e, c in IMPLIED_KEY.items()}
    out = []
    for r in range(batch.num_rows):
        entity, op, key = env["_entity"][r], env["_op"][r], env["_key"][r]
        if entity not in ENTITIES:
            raise WireError(f"row {r}: unknown entity {entity!r}")
        if op not in OPS[entity]:
            raise WireError(f"row {r}: {entity} cannot take op {op!r}")
        if not key:
            raise WireError(f"row {r}: empty key")
        mask = int.from_bytes(env["_present"][r], "little")
        if mask & ~_ENTITY_MASK[entity]:
            raise WireError(f"row {r}: fields sent that a {entity} does not have")
        implied = implied_bit.get(entity)
        data = {}
        bits = mask
        while bits:
            i = (bits & -bits).bit_length() - 1
            bits &= bits - 1
            col = data_cols.get(i)
            if col is not None and (i != implied or col[r].is_valid):
                data[DATA_NAMES[i]] = col[r].as_py()
            elif i == implied:
                data[DATA_NAMES[i]] = key
            else:
                raise WireError(f"row {r}: marks a field present whose column was not sent")
        for name, value in data.items():
            if value is None and name in _REQUIRED[entity]:
                raise WireError(f"row {r}: {entity}.{name} may not be null")
            if isinstance(value, float) and not math.isfinite(value) and name not in ("lon", "lat"):
                raise WireError(f"row {r}: {entity}.{name} is not a finite number")
        if op in FULL_OPS:
            missing = _REQUIRED[entity] - data.keys()
            if missing:
                raise WireError(f"row {r}: full {entity} row lacks {', '.join(sorted(missing))}")
        if not all(k in data for k in _KEYS[entity]) and op in FULL_OPS:
            raise WireError(f"row {r}: {entity} row lacks its key")
        if entity == "event" and data.get("id", key) != key:
            raise WireError(f"row {r}: event key {key!r} disagrees with its id")
        seq, origin = env["_seq"][r], env["_origin"][r]
        if seq is None or origin is None or key is None or env["_present"][r] is None:
            raise WireError(f"row {r}: envelope field is null")
        out.append(Change(seq, entity, key, op, origin, "", 0.0, data))
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
