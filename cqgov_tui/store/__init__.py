"""The DuckDB store: schema migrations, typed queries, change log and audit chain."""

from .store import Store, open_store, init_store

__all__ = ["Store", "open_store", "init_store"]
