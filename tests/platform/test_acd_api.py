"""The ACD's REST endpoints on real platform apps (two of them on one Redis): the customer and teller
flows, wallboard and metrics, and bad input on every endpoint (4xx, nothing changed)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.acd_api import SESSION_STARTER, WALLBOARD_FEED, WallboardFeed
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.errors import ApiError
from cloudbank.platform.identity import Directory
from cloudbank.platform.matcher import sync_queues
from cloudbank.platform.queue_log import QueueLog
from cloudbank.platform.records import users
from cloudbank.platform.service import AUDIT, ENGINE, KEYS, REDIS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
Headers = dict[str, str]


class Starter:
    """Stands in for the sessions subsystem (another engineer's); records calls, can fail on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str]] = []
        self.fail = False

    async def __call__(self, app: web.Application, ticket: dict[str, Any], teller_id: str) -> dict[str, Any]:
        if self.fail:
            raise Unavailable("no live video node")
        self.calls.append((ticket, teller_id))
        return {"session": {"id": f"s-{ticket['id']}"}, "video": {"url": "http://127.0.0.1:1/video/"}}


class Unavailable(ApiError):
    status, code = 503, "unavailable"


@pytest.fixture
def starter() -> Starter:
    return Starter()


async def _app(aiohttp_client: MakeClient, config: Config, starter: Starter) -> Client:
    app = create_app(config)
    app[SESSION_STARTER] = starter
    client = await aiohttp_client(app)
    await Catalogue(client.app[ENGINE]).upsert(Service("general", "General enquiry", "general", ring_timeout_s=20,
                                                       wrapup_s=30, expected_handle_s=300))
    return client


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config, starter: Starter) -> Client:
    return await _app(aiohttp_client, config, starter)


@pytest.fixture
async def api2(aiohttp_client: MakeClient, config: Config, starter: Starter, api: Client) -> Client:
    """A second platform node on the same Redis and database."""
    return await _app(aiohttp_client, config, starter)


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


async def teller(api: Client, name: str, skills: dict[str, int] | None = None) -> tuple[str, Headers]:
    uid = str(uuid.uuid4())
    async with api.app[ENGINE].begin() as conn:
        await conn.execute(users.insert().values(
            id=uid, username=name, display_name=name, role="teller", password_hash="-",
            skills=json.dumps(skills if skills is not None else {"general": 1}), queues="[]", created_at=time.time()))
    return uid, bearer(api.app[KEYS].issue(uid, "teller", "api", 600, name=name))


async def kiosk(api: Client, name: str = "kiosk") -> tuple[str, Headers]:
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("demo", "Demo")
    device = await directory.enrol_device(await directory.create_enrolment_code("demo"), name)
    return device.id, bearer(api.app[KEYS].issue(device.id, "device", "api", 600, branch="demo"))


def phone(api: Client, customer_id: str = "") -> tuple[str, Headers]:
    cid = customer_id or uuid.uuid4().hex
    return cid, bearer(api.app[KEYS].issue(cid, "phone", "api", 600, phone="+821012345678"))


def staff(api: Client, role: str = "supervisor") -> Headers:
    return bearer(api.app[KEYS].issue(str(uuid.uuid4()), role, "api", 600))


async def supervisor(api: Client, name: str, queues: list[str]) -> tuple[str, Headers]:
    uid = str(uuid.uuid4())
    async with api.app[ENGINE].begin() as conn:
        await conn.execute(users.insert().values(
            id=uid, username=name, display_name=name, role="supervisor", password_hash="-", skills="{}",
            queues=json.dumps(queues), created_at=time.time()))
    return uid, bearer(api.app[KEYS].issue(uid, "supervisor", "api", 600, name=name))


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def take_ticket(api: Client, headers: Headers, **body: Any) -> dict[str, Any]:
    return (await ok(await api.post("/tickets", json={"service": "general", **body}, headers=headers), 201))["ticket"]


