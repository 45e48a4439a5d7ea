"""The seat server over real sockets: the app and its strict Content-Security-Policy, its
client config, no path tricks, and the read-only lookup under /seat/api/ with every wrong
token refused (calls, tellers and authorisations are the platform's: tests/platform/test_floor.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate, sessions
from cloudbank.platform.tokens import KeyRing
from cloudbank.seat import app as seat_app

Client = TestClient[Any, web.Application]


@pytest.fixture
async def people(config: Config) -> dict[str, Any]:
    """People, a branch, two live calls (deposit, loans) and one closed call in the records."""
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    directory = Directory(engine)
    await directory.ensure_branch("b1", "Harbour Branch")
    ids = {}
    for name, role, queues in (("teller1", "teller", []), ("super1", "supervisor", ["deposit"]),
                               ("superall", "supervisor", []), ("admin1", "admin", [])):
        user, _ = await directory.add_user(name, role, display_name=name.title(), password="long-password-1",
                                           queues=queues)
        ids[name] = user.id
    calls = {}
    async with engine.begin() as conn:
        for service, state in (("deposit", "active"), ("loans", "on_hold"), ("deposit", "closed")):
            sid = str(uuid.uuid4())
            calls[(service, state)] = sid
            await conn.execute(sessions.insert().values(
                id=sid, ticket_id=str(uuid.uuid4()), service=service, customer="device:k1",
                teller_id=ids["teller1"], video_node="n1", state=state, created_at=time.time()))
    keys = KeyRing(engine)
    await keys.load()
    tokens = {name: keys.issue(uid, role, "api", 600, name=name)
              for (name, uid), role in zip(ids.items(), ("teller", "supervisor", "supervisor", "admin"), strict=True)}
    tokens["device"] = keys.issue("dev1", "device", "api", 600, branch="b1")
    tokens["expired"] = keys.issue(ids["super1"], "supervisor", "api", -5, name="super1")
    tokens["join"] = keys.issue("user:x", "join", "session:x", 60, party="supervisor", node="n1")
    await engine.dispose()
    return {"ids": ids, "tokens": tokens, "calls": calls}


@pytest.fixture
async def client(config: Config, aiohttp_client: Callable[[web.Application], Awaitable[Client]],
                 people: dict[str, Any]) -> Client:
    root = web.Application()
    root.add_subapp("/seat/", seat_app.create_app(config))
    return await aiohttp_client(root)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_console_is_served_under_a_strict_csp(client: Client) -> None:
    for path in ("/seat/", "/seat/static/js/main.js", "/seat/static/i18n/zh.js", "/seat/config.json",
                 "/seat/common/dom.js", "/seat/common/i18n.js"):
        resp = await client.get(path)
        assert resp.status == 200, path
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
    index = await client.get("/seat/")
    assert index.headers["Cache-Control"] == "no-cache"
    html = await index.text()
    assert 'src="static/js/main.js"' in html and "<script>" not in html and "style=" not in html
    js = await client.get("/seat/static/js/main.js")
    assert "javascript" in js.headers["Content-Type"]


async def test_client_config_says_where_the_api_is(client: Client, config: Config) -> None:
    body = await (await client.get("/seat/config.json")).json()
    assert body == {"api": "/api/", "ring_timeout_s": config.ring_timeout_s, "wrapup_s": config.wrapup_s,
                    "service_level_s": config.service_level_s}


@pytest.mark.parametrize("path", ["/seat/static/../app.py", "/seat/static/%2e%2e/app.py",
                                  "/seat/static/..%2fapp.py", "/seat/static/", "/seat/static/js/",
                                  "/seat/app.py", "/seat/static/js/nope.js", "/seat/common/",
                                  "/seat/common/../static_files.py", "/seat/common/%2e%2e/static_files.py",
                                  "/seat/common/..%2fstatic_files.py"])
async def test_no_source_files_or_listings_leak(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status in (403, 404), path
    text = await resp.text()
    assert "create_app" not in text and "add_static_app" not in text


@pytest.mark.parametrize("path", ["/seat/api/branches"])
@pytest.mark.parametrize(("who", "status"), [(None, 401), ("device", 403), ("expired", 401),
                                             ("join", 403), ("garbage", 401), ("long", 401),
                                             ("huge", 400)])
async def test_staff_lookups_refuse_wrong_tokens(client: Client, people: dict[str, Any], path: str,
                                                 who: str | None, status: int) -> None:
    tokens = {**people["tokens"], "garbage": "not.a.token", "long": "x" * 8000, "huge": "x" * 1_000_000}
    headers = auth(tokens[who]) if who else {}
    resp = await client.get(path, headers=headers)
    assert resp.status == status
    if who == "huge":
        return  # aiohttp's parser refuses the 1 MB header line before any handler runs
    body = await resp.json()
    assert body["error"] in ("unauthorized", "forbidden") and body["message"]


async def test_a_revoked_token_is_refused(client: Client, people: dict[str, Any], redis_client: Any) -> None:
    engine_token = people["tokens"]["super1"]
    import jwt

    jti = jwt.decode(engine_token, options={"verify_signature": False})["jti"]
    await redis_client.set(f"revoked:{jti}", "1", ex=60)
    assert (await client.get("/seat/api/branches", headers=auth(engine_token))).status == 401


async def test_lookups_take_no_writes(client: Client, people: dict[str, Any]) -> None:
    for path in ("/seat/api/branches",):
        resp = await client.post(path, data="{}", headers=auth(people["tokens"]["admin1"]))
        assert resp.status == 405


async def test_branches_name_the_kiosks_branch(client: Client, people: dict[str, Any]) -> None:
    body = await (await client.get("/seat/api/branches", headers=auth(people["tokens"]["teller1"]))).json()
    assert body["branches"]["b1"] == "Harbour Branch"
    assert (await client.get("/seat/api/branches", headers=auth(people["tokens"]["device"]))).status == 403
    assert (await client.get("/seat/api/branches")).status == 401
