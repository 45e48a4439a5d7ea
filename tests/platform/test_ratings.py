"""Satisfaction ratings through the platform app: the session's customer rates the call once, after it
ended and within the window; the wallboard and /api/metrics show CSAT per queue and per teller. Every
refusal leaves nothing written (no row, no audit record, no event).

Calls start the real way: a kiosk takes a ticket, a ready teller accepts the ACD's offer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from cloudbank.platform import events, ratings
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.errors import Conflict
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import ratings as ratings_table
from cloudbank.platform.service import AUDIT, ENGINE, KEYS, REDIS
from cloudbank.platform.tokens import Claims

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@dataclass
class Person:
    id: str
    headers: dict[str, str]


@dataclass
class Call:
    sid: str
    teller: Person
    customer: Person


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    client = await aiohttp_client(create_app(config))
    await Catalogue(client.app[ENGINE]).upsert(Service("general", "General enquiry", "general"))
    redis = client.app[REDIS]
    await redis.hset("video:nodes", "node-a", json.dumps({
        "id": "node-a", "url": "http://127.0.0.1:9/node-a/", "calls": 0, "cpu": 0.1, "draining": False,
        "heartbeat_at": 0}))
    await redis.set("video:node:node-a:alive", "1", ex=60)
    return client


def _bearer(api: Client, sub: str, role: str, **extra: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue(sub, role, 'api', 600, **extra)}"}


async def person(api: Client, name: str, role: str = "teller") -> Person:
    user, _ = await Directory(api.app[ENGINE]).add_user(name, role, display_name=name.title(),
                                                        skills={"general": 1})
    return Person(user.id, _bearer(api, user.id, role, name=name))


async def kiosk(api: Client, name: str) -> Person:
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch one")
    device = await directory.enrol_device(await directory.create_enrolment_code("b1"), name)
    return Person(device.id, _bearer(api, device.id, "device", branch="b1"))


async def call(api: Client, teller: Person, kiosk_name: str = "kiosk", end: bool = True) -> Call:
    customer = await kiosk(api, kiosk_name)
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)).status == 200
    assert (await api.post("/tickets", json={"service": "general"}, headers=customer.headers)).status == 201
    me = await (await api.get("/teller", headers=teller.headers)).json()
    accepted = await api.post(f"/offers/{me['teller']['offer_id']}/accept", headers=teller.headers)
    assert accepted.status == 200, await accepted.text()
    c = Call((await accepted.json())["session"]["id"], teller, customer)
    if end:
        assert (await api.post(f"/sessions/{c.sid}/end", headers=teller.headers)).status == 200
        assert (await api.post(f"/sessions/{c.sid}/wrapup", json={"disposition": "resolved", "service_done": False},
                               headers=teller.headers)).status == 200
    return c


async def rate(api: Client, c: Call, body: Any, who: Person | None = None, **kw: Any) -> Any:
    return await api.post(f"/sessions/{c.sid}/rating", json=body, headers=(who or c.customer).headers, **kw)


async def nothing_written(api: Client, c: Call) -> None:
    async with api.app[ENGINE].connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(ratings_table))).scalar() == 0
    assert not [r for r in await api.app[AUDIT].records(subject=f"session:{c.sid}") if r.action == "session.rated"]
    teller_events = [e for _, e in await events.read(api.app[REDIS], f"user:{c.teller.id}")]
    assert not [e for e in teller_events if e.get("type") == "session.rating"]


async def test_the_customer_rates_the_ended_call_once(api: Client) -> None:
    c = await call(api, await person(api, "tina"))
    resp = await rate(api, c, {"score": 4, "comment": "  Quick and friendly  "})
    assert resp.status == 201, await resp.text()
    body = (await resp.json())["rating"]
    assert body["score"] == 4 and body["comment"] == "Quick and friendly" and body["service"] == "general"
    stored = await ratings.get(api.app, c.sid)
    assert stored is not None and stored.score == 4 and stored.teller_id == c.teller.id
    audited = [r for r in await api.app[AUDIT].records(subject=f"session:{c.sid}") if r.action == "session.rated"]
    assert [(r.actor, r.details["score"]) for r in audited] == [(f"device:{c.customer.id}", 4)]
    teller_events = [e for _, e in await events.read(api.app[REDIS], f"user:{c.teller.id}")]
    assert {"type": "session.rating", "session_id": c.sid, "score": 4}.items() <= \
        [e for e in teller_events if e.get("type") == "session.rating"][0].items()

    # A replay (or a second rating) is refused and the first stays as it was.
    again = await rate(api, c, {"score": 1})
    assert again.status == 409 and "rated already" in (await again.json())["message"]
    stored_after = await ratings.get(api.app, c.sid)
    assert stored_after == stored
    assert len([r for r in await api.app[AUDIT].records(subject=f"session:{c.sid}")
                if r.action == "session.rated"]) == 1


async def test_a_rating_right_after_hang_up_before_wrap_up_is_taken(api: Client) -> None:
    teller = await person(api, "tina")
    c = await call(api, teller, end=False)
    assert (await api.post(f"/sessions/{c.sid}/end", headers=c.customer.headers)).status == 200
    assert (await rate(api, c, {"score": 5})).status == 201


async def test_only_the_sessions_customer_rates(api: Client) -> None:
    teller = await person(api, "tina")
    c = await call(api, teller)
    other = await kiosk(api, "other kiosk")
    supervisor = await person(api, "sam", "supervisor")
    assert (await rate(api, c, {"score": 5}, who=other)).status == 404
    for who in (c.teller, supervisor):
        resp = await rate(api, c, {"score": 1}, who=who)
        assert resp.status == 403, await resp.text()
    assert (await api.post("/sessions/00000000-0000-0000-0000-000000000000/rating", json={"score": 5},
                           headers=c.customer.headers)).status == 404
    await nothing_written(api, c)


async def test_a_live_call_cannot_be_rated(api: Client) -> None:
    c = await call(api, await person(api, "tina"), end=False)
    resp = await rate(api, c, {"score": 5})
    assert resp.status == 409 and "not over" in (await resp.json())["message"]
    await nothing_written(api, c)


async def test_a_rating_after_the_window_is_refused(api: Client) -> None:
    c = await call(api, await person(api, "tina"))
    ended = await ratings.ended_at(api.app[AUDIT], await _session(api, c))
    assert ended is not None
    claims = Claims(sub=c.customer.id, role="device", scope="api", exp=ended + 3600, jti="", extra={})
    with pytest.raises(Conflict, match="too long ago"):
        await ratings.rate(api.app, c.sid, claims, 5, "", now=ended + ratings.RATING_WINDOW_S + 1)
    await nothing_written(api, c)
    # Just inside the window it is taken.
    assert (await ratings.rate(api.app, c.sid, claims, 5, "", now=ended + ratings.RATING_WINDOW_S - 1)).score == 5


async def _session(api: Client, c: Call) -> Any:
    from cloudbank.platform.sessions import Sessions

    return await Sessions(api.app).get(c.sid)


@pytest.mark.parametrize(("body", "field"), [
    ({"score": 0}, "score"), ({"score": 6}, "score"), ({"score": -1}, "score"), ({"score": "5"}, "score"),
    ({"score": 4.5}, "score"), ({"score": True}, "score"), ({}, "score"), ({"comment": "nice"}, "score"),
    ({"score": 5, "comment": "x" * (ratings.MAX_COMMENT + 1)}, "comment"), ({"score": 5, "comment": 7}, "comment"),
    ({"score": 5, "stars": 5}, None), ([5], None),
])
async def test_malformed_ratings_are_refused_and_change_nothing(api: Client, body: Any, field: str | None) -> None:
    c = await call(api, await person(api, "tina"))
    resp = await rate(api, c, body)
    assert resp.status == 400, await resp.text()
    answer = await resp.json()
    assert answer["error"] == "bad_request" and answer["message"]
    if field:
        assert answer.get("field") == field, answer
    await nothing_written(api, c)


async def test_oversized_and_non_json_bodies_are_refused(api: Client) -> None:
    c = await call(api, await person(api, "tina"))
    big = json.dumps({"score": 5, "comment": "y" * (ratings.MAX_BODY_BYTES + 10)})
    resp = await api.post(f"/sessions/{c.sid}/rating", data=big, headers={
        **c.customer.headers, "Content-Type": "application/json"})
    assert resp.status == 413, await resp.text()
    resp = await api.post(f"/sessions/{c.sid}/rating", data="score=5", headers={
        **c.customer.headers, "Content-Type": "application/json"})
    assert resp.status == 400 and "not valid JSON" in (await resp.json())["message"]
    resp = await api.post(f"/sessions/{c.sid}/rating", data="score=5", headers=c.customer.headers)
    assert resp.status == 415
    await nothing_written(api, c)
    # The longest comment in Chinese, every character escaped, still fits.
    longest = json.dumps({"score": 5, "comment": "好" * ratings.MAX_COMMENT})
    ok = await api.post(f"/sessions/{c.sid}/rating", data=longest,
                        headers={**c.customer.headers, "Content-Type": "application/json"})
    assert ok.status == 201, await ok.text()


async def test_csat_per_queue_and_teller_on_the_wallboard_and_in_metrics(api: Client) -> None:
    tina, tom = await person(api, "tina"), await person(api, "tom")
    scores = [(tina, 5), (tina, 4), (tina, 2), (tom, 3)]
    for i, (teller, score) in enumerate(scores):
        c = await call(api, teller, f"kiosk {i}")
        assert (await rate(api, c, {"score": score})).status == 201
        await api.post("/teller/state", json={"state": "not_ready"}, headers=teller.headers)
    sup = await person(api, "sam", "supervisor")
    board = await (await api.get("/wallboard", headers=sup.headers)).json()
    general = board["csat"]["queues"]["general"]
    assert general == {"count": 4, "satisfied": 2, "csat": 0.5, "average": 3.5}
    by_name = {t["name"]: t for t in board["csat"]["tellers"]}
    assert by_name["Tina"]["count"] == 3 and by_name["Tina"]["csat"] == round(2 / 3, 4)
    assert by_name["Tina"]["average"] == round(11 / 3, 4) and by_name["Tina"]["teller_id"] == tina.id
    assert by_name["Tom"] == {"teller_id": tom.id, "name": "Tom", "count": 1, "satisfied": 0, "csat": 0.0,
                              "average": 3.0}
    text = await (await api.get("/metrics", headers=sup.headers)).text()
    assert 'cloudbank_queue_csat{queue="general"} 0.5' in text.splitlines()
    assert 'cloudbank_queue_rating_average{queue="general"} 3.5' in text.splitlines()
    assert 'cloudbank_queue_ratings{queue="general"} 4' in text.splitlines()
    assert f'cloudbank_teller_csat{{teller="{tom.id}",name="Tom"}} 0' in text.splitlines()
    assert f'cloudbank_teller_ratings{{teller="{tina.id}",name="Tina"}} 3' in text.splitlines()
    assert "# TYPE cloudbank_queue_csat gauge" in text