async def queue_log(api: Client) -> list[tuple[str, str]]:
    return [(e.event, e.ticket_id) for e in await QueueLog(api.app[REDIS]).recent(0)]


@pytest.mark.parametrize("claimed", ["elderly", "vip"])
async def test_a_customer_cannot_claim_a_priority_class(api: Client, claimed: str) -> None:
    _, kh = await kiosk(api)
    _, ph = phone(api)
    for headers in (kh, ph):
        resp = await api.post("/tickets", json={"service": "general", "priority": claimed}, headers=headers)
        body = await resp.json()
        assert resp.status == 403 and body["field"] == "priority" and "staff" in body["message"], body
    assert await queue_log(api) == []  # refused before anything was queued
    assert (await take_ticket(api, kh))["priority"] == "normal"  # and the customer is not stuck


async def test_a_supervisor_of_the_queue_sets_the_priority_and_it_moves_ahead(api: Client) -> None:
    await Catalogue(api.app[ENGINE]).upsert(Service("loans", "Loans", "loans"))
    await sync_queues(api.app)
    kiosks = [await kiosk(api, f"k{i}") for i in range(3)]
    first, second, third = [await take_ticket(api, kh) for _, kh in kiosks]
    _, own = await supervisor(api, "sue", ["general"])
    _, other = await supervisor(api, "sam", ["loans"])
    path = f"/tickets/{third['id']}/priority"
    _, th = await teller(api, "tom")
    for headers, status in ((kiosks[2][1], 403), (th, 403), (other, 403)):
        assert (await api.post(path, json={"priority": "vip"}, headers=headers)).status == status
    assert (await api.post(path, json={"priority": "king"}, headers=own)).status == 400
    assert (await api.post("/tickets/nope/priority", json={"priority": "vip"}, headers=own)).status == 404
    moved = (await ok(await api.post(path, json={"priority": "vip"}, headers=own)))["ticket"]
    assert (moved["priority"], moved["position"]) == ("vip", 1)
    seen = (await ok(await api.get(f"/tickets/{third['id']}", headers=kiosks[2][1])))["ticket"]
    assert (seen["priority"], seen["position"]) == ("vip", 1)
    assert (await ok(await api.get(f"/tickets/{first['id']}", headers=kiosks[0][1])))["ticket"]["position"] == 2
    update = [e for _, e in await events.read(api.app[REDIS], f"device:{kiosks[2][0]}")
              if e["type"] == "ticket.update"][-1]
    assert update["ticket"]["priority"] == "vip"
    (record,) = [r for r in await api.app[AUDIT].records() if r.action == "ticket.priority"]
    assert (record.subject, record.details) == (f"ticket:{third['id']}", {
        "queue": "general", "priority": "vip", "from": "normal"})
    # An admin may too; a ticket no longer waiting is refused.
    admin = staff(api, "admin")
    assert (await ok(await api.post(f"/tickets/{second['id']}/priority", json={"priority": "elderly"},
                                    headers=admin)))["ticket"]["priority"] == "elderly"
    await ok(await api.delete(f"/tickets/{first['id']}", headers=kiosks[0][1]))
    assert (await api.post(f"/tickets/{first['id']}/priority", json={"priority": "vip"},
                           headers=admin)).status == 409


