"""ID-card images through the platform app: the customer sends one during the call, the session's
teller and its queue's supervisors fetch it, the audit chain holds its SHA-256; bad input changes
nothing (no file, no audit record, no event).

Calls start the real way: a kiosk takes a ticket, a ready teller accepts the ACD's offer.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.id_cards import MAX_CARDS_PER_SESSION, MAX_ID_CARD_BYTES
from cloudbank.platform.identity import Directory
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, KEYS, REDIS

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
    await cat.upsert(Service("cards", "Lost card", "cards"))
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


async def kiosk(api: Client, name: str = "kiosk") -> Person:
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch one")
    device = await directory.enrol_device(await directory.create_enrolment_code("b1"), name)
    return Person(device.id, _bearer(api, device.id, "device", branch="b1"), f"device:{device.id}")


async def call(api: Client, teller_name: str = "tina", kiosk_name: str = "kiosk") -> Call:
    teller, customer = await person(api, teller_name), await kiosk(api, kiosk_name)
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)).status == 200
    assert (await api.post("/tickets", json={"service": "general"}, headers=customer.headers)).status == 201
    me = await (await api.get("/teller", headers=teller.headers)).json()
    accepted = await api.post(f"/offers/{me['teller']['offer_id']}/accept", headers=teller.headers)
    assert accepted.status == 200, await accepted.text()
    return Call((await accepted.json())["session"]["id"], teller, customer)


def image(ext: str = ".jpg", size: int = 64, seed: int = 1) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, pixels)
    assert ok
    return bytes(buf.tobytes())


def data_url(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


async def send(api: Client, c: Call, body: Any, who: Person | None = None) -> Any:
    return await api.post(f"/sessions/{c.sid}/id_card", json=body, headers=(who or c.customer).headers)


async def stream(api: Client, client: str) -> list[dict[str, Any]]:
    return [e for _, e in await events.read(api.app[REDIS], client)]


def stored(config: Config, sid: str) -> list[Path]:
    folder = config.data / "id_cards" / sid
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def test_customer_sends_teller_fetches_and_the_audit_chain_has_its_hash(api: Client, config: Config,
                                                                             ) -> None:
    c = await call(api)
    raw = image()
    resp = await send(api, c, {"image": data_url(raw), "side": "front"})
    assert resp.status == 201, await resp.text()
    card = (await resp.json())["id_card"]
    assert card["sha256"] == hashlib.sha256(raw).hexdigest() and card["content_type"] == "image/jpeg"
    assert card["url"] == f"/api/sessions/{c.sid}/id_card/{card['name']}"
    [path] = stored(config, c.sid)
    assert path.read_bytes() == raw
    # The teller's console hears of it, with the URL to fetch.
    got = [e for e in await stream(api, c.teller.client) if e["type"] == "id_card"]
    assert len(got) == 1 and got[0]["url"] == card["url"] and got[0]["session_id"] == c.sid
    fetched = await api.get(f"/sessions/{c.sid}/id_card/{card['name']}", headers=c.teller.headers)
    assert fetched.status == 200 and fetched.content_type == "image/jpeg"
    assert await fetched.read() == raw and fetched.headers["Cache-Control"] == "no-store"
    actions = [r.action for r in await api.app[AUDIT].records(subject=f"session:{c.sid}")]
    assert "session.id_card" in actions and "session.id_card_viewed" in actions
    record = [r for r in await api.app[AUDIT].records(subject=f"session:{c.sid}") if r.action == "session.id_card"][0]
    assert record.details["files"] == [{"path": f"id_cards/{c.sid}/{card['name']}", "sha256": card["sha256"]}]
    assert (await api.app[AUDIT].verify(base=config.data)).ok
    path.write_bytes(raw[:-1] + b"\x00")  # a changed stored card breaks the chain
    result = await api.app[AUDIT].verify(base=config.data)
    assert not result.ok and "SHA-256" in result.problem


async def test_png_back_side_and_a_resend_changes_nothing(api: Client, config: Config) -> None:
    c = await call(api)
    raw = image(".png")
    first = await send(api, c, {"image": data_url(raw, "image/png"), "side": "back"})
    assert first.status == 201 and (await first.json())["id_card"]["name"].startswith("back-")
    audit_before = len(await api.app[AUDIT].records())
    again = await send(api, c, {"image": data_url(raw, "image/png"), "side": "back"})
    assert again.status == 200 and (await again.json())["new"] is False
    assert len(await api.app[AUDIT].records()) == audit_before and len(stored(config, c.sid)) == 1
    assert len([e for e in await stream(api, c.teller.client) if e["type"] == "id_card"]) == 1


async def test_a_call_takes_a_bounded_number_of_cards(api: Client, config: Config) -> None:
    c = await call(api)
    for seed in range(MAX_CARDS_PER_SESSION):
        assert (await send(api, c, {"image": data_url(image(size=16, seed=seed))})).status == 201
    refused = await send(api, c, {"image": data_url(image(size=16, seed=99))})
    assert refused.status == 409 and "already" in (await refused.json())["message"]
    assert len(stored(config, c.sid)) == MAX_CARDS_PER_SESSION


async def test_a_supervisor_of_the_queue_fetches_one_of_another_queue_is_403(api: Client) -> None:
    c = await call(api)
    card = (await (await send(api, c, {"image": data_url(image())})).json())["id_card"]
    ours = await person(api, "sam", "supervisor", queues=["general"])
    theirs = await person(api, "sue", "supervisor", queues=["cards"])
    assert (await api.get(f"/sessions/{c.sid}/id_card/{card['name']}", headers=ours.headers)).status == 200
    assert (await api.get(f"/sessions/{c.sid}/id_card/{card['name']}", headers=theirs.headers)).status == 403


async def test_the_list_gives_a_reloaded_console_every_card_sent(api: Client) -> None:
    c = await call(api)
    front = (await (await send(api, c, {"image": data_url(image())})).json())["id_card"]
    back = (await (await send(api, c, {"image": data_url(image(".png", seed=2), "image/png"),
                                       "side": "back"})).json())["id_card"]
    await send(api, c, {"image": data_url(image())})  # a resend is not listed twice
    listed = await api.get(f"/sessions/{c.sid}/id_card", headers=c.teller.headers)
    assert listed.status == 200
    cards = (await listed.json())["id_cards"]
    assert [(x["name"], x["side"], x["sha256"], x["url"]) for x in cards] == [
        (front["name"], "front", front["sha256"], front["url"]), (back["name"], "back", back["sha256"], back["url"])]
    sup = await person(api, "sam", "supervisor", queues=["general"])
    assert len((await (await api.get(f"/sessions/{c.sid}/id_card", headers=sup.headers)).json())["id_cards"]) == 2
    other = await call(api, "tom", "kiosk2")
    assert (await api.get(f"/sessions/{c.sid}/id_card", headers=other.teller.headers)).status == 404
    assert (await api.get(f"/sessions/{c.sid}/id_card", headers=c.customer.headers)).status == 403
    theirs = await person(api, "sue", "supervisor", queues=["cards"])
    assert (await api.get(f"/sessions/{c.sid}/id_card", headers=theirs.headers)).status == 403
    empty = await api.get(f"/sessions/{other.sid}/id_card", headers=other.teller.headers)
    assert (await empty.json())["id_cards"] == []


async def test_other_tellers_kiosks_and_unknown_names_cannot_fetch(api: Client) -> None:
    c = await call(api)
    card = (await (await send(api, c, {"image": data_url(image())})).json())["id_card"]
    other = await call(api, "tom", "kiosk2")
    url = f"/sessions/{c.sid}/id_card/{card['name']}"
    assert (await api.get(url, headers=other.teller.headers)).status == 404  # someone else's session
    assert (await api.get(url, headers=c.customer.headers)).status == 403  # customers do not fetch
    assert (await api.get(url)).status == 401
    for name in ("front-" + "0" * 32 + ".jpg", "..%2F..%2Fcloudbank.sqlite3", "front.jpg", "x" * 500):
        assert (await api.get(f"/sessions/{c.sid}/id_card/{name}", headers=c.teller.headers)).status == 404
    assert (await api.get(f"/sessions/{'0' * 8}-0000-0000-0000-{'0' * 12}/id_card/{card['name']}",
                          headers=c.teller.headers)).status == 404


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"image": data_url(image(".png"), "image/jpeg")}, 400, "not a JPEG"),
    ({"image": data_url(image(), "image/png")}, 400, "not a PNG"),
    ({"image": data_url(b"GIF89a" * 40, "image/gif")}, 400, "data URL of a JPEG or PNG"),
    ({"image": "https://example.com/card.jpg"}, 400, "data URL"),
    ({"image": "data:image/jpeg;base64,@@@@"}, 400, "base64"),
    ({"image": data_url(b"\xff\xd8\xff" + b"\x00" * (MAX_ID_CARD_BYTES + 10))}, 400, "longer than"),
    ({"image": data_url(b"\xff\xd8\xff" + b"\x00" * (MAX_ID_CARD_BYTES + 3000))}, 413, "too large"),
    ({"image": data_url(b"\xff\xd8\xff" + b"\x00" * (MAX_ID_CARD_BYTES - 2))}, 400, "larger than 2 MB"),
    ({"image": "A" * (1024 * 1024)}, 400, "data URL"),
    ({"image": data_url(image()), "side": "left"}, 400, "side"),
    ({"image": data_url(image()), "extra": 1}, 400, "unknown field"),
    ({"side": "front"}, 400, "'image' is required"),
    ({"image": 5}, 400, "must be a string"),
    ([1, 2], 400, "JSON object"),
])
async def test_bad_bodies_are_refused_and_change_nothing(api: Client, config: Config, body: Any, status: int,
                                                         needle: str) -> None:
    c = await call(api)
    audit_before = len(await api.app[AUDIT].records())
    resp = await send(api, c, body)
    assert resp.status == status, await resp.text()
    assert needle in (await resp.json())["message"]
    assert stored(config, c.sid) == [] and len(await api.app[AUDIT].records()) == audit_before
    assert not [e for e in await stream(api, c.teller.client) if e["type"] == "id_card"]


async def test_malformed_json_and_wrong_content_type(api: Client) -> None:
    c = await call(api)
    url = f"/sessions/{c.sid}/id_card"
    bad = await api.post(url, data=b"{not json", headers={**c.customer.headers, "Content-Type": "application/json"})
    assert bad.status == 400
    form = await api.post(url, data=b"image=x", headers={**c.customer.headers,
                                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 415


async def test_only_the_sessions_customer_may_send_while_the_call_is_live(api: Client, config: Config) -> None:
    c = await call(api)
    other = await call(api, "tom", "kiosk2")
    body = {"image": data_url(image())}
    assert (await send(api, c, body, who=other.customer)).status == 404  # another kiosk: not its session
    assert (await send(api, c, body, who=c.teller)).status == 403  # wrong role
    unknown = await api.post(f"/sessions/{'0' * 8}-0000-0000-0000-{'0' * 12}/id_card", json=body,
                             headers=c.customer.headers)
    assert unknown.status == 404
    forged = await api.post(f"/sessions/{c.sid}/id_card", json=body, headers={"Authorization": "Bearer x.y.z"})
    assert forged.status == 401
    assert stored(config, c.sid) == []
    assert (await api.post(f"/sessions/{c.sid}/end", headers=c.customer.headers)).status == 200
    ended = await send(api, c, body)
    assert ended.status == 409 and stored(config, c.sid) == []


async def test_a_phone_customer_sends_like_a_kiosk(api: Client, config: Config) -> None:
    start = await api.post("/phone/start", json={"phone": "+821055556666"})
    challenge = (await start.json())["challenge_id"]
    code = (api.app[CONFIG].data / "otp.log").read_text().split()[-1]  # the default sender's file
    verified = await (await api.post("/phone/verify", json={"challenge_id": challenge, "code": code})).json()
    phone = {"Authorization": f"Bearer {verified['token']}"}
    teller = await person(api, "tina")
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)).status == 200
    assert (await api.post("/tickets", json={"service": "general"}, headers=phone)).status == 201
    me = await (await api.get("/teller", headers=teller.headers)).json()
    sid = (await (await api.post(f"/offers/{me['teller']['offer_id']}/accept", headers=teller.headers)).json()
           )["session"]["id"]
    resp = await api.post(f"/sessions/{sid}/id_card", json={"image": data_url(image())}, headers=phone)
    assert resp.status == 201, await resp.text()
    assert len(stored(config, sid)) == 1
