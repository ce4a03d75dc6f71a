"""Open standards in and out: Open311 GeoReport v2, CAP 1.2, 一表通 ledgers, Hive-partitioned Parquet, GeoJSON.

Each module turns the core's entities into one standard's shapes (and back,
where the standard is an input); the server and CLI modules only route to them.
"""