async def test_kiosk_ticket_offered_to_a_teller_on_the_other_node_and_accepted(
        api: Client, api2: Client, starter: Starter) -> None:
    device_id, kh = await kiosk(api)
    ticket = await take_ticket(api, kh, priority="normal")
    assert (ticket["state"], ticket["position"], ticket["priority"], ticket["channel"]) == (
        "waiting", 1, "normal", "kiosk")
    uid, th = await teller(api, "alice")
    state = (await ok(await api2.post("/teller/state", json={"state": "ready"}, headers=th)))["teller"]
    assert state["state"] == "offered" and state["ticket_id"] == ticket["id"]
    (offer,) = [e for _, e in await events.read(api.app[REDIS], f"user:{uid}") if e["type"] == "offer"]
    assert (offer["ticket_id"], offer["branch"], offer["channel"]) == (ticket["id"], "demo", "kiosk")
    accepted = await ok(await api.post(f"/offers/{offer['offer_id']}/accept", headers=th))
    assert accepted["session"] == {"id": f"s-{ticket['id']}"}
    (called_ticket, called_teller), = starter.calls
    assert called_teller == uid
    assert (called_ticket["id"], called_ticket["customer"], called_ticket["service"]) == (
        ticket["id"], f"device:{device_id}", "general")
    assert (await ok(await api2.get(f"/tickets/{ticket['id']}", headers=kh)))["ticket"]["state"] == "connected"
    me = await ok(await api.get("/teller", headers=th))
    assert (me["teller"]["state"], me["teller"]["today"]["calls"]) == ("busy", 1)
    assert me["queues"] == [{"code": "general", "waiting": 0, "longest_wait_s": 0.0}]
    updates = [e["ticket"]["state"] for _, e in await events.read(api.app[REDIS], f"device:{device_id}")
               if e["type"] == "ticket.update"]
    assert updates[-1] == "connected"


async def test_a_teller_who_signs_out_is_offered_nothing(api: Client) -> None:
    """Sign out is one request (the console sends it as the page goes): revoked and offline at once."""
    _, th = await teller(api, "alice")
    ready = await ok(await api.post("/teller/state", json={"state": "ready"}, headers=th))
    assert ready["teller"]["state"] == "ready"
    await ok(await api.post("/logout", headers=th))
    assert (await api.get("/teller", headers=th)).status == 401
    _, kh = await kiosk(api)
    ticket = await take_ticket(api, kh)
    assert ticket["state"] == "waiting"  # nobody ready: the signed-out teller is not offered it
    # A teller with a call ringing who signs out is still signed out; the offer times out on its own.
    _, bh = await teller(api, "bob")
    ringing = await ok(await api.post("/teller/state", json={"state": "ready"}, headers=bh))
    assert ringing["teller"]["state"] == "offered"
    await ok(await api.post("/logout", headers=bh))
    assert (await api.get("/teller", headers=bh)).status == 401


async def test_session_that_cannot_start_gives_the_ticket_back(api: Client, starter: Starter) -> None:
    _, kh = await kiosk(api)
    ticket = await take_ticket(api, kh)
    uid, th = await teller(api, "bob")
    offer = (await ok(await api.post("/teller/state", json={"state": "ready"}, headers=th)))["teller"]["offer_id"]
    starter.fail = True
    resp = await api.post(f"/offers/{offer}/accept", headers=th)
    assert resp.status == 503
    again = (await ok(await api.get(f"/tickets/{ticket['id']}", headers=kh)))["ticket"]
    assert (again["state"], again["position"]) == ("waiting", 1)
    me = (await ok(await api.get("/teller", headers=th)))["teller"]
    assert (me["state"], me["reason"], me["today"]["calls"]) == ("not_ready", "session_failed", 0)


async def test_a_double_tap_on_two_nodes_takes_one_ticket(api: Client, api2: Client) -> None:
    """The same customer's two simultaneous POSTs (a double tap, a retry on another node): one ticket,
    not a ghost one that would ring a teller and make them not-ready."""
    _, kh = await kiosk(api)
    first, second = await asyncio.gather(api.post("/tickets", json={"service": "general"}, headers=kh),
                                         api2.post("/tickets", json={"service": "general"}, headers=kh))
    assert sorted([first.status, second.status]) == [201, 409], (await first.text(), await second.text())
    assert [e for e, _ in await queue_log(api)] == ["enter"]
    assert await api.app[REDIS].zcard("acd:q:general") == 1


