"""Numbered schema migrations, recorded in ``schema_migrations``.

Migrations are literal SQL so that history never changes under an old store;
``tests/test_store.py`` checks that the schema they produce matches the entity
declarations in ``domain.entities``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .connection import scalar

if TYPE_CHECKING:
    import duckdb

_EVENT_COLUMNS = """
  id VARCHAR NOT NULL,
  number VARCHAR NOT NULL,
  city_code VARCHAR NOT NULL,
  district_code VARCHAR NOT NULL,
  street_code VARCHAR,
  grid_code VARCHAR,
  category_code VARCHAR NOT NULL,
  colour VARCHAR NOT NULL,
  status VARCHAR NOT NULL,
  title VARCHAR NOT NULL,
  text VARCHAR NOT NULL,
  lon DOUBLE,
  lat DOUBLE,
  address VARCHAR NOT NULL,
  source VARCHAR NOT NULL,
  reporter VARCHAR NOT NULL,
  assignee VARCHAR,
  departments VARCHAR[] NOT NULL,
  sla_profile VARCHAR NOT NULL,
  reported_at DOUBLE NOT NULL,
  stage_started_at DOUBLE NOT NULL,
  due_at DOUBLE,
  closed_at DOUBLE,
  updated_at DOUBLE NOT NULL,
  escalation_level BIGINT NOT NULL,
  supervised_by VARCHAR,
  parent_id VARCHAR,
  merged_into VARCHAR,
  duplicate_of VARCHAR,
  inhibited_by VARCHAR,
  plan_code VARCHAR,
  origin_tier VARCHAR NOT NULL,
  origin_node VARCHAR NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (id)
