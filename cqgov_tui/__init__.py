"""cqgov core: domain, store, engine, sync, server, geo and simulation — no UI."""

__version__ = "0.1.0"