async def test_a_refused_ticket_request_leaves_no_reservation(api: Client) -> None:
    _, kh = await kiosk(api)
    assert (await api.post("/tickets", json={"service": "nope"}, headers=kh)).status == 404
    assert (await api.post("/tickets", json={"service": "general", "priority": "x"}, headers=kh)).status == 400
    await take_ticket(api, kh)  # at once, not after the reservation expired


async def test_leave_and_replayed_requests(api: Client) -> None:
    _, kh = await kiosk(api)
    ticket = await take_ticket(api, kh)
    replay = await api.post("/tickets", json={"service": "general"}, headers=kh)
    assert replay.status == 409 and (await replay.json())["ticket"]["id"] == ticket["id"]
    left = (await ok(await api.delete(f"/tickets/{ticket['id']}", headers=kh)))["ticket"]
    assert left["state"] == "abandoned"
    assert (await api.delete(f"/tickets/{ticket['id']}", headers=kh)).status == 409
    assert [e for e, _ in await queue_log(api)] == ["enter", "abandon"]
    await take_ticket(api, kh)  # after leaving, a new ticket is fine


async def test_phone_customer_books_a_callback(aiohttp_client: MakeClient, config: Config, starter: Starter) -> None:
    api = await _app(aiohttp_client, config.with_(callback_threshold_s=100), starter)
    cid, ph = phone(api)
    ticket = await take_ticket(api, ph)
    assert ticket["callback_offer"] == {"threshold_s": 100}
    path = f"/tickets/{ticket['id']}/callback"
    for body, needle in ((b'{"at": "tomorrow"}', "must be a number"), (b'{"at": 1}', "next 7 days"),
                         (b'{"when": 1}', "unknown field"), (b"[]", "JSON object")):
        resp = await api.post(path, data=body, headers={**ph, "Content-Type": "application/json"})
        assert resp.status == 400 and needle in (await resp.json())["message"]
    _, other = phone(api)
    assert (await api.post(path, json={}, headers=other)).status == 404
    at = time.time() + 3600
    booked = (await ok(await api.post(path, json={"at": at}, headers=ph)))["ticket"]
    assert (booked["state"], round(booked["callback_at"])) == ("callback", round(at))
    assert (await api.post(path, json={"at": at}, headers=ph)).status == 409  # replay
    assert [e for e, _ in await queue_log(api)] == ["enter", "callback"]


async def test_wallboard_ws_and_prometheus_metrics(api: Client) -> None:
    _, kh = await kiosk(api)
    ticket = await take_ticket(api, kh)
    _, th = await teller(api, "carol")
    offer = (await ok(await api.post("/teller/state", json={"state": "ready"}, headers=th)))["teller"]["offer_id"]
    await ok(await api.post(f"/offers/{offer}/accept", headers=th))
    board = await ok(await api.get("/wallboard", headers=staff(api)))
    general = board["queues"]["general"]
    assert general["metrics"]["answered"] == 1 and general["metrics"]["offered"] == 1
    assert general["tellers"]["busy"] == 1
    assert [t["state"] for t in board["tellers"]] == ["busy"]
    resp = await api.get("/metrics", headers=staff(api, "admin"))
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    assert 'cloudbank_queue_answered{queue="general"} 1' in text
    assert 'cloudbank_queue_tellers{queue="general",state="busy"} 1' in text
    assert "# TYPE cloudbank_queue_service_level gauge" in text
    token = staff(api)["Authorization"][7:]
    async with api.ws_connect(f"/wallboard/ws?token={token}") as ws:
        first = await ws.receive_json(timeout=5)
        assert first["type"] == "wallboard" and first["queues"]["general"]["tellers"]["busy"] == 1
        await ws.send_str("hello")
        assert (await ws.receive_json(timeout=5))["code"] == "read_only"
    assert ticket["id"]


