"""Durable records: the SQL schema, its upgrades, and the engine (SQLite by default, PostgreSQL by URL).

The schema is versioned: `MIGRATIONS[i]` brings a database from version i to i+1, and the
`schema_version` table records where a database is. `migrate()` runs at every start and is a
no-op when the database is current. To change the schema, append a step; never edit one that shipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cloudbank.platform.errors import StartupError

metadata = sa.MetaData()


def _ts() -> sa.Column[Any]:
    return sa.Column("created_at", sa.Float, nullable=False)


schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

branches = sa.Table(
    "branches", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    _ts(),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    # JSON: {"skill_code": level, ...}
    sa.Column("skills", sa.Text, nullable=False, server_default="{}"),
    # JSON list of queue (service) codes a supervisor oversees; empty = all
    sa.Column("queues", sa.Text, nullable=False, server_default="[]"),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    _ts(),
)

devices = sa.Table(
    "devices", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("branch_id", sa.String(64), sa.ForeignKey("branches.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    # JSON of the last heartbeat the kiosk sent
    sa.Column("status", sa.Text, nullable=False, server_default="{}"),
    sa.Column("last_seen", sa.Float, nullable=True),
    _ts(),
)

enrolment_codes = sa.Table(
    "enrolment_codes", metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("branch_id", sa.String(64), sa.ForeignKey("branches.id"), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_by", sa.String(36), nullable=True),
    _ts(),
)

signing_keys = sa.Table(
    "signing_keys", metadata,
    sa.Column("kid", sa.String(32), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    _ts(),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("ticket_id", sa.String(36), nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("teller_id", sa.String(36), nullable=True),
    sa.Column("video_node", sa.String(128), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("disposition", sa.String(64), nullable=True),
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    _ts(),
)

audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# The service catalogue (cloudbank.platform.catalogue): one row per service a customer can ask for.
services = sa.Table(
    "services", metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("skill", sa.String(64), nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("ring_timeout_s", sa.Float, nullable=False),
    sa.Column("wrapup_s", sa.Float, nullable=False),
    sa.Column("dual_recording", sa.Boolean, nullable=False),
    sa.Column("expected_handle_s", sa.Float, nullable=False),
    # JSON lists of phrases: suggesting the service, required in a dual-recorded sale, forbidden
    sa.Column("keywords", sa.Text, nullable=False, server_default="[]"),
    sa.Column("required_phrases", sa.Text, nullable=False, server_default="[]"),
    sa.Column("forbidden_phrases", sa.Text, nullable=False, server_default="[]"),
    # True when the skill needs a special qualification (not given to new tellers by default)
    sa.Column("qualified_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.Float, nullable=False),
    # JSON: the name in other UI languages, {"zh": "..."} (`name` is the English one); since v6
    sa.Column("names", sa.Text, nullable=False, server_default="{}"),
)

# The queue log (cloudbank.platform.queue_log): every queue event, copied from the Redis stream.
# The id is the stream entry id, so copying an entry twice (two nodes, a retry) stores it once.
queue_log = sa.Table(
    "queue_log", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("teller_id", sa.String(64), nullable=True),
    # JSON of the event's other fields (waited_s, handle_s, reason, ...)
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_queue_log_queue_at", "queue", "at"),
)

# The media platform (cloudbank.media): uploaded items (content-addressed blobs), kiosk playlists with
# maker-checker versions, the recordings catalogue indexed from the video nodes' manifests, settings.
media_items = sa.Table(
    "media_items", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("uploaded_by", sa.String(36), nullable=False),
    _ts(),
)

playlists = sa.Table(
    "playlists", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("branch_id", sa.String(64), sa.ForeignKey("branches.id"), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    _ts(),
)

# One row per proposed version: pending until a different admin approves (or anyone rejects) it.
playlist_versions = sa.Table(
    "playlist_versions", metadata,
    sa.Column("playlist_id", sa.String(36), sa.ForeignKey("playlists.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),
    # JSON list of {"item_id", "duration_s"} in play order
    sa.Column("items", sa.Text, nullable=False),
    sa.Column("made_by", sa.String(36), nullable=False),
    sa.Column("made_at", sa.Float, nullable=False),
    sa.Column("decided_by", sa.String(36), nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
)

recordings = sa.Table(
    "recordings", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("manifest_path", sa.String(500), nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("teller_id", sa.String(64), nullable=True),
    sa.Column("service", sa.String(64), nullable=True),
    # JSON: party -> client id, as the manifest has it
    sa.Column("parties", sa.Text, nullable=False, server_default="{}"),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("indexed_at", sa.Float, nullable=False),
    sa.Column("purged_at", sa.Float, nullable=True),
    # JSON list of "<party> <kind>" tracks the call should have and the recording lacks (schema v5;
    # NULL: indexed before v5, not known yet: the media platform indexes it again)
    sa.Column("missing", sa.Text, nullable=True),
    sa.Index("ix_recordings_started_at", "started_at"),
    sa.Index("ix_recordings_teller", "teller_id"),
    sa.Index("ix_recordings_service", "service"),
)

media_settings = sa.Table(
    "media_settings", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_by", sa.String(36), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Service definitions (cloudbank.platform.service_definitions): one row per proposed version of a
# service's form template, dual-recording script and authorisation rule, under maker-checker (v7).
service_definitions = sa.Table(
    "service_definitions", metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),
    # JSON of service_definitions.Definition
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("made_by", sa.String(36), nullable=False),
    sa.Column("made_at", sa.Float, nullable=False),
    sa.Column("decided_by", sa.String(36), nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
)

# Work orders (cloudbank.platform.work_orders): the business done in one call (v7).
work_orders = sa.Table(
    "work_orders", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("session_id", sa.String(36), nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("definition_version", sa.Integer, nullable=False),
    sa.Column("teller_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    # JSON: the form values, the customer's confirmation, the signature, the authorisation, the checklist
    sa.Column("form_values", sa.Text, nullable=False, server_default="{}"),
    sa.Column("confirmation", sa.Text, nullable=True),
    sa.Column("signature", sa.Text, nullable=True),
    sa.Column("authorisation", sa.Text, nullable=True),
    sa.Column("checklist", sa.Text, nullable=False, server_default="[]"),
    sa.Column("pushes", sa.Text, nullable=False, server_default="{}"),
    sa.Column("disposition", sa.Text, nullable=True),
    _ts(),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_work_orders_session", "session_id"),
)

# Satisfaction ratings (cloudbank.platform.ratings): the customer's 1-5 score of a call, one per session (v8).
ratings = sa.Table(
    "ratings", metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("teller_id", sa.String(36), nullable=False),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    _ts(),
    sa.Index("ix_ratings_created_at", "created_at"),
)

GENESIS_HASH = "0" * 64


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[branches, users, devices, enrolment_codes, signing_keys,
                                      sessions, audit_head, audit_log])
    conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS_HASH))


def _v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[services])


def _v3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[queue_log])


def _v4(conn: Connection) -> None:
    metadata.create_all(conn, tables=[media_items, playlists, playlist_versions, recordings, media_settings])


def _v5_recordings_missing(conn: Connection) -> None:
    """recordings.missing: the tracks a call's recording lacks (a fresh v4 table already has it)."""
    if "missing" not in {c["name"] for c in sa.inspect(conn).get_columns("recordings")}:
        conn.execute(sa.text("ALTER TABLE recordings ADD COLUMN missing TEXT"))


