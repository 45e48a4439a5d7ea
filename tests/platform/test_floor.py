"""The supervisor's floor through the platform app: GET tellers (state, time in state, their call),
GET calls (live calls in the supervisor's queues) and GET authorisations/pending (pending requests naming
the service and the teller), each only for supervisors and admins and only within their queues."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform.app import create_app
from cloudbank.platform.authorisations import AUTHZ_PENDING
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import sessions
from cloudbank.platform.service import ENGINE, KEYS

Client = TestClient[Any, Any]
ROLES = {"teller1": "teller", "teller2": "teller", "super1": "supervisor", "superall": "supervisor",
         "admin1": "admin"}


@pytest.fixture
async def api(aiohttp_client: Callable[..., Awaitable[Client]], config: Config) -> Client:
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def floor(api: Client) -> dict[str, Any]:
    """Two services, two tellers (one per skill), supervisors of one queue and of all, an admin,
    and in the records a live deposit call, a live loans call on hold and a closed deposit call."""
    engine = api.app[ENGINE]
    for svc in (Service("deposit", "Deposits", "deposit", names={"zh": "存款"}), Service("loans", "Loans", "loans")):
        await Catalogue(engine).upsert(svc)
    directory = Directory(engine)
    ids: dict[str, str] = {}
    for name, role in ROLES.items():
        skills = {"deposit": 3} if name == "teller1" else {"loans": 3} if name == "teller2" else {}
        queues = ["deposit"] if name == "super1" else []
        user, _ = await directory.add_user(name, role, display_name=name.title(), password="long-password-1",
                                           skills=skills, queues=queues)
        ids[name] = user.id
    keys = api.app[KEYS]
    tokens = {name: keys.issue(ids[name], role, "api", 600, name=name) for name, role in ROLES.items()}
    tokens["device"] = keys.issue("dev1", "device", "api", 600, branch="b1")
    calls = {}
    async with engine.begin() as conn:
        for service, state, teller in (("deposit", "active", "teller1"), ("loans", "on_hold", "teller2"),
                                       ("deposit", "closed", "teller1")):
            sid = str(uuid.uuid4())
            calls[(service, state)] = sid
            await conn.execute(sessions.insert().values(
                id=sid, ticket_id=str(uuid.uuid4()), service=service, customer="device:k1",
                teller_id=ids[teller], video_node="n1", state=state, created_at=time.time() - 30))
    return {"ids": ids, "tokens": tokens, "calls": calls}


async def get(api: Client, path: str, token: str | None) -> tuple[int, Any]:
    resp = await api.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})
    return resp.status, await resp.json()


async def test_tellers_shows_each_teller_on_the_floor_with_state_and_time_in_state(
        api: Client, floor: dict[str, Any]) -> None:
    tokens, ids = floor["tokens"], floor["ids"]
    before = time.time()
    resp = await api.post("/teller/state", json={"state": "not_ready", "reason": "break"},
                          headers={"Authorization": f"Bearer {tokens['teller1']}"})
    assert resp.status == 200
    status, body = await get(api, "/tellers", tokens["super1"])
    assert status == 200
    # super1 oversees deposit only: teller2 (loans) is not on their floor.
    assert [t["name"] for t in body["tellers"]] == ["Teller1"]
    one = body["tellers"][0]
    assert one["id"] == ids["teller1"] and one["username"] == "teller1"
    assert one["state"] == "not_ready" and one["reason"] == "break"
    assert before - 1 <= one["since"] <= time.time()
    assert one["call"]["id"] == floor["calls"][("deposit", "active")] and one["call"]["channel"] == "kiosk"
    # A supervisor of every queue sees both; a teller who never signed in is offline since never.
    status, body = await get(api, "/tellers", tokens["superall"])
    assert [t["name"] for t in body["tellers"]] == ["Teller1", "Teller2"]
    two = body["tellers"][1]
    assert two["state"] == "offline" and two["since"] is None
    assert two["call"]["state"] == "on_hold"


async def test_calls_lists_live_calls_in_the_supervisors_queues(api: Client, floor: dict[str, Any]) -> None:
    calls, tokens = floor["calls"], floor["tokens"]
    status, body = await get(api, "/calls", tokens["super1"])
    assert status == 200
    assert [c["id"] for c in body["calls"]] == [calls[("deposit", "active")]]
    call = body["calls"][0]
    assert call["teller_name"] == "Teller1" and call["channel"] == "kiosk" and call["service"] == "deposit"
    for who in ("superall", "admin1"):
        _, body = await get(api, "/calls", tokens[who])
        assert sorted(c["id"] for c in body["calls"]) == sorted([calls[("deposit", "active")],
                                                                 calls[("loans", "on_hold")]])


def pending(aid: str, service: str, teller_id: str, session_id: str, state: str = "pending",
            at: float | None = None) -> str:
    """An authorisation request as `authorisations.Authorisations.open` keeps it (of a live call)."""
    return json.dumps({"id": aid, "session_id": session_id, "service": service, "teller_id": teller_id,
                       "reason": "why", "state": state, "at": at or time.time()})


async def test_pending_authorisations_name_the_service_and_the_teller(api: Client, floor: dict[str, Any],
                                                                    redis_client: Any) -> None:
    ids, tokens, calls = floor["ids"], floor["tokens"], floor["calls"]
    deposit, loans = calls[("deposit", "active")], calls[("loans", "on_hold")]
    asked = time.time() - 42
    await redis_client.set("authz:" + "a" * 32, pending("a" * 32, "deposit", ids["teller1"], deposit, at=asked))
    await redis_client.set("authz:" + "b" * 32, pending("b" * 32, "loans", ids["teller2"], loans))
    await redis_client.set("authz:" + "c" * 32, pending("c" * 32, "deposit", ids["teller1"], deposit, "granted"))
    await redis_client.set("authz:" + "d" * 32, "{not json")
    await redis_client.zadd(AUTHZ_PENDING, {c * 32: time.time() for c in "abcd"})
    status, body = await get(api, "/authorisations/pending", tokens["super1"])
    assert status == 200
    assert [a["id"] for a in body["authorisations"]] == ["a" * 32]
    a = body["authorisations"][0]
    assert a["reason"] == "why" and a["at"] == pytest.approx(asked)
    assert a["teller_name"] == "Teller1" and a["service_name"] == "Deposits"
    assert a["service_names"] == {"en": "Deposits", "zh": "存款"}
    _, body = await get(api, "/authorisations/pending", tokens["superall"])
    assert sorted(a["id"] for a in body["authorisations"]) == ["a" * 32, "b" * 32]


async def test_pending_authorisations_are_found_in_a_big_redis(api: Client, floor: dict[str, Any],
                                                             redis_client: Any) -> None:
    """The list comes from the platform's index, not from scanning a keyspace that a busy Redis
    (tickets, event streams) fills with far more keys than a bounded scan reaches."""
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(60_000):
            pipe.set(f"acd:t:{i:08d}", "x")
        await pipe.execute()
    aid, at = "e" * 32, time.time()
    await redis_client.set(f"authz:{aid}", pending(aid, "deposit", floor["ids"]["teller1"],
                                                   floor["calls"][("deposit", "active")], at=at))
    await redis_client.zadd(AUTHZ_PENDING, {aid: at, "f" * 32: at - 3 * 24 * 3600})  # f: its record expired
    _, body = await get(api, "/authorisations/pending", floor["tokens"]["super1"])
    assert [a["id"] for a in body["authorisations"]] == [aid]
    assert await redis_client.zscore(AUTHZ_PENDING, "f" * 32) is None


@pytest.mark.parametrize("path", ["/tellers", "/calls", "/authorisations/pending"])
@pytest.mark.parametrize(("who", "status"), [(None, 401), ("teller1", 403), ("device", 403), ("garbage", 401)])
async def test_the_floor_is_for_supervisors_and_admins(api: Client, floor: dict[str, Any], path: str,
                                                      who: str | None, status: int) -> None:
    tokens = {**floor["tokens"], "garbage": "not.a.token"}
    got, body = await get(api, path, tokens[who] if who else None)
    assert got == status and body["error"] in ("unauthorized", "forbidden")


async def test_the_floor_takes_no_writes(api: Client, floor: dict[str, Any]) -> None:
    for path in ("/tellers", "/calls"):
        resp = await api.post(path, json={}, headers={"Authorization": f"Bearer {floor['tokens']['admin1']}"})
        assert resp.status == 405