async def test_wallboard_sockets_share_one_computation(aiohttp_client: MakeClient, config: Config,
                                                        starter: Starter) -> None:
    """Every supervisor's socket on a node gets the same computed body (one read of the metrics window)."""
    app = create_app(config)
    app[SESSION_STARTER] = starter
    app[WALLBOARD_FEED] = WallboardFeed(max_age_s=600)  # nothing is recomputed during this test
    api = await aiohttp_client(app)
    token = staff(api)["Authorization"][7:]
    async with api.ws_connect(f"/wallboard/ws?token={token}") as first, \
            api.ws_connect(f"/wallboard/ws?token={token}") as second:
        a, b = await first.receive_json(timeout=5), await second.receive_json(timeout=5)
    assert a["type"] == b["type"] == "wallboard" and a["at"] == b["at"]
    fresh = await ok(await api.get("/wallboard", headers=staff(api)))
    assert fresh["at"] > a["at"]  # GET wallboard is always computed afresh


@pytest.mark.parametrize(("path", "role", "status"), [
    ("/wallboard", "teller", 403), ("/wallboard", "device", 403), ("/metrics", "phone", 403),
    ("/metrics", None, 401), ("/wallboard/ws", "teller", 403),
])
async def test_wallboard_and_metrics_need_staff(api: Client, path: str, role: str | None, status: int) -> None:
    headers = bearer(api.app[KEYS].issue("x", role, "api", 600)) if role else {}
    assert (await api.get(path, headers=headers)).status == status


async def test_wrong_role_tokens_change_nothing(api: Client) -> None:
    device_id, kh = await kiosk(api)
    uid, th = await teller(api, "dave")
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=kh)).status == 403  # kiosk as teller
    assert (await api.get("/teller", headers=kh)).status == 403
    assert (await api.post("/tickets", json={"service": "general"}, headers=th)).status == 403  # teller as customer
    assert (await api.post("/tickets", json={"service": "general"})).status == 401
    join = bearer(api.app[KEYS].issue(device_id, "join", "session:x", 60, party="customer"))
    assert (await api.post("/tickets", json={"service": "general"}, headers=join)).status == 403
    forged = kh["Authorization"][:-4] + "AAAA"
    assert (await api.post("/tickets", json={"service": "general"}, headers={"Authorization": forged})).status == 401
    await Directory(api.app[ENGINE]).revoke_device(device_id)
    assert (await api.post("/tickets", json={"service": "general"}, headers=kh)).status == 403
    assert await queue_log(api) == []
    assert (await ok(await api.get("/teller", headers=th)))["teller"]["state"] == "offline"


async def test_someone_elses_ticket_and_offer_and_an_expired_offer(api: Client) -> None:
    _, kh = await kiosk(api, "k1")
    _, other = await kiosk(api, "k2")
    ticket = await take_ticket(api, kh)
    tid = ticket["id"]
    for method, path in (("GET", f"/tickets/{tid}"), ("DELETE", f"/tickets/{tid}")):
        assert (await api.request(method, path, headers=other)).status == 404
    _, ph = phone(api)
    assert (await api.get(f"/tickets/{tid}", headers=ph)).status == 404
    _, t1 = await teller(api, "erin")
    _, t2 = await teller(api, "frank")
    offer = (await ok(await api.post("/teller/state", json={"state": "ready"}, headers=t1)))["teller"]["offer_id"]
    for action in ("accept", "decline"):
        resp = await api.post(f"/offers/{offer}/{action}", headers=t2)
        assert resp.status == 404 and "no such offer" in (await resp.json())["message"]
    assert (await api.post("/offers/nope/accept", headers=t1)).status == 404
    assert (await api.post(f"/offers/{'x' * 5000}/accept", headers=t1)).status == 404
    await api.app[REDIS].hset(f"acd:o:{offer}", "expires", "0")  # as if the ring time had passed
    resp = await api.post(f"/offers/{offer}/accept", headers=t1)
    assert resp.status == 409 and "expired" in (await resp.json())["message"]
    assert (await ok(await api.get(f"/tickets/{tid}", headers=kh)))["ticket"]["state"] == "offered"
    assert [e for e, _ in await queue_log(api)] == ["enter", "offer"]


