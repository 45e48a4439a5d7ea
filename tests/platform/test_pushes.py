"""What the teller sees of a push's answer (pushes.py): the `push.response` event names the push by
its title and carries the form's fields, the values and the signature's URL; the session's pushes
and their answers are listed for a reloaded console; the signature image is served to the session's
teller and its queue's supervisors only, each fetch audited.

Calls start the real way: a kiosk takes a ticket, a ready teller accepts the ACD's offer.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.service import AUDIT, ENGINE, KEYS, REDIS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
FORM = {"kind": "form", "title": "Open an account", "fields": [
    {"name": "account_name", "label": "Account name", "required": True}, {"name": "deposit", "label": "Deposit"}]}


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


def signature_png() -> bytes:
    pixels = np.full((60, 200, 3), 255, dtype=np.uint8)
    cv2.line(pixels, (10, 40), (190, 15), (0, 0, 0), 3)
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    return bytes(buf.tobytes())


async def push(api: Client, c: Call, body: dict[str, Any]) -> str:
    resp = await api.post(f"/sessions/{c.sid}/push", json=body, headers=c.teller.headers)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["push"]["push_id"])


async def answer(api: Client, c: Call, body: dict[str, Any]) -> Any:
    resp = await api.post(f"/sessions/{c.sid}/responses", json=body, headers=c.customer.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def responses(api: Client, c: Call) -> list[dict[str, Any]]:
    return [e for _, e in await events.read(api.app[REDIS], c.teller.client) if e["type"] == "push.response"]


async def test_the_answer_event_names_the_push_and_carries_what_the_teller_shows(api: Client) -> None:
    c = await call(api)
    form_id = await push(api, c, FORM)
    await answer(api, c, {"push_id": form_id, "answer": "accept", "values": {"account_name": "Kim", "deposit": "100"}})
    declined_id = await push(api, c, {**FORM, "title": "Direct debit"})
    await answer(api, c, {"push_id": declined_id, "answer": "decline"})
    accepted, declined = await responses(api, c)
    assert accepted["title"] == "Open an account" and accepted["answer"] == "accept"
    assert [f["label"] for f in accepted["fields"]] == ["Account name", "Deposit"]
    assert accepted["values"] == {"account_name": "Kim", "deposit": "100"} and accepted["signature_url"] is None
    assert declined["title"] == "Direct debit" and declined["answer"] == "decline" and declined["values"] == {}


async def test_the_list_rebuilds_pushes_and_answers_and_the_signature_is_served(api: Client) -> None:
    c = await call(api)
    form_id = await push(api, c, FORM)
    sig_id = await push(api, c, {"kind": "signature_request", "title": "Sign the terms"})
    doc_id = await push(api, c, {"kind": "document", "title": "Terms", "url": "/media/terms.pdf"})
    await answer(api, c, {"push_id": form_id, "answer": "accept", "values": {"account_name": "Kim"}})
    png = signature_png()
    signed = await answer(api, c, {"push_id": sig_id, "answer": "accept",
                                   "signature": "data:image/png;base64," + base64.b64encode(png).decode()})
    listed = await api.get(f"/sessions/{c.sid}/pushes", headers=c.teller.headers)
    assert listed.status == 200 and listed.headers["Cache-Control"] == "no-store"
    items = (await listed.json())["pushes"]
    assert [p["push_id"] for p in items] == [form_id, sig_id, doc_id]  # in the order sent
    assert items[0]["state"] == "answered" and items[0]["values"] == {"account_name": "Kim"}
    assert items[0]["fields"][0]["label"] == "Account name"
    assert items[2]["state"] == "pending" and "answer" not in items[2]
    url = items[1]["signature_url"]
    assert url == f"/api/sessions/{c.sid}/pushes/{sig_id}/signature"
    assert (await responses(api, c))[1]["signature_url"] == url
    fetched = await api.get(url.removeprefix("/api"), headers=c.teller.headers)
    assert fetched.status == 200 and fetched.content_type == "image/png"
    body = await fetched.read()
    assert body == png and hashlib.sha256(body).hexdigest() == signed["push"]["signature_sha256"]
    actions = [r.action for r in await api.app[AUDIT].records(subject=f"session:{c.sid}")]
    assert "session.signature_viewed" in actions
    # No signature for a push that has none, nor for a made-up id.
    for other in (form_id, "f" * 32, "../x"):
        assert (await api.get(f"/sessions/{c.sid}/pushes/{other}/signature", headers=c.teller.headers)).status == 404


async def test_only_the_sessions_teller_and_its_queues_supervisors_see_the_pushes(api: Client) -> None:
    c = await call(api)
    await push(api, c, FORM)
    other = await person(api, "otto")
    sup = await person(api, "sue", "supervisor", queues=["general"])
    far = await person(api, "fay", "supervisor", queues=["cards"])
    path = f"/sessions/{c.sid}/pushes"
    assert (await api.get(path, headers=other.headers)).status == 404
    assert (await api.get(path, headers=far.headers)).status == 403
    assert (await api.get(path, headers=c.customer.headers)).status == 403
    assert (await api.get(path)).status == 401
    resp = await api.get(path, headers=sup.headers)
    assert resp.status == 200 and len((await resp.json())["pushes"]) == 1
    assert (await api.get("/sessions/not-a-session/pushes", headers=c.teller.headers)).status == 404