def _v6_service_names(conn: Connection) -> None:
    """services.names: the name in other UI languages (a fresh v2 table already has it); the demo
    catalogue's services still under their demo English name get its translations."""
    if "names" not in {c["name"] for c in sa.inspect(conn).get_columns("services")}:
        conn.execute(sa.text("ALTER TABLE services ADD COLUMN names TEXT NOT NULL DEFAULT '{}'"))
    from cloudbank.platform.seed import DEMO_SERVICES  # imported here: seed imports this module

    for svc in DEMO_SERVICES:
        conn.execute(services.update().where(services.c.code == svc.code, services.c.name == svc.name,
                                             services.c.names == "{}")
                     .values(names=json.dumps(svc.names, ensure_ascii=False)))


def _v7_work_orders(conn: Connection) -> None:
    """Service definitions (maker-checker versions) and the work orders of calls."""
    metadata.create_all(conn, tables=[service_definitions, work_orders])


def _v8_ratings(conn: Connection) -> None:
    """Customers' satisfaction ratings of their calls."""
    metadata.create_all(conn, tables=[ratings])


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5_recordings_missing,
                                                  _v6_service_names, _v7_work_orders, _v8_ratings]
SCHEMA_VERSION = len(MIGRATIONS)


def _migrate_sync(conn: Connection) -> int:
    metadata.create_all(conn, tables=[schema_version])
    row = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).first()
    current = row[0] if row else 0
    if current > SCHEMA_VERSION:
        raise StartupError(f"the database is at schema version {current}, newer than this cloudbank "
                           f"({SCHEMA_VERSION}): upgrade cloudbank")
    for step in MIGRATIONS[current:]:
        step(conn)
    if row is None:
        conn.execute(schema_version.insert().values(id=1, version=SCHEMA_VERSION))
    elif current != SCHEMA_VERSION:
        conn.execute(schema_version.update().where(schema_version.c.id == 1).values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION


async def migrate(engine: AsyncEngine) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; returns the version."""
    async with engine.begin() as conn:
        return await conn.run_sync(_migrate_sync)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for the URL; SQLite gets WAL and a busy timeout so several services share it."""
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if url.startswith("sqlite"):
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
