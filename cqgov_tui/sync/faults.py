"""Whose fault is a failed command: the store's (defer it, the client retries) or the command's (reject it).

A command the server cannot apply must not be retried for ever when its own
content is the cause: the client would resend it after every backoff and a
poison body would sit at the head of its outbox. So only a failure that says
the store itself is unavailable — the disk, the database file, memory, our own
``StoreError``s — or a store that no longer answers a plain read afterwards,
defers a command; anything else a handler raises is a rejection with its reason.
"""

from __future__ import annotations

import duckdb

from ..errors import StoreError
from ..store import Store

# DuckDB's errors that are about the database rather than the statement's data.
_STORE_DOWN: tuple[type[BaseException], ...] = (
    duckdb.IOException, duckdb.ConnectionException, duckdb.OutOfMemoryException, duckdb.FatalException,
    duckdb.InternalException, duckdb.TransactionException, duckdb.InterruptException,
    StoreError, OSError, MemoryError,
)


def store_unavailable(exc: BaseException, store: Store) -> bool:
    """True when ``exc`` (raised while applying a command) means the store cannot take writes now."""
    if isinstance(exc, _STORE_DOWN):
        return True
    try:
        store.schema_version()  # a real read: a store that cannot answer it is down, whatever was raised
    except Exception:  # noqa: BLE001 - any failure of the probe means the same thing
        return True
    return False


def reason_for(exc: BaseException) -> str:
    """One line for a rejected command whose handler failed: the error's kind (its text may name internals)."""
    return f"could not apply this command ({type(exc).__name__}); it was not applied and will not be retried"
