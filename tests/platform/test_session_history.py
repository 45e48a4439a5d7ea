"""A call's history for a console opened mid-call (session_history.py): what the session's audience
was sent is kept as it is sent (final transcript lines, keyword hits, snapshots; not partials, not
other events), listed in order to the session's teller and its queue's supervisors only."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.service import ENGINE, KEYS, REDIS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@dataclass
class Person:
    id: str
    headers: dict[str, str]
    client: str


@dataclass
class Call:
    sid: str
    teller: Person
    customer: Person


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    client = await aiohttp_client(create_app(config))
    cat = Catalogue(client.app[ENGINE])
    await cat.upsert(Service("general", "General enquiry", "general"))
    redis = client.app[REDIS]
    await redis.hset("video:nodes", "node-a", json.dumps({
        "id": "node-a", "url": "http://127.0.0.1:9/node-a/", "calls": 0, "cpu": 0.1, "draining": False,
        "heartbeat_at": 0}))
    await redis.set("video:node:node-a:alive", "1", ex=60)
    return client


def _bearer(api: Client, sub: str, role: str, **extra: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue(sub, role, 'api', 600, **extra)}"}


async def person(api: Client, name: str, role: str = "teller", queues: list[str] | None = None) -> Person:
    user, _ = await Directory(api.app[ENGINE]).add_user(name, role, skills={"general": 1}, queues=queues)
    return Person(user.id, _bearer(api, user.id, role, name=name), f"user:{user.id}")


async def call(api: Client, teller_name: str = "tina", kiosk_name: str = "kiosk") -> Call:
    teller = await person(api, teller_name)
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch one")
    device = await directory.enrol_device(await directory.create_enrolment_code("b1"), kiosk_name)
    customer = Person(device.id, _bearer(api, device.id, "device", branch="b1"), f"device:{device.id}")
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)).status == 200
    assert (await api.post("/tickets", json={"service": "general"}, headers=customer.headers)).status == 201
    me = await (await api.get("/teller", headers=teller.headers)).json()
    accepted = await api.post(f"/offers/{me['teller']['offer_id']}/accept", headers=teller.headers)
    assert accepted.status == 200, await accepted.text()
    return Call((await accepted.json())["session"]["id"], teller, customer)




async def test_the_history_keeps_finals_keywords_and_snapshots_in_order(api: Client) -> None:
    c = await call(api)
    redis = api.app[REDIS]
    sent: list[dict[str, Any]] = [
        {"type": "transcript", "speaker": "customer", "text": "I want to", "final": False, "start": 1.0, "end": 1.5},
        {"type": "transcript", "speaker": "customer", "text": "I want to open savings", "final": True,
         "start": 1.0, "end": 2.5, "words": []},
        {"type": "keyword", "rule": "r1", "phrase": "savings", "kind": "suggest", "service": "general"},
        {"type": "transcript", "speaker": "teller", "text": "", "final": True, "start": 3.0, "end": 3.1},
        {"type": "snapshot", "url": "/video/snapshots/x/1.jpg", "faces": [[1, 2, 3, 4]]},
        {"type": "session.update", "session": {"id": c.sid}},
        {"type": "transcript", "speaker": "teller", "text": "Of course", "final": True, "start": 4.0, "end": 4.8},
    ]
    for event in sent:
        await events.publish_to_session(redis, c.sid, event)
    resp = await api.get(f"/sessions/{c.sid}/history", headers=c.teller.headers)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert [line["text"] for line in body["transcript"]] == ["I want to open savings", "Of course"]
    assert body["transcript"][0]["session_id"] == c.sid and body["transcript"][1]["speaker"] == "teller"
    assert [k["phrase"] for k in body["keywords"]] == ["savings"]
    assert body["snapshots"] == [{**sent[4], "session_id": c.sid}]
    # The live stream got all of them, partials included: keeping them changed nothing there.
    live = [e for _, e in await events.read(redis, c.teller.client) if e["type"] == "transcript"]
    assert len(live) == 4


async def test_only_the_sessions_teller_and_its_queues_supervisors_read_it(api: Client) -> None:
    c = await call(api)
    other = await person(api, "otto")
    sup = await person(api, "sue", "supervisor", queues=["general"])
    far = await person(api, "fay", "supervisor", queues=["cards"])
    path = f"/sessions/{c.sid}/history"
    assert (await api.get(path, headers=other.headers)).status == 404
    assert (await api.get(path, headers=far.headers)).status == 403
    assert (await api.get(path, headers=c.customer.headers)).status == 403
    assert (await api.get(path)).status == 401
    resp = await api.get(path, headers=sup.headers)
    assert resp.status == 200 and await resp.json() == {"transcript": [], "keywords": [], "snapshots": []}