MB = "x" * (1024 * 1024)


@pytest.mark.parametrize(("method", "path", "who", "body", "status", "needle"), [
    ("POST", "/tickets", "kiosk", b"{not json", 400, "not valid JSON"),
    ("POST", "/tickets", "kiosk", b"{}", 400, "'service' is required"),
    ("POST", "/tickets", "kiosk", b'{"service": "general", "colour": 1}', 400, "unknown field 'colour'"),
    ("POST", "/tickets", "kiosk", b'{"service": 7}', 400, "must be a string"),
    ("POST", "/tickets", "kiosk", b'{"service": "general", "priority": "king"}', 400, "priority must be"),
    ("POST", "/tickets", "kiosk", b'{"service": "nope"}', 404, "no service"),
    ("POST", "/tickets", "kiosk", b'{"service": "' + MB.encode() + b'"}', 413, "too large"),
    ("POST", "/tickets", "kiosk", b'{"service": "' + b"a" * 5000 + b'"}', 400, "longer than"),
    ("POST", "/tickets", "kiosk", b"null", 400, "JSON object"),
    ("POST", "/teller/state", "teller", b'{"state": "asleep"}', 400, "state must be"),
    ("POST", "/teller/state", "teller", b'{"state": "ready", "x": 1}', 400, "unknown field"),
    ("POST", "/teller/state", "teller", b'{"reason": "x"}', 400, "'state' is required"),
    ("POST", "/teller/state", "teller", b'{"state": true}', 400, "must be a string"),
    ("POST", "/teller/state", "teller", b'{"state": "not_ready", "reason": "' + b"r" * 100 + b'"}', 400, "longer"),
    ("POST", "/teller/state", "teller", b"[", 400, "not valid JSON"),
    ("GET", "/tickets/unknown", "kiosk", b"", 404, "no such ticket"),
    ("DELETE", "/tickets/unknown", "kiosk", b"", 404, "no such ticket"),
    ("POST", "/tickets/unknown/callback", "kiosk", b"{}", 404, "no such ticket"),
    ("POST", "/offers/unknown/decline", "teller", b"", 404, "no such offer"),
])
async def test_bad_input_is_refused_and_changes_nothing(api: Client, method: str, path: str, who: str,
                                                        body: bytes, status: int, needle: str) -> None:
    if who == "kiosk":
        _, headers = await kiosk(api)
    else:
        _, headers = await teller(api, "gina")
    resp = await api.request(method, path, data=body, headers={**headers, "Content-Type": "application/json"})
    assert resp.status == status, await resp.text()
    assert needle in (await resp.json())["message"]
    assert await queue_log(api) == []
    assert await api.app[REDIS].keys("acd:t:*") == []
    assert await api.app[REDIS].keys("acd:u:*") == []


async def test_wrong_content_type_is_415(api: Client) -> None:
    _, kh = await kiosk(api)
    resp = await api.post("/tickets", data="service=general", headers={**kh, "Content-Type": "text/plain"})
    assert resp.status == 415