"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "events, open-event queue, audit log, change log",
        [
            "CREATE TABLE store_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
            f"CREATE TABLE events ({_EVENT_COLUMNS})",
            # Open events only: the console's live queue and the map read this
            # small table, so they stay fast however large the archive grows.
            f"CREATE TABLE event_queue ({_EVENT_COLUMNS})",
            """CREATE TABLE audit_log (
  seq BIGINT NOT NULL, acted_at DOUBLE NOT NULL, event_id VARCHAR NOT NULL, action VARCHAR NOT NULL,
  from_status VARCHAR, to_status VARCHAR, actor VARCHAR NOT NULL, role VARCHAR NOT NULL,
  tier VARCHAR NOT NULL, node VARCHAR NOT NULL, note VARCHAR NOT NULL,
  prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL, PRIMARY KEY (seq))""",
            """CREATE TABLE changes (
  seq BIGINT PRIMARY KEY, changed_at DOUBLE NOT NULL, entity VARCHAR NOT NULL, key VARCHAR NOT NULL,
  op VARCHAR NOT NULL, data VARCHAR NOT NULL, origin VARCHAR NOT NULL,
  scope VARCHAR NOT NULL)""",
        ],
    ),
    (
        2,
        "directives and receipts",
        [
            """CREATE TABLE directives (
  id VARCHAR NOT NULL, number VARCHAR NOT NULL, origin_tier VARCHAR NOT NULL, origin_code VARCHAR NOT NULL,
  title VARCHAR NOT NULL, text VARCHAR NOT NULL, priority VARCHAR NOT NULL, targets VARCHAR[] NOT NULL,
  require_ack BOOLEAN NOT NULL, deadline_at DOUBLE NOT NULL, created_at DOUBLE NOT NULL,
  created_by VARCHAR NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (id))""",
            """CREATE TABLE receipts (
  directive_id VARCHAR NOT NULL, jurisdiction_code VARCHAR NOT NULL, state VARCHAR NOT NULL,
  delivered_at DOUBLE, read_at DOUBLE, acknowledged_at DOUBLE, executed_at DOUBLE, actor VARCHAR,
  renotified BIGINT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (directive_id, jurisdiction_code))""",
        ],
    ),
    (
        3,
        "sensor readings and indicator history",
        [
            "CREATE TABLE sensor_readings (sensor_code VARCHAR NOT NULL, measured_at DOUBLE NOT NULL, value DOUBLE NOT NULL, PRIMARY KEY (sensor_code, measured_at))",
            """CREATE TABLE indicator_history (
  indicator_code VARCHAR NOT NULL, scope_code VARCHAR NOT NULL, measured_at DOUBLE NOT NULL, value DOUBLE NOT NULL,
  colour VARCHAR NOT NULL, PRIMARY KEY (indicator_code, scope_code, measured_at))""",
        ],
    ),
    (
        4,
        "sync: applied commands, outbox, cursors, replicated audit",
        [
            # Server side: one row per command id, written in the same transaction as
            # the command's effects (accepted) or on its own (rejected), so a retry
            # gets the same answer and never applies twice.
            """CREATE TABLE applied_commands (
  id VARCHAR PRIMARY KEY, body_hash VARCHAR NOT NULL, type VARCHAR NOT NULL, outcome VARCHAR NOT NULL,
  reply VARCHAR NOT NULL, actor VARCHAR NOT NULL, applied_at DOUBLE NOT NULL)""",
            # Client side: commands waiting for (or answered by) the upstream server.
            """CREATE TABLE outbox (
  n BIGINT PRIMARY KEY, id VARCHAR NOT NULL UNIQUE, created_at DOUBLE NOT NULL, type VARCHAR NOT NULL,
  body VARCHAR NOT NULL, state VARCHAR NOT NULL, attempts BIGINT NOT NULL, next_attempt_at DOUBLE NOT NULL,
  last_error VARCHAR, pre_image VARCHAR, post_image VARCHAR, result VARCHAR, epoch VARCHAR, answered_at DOUBLE)""",
            """CREATE TABLE sync_cursor (
  upstream VARCHAR PRIMARY KEY, epoch VARCHAR NOT NULL, seq BIGINT NOT NULL, phase VARCHAR NOT NULL,
  snap_token VARCHAR, snap_seq BIGINT, server_node VARCHAR, server_tier VARCHAR, server_code VARCHAR,
  scope VARCHAR, updated_at DOUBLE NOT NULL)""",
            # Audit entries received from other nodes; this node's own chain stays in audit_log.
            """CREATE TABLE audit_remote (
  seq BIGINT NOT NULL, acted_at DOUBLE NOT NULL, event_id VARCHAR NOT NULL, action VARCHAR NOT NULL,
  from_status VARCHAR, to_status VARCHAR, actor VARCHAR NOT NULL, role VARCHAR NOT NULL,
  tier VARCHAR NOT NULL, node VARCHAR NOT NULL, note VARCHAR NOT NULL,
  prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL, PRIMARY KEY (node, seq))""",
        ],
    ),
    (
        5,
        "sensors at district scale: keyed sensor state, roll-ups, readings without a per-row index",
        [
            # The (sensor_code, measured_at) key cost 9x the table's size on disk and a third of each
            # insert; readings only ever move forward per sensor (sensor_state.last_at), so it goes.
            "CREATE TABLE sensor_readings_v5 (sensor_code VARCHAR NOT NULL, measured_at DOUBLE NOT NULL, value DOUBLE NOT NULL)",
            "INSERT INTO sensor_readings_v5 SELECT sensor_code, measured_at, value FROM sensor_readings ORDER BY measured_at",
            "DROP TABLE sensor_readings",
            "ALTER TABLE sensor_readings_v5 RENAME TO sensor_readings",
            """CREATE TABLE sensor_state (
  sensor_code VARCHAR NOT NULL, last_at DOUBLE, last_value DOUBLE, event_id VARCHAR, event_at DOUBLE,
  episode_event_id VARCHAR, PRIMARY KEY (sensor_code))""",
            # One row: the state's generation (bumped by every ingest batch, so a process can tell its
            # in-memory copy from what was committed), the generation last folded into sensor_state,
            # and the change-log seq the episodes have followed up to.
            "CREATE TABLE sensor_state_gen (gen BIGINT NOT NULL, folded_gen BIGINT NOT NULL, seq BIGINT NOT NULL)",
            """CREATE TABLE sensor_rollup (
  sensor_code VARCHAR NOT NULL, bucket_start DOUBLE NOT NULL, bucket_s DOUBLE NOT NULL, n BIGINT NOT NULL,
  min DOUBLE NOT NULL, max DOUBLE NOT NULL, mean DOUBLE NOT NULL)""",
            # Backfill: latest reading per sensor; the running episode is the latest sensor event of
            # the reporter unless an alarm_clear entry (local or replicated) names it.
            """INSERT INTO sensor_state
WITH r AS (SELECT sensor_code, max(measured_at) AS last_at, arg_max(value, measured_at) AS last_value
           FROM sensor_readings GROUP BY sensor_code),
e AS (SELECT reporter, id, reported_at FROM events WHERE source = 'sensor'
      QUALIFY row_number() OVER (PARTITION BY reporter ORDER BY reported_at DESC, id DESC) = 1),
c AS (SELECT event_id FROM audit_log WHERE action = 'alarm_clear'
      UNION SELECT event_id FROM audit_remote WHERE action = 'alarm_clear')
SELECT coalesce(r.sensor_code, e.reporter), r.last_at, r.last_value, e.id, e.reported_at,
       CASE WHEN e.id IS NULL OR e.id IN (SELECT event_id FROM c) THEN NULL ELSE e.id END
FROM r FULL OUTER JOIN e ON e.reporter = r.sensor_code""",
            # Where the state's view of the change log stands (store.sensors follows it from here).
            "INSERT INTO sensor_state_gen SELECT 0, 0, coalesce(max(seq), 0) FROM changes",
        ],
    ),
    (
        8,
        "people: roster, duty overrides, grid tasks, notifications (issue 14)",
        [
            """CREATE TABLE people (
  user VARCHAR NOT NULL, name VARCHAR NOT NULL, role VARCHAR NOT NULL, department VARCHAR,
  jurisdiction VARCHAR NOT NULL, phone VARCHAR NOT NULL, email VARCHAR NOT NULL, on_duty VARCHAR NOT NULL,
  rotation BIGINT NOT NULL, duties VARCHAR[] NOT NULL, status VARCHAR NOT NULL, lon DOUBLE, lat DOUBLE,
  seen_at DOUBLE, updated_at DOUBLE NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (user))""",
            """CREATE TABLE duty_overrides (
  role VARCHAR NOT NULL, jurisdiction VARCHAR NOT NULL, user VARCHAR NOT NULL, starts_at DOUBLE NOT NULL,
  ends_at DOUBLE NOT NULL, set_by VARCHAR NOT NULL, PRIMARY KEY (role, jurisdiction, starts_at))""",
            """CREATE TABLE tasks (
  id VARCHAR NOT NULL, kind VARCHAR NOT NULL, template VARCHAR, event_id VARCHAR, day VARCHAR,
  district_code VARCHAR NOT NULL, street_code VARCHAR, grid_code VARCHAR, target VARCHAR, title VARCHAR NOT NULL,
  assignee VARCHAR, status VARCHAR NOT NULL, created_at DOUBLE NOT NULL, due_at DOUBLE, accepted_at DOUBLE,
  done_at DOUBLE, finding VARCHAR, note VARCHAR NOT NULL, photo VARCHAR, created_by VARCHAR NOT NULL,
  origin_node VARCHAR NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (id))""",
            """CREATE TABLE notifications (
  id VARCHAR NOT NULL, message_key VARCHAR NOT NULL, recipient VARCHAR NOT NULL, channel VARCHAR NOT NULL,
  address VARCHAR NOT NULL, subject VARCHAR NOT NULL, body VARCHAR NOT NULL, ref VARCHAR NOT NULL,
  priority VARCHAR NOT NULL, needs_ack BOOLEAN NOT NULL, state VARCHAR NOT NULL, attempts BIGINT NOT NULL,
  next_attempt_at DOUBLE, last_error VARCHAR, created_at DOUBLE NOT NULL, sent_at DOUBLE, acked_at DOUBLE,
  acked_by VARCHAR, step BIGINT NOT NULL, role VARCHAR, place VARCHAR NOT NULL, scope VARCHAR NOT NULL,
  origin_node VARCHAR NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (id))""",
        ],
    ),
    (
        9,
        "open standards: Open311 intake records (issue 15)",
        [
            # What an Open311 POST carried beyond the event: contact details stay with the intake tier
            # (never synced, never shown by the public GETs), the media link and the request's token.
            """CREATE TABLE open311_requests (
  event_id VARCHAR NOT NULL, token VARCHAR NOT NULL, service_code VARCHAR NOT NULL, media_url VARCHAR,
  email VARCHAR, phone VARCHAR, first_name VARCHAR, last_name VARCHAR, device_id VARCHAR, account_id VARCHAR,
  api_user VARCHAR NOT NULL, requested_at DOUBLE NOT NULL, PRIMARY KEY (event_id))""",
        ],
    ),
    (
        10,
        "figures fed through 一表通 for the runway board (issue 13)",
        [
            # Values a form or another system reports per jurisdiction (``figure:<name>`` metrics); local
            # to the store that received them, like sensor readings.
            """CREATE TABLE figures (
  name VARCHAR NOT NULL, scope_code VARCHAR NOT NULL, measured_at DOUBLE NOT NULL, value DOUBLE NOT NULL,
  source VARCHAR NOT NULL, PRIMARY KEY (name, scope_code, measured_at))""",
        ],
    ),
    (
        12,
        "attachments by content hash: the metadata (issue 14); the bytes live beside the store",
        [
            """CREATE TABLE attachments (
  id VARCHAR NOT NULL, ref VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, kind VARCHAR NOT NULL, name VARCHAR NOT NULL,
  mime VARCHAR NOT NULL, size BIGINT NOT NULL, added_at DOUBLE NOT NULL, added_by VARCHAR NOT NULL,
  scope VARCHAR NOT NULL, origin_node VARCHAR NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (id))""",
        ],
    ),
    (
        13,
        "duty overrides replicate like roster rows: a key of their own, origin node and version (issue 14)",
        [
            """CREATE TABLE duty_overrides_13 (
  id VARCHAR NOT NULL, role VARCHAR NOT NULL, jurisdiction VARCHAR NOT NULL, user VARCHAR NOT NULL,
  starts_at DOUBLE NOT NULL, ends_at DOUBLE NOT NULL, set_by VARCHAR NOT NULL, origin_node VARCHAR NOT NULL,
  version BIGINT NOT NULL, PRIMARY KEY (id))""",
            # Overrides set before were never sent anywhere: they stay this node's (its node id is unknown here,
            # so '' — no replica holds them to be confused by it).
            """INSERT INTO duty_overrides_13 SELECT role || '/' || jurisdiction || '/' || CAST(CAST(starts_at AS BIGINT)
  AS VARCHAR), role, jurisdiction, user, starts_at, ends_at, set_by, '', 1 FROM duty_overrides""",
            "DROP TABLE duty_overrides",
            "ALTER TABLE duty_overrides_13 RENAME TO duty_overrides",
        ],
    ),
]

LATEST = max(version for version, _, _ in MIGRATIONS)  # numbers are assigned per line of work; gaps are fine


def applied(conn: duckdb.DuckDBPyConnection) -> int:
    exists = scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'")
    if not exists:
        return 0
    version: int | None = scalar(conn, "SELECT max(version) FROM schema_migrations")
    return version or 0


def migrate(conn: duckdb.DuckDBPyConnection, now: float, upto: int | None = None) -> list[int]:
    """Apply every pending migration, each in its own transaction; returns those applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name VARCHAR NOT NULL, applied_at DOUBLE NOT NULL)"
    )
    done = applied(conn)
    ran: list[int] = []
    for version, name, statements in MIGRATIONS:
        if version <= done or (upto is not None and version > upto):
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, now])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        ran.append(version)
    return ran
