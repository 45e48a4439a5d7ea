from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudbank.platform.errors import StartupError
from cloudbank.platform.records import SCHEMA_VERSION, create_engine, migrate, schema_version


async def test_migrate_creates_and_is_idempotent(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    assert await migrate(engine) == SCHEMA_VERSION
    assert await migrate(engine) == SCHEMA_VERSION
    async with engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        version = (await conn.execute(sa.select(schema_version.c.version))).scalar_one()
        journal = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
    assert {"users", "devices", "branches", "sessions", "audit_log", "signing_keys"} <= names
    assert version == SCHEMA_VERSION
    assert journal == "wal"
    await engine.dispose()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(schema_version.update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(StartupError, match="newer than this cloudbank"):
        await migrate(engine)
    await engine.dispose()


async def test_a_database_from_before_service_names_gets_them(tmp_path: Path) -> None:
    # A catalogue seeded before services had names per language (schema v5): the upgrade adds the
    # column and gives the demo services still under their demo name their Chinese names.
    from cloudbank.platform.catalogue import Catalogue, Service
    from cloudbank.platform.records import services

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await migrate(engine)
    catalogue = Catalogue(engine)
    await catalogue.upsert(Service("general", "General enquiry", "general"))
    await catalogue.upsert(Service("transfer", "Send money abroad", "payments"))  # renamed by an admin
    async with engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE services DROP COLUMN names"))
        await conn.execute(schema_version.update().values(version=5))
    assert await migrate(engine) == SCHEMA_VERSION
    assert (await catalogue.get("general")).names == {"zh": "一般咨询"}
    assert (await catalogue.get("transfer")).names == {}
    async with engine.connect() as conn:
        assert "names" in {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns("services"))}
        stored = await conn.execute(sa.select(services.c.names).where(services.c.code == "transfer"))
        assert stored.scalar_one() == "{}"
    await engine.dispose()
