from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.audit import AuditChain, record_hash
from cloudbank.platform.records import audit_log, create_engine, migrate


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await migrate(eng)
    yield eng
    await eng.dispose()


async def test_chain_links_and_verifies(engine: AsyncEngine) -> None:
    chain = AuditChain(engine)
    first = await chain.append("u1", "login", "user:u1")
    second = await chain.append("u1", "session.state", "session:s1", {"to": "active"})
    assert second.prev_hash == first.hash and first.seq == 1 and second.seq == 2
    result = await chain.verify()
    assert result.ok and result.records == 2


async def test_concurrent_appends_stay_one_chain(engine: AsyncEngine, tmp_path: Path) -> None:
    chains = [AuditChain(engine), AuditChain(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"))]
    await asyncio.gather(*(chains[i % 2].append("u", "x", f"s{i}") for i in range(40)))
    result = await chains[0].verify()
    assert result.ok and result.records == 40
    await chains[1].engine.dispose()


async def _forge(conn: Any, seq: int, prev: str) -> None:
    at, details = time.time(), '{"n": 42}'
    await conn.execute(audit_log.insert().values(
        seq=seq, at=at, actor="mallory", action="act", subject="forged", details=details, prev_hash=prev,
        hash=record_hash(seq, at, "mallory", "act", "forged", details, prev)))


@pytest.mark.parametrize("tamper", ["details", "delete_middle", "delete_last", "reorder_hash", "swap", "insert",
                                    "forged_append"])
async def test_tampering_is_found(engine: AsyncEngine, tamper: str) -> None:
    chain = AuditChain(engine)
    for i in range(5):
        await chain.append("u1", "act", f"s{i}", {"n": i})
    async with engine.begin() as conn:
        if tamper == "details":
            await conn.execute(audit_log.update().where(audit_log.c.seq == 3).values(details='{"n":99}'))
        elif tamper == "delete_middle":
            await conn.execute(audit_log.delete().where(audit_log.c.seq == 3))
        elif tamper == "delete_last":
            await conn.execute(audit_log.delete().where(audit_log.c.seq == 5))
        elif tamper == "swap":  # records 3 and 4 change places (their numbers swapped)
            await conn.execute(audit_log.update().where(audit_log.c.seq == 3).values(seq=-3))
            await conn.execute(audit_log.update().where(audit_log.c.seq == 4).values(seq=3))
            await conn.execute(audit_log.update().where(audit_log.c.seq == -3).values(seq=4))
        elif tamper == "insert":  # a forged record slipped in as 3, linked and hashed right, the rest renumbered
            for seq in (5, 4, 3):
                await conn.execute(audit_log.update().where(audit_log.c.seq == seq).values(seq=seq + 1))
            prev = (await conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == 2))).scalar_one()
            await _forge(conn, 3, prev)
        elif tamper == "forged_append":  # a forged record after the last, linked and hashed right
            prev = (await conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == 5))).scalar_one()
            await _forge(conn, 6, prev)
        else:
            await conn.execute(audit_log.update().where(audit_log.c.seq == 3).values(prev_hash="f" * 64))
    result = await chain.verify()
    assert not result.ok
    assert result.broken_seq in (3, 4, 5, 6, 7)
    assert "BROKEN" in str(result)


async def test_file_hashes_are_checked(engine: AsyncEngine, tmp_path: Path) -> None:
    evidence = tmp_path / "rec" / "a.webm"
    evidence.parent.mkdir()
    evidence.write_bytes(b"recording bytes")
    digest = hashlib.sha256(b"recording bytes").hexdigest()
    chain = AuditChain(engine)
    await chain.append("node", "recording.finished", "session:s1",
                       {"files": [{"path": "rec/a.webm", "sha256": digest}]})
    assert (await chain.verify(base=tmp_path)).ok
    evidence.write_bytes(b"recording bytes, edited")
    result = await chain.verify(base=tmp_path)
    assert not result.ok and "does not match" in result.problem
    evidence.unlink()
    assert "missing" in (await chain.verify(base=tmp_path)).problem


async def test_records_are_listed_by_subject(engine: AsyncEngine) -> None:
    chain = AuditChain(engine)
    await chain.append("u1", "a", "s1")
    await chain.append("u1", "b", "s2")
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one() == 2
    assert [r.action for r in await chain.records(subject="s2")] == ["b"]


async def test_purged_files_may_be_missing_but_not_altered(engine: AsyncEngine, tmp_path: Path) -> None:
    evidence = tmp_path / "a.webm"
    evidence.write_bytes(b"kept")
    chain = AuditChain(engine)
    await chain.append("node", "recording.finished", "session:s1",
                       {"files": [{"path": "a.webm", "sha256": hashlib.sha256(b"kept").hexdigest()}]})
    evidence.unlink()
    assert not (await chain.verify(base=tmp_path)).ok
    await chain.append("retention", "recording.purged", "session:s1")
    assert (await chain.verify(base=tmp_path)).ok
    evidence.write_bytes(b"put back, but different")
    assert "does not match" in (await chain.verify(base=tmp_path)).problem
