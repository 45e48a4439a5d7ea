from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.errors import Forbidden, Unauthorized
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.tokens import KeyRing


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await migrate(eng)
    yield eng
    await eng.dispose()


async def test_issue_and_verify(engine: AsyncEngine) -> None:
    ring = KeyRing(engine)
    await ring.load()
    token = ring.issue("u1", "teller", "api", 60, name="alice")
    claims = await ring.verify(token, roles=["teller"], scope="api")
    assert (claims.sub, claims.role, claims.get("name")) == ("u1", "teller", "alice")


async def test_refusals(engine: AsyncEngine) -> None:
    ring = KeyRing(engine)
    await ring.load()
    with pytest.raises(Unauthorized, match="expired"):
        await ring.verify(ring.issue("u1", "teller", "api", -5))
    good = ring.issue("u1", "device", "api", 60)
    with pytest.raises(Forbidden, match="device token cannot"):
        await ring.verify(good, roles=["teller"])
    join = ring.issue("c1", "join", "session:A", 60, party="customer")
    with pytest.raises(Forbidden, match="another scope"):
        await ring.verify(join, roles=["join"], scope="session:B")
    kid = jwt.get_unverified_header(good)["kid"]
    forged = jwt.encode({"iss": "cloudbank", "sub": "u1", "role": "admin", "scope": "api", "jti": "x",
                         "exp": int(time.time()) + 60}, b"wrong-secret-of-32-bytes-length!", algorithm="HS256",
                        headers={"kid": kid})
    with pytest.raises(Unauthorized, match="signature"):
        await ring.verify(forged)
    none_alg = jwt.encode({"sub": "u1"}, key=None, algorithm="none", headers={"kid": kid})  # type: ignore[arg-type]
    with pytest.raises(Unauthorized):
        await ring.verify(none_alg)
    for garbage in ("", "abc", "a.b.c", "x" * 5000):
        with pytest.raises(Unauthorized):
            await ring.verify(garbage)


async def test_rotation_keeps_old_tokens_valid_across_nodes(engine: AsyncEngine) -> None:
    node_a, node_b = KeyRing(engine), KeyRing(engine)
    await node_a.load()
    await node_b.load()
    old = node_a.issue("u1", "teller", "api", 60)
    await node_a.rotate()
    new = node_a.issue("u1", "teller", "api", 60)
    assert jwt.get_unverified_header(old)["kid"] != jwt.get_unverified_header(new)["kid"]
    node_b._last_refresh = 0  # let node B look up the new key at once
    assert (await node_b.verify(new)).sub == "u1"
    assert (await node_b.verify(old)).sub == "u1"
