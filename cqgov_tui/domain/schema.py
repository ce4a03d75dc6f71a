"""Derive DuckDB DDL, Arrow schemas and JSON shapes from entity dataclasses.

Each entity is declared once (in ``entities``); this module is the only place
that turns a Python annotation into a column type, so the store, the sync wire
format and the API cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import enum
import types
import typing
from typing import Any, Iterable

_TABLES: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    py: type
    nullable: bool
    duck: str
    inner: type  # element type of a list column, else the column's own type

    @property
    def arrow(self):
        # pyarrow is imported on first use: the console's first frame does not need it.
        import pyarrow as pa

        base = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}[self.inner]
        return pa.list_(base) if self.py is list else base


def table(name: str, key: tuple[str, ...]):
    """Register a dataclass as a stored entity with a primary key."""

    def wrap(cls):
        cls.__table__ = name
        cls.__key__ = key
        _TABLES[name] = cls
        return cls

    return wrap


def tables() -> dict[str, type]:
    return dict(_TABLES)


_DUCK = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN"}


def _unwrap(tp) -> tuple[Any, bool]:
    """Return (inner type, nullable) for ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


@functools.lru_cache(maxsize=None)
def columns(cls) -> tuple[Column, ...]:
    """Cached: resolving annotations costs ~1 ms and this runs on every row written."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("transient"):
            continue
        tp, nullable = _unwrap(hints[f.name])
        if typing.get_origin(tp) is list:
            (inner,) = typing.get_args(tp)
            duck, py = _DUCK[inner] + "[]", list
        elif isinstance(tp, type) and issubclass(tp, str):  # str enums are stored by value
            duck, py, inner = "VARCHAR", str, str
        else:
            duck, py, inner = _DUCK[tp], tp, tp
        out.append(Column(f.name, py, nullable, duck, inner))
    return tuple(out)


def ddl(cls, name: str | None = None) -> str:
    name = name or cls.__table__
    cols = []
    for c in columns(cls):
        null = "" if c.nullable else " NOT NULL"
        cols.append(f"{c.name} {c.duck}{null}")
    key = getattr(cls, "__key__", ())
    if key:
        cols.append(f"PRIMARY KEY ({', '.join(key)})")
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  " + ",\n  ".join(cols) + "\n)"


def arrow_schema(cls, metadata: dict[str, str] | None = None):
    import pyarrow as pa

    return pa.schema(
        [pa.field(c.name, c.arrow, nullable=c.nullable) for c in columns(cls)],
        metadata=metadata,
    )


def column_names(cls) -> list[str]:
    return [c.name for c in columns(cls)]


@functools.lru_cache(maxsize=None)
def _names(cls) -> tuple[str, ...]:
    return tuple(c.name for c in columns(cls))


_PLAIN = frozenset({str, int, float, bool, list, type(None)})


@functools.lru_cache(maxsize=None)
def _fields(cls) -> frozenset[str] | None:
    """The init fields of a plain dataclass (no __post_init__, no slots), else None."""
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        return None
    fs = dataclasses.fields(cls)
    return None if any(not f.init for f in fs) else frozenset(f.name for f in fs)


T = typing.TypeVar("T")


def evolve(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` for the entities, without re-running ``__init__``: the write path copies an
    event two or three times per command, and the generated ``__init__`` of a frozen 34-field class costs
    more than the rest of the copy. Classes with a ``__post_init__`` (or slots) go through ``replace``."""
    names = _fields(type(obj))
    if names is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    if not names.issuperset(changes):
        raise TypeError(f"{type(obj).__name__} has no field(s) {sorted(set(changes) - names)}")
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def to_row(obj) -> dict[str, Any]:
    """Entity → plain dict of stored values (enums flattened to their value)."""
    return row_of(obj, _names(type(obj)))


def row_of(obj, names: Iterable[str]) -> dict[str, Any]:
    """The stored values of ``names`` of an entity (enums flattened). It runs for every row written, so a
    value of a plain type is passed through on one set lookup of its class."""
    row = {n: getattr(obj, n) for n in names}
    for n, v in row.items():
        if v.__class__ not in _PLAIN and isinstance(v, enum.Enum):
            row[n] = v.value
    return row



def to_arrow(cls, objs: list[Any]):
    """Entities → an Arrow table of ``cls``'s stored columns, built a column at a time (no per-row dicts):
    the bulk write path (a day's grid tasks) converts each entity once, here."""
    import pyarrow as pa

    # Stored enums are str enums (``columns``), which Arrow takes as their string value.
    if _fields(cls) is not None:
        dicts = [o.__dict__ for o in objs]
        data = [pa.array([d[c.name] for d in dicts], c.arrow) for c in columns(cls)]
    else:
        data = [pa.array([getattr(o, c.name) for o in objs], c.arrow) for c in columns(cls)]
    return pa.Table.from_arrays(data, schema=arrow_schema(cls))