async def test_http_storm_on_two_nodes_never_double_offers(api: Client, api2: Client) -> None:
    """Customers and tellers racing through both nodes' HTTP APIs; every offer is unique."""
    rng = random.Random(11)
    nodes = [api, api2]
    tellers = [await teller(api, f"t{i:03d}") for i in range(40)]
    customers = [phone(api) for _ in range(80)]

    async def customer(headers: Headers) -> None:
        await asyncio.sleep(rng.random() * 0.3)
        await take_ticket(rng.choice(nodes), headers)

    async def work(headers: Headers) -> None:
        node = rng.choice(nodes)
        await asyncio.sleep(rng.random() * 0.3)
        await ok(await node.post("/teller/state", json={"state": "ready"}, headers=headers))
        for _ in range(4):
            me = (await ok(await node.get("/teller", headers=headers)))["teller"]
            if me["state"] == "offered":
                await ok(await rng.choice(nodes).post(f"/offers/{me['offer_id']}/accept", headers=headers))
            await asyncio.sleep(rng.random() * 0.1)

    await asyncio.wait_for(asyncio.gather(*(customer(h) for _, h in customers), *(work(h) for _, h in tellers)), 120)
    offers = [e for e in await QueueLog(api.app[REDIS]).recent(0) if e.event == "offer"]
    assert len(offers) == 40  # every teller got exactly one call: no one accepted twice, none was lost
    assert len({e.ticket_id for e in offers}) == len(offers)
    assert len({e.teller_id for e in offers}) == len(offers)
    board = await ok(await api2.get("/wallboard", headers=staff(api2)))
    assert board["queues"]["general"]["waiting"] == 40
    assert board["queues"]["general"]["tellers"]["busy"] == 40


async def test_no_video_node_leaves_the_offer_ringing(aiohttp_client: MakeClient, config: Config) -> None:
    """With the real sessions module and no live video node, accept is a 503 that consumes nothing."""
    pytest.importorskip("cloudbank.platform.sessions")
    api = await aiohttp_client(create_app(config))
    await Catalogue(api.app[ENGINE]).upsert(Service("general", "General enquiry", "general"))
    _, kh = await kiosk(api)
    ticket = await take_ticket(api, kh)
    _, th = await teller(api, "hana")
    offer = (await ok(await api.post("/teller/state", json={"state": "ready"}, headers=th)))["teller"]["offer_id"]
    resp = await api.post(f"/offers/{offer}/accept", headers=th)
    assert resp.status == 503, await resp.text()
    me = (await ok(await api.get("/teller", headers=th)))["teller"]
    assert (me["state"], me["offer_id"]) == ("offered", offer)
    assert (await ok(await api.get(f"/tickets/{ticket['id']}", headers=kh)))["ticket"]["state"] == "offered"
    assert [e for e, _ in await queue_log(api)] == ["enter", "offer"]


async def test_a_teller_who_never_went_ready_sees_their_queues(api: Client) -> None:
    # A first sign-in: the router has not loaded the skills yet, the directory has them.
    await sync_queues(api.app)
    _, th = await teller(api, "fresh", skills={"general": 1})
    me = await ok(await api.get("/teller", headers=th))
    assert me["teller"]["state"] == "offline"
    assert [q["code"] for q in me["queues"]] == ["general"]
    _, nobody = await teller(api, "unskilled", skills={})
    assert (await ok(await api.get("/teller", headers=nobody)))["queues"] == []


async def test_a_service_nobody_signed_in_can_serve_says_so(api: Client) -> None:
    # Nobody with the wealth skill is signed in: the catalogue and the ticket say so, instead of
    # only a forecast ("30 min") that no teller will meet.
    await Catalogue(api.app[ENGINE]).upsert(Service("wealth", "Wealth", "wealth", expected_handle_s=1800))
    _, teller_headers = await teller(api, "t1", {"general": 1})
    await ok(await api.post("/teller/state", json={"state": "not_ready", "reason": "break"}, headers=teller_headers))
    staffed = {s["code"]: s["staffed"] for s in (await ok(await api.get("/services")))["services"]}
    assert staffed == {"general": True, "wealth": False}
    _, device = await kiosk(api)
    ticket = (await ok(await api.post("/tickets", json={"service": "wealth"}, headers=device), 201))["ticket"]
    assert ticket["state"] == "waiting" and ticket["staffed"] is False
    assert (await ok(await api.get(f"/tickets/{ticket['id']}", headers=device)))["ticket"]["staffed"] is False
    _, other = await kiosk(api, "kiosk2")
    general = (await ok(await api.post("/tickets", json={"service": "general"}, headers=other), 201))["ticket"]
    assert general["state"] == "waiting" and general["staffed"] is True
