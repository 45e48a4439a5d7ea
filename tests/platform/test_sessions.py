"""Call sessions through the platform app: placement, join tokens, the state machine, transfer,
monitor, pushes and responses, authorisations, and bad input on every endpoint.

Calls start the real way: a kiosk takes a ticket, a ready teller is offered it by the ACD and
accepts (`POST offers/<id>/accept`, which calls `sessions.start_session`). Video nodes are
registry entries written as the video node writes them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.app import create_app
from cloudbank.platform.authorisations import AUTHZ_PENDING
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.errors import Forbidden
from cloudbank.platform.identity import Directory
from cloudbank.platform.pushes import MAX_SIGNATURE_BYTES
from cloudbank.platform.records import sessions as sessions_table
from cloudbank.platform.routing import ROUTER
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, KEYS, REDIS
from cloudbank.platform.sessions import TRANSITIONS, Sessions, pick_node
from cloudbank.platform.tokens import Claims

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@dataclass
class Person:
    id: str
    headers: dict[str, str]
    client: str


@dataclass
class Call:
    session: dict[str, Any]
    video: dict[str, Any]
    ticket: dict[str, Any]
    teller: Person
    customer: Person


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    client = await aiohttp_client(create_app(config))
    cat = Catalogue(client.app[ENGINE])
    await cat.upsert(Service("general", "General enquiry", "general"))
    await cat.upsert(Service("cards", "Lost card", "cards"))
    await add_node(client, "node-a", calls=3)
    return client


async def add_node(api: Client, node_id: str, calls: int = 0, draining: bool = False, alive: bool = True,
                   cpu: float = 0.1) -> None:
    """A registry entry exactly as docs/protocol.md says the video node writes it."""
    redis = api.app[REDIS]
    await redis.hset("video:nodes", node_id, json.dumps({
        "id": node_id, "url": f"http://127.0.0.1:9/{node_id}/", "calls": calls, "cpu": cpu,
        "draining": draining, "heartbeat_at": 0}))
    if alive:
        await redis.set(f"video:node:{node_id}:alive", "1", ex=10)
    else:
        await redis.delete(f"video:node:{node_id}:alive")


def _bearer(api: Client, sub: str, role: str, **extra: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue(sub, role, 'api', 600, **extra)}"}


async def person(api: Client, name: str, role: str = "teller", skills: dict[str, int] | None = None,
                 queues: list[str] | None = None) -> Person:
    user, _ = await Directory(api.app[ENGINE]).add_user(name, role, skills=skills or {"general": 1, "cards": 1},
                                                        queues=queues)
    return Person(user.id, _bearer(api, user.id, role, name=name), f"user:{user.id}")


async def kiosk(api: Client, name: str = "kiosk") -> Person:
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch one")
    device = await directory.enrol_device(await directory.create_enrolment_code("b1"), name)
    return Person(device.id, _bearer(api, device.id, "device", branch="b1"), f"device:{device.id}")


async def offer_for(api: Client, teller: Person) -> str:
    body = await (await api.get("/teller", headers=teller.headers)).json()
    offer_id = body["teller"]["offer_id"]
    assert offer_id, body
    return str(offer_id)


async def call(api: Client, teller: Person | None = None, customer: Person | None = None,
               service: str = "general") -> Call:
    """A kiosk customer in a call with a teller, the way it happens in production."""
    teller = teller or await person(api, "tina")
    customer = customer or await kiosk(api)
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)).status == 200
    resp = await api.post("/tickets", json={"service": service}, headers=customer.headers)
    assert resp.status == 201, await resp.text()
    accepted = await api.post(f"/offers/{await offer_for(api, teller)}/accept", headers=teller.headers)
    assert accepted.status == 200, await accepted.text()
    body = await accepted.json()
    return Call(body["session"], body["video"], body["ticket"], teller, customer)


async def verify_join(api: Client, token: str, session_id: str) -> Claims:
    return await api.app[KEYS].verify(token, roles=("join",), scope=f"session:{session_id}")


async def stream(api: Client, client: str) -> list[dict[str, Any]]:
    return [e for _, e in await events.read(api.app[REDIS], client)]


async def post(api: Client, path: str, who: Person, body: Any = None) -> Any:
    return await api.post(path, json=body, headers=who.headers) if body is not None else \
        await api.post(path, headers=who.headers)


async def state_of(api: Client, session_id: str) -> str:
    async with api.app[ENGINE].connect() as conn:
        row = (await conn.execute(sessions_table.select().where(sessions_table.c.id == session_id))).one()
    return str(row.state)


# -- placement ---------------------------------------------------------------------------------------

async def test_placement_picks_the_least_loaded_live_non_draining_node(api: Client) -> None:
    await add_node(api, "node-b", calls=1)
    await add_node(api, "node-dead", calls=0, alive=False)
    await add_node(api, "node-draining", calls=0, draining=True)
    await api.app[REDIS].hset("video:nodes", "node-garbage", "{not json")
    await api.app[REDIS].set("video:node:node-garbage:alive", "1")
    c = await call(api)
    assert c.session["video_node"] == "node-b" and c.video["url"] == "http://127.0.0.1:9/node-b/"
    # Recent placements count until the node reports them: node-b is at 1 call + 1 placed now.
    picks = [(await pick_node(api.app[REDIS])).id for _ in range(3)]
    assert picks == ["node-b", "node-a", "node-b"]


async def test_placements_stop_counting_after_the_hold_under_steady_load(api: Client) -> None:
    """A call placed every 5 s on node-a: only the last 10 s of placements count against it, so
    node-b joining later does not take every call until an ever-growing count is matched."""
    await add_node(api, "node-a", calls=1)
    t0 = 1_800_000_000.0
    assert {(await pick_node(api.app[REDIS], now=t0 + 5 * i)).id for i in range(20)} == {"node-a"}
    await add_node(api, "node-b", calls=4)
    # node-a: 1 reported + 2 placed in the last 10 s (at +90 and +95) = 3 < node-b's 4
    assert (await pick_node(api.app[REDIS], now=t0 + 100)).id == "node-a"


async def test_turn_credentials_are_bound_to_the_party_and_verifiable(aiohttp_client: MakeClient,
                                                                       config: Config) -> None:
    api = await aiohttp_client(create_app(config.with_(stun_urls=("stun:127.0.0.1:3478",),
                                                       turn_urls=("turn:127.0.0.1:3478",), turn_secret="s3cret")))
    await Catalogue(api.app[ENGINE]).upsert(Service("general", "General enquiry", "general"))
    await add_node(api, "node-a")
    c = await call(api)
    stun, turn = c.video["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    expiry, _, client = turn["username"].partition(":")
    assert client == c.teller.client and int(expiry) > time.time()
    digest = hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


async def test_no_live_node_is_a_503_and_the_offer_stays_intact(api: Client) -> None:
    await add_node(api, "node-a", alive=False)
    await add_node(api, "node-b", draining=True)
    teller, customer = await person(api, "tina"), await kiosk(api)
    await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)
    ticket = (await (await api.post("/tickets", json={"service": "general"}, headers=customer.headers)).json())
    offer_id = await offer_for(api, teller)
    resp = await api.post(f"/offers/{offer_id}/accept", headers=teller.headers)
    assert resp.status == 503
    body = await resp.json()
    assert body["error"] == "no_video_node" and "offer" in body["message"]
    async with api.app[ENGINE].connect() as conn:
        assert (await conn.execute(sessions_table.select())).all() == []
    again = await (await api.get(f"/tickets/{ticket['ticket']['id']}", headers=customer.headers)).json()
    assert again["ticket"]["state"] == "offered" and await offer_for(api, teller) == offer_id
    # A node comes back: the same offer can be accepted.
    await add_node(api, "node-c")
    resp = await api.post(f"/offers/{offer_id}/accept", headers=teller.headers)
    assert resp.status == 200 and (await resp.json())["session"]["video_node"] == "node-c"


# -- starting and join tokens ------------------------------------------------------------------------

async def test_accepting_starts_a_session_with_scoped_join_tokens(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    assert c.session["state"] == "connecting" and c.session["customer"] == c.customer.client
    teller_claims = await verify_join(api, c.video["token"], sid)
    assert (teller_claims.sub, teller_claims.get("party"), teller_claims.get("node")) == \
        (c.teller.client, "teller", "node-a")
    started = [e for e in await stream(api, c.customer.client) if e["type"] == "session.started"]
    assert len(started) == 1 and started[0]["session"]["id"] == sid
    assert "video" not in started[0]  # no token kept in the stream: the customer joins for one
    joined = await api.post(f"/sessions/{sid}/join", headers=c.customer.headers)
    assert joined.status == 200, await joined.text()
    cust_claims = await verify_join(api, (await joined.json())["video"]["token"], sid)
    assert (cust_claims.sub, cust_claims.get("party")) == (c.customer.client, "customer")
    members = await api.app[REDIS].smembers(events.audience_key(sid))
    assert members == {c.customer.client, c.teller.client}
    assert [r.action for r in await api.app[AUDIT].records(subject=f"session:{sid}")] == [
        "session.started", "session.joined"]


async def test_a_join_token_for_one_session_cannot_join_another_or_call_the_api(api: Client) -> None:
    a = await call(api)
    b = await call(api, teller=await person(api, "tom"), customer=await kiosk(api, "k2"))
    with pytest.raises(Forbidden):
        await verify_join(api, a.video["token"], b.session["id"])
    join_headers = {"Authorization": f"Bearer {a.video['token']}"}
    assert (await api.post(f"/sessions/{a.session['id']}/hold", headers=join_headers)).status == 403
    assert (await api.post(f"/sessions/{a.session['id']}/join", headers=join_headers)).status == 403


async def test_rejoin_gives_a_fresh_token_to_a_party_only(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    for who, party in ((c.customer, "customer"), (c.teller, "teller")):
        resp = await post(api, f"/sessions/{sid}/join", who)
        assert resp.status == 200
        video = (await resp.json())["video"]
        claims = await verify_join(api, video["token"], sid)
        assert claims.get("party") == party and video["token"] != c.video["token"]
    stranger, other_teller = await kiosk(api, "k2"), await person(api, "tom")
    for who in (stranger, other_teller):
        assert (await post(api, f"/sessions/{sid}/join", who)).status == 404
    supervisor = await person(api, "sue", "supervisor")
    assert (await post(api, f"/sessions/{sid}/join", supervisor)).status == 403


async def test_rejoin_after_the_node_died_moves_the_call_and_tells_the_other_party(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    await add_node(api, "node-b", calls=5)
    await add_node(api, "node-a", alive=False)
    resp = await post(api, f"/sessions/{sid}/join", c.customer)
    video = (await resp.json())["video"]
    assert video["node"] == "node-b" and (await verify_join(api, video["token"], sid)).get("node") == "node-b"
    rejoin = [e for e in await stream(api, c.teller.client) if e["type"] == "video.rejoin"]
    assert len(rejoin) == 1 and rejoin[0]["video"]["url"].endswith("/node-b/")
    assert "token" not in rejoin[0]["video"]  # kept in Redis (its AOF): no secret in it
    # The events socket adds the teller's own fresh join token as it delivers the event.
    token = c.teller.headers["Authorization"].split()[1]
    async with api.ws_connect("/ws", params={"token": token, "last_id": "0-0"}) as ws:
        for _ in range(50):
            delivered = await ws.receive_json(timeout=10)
            if delivered["type"] == "video.rejoin":
                break
    assert delivered["type"] == "video.rejoin" and delivered["video"]["node"] == "node-b"
    claims = await verify_join(api, delivered["video"]["token"], sid)
    assert (claims.get("party"), claims.sub, claims.get("node")) == ("teller", c.teller.client, "node-b")


# -- the state machine -------------------------------------------------------------------------------

async def test_a_whole_call_through_every_state(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    seen = []
    for path, who in (("activate", c.customer), ("hold", c.teller), ("resume", c.teller), ("end", c.teller)):
        resp = await post(api, f"/sessions/{sid}/{path}", who)
        assert resp.status == 200, (path, await resp.text())
        seen.append((await resp.json())["session"]["state"])
    assert seen == ["active", "on_hold", "active", "wrap_up"]
    teller = (await (await api.get("/teller", headers=c.teller.headers)).json())["teller"]
    assert teller["state"] == "wrap_up"
    resp = await post(api, f"/sessions/{sid}/wrapup", c.teller,
                      {"disposition": "resolved", "notes": "card blocked", "service_done": True})
    assert resp.status == 200 and (await resp.json())["session"]["state"] == "closed"
    teller = (await (await api.get("/teller", headers=c.teller.headers)).json())["teller"]
    assert teller["state"] == "ready"
    updates = [e["session"]["state"] for e in await stream(api, c.customer.client) if e["type"] == "session.update"]
    assert updates == ["active", "on_hold", "active", "wrap_up", "closed"]
    assert any(e["type"] == "session.ended" for e in await stream(api, c.customer.client))
    actions = [r.action for r in await api.app[AUDIT].records(subject=f"session:{sid}")]
    assert actions == ["session.started", "session.active", "session.hold", "session.resume", "session.ended",
                       "session.wrapup"]
    assert (await api.app[AUDIT].verify()).ok


async def test_wrapup_can_ask_for_not_ready(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    assert not await api.app[REDIS].exists(events.ended_key(sid))
    await post(api, f"/sessions/{sid}/end", c.customer)  # the customer hangs up
    assert await api.app[REDIS].exists(events.ended_key(sid))  # video nodes now admit nobody to this call
    await post(api, f"/sessions/{sid}/wrapup", c.teller,
               {"disposition": "follow_up", "service_done": False, "not_ready": True, "reason": "paperwork"})
    teller = (await (await api.get("/teller", headers=c.teller.headers)).json())["teller"]
    assert (teller["state"], teller["reason"]) == ("not_ready", "paperwork")


@pytest.mark.parametrize(("steps", "illegal"), [
    ([], "resume"),                                # connecting is not on hold
    ([], "hold"),                                  # connecting cannot be held
    ([], "wrapup"),                                # wrap-up comes after end
    (["activate"], "resume"),
    (["activate", "hold"], "hold"),
    (["activate", "end"], "end"),
    (["activate", "end"], "hold"),
    (["activate", "end"], "activate"),
    (["activate", "end"], "transfer"),
    (["activate", "end", "wrapup"], "wrapup"),
    (["activate", "end", "wrapup"], "end"),
    (["activate", "end", "wrapup"], "push"),
    (["activate", "end", "wrapup"], "join"),
    (["activate", "end", "wrapup"], "authorisations"),
])
async def test_illegal_moves_are_409_and_change_nothing(api: Client, steps: list[str], illegal: str) -> None:
    c = await call(api)
    sid = c.session["id"]
    bodies: dict[str, Any] = {"wrapup": {"disposition": "done", "service_done": True},
                              "transfer": {"queue": "cards"}, "authorisations": {"reason": "limit"},
                              "push": {"kind": "document", "title": "Terms", "url": "/media/terms.pdf"}}
    for step in steps:
        assert (await post(api, f"/sessions/{sid}/{step}", c.teller, bodies.get(step))).status == 200
    before_state = await state_of(api, sid)
    before_audit = len(await api.app[AUDIT].records())
    resp = await post(api, f"/sessions/{sid}/{illegal}", c.teller, bodies.get(illegal))
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["state"] == before_state
    assert await state_of(api, sid) == before_state and len(await api.app[AUDIT].records()) == before_audit


def test_the_transition_table_is_closed() -> None:
    for state, targets in TRANSITIONS.items():
        assert state not in targets and all(t in TRANSITIONS for t in targets)
    assert TRANSITIONS["closed"] == frozenset()


async def test_media_coming_back_does_not_resume_a_held_call(api: Client) -> None:
    """A teller's reload (or either side's network change) activates again: a held customer stays held."""
    c = await call(api)
    sid = c.session["id"]
    await post(api, f"/sessions/{sid}/activate", c.customer)
    assert (await post(api, f"/sessions/{sid}/hold", c.teller)).status == 200
    audit = len(await api.app[AUDIT].records())
    for who in (c.teller, c.customer):
        resp = await post(api, f"/sessions/{sid}/activate", who)
        assert resp.status == 200 and (await resp.json())["session"]["state"] == "on_hold"
    assert await state_of(api, sid) == "on_hold" and len(await api.app[AUDIT].records()) == audit
    assert (await post(api, f"/sessions/{sid}/resume", c.teller)).status == 200
    assert await state_of(api, sid) == "active"


async def test_the_teller_is_in_wrap_up_at_the_acd_when_the_end_is_announced(
        api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A console shows its wrap-up on the session.update event and asks the ACD at once: it must not
    be told the teller is still in a call."""
    c = await call(api)
    sid = c.session["id"]
    await post(api, f"/sessions/{sid}/activate", c.teller)
    seen: list[str] = []
    publish = events.publish_to_session

    async def watching(redis: Any, session_id: str, event: dict[str, Any]) -> None:
        if event.get("type") == "session.update" and event["session"]["state"] == "wrap_up":
            seen.append((await api.app[ROUTER].teller(c.teller.id))["state"])
        await publish(redis, session_id, event)

    monkeypatch.setattr(events, "publish_to_session", watching)
    assert (await post(api, f"/sessions/{sid}/end", c.customer)).status == 200
    assert seen == ["wrap_up"]


async def test_hanging_up_wins_over_media_coming_up_at_the_same_moment(
        api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The teller hangs up as the call's media comes up: end read `connecting`, activate moved it to
    `active` first. The end must still happen (it was a 409, and the console showed its wrap-up
    while the session and the ACD stayed in the call)."""
    c = await call(api)
    sid = c.session["id"]
    customer = await api.app[KEYS].verify(c.customer.headers["Authorization"].removeprefix("Bearer "))
    original = Sessions.for_party
    armed = [True]

    async def media_comes_up_meanwhile(self: Sessions, *args: Any, **kwargs: Any) -> Any:
        found = await original(self, *args, **kwargs)
        if armed[0]:
            armed[0] = False
            await self.activate(sid, customer)
        return found

    monkeypatch.setattr(Sessions, "for_party", media_comes_up_meanwhile)
    resp = await post(api, f"/sessions/{sid}/end", c.teller)
    assert resp.status == 200, await resp.text()
    assert not armed[0] and await state_of(api, sid) == "wrap_up"
    assert (await api.app[ROUTER].teller(c.teller.id))["state"] == "wrap_up"
    ended = [r for r in await api.app[AUDIT].records() if r.action == "session.ended"]
    assert [(r.details["from"], r.details["to"]) for r in ended] == [("active", "wrap_up")]


async def test_concurrent_moves_only_one_wins(api: Client) -> None:
    import asyncio

    c = await call(api)
    sid = c.session["id"]
    await post(api, f"/sessions/{sid}/activate", c.teller)
    results = await asyncio.gather(*(post(api, f"/sessions/{sid}/hold", c.teller) for _ in range(4)))
    assert sorted(r.status for r in results) == [200, 409, 409, 409]


# -- transfer ----------------------------------------------------------------------------------------

async def test_transfer_to_a_queue_reaches_a_new_teller_and_closes_the_first_leg(api: Client) -> None:
    first = await call(api)
    sid = first.session["id"]
    await post(api, f"/sessions/{sid}/activate", first.teller)
    resp = await post(api, f"/sessions/{sid}/transfer", first.teller, {"queue": "cards"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["session"]["state"] == "transferring" and body["ticket"]["service"] == "cards"
    carla = await person(api, "carla", skills={"cards": 1})
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=carla.headers)).status == 200
    accepted = await api.post(f"/offers/{await offer_for(api, carla)}/accept", headers=carla.headers)
    second = (await accepted.json())["session"]
    assert second["id"] != sid and second["ticket_id"] == first.session["ticket_id"]
    assert await state_of(api, sid) == "wrap_up"
    resp = await post(api, f"/sessions/{sid}/wrapup", first.teller,
                      {"disposition": "transferred", "service_done": False})
    assert resp.status == 200 and await state_of(api, sid) == "closed"


async def test_transfer_to_a_service_the_acd_has_not_made_a_queue_yet(api: Client) -> None:
    """The matcher makes catalogue services queues every couple of seconds; a transfer in between
    (the flaky transfer tests, run in the app's first seconds) must not be told 'no such queue'."""
    c = await call(api)
    await Catalogue(api.app[ENGINE]).upsert(Service("mortgage", "Mortgages", "mortgage"))
    assert await api.app[ROUTER].queue_spec("mortgage") is None
    resp = await post(api, f"/sessions/{c.session['id']}/transfer", c.teller, {"queue": "mortgage"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["ticket"]["service"] == "mortgage"


async def test_transfer_to_a_named_teller(api: Client) -> None:
    tom = await person(api, "tom")
    await api.post("/teller/state", json={"state": "not_ready", "reason": "break"}, headers=tom.headers)
    c = await call(api)
    resp = await post(api, f"/sessions/{c.session['id']}/transfer", c.teller, {"teller": tom.id})
    assert resp.status == 200, await resp.text()
    assert await state_of(api, c.session["id"]) == "transferring"


async def ticket_state(api: Client, ticket_id: str) -> str:
    return str((await api.app[ROUTER].ticket(ticket_id))["ticket"]["state"])


async def test_a_customer_who_hangs_up_while_transferred_leaves_the_new_queue(api: Client) -> None:
    c = await call(api)
    sid, tid = c.session["id"], c.session["ticket_id"]
    await post(api, f"/sessions/{sid}/activate", c.teller)
    assert (await post(api, f"/sessions/{sid}/transfer", c.teller, {"queue": "cards"})).status == 200
    assert await ticket_state(api, tid) == "waiting"
    assert (await post(api, f"/sessions/{sid}/end", c.customer)).status == 200
    assert await ticket_state(api, tid) == "abandoned"
    # A cards teller who gets ready now is offered nothing: nobody is waiting any more.
    carla = await person(api, "carla", skills={"cards": 1})
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=carla.headers)).status == 200
    teller = (await (await api.get("/teller", headers=carla.headers)).json())["teller"]
    assert teller["state"] == "ready" and not teller.get("offer_id")


async def test_a_transfer_racing_the_customers_hang_up_leaves_no_ticket_waiting(
        api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The customer hangs up between the ACD re-queueing the ticket and the session moving."""
    from cloudbank.platform import acd_link
    c = await call(api)
    sid, tid = c.session["id"], c.session["ticket_id"]
    await post(api, f"/sessions/{sid}/activate", c.teller)
    real_transfer = acd_link.transfer

    async def transfer_then_hang_up(*args: Any) -> dict[str, Any]:
        ticket = await real_transfer(*args)
        assert (await post(api, f"/sessions/{sid}/end", c.customer)).status == 200
        return ticket

    monkeypatch.setattr(acd_link, "transfer", transfer_then_hang_up)
    resp = await post(api, f"/sessions/{sid}/transfer", c.teller, {"queue": "cards"})
    assert resp.status == 409, await resp.text()
    assert await state_of(api, sid) == "wrap_up" and await ticket_state(api, tid) == "abandoned"
    assert (await api.app[ROUTER].teller(c.teller.id))["state"] == "wrap_up"


async def test_a_hang_up_before_the_transfer_refuses_the_transfer(api: Client) -> None:
    c = await call(api)
    sid, tid = c.session["id"], c.session["ticket_id"]
    assert (await post(api, f"/sessions/{sid}/end", c.customer)).status == 200
    resp = await post(api, f"/sessions/{sid}/transfer", c.teller, {"queue": "cards"})
    assert resp.status in (404, 409), await resp.text()
    assert await state_of(api, sid) == "wrap_up" and await ticket_state(api, tid) != "waiting"


@pytest.mark.parametrize(("body", "status"), [
    ({"queue": "nope"}, 404),
    ({"teller": "00000000-0000-0000-0000-000000000000"}, 404),
    ({"queue": "cards", "teller": "x"}, 400),
    ({}, 400),
    ({"queue": 5}, 400),
    ({"queue": "cards", "why": "x"}, 400),
])
async def test_bad_transfers_change_nothing(api: Client, body: dict[str, Any], status: int) -> None:
    c = await call(api)
    resp = await post(api, f"/sessions/{c.session['id']}/transfer", c.teller, body)
    assert resp.status == status, await resp.text()
    assert await state_of(api, c.session["id"]) == "connecting"
    teller = (await (await api.get("/teller", headers=c.teller.headers)).json())["teller"]
    assert teller["state"] == "busy"


# -- calls whose media never comes up (connect_timeout) ---------------------------------------------

async def test_a_call_whose_media_never_comes_up_ends_and_frees_the_teller(api: Client) -> None:
    from cloudbank.platform.connect_timeout import expire_due
    silent = await call(api)
    talking = await call(api, teller=await person(api, "tom"), customer=await kiosk(api, "kiosk-2"))
    assert (await post(api, f"/sessions/{talking.session['id']}/activate", talking.teller)).status == 200
    assert await expire_due(api.app) == 0  # nothing is due yet
    later = time.time() + api.app[CONFIG].session_connect_timeout_s + 1
    assert await expire_due(api.app, now=later) == 1
    assert await state_of(api, silent.session["id"]) == "wrap_up"
    assert await state_of(api, talking.session["id"]) == "active"
    assert (await api.app[ROUTER].teller(silent.teller.id))["state"] == "wrap_up"
    ended = [e for e in await stream(api, silent.customer.client) if e["type"] == "session.ended"]
    assert [(e["by"], e["reason"]) for e in ended] == [("platform", "no_media")]
    assert await expire_due(api.app, now=later) == 0  # once only


async def test_the_platform_ends_a_call_stuck_connecting_by_itself(aiohttp_client: MakeClient,
                                                                   config: Config) -> None:
    api = await aiohttp_client(create_app(config.with_(session_connect_timeout_s=0.5)))
    await Catalogue(api.app[ENGINE]).upsert(Service("general", "General enquiry", "general"))
    await add_node(api, "node-a")
    c = await call(api)
    for _ in range(150):  # the sweeper passes once a second; 15 s at most
        if await state_of(api, c.session["id"]) != "connecting":
            break
        await asyncio.sleep(0.1)
    assert await state_of(api, c.session["id"]) == "wrap_up"



async def test_a_teller_left_busy_by_an_accept_that_never_made_a_call_is_given_back(api: Client) -> None:
    """The platform node died between the ACD's accept and the session's insert."""
    from cloudbank.platform.connect_timeout import ORPHAN_ACCEPT_S, release_orphan_accepts
    ok = await call(api)  # a real call: left alone
    orphan, customer = await person(api, "olga"), await kiosk(api, "kiosk-2")
    await api.post("/teller/state", json={"state": "ready"}, headers=orphan.headers)
    ticket = await (await api.post("/tickets", json={"service": "general"}, headers=customer.headers)).json()
    await api.app[ROUTER].accept(await offer_for(api, orphan), orphan.id)  # ... and no session
    assert await release_orphan_accepts(api.app) == 0  # not yet: a call may be starting
    assert await release_orphan_accepts(api.app, now=time.time() + ORPHAN_ACCEPT_S + 1) == 1
    olga = await api.app[ROUTER].teller(orphan.id)
    assert (olga["state"], olga["reason"]) == ("not_ready", "call_not_started")
    assert await ticket_state(api, ticket["ticket"]["id"]) == "waiting"
    assert (await api.app[ROUTER].teller(ok.teller.id))["state"] == "busy"


async def test_a_teller_left_busy_by_a_call_that_ended_on_a_dying_node_is_freed(api: Client) -> None:
    """The session moved to wrap-up, and the node died before telling the ACD."""
    from cloudbank.platform.connect_timeout import ORPHAN_ACCEPT_S, release_orphan_accepts
    first, second = await call(api), await call(api, teller=await person(api, "tom"),
                                                customer=await kiosk(api, "kiosk-2"))
    for c in (first, second):
        async with api.app[ENGINE].begin() as conn:
            await conn.execute(sessions_table.update().where(sessions_table.c.id == c.session["id"])
                               .values(state="wrap_up"))
        assert (await api.app[ROUTER].teller(c.teller.id))["state"] == "busy"
    # A retried hang-up is refused (the call is over) and finishes the ACD's part.
    assert (await post(api, f"/sessions/{first.session['id']}/end", first.teller)).status == 409
    assert (await api.app[ROUTER].teller(first.teller.id))["state"] == "wrap_up"
    # Without a retry, the sweep does it.
    assert await release_orphan_accepts(api.app, now=time.time() + ORPHAN_ACCEPT_S + 1) == 1
    assert (await api.app[ROUTER].teller(second.teller.id))["state"] == "wrap_up"

# -- monitor -----------------------------------------------------------------------------------------

async def test_supervisors_of_the_queue_monitor_others_cannot(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    everyone = await person(api, "sue", "supervisor", queues=[])
    generalist = await person(api, "gus", "supervisor", queues=["general"])
    cards_only = await person(api, "cat", "supervisor", queues=["cards"])
    for sup in (everyone, generalist):
        resp = await post(api, f"/sessions/{sid}/monitor", sup)
        assert resp.status == 200
        claims = await verify_join(api, (await resp.json())["video"]["token"], sid)
        assert (claims.sub, claims.get("party")) == (sup.client, "supervisor")
    assert (await post(api, f"/sessions/{sid}/monitor", cards_only)).status == 403
    for who in (c.customer, c.teller):
        assert (await post(api, f"/sessions/{sid}/monitor", who)).status == 403
    members = await api.app[REDIS].smembers(events.audience_key(sid))
    assert cards_only.client not in members and everyone.client in members
    monitors = [r.actor for r in await api.app[AUDIT].records(subject=f"session:{sid}")
                if r.action == "session.monitor"]
    assert monitors == [everyone.id, generalist.id]


# -- pushes ------------------------------------------------------------------------------------------

FORM = {"kind": "form", "title": "Your details",
        "fields": [{"name": "address", "label": "Address", "required": True},
                   {"name": "email", "label": "E-mail"}]}


def png_data_url(size: int = 16) -> str:
    ok, buf = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (size, size), dtype=np.uint8))
    assert ok
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


async def test_form_push_and_a_single_answer(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    resp = await post(api, f"/sessions/{sid}/push", c.teller, FORM)
    assert resp.status == 201
    push_id = (await resp.json())["push"]["push_id"]
    pushed = [e for e in await stream(api, c.customer.client) if e["type"] == "push"]
    assert pushed[0]["push_id"] == push_id and pushed[0]["fields"][0]["name"] == "address"
    answer = {"push_id": push_id, "answer": "accept", "values": {"address": "1 Main St"}}
    assert (await post(api, f"/sessions/{sid}/responses", c.customer, answer)).status == 200
    got = [e for e in await stream(api, c.teller.client) if e["type"] == "push.response"]
    assert got[0]["values"] == {"address": "1 Main St"}
    replay = await post(api, f"/sessions/{sid}/responses", c.customer, answer)
    assert replay.status == 409


async def test_signature_is_stored_hashed_and_in_the_audit_chain(api: Client, config: Config) -> None:
    c = await call(api)
    sid = c.session["id"]
    push = await post(api, f"/sessions/{sid}/push", c.teller, {"kind": "signature_request", "title": "Sign"})
    push_id = (await push.json())["push"]["push_id"]
    resp = await post(api, f"/sessions/{sid}/responses", c.customer,
                      {"push_id": push_id, "answer": "accept", "signature": png_data_url()})
    assert resp.status == 200, await resp.text()
    stored = config.data / "signatures" / sid / f"{push_id}.png"
    assert stored.read_bytes().startswith(b"\x89PNG")
    record = [r for r in await api.app[AUDIT].records(subject=f"session:{sid}")
              if r.action == "session.push_response"][0]
    assert record.details["files"][0]["sha256"] == (await resp.json())["push"]["signature_sha256"]
    assert (await api.app[AUDIT].verify(base=config.data)).ok
    stored.write_bytes(stored.read_bytes() + b"tampered")
    assert not (await api.app[AUDIT].verify(base=config.data)).ok


@pytest.mark.parametrize(("push_body", "answer", "status", "needle"), [
    (FORM, {"answer": "accept", "values": {}}, 400, "'address' is required"),
    (FORM, {"answer": "accept", "values": {"address": "x", "shoe": "9"}}, 400, "no field 'shoe'"),
    (FORM, {"answer": "accept", "values": {"address": 5}}, 400, "must be a string"),
    (FORM, {"answer": "maybe"}, 400, "must be one of"),
    (FORM, {"answer": "accept", "values": {"address": "x"}, "signature": "data:image/png;base64,AAAA"}, 400,
     "only answers an accepted signature"),
    ({"kind": "signature_request", "title": "Sign"}, {"answer": "accept"}, 400, "needs the signature"),
    ({"kind": "signature_request", "title": "Sign"}, {"answer": "accept", "signature": "data:image/gif;base64,R0"},
     400, "data URL of a PNG"),
    ({"kind": "signature_request", "title": "Sign"}, {"answer": "accept", "signature": "data:image/png;base64,@@"},
     400, "not valid base64"),
    ({"kind": "signature_request", "title": "Sign"},
     {"answer": "accept", "signature": "data:image/png;base64," + base64.b64encode(b"GIF89a" * 20).decode()},
     400, "not a PNG"),
    ({"kind": "signature_request", "title": "Sign"},
     {"answer": "accept", "signature": "data:image/png;base64,"
      + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_SIGNATURE_BYTES).decode()}, 400, "larger than"),
    ({"kind": "signature_request", "title": "Sign"},
     {"answer": "accept", "signature": "data:image/png;base64," + "A" * (1024 * 1024)}, 413, "too large"),
])
async def test_bad_answers_are_refused_and_the_push_stays_open(api: Client, push_body: dict[str, Any],
                                                               answer: dict[str, Any], status: int,
                                                               needle: str) -> None:
    c = await call(api)
    sid = c.session["id"]
    push_id = (await (await post(api, f"/sessions/{sid}/push", c.teller, push_body)).json())["push"]["push_id"]
    resp = await post(api, f"/sessions/{sid}/responses", c.customer, {"push_id": push_id, **answer})
    assert resp.status == status, await resp.text()
    assert needle in (await resp.json())["message"]
    assert not [e for e in await stream(api, c.teller.client) if e["type"] == "push.response"]
    decline = await post(api, f"/sessions/{sid}/responses", c.customer, {"push_id": push_id, "answer": "decline"})
    assert decline.status == 200  # still answerable


async def test_answers_only_from_this_sessions_customer(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    push_id = (await (await post(api, f"/sessions/{sid}/push", c.teller, FORM)).json())["push"]["push_id"]
    answer = {"push_id": push_id, "answer": "decline"}
    assert (await post(api, f"/sessions/{sid}/responses", await kiosk(api, "k2"), answer)).status == 404
    assert (await post(api, f"/sessions/{sid}/responses", c.teller, answer)).status == 403
    unknown = {"push_id": "f" * 32, "answer": "decline"}
    assert (await post(api, f"/sessions/{sid}/responses", c.customer, unknown)).status == 404
    other = await call(api, teller=await person(api, "tom"), customer=await kiosk(api, "k3"))
    # A push of session A answered through session B is unknown there.
    assert (await post(api, f"/sessions/{other.session['id']}/responses", other.customer, answer)).status == 404


@pytest.mark.parametrize(("body", "needle"), [
    ({"kind": "form", "title": "x"}, "needs fields"),
    ({"kind": "document", "title": "x"}, "needs a url"),
    ({"kind": "document", "title": "x", "url": "javascript:alert(1)"}, "http(s)"),
    ({"kind": "signature_request", "title": "x", "fields": [{"name": "a", "label": "a"}]}, "only a form"),
    ({"kind": "form", "title": "x", "fields": [{"name": "a", "label": "a"}, {"name": "a", "label": "b"}]},
     "unique"),
    ({"kind": "video", "title": "x"}, "must be one of"),
    ({"kind": "form", "title": "x", "fields": [{"name": "a"}]}, "'fields[0].label' is required"),
    ({"kind": "form", "title": "x", "fields": [{"name": "a", "label": "a", "kind": "file"}]}, "must be one of"),
])
async def test_bad_pushes_are_refused(api: Client, body: dict[str, Any], needle: str) -> None:
    c = await call(api)
    resp = await post(api, f"/sessions/{c.session['id']}/push", c.teller, body)
    assert resp.status == 400 and needle in (await resp.json())["message"]
    assert not [e for e in await stream(api, c.customer.client) if e["type"] == "push"]


# -- authorisations ----------------------------------------------------------------------------------

async def test_authorisation_request_grant_and_no_second_decision(api: Client) -> None:
    c = await call(api)
    sid = c.session["id"]
    sue = await person(api, "sue", "supervisor", queues=["general"])
    cat = await person(api, "cat", "supervisor", queues=["cards"])
    resp = await post(api, f"/sessions/{sid}/authorisations", c.teller, {"reason": "withdrawal over limit"})
    assert resp.status == 201
    authz = (await resp.json())["authorisation"]
    assert [e["id"] for e in await stream(api, sue.client) if e["type"] == "authorisation.request"] == [authz["id"]]
    assert not [e for e in await stream(api, cat.client) if e["type"] == "authorisation.request"]
    assert (await post(api, f"/authorisations/{authz['id']}", cat, {"grant": True})).status == 403
    assert (await post(api, f"/authorisations/{authz['id']}", c.teller, {"grant": True})).status == 403
    resp = await post(api, f"/authorisations/{authz['id']}", sue, {"grant": True, "reason": "known customer"})
    assert resp.status == 200 and (await resp.json())["authorisation"]["state"] == "granted"
    results = [e for e in await stream(api, c.teller.client) if e["type"] == "authorisation.result"]
    assert results[0]["state"] == "granted" and results[0]["decided_by"] == sue.id
    again = await post(api, f"/authorisations/{authz['id']}", sue, {"grant": False})
    assert again.status == 409
    assert (await post(api, f"/authorisations/{'0' * 32}", sue, {"grant": True})).status == 404
    assert (await post(api, "/authorisations/../etc", sue, {"grant": True})).status == 404
    actions = [r.action for r in await api.app[AUDIT].records(subject=f"session:{sid}")]
    assert actions[-2:] == ["authorisation.request", "authorisation.granted"]


async def test_pending_authorisations_are_indexed_until_decided(api: Client) -> None:
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["general"])
    cat = await person(api, "cat", "supervisor", queues=["cards"])
    resp = await post(api, f"/sessions/{c.session['id']}/authorisations", c.teller, {"reason": "over limit"})
    aid = (await resp.json())["authorisation"]["id"]
    redis = api.app[REDIS]
    assert await redis.zscore(AUTHZ_PENDING, aid) is not None
    assert (await post(api, f"/authorisations/{aid}", cat, {"grant": True})).status == 403
    assert await redis.zscore(AUTHZ_PENDING, aid) is not None  # a refused decision changes nothing
    assert (await post(api, f"/authorisations/{aid}", sue, {"grant": False})).status == 200
    assert await redis.zscore(AUTHZ_PENDING, aid) is None


async def test_a_request_whose_call_ended_leaves_the_pending_list(api: Client) -> None:
    """It can no longer be decided (409): a supervisor is not shown it forever."""
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["general"])
    resp = await post(api, f"/sessions/{c.session['id']}/authorisations", c.teller, {"reason": "over limit"})
    aid = (await resp.json())["authorisation"]["id"]
    listed = await (await api.get("/authorisations/pending", headers=sue.headers)).json()
    assert [a["id"] for a in listed["authorisations"]] == [aid]
    assert (await post(api, f"/sessions/{c.session['id']}/end", c.customer)).status == 200
    listed = await (await api.get("/authorisations/pending", headers=sue.headers)).json()
    assert listed["authorisations"] == []
    assert await api.app[REDIS].zscore(AUTHZ_PENDING, aid) is None


# -- bad input on every session endpoint -------------------------------------------------------------

ENDPOINTS = ["join", "activate", "hold", "resume", "end", "transfer", "wrapup", "monitor", "push", "responses",
             "authorisations"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_every_endpoint_refuses_bad_bodies_unknown_ids_and_no_token(api: Client, endpoint: str) -> None:
    c = await call(api)
    sid = c.session["id"]
    who = {"monitor": await person(api, "sue", "supervisor"), "responses": c.customer}.get(endpoint, c.teller)
    path = f"/sessions/{sid}/{endpoint}"
    cases = [(b"{not json", 400), (b'{"surprise": 1}', 400), (b"[]", 400),
             (b'{"x": "' + b"a" * (1024 * 1024) + b'"}', 413)]
    for raw, status in cases:
        resp = await api.post(path, data=raw, headers={**who.headers, "Content-Type": "application/json"})
        assert resp.status == status, (endpoint, raw[:20], await resp.text())
    assert (await api.post(path, data=b"{}", headers={**who.headers, "Content-Type": "text/plain"})).status == 415
    assert (await api.post(path)).status == 401
    assert (await api.post(path, headers={"Authorization": "Bearer nope"})).status == 401
    for unknown in ("00000000-0000-0000-0000-000000000000", "not-a-session", "%2e%2e"):
        resp = await api.post(f"/sessions/{unknown}/{endpoint}", json={}, headers=who.headers)
        assert resp.status in (400, 404), (endpoint, unknown, resp.status)
    assert await state_of(api, sid) == "connecting"
    assert [r.action for r in await api.app[AUDIT].records(subject=f"session:{sid}")] == ["session.started"]


@pytest.mark.parametrize(("endpoint", "role"), [
    ("hold", "device"), ("resume", "phone"), ("transfer", "device"), ("wrapup", "device"), ("push", "device"),
    ("authorisations", "device"), ("monitor", "teller"), ("monitor", "device"), ("responses", "teller"),
    ("join", "admin"), ("end", "supervisor"),
])
async def test_wrong_role_tokens_are_403(api: Client, endpoint: str, role: str) -> None:
    c = await call(api)
    headers = _bearer(api, "someone", role)
    resp = await api.post(f"/sessions/{c.session['id']}/{endpoint}", json={}, headers=headers)
    assert resp.status == 403, (endpoint, role, await resp.text())
    assert await state_of(api, c.session["id"]) == "connecting"


async def test_someone_elses_session_is_unknown(api: Client) -> None:
    a = await call(api)
    stranger = await kiosk(api, "k2")
    other_teller = await person(api, "tom")
    for path in ("", "/end", "/activate"):
        for who in (stranger, other_teller):
            method = api.get if path == "" else api.post
            resp = await method(f"/sessions/{a.session['id']}{path}", headers=who.headers)
            assert resp.status == 404, (path, resp.status)
    assert await state_of(api, a.session["id"]) == "connecting"
    view = await api.get(f"/sessions/{a.session['id']}", headers=a.customer.headers)
    assert (await view.json())["party"] == "customer"


@pytest.mark.parametrize(("body", "needle"), [
    ({"service_done": True}, "'disposition' is required"),
    ({"disposition": "", "service_done": True}, "disposition must be"),
    ({"disposition": "Not A Code!", "service_done": True}, "disposition must be"),
    ({"disposition": "ok"}, "'service_done' is required"),
    ({"disposition": "ok", "service_done": "yes"}, "true or false"),
])
async def test_wrapup_needs_a_disposition_code(api: Client, body: dict[str, Any], needle: str) -> None:
    c = await call(api)
    sid = c.session["id"]
    await post(api, f"/sessions/{sid}/end", c.teller)
    resp = await post(api, f"/sessions/{sid}/wrapup", c.teller, body)
    assert resp.status == 400 and needle in (await resp.json())["message"]
    assert await state_of(api, sid) == "wrap_up"


# -- dead video nodes --------------------------------------------------------------------------------

async def _wait_for(api: Client, client: str, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """Events of `kind` in the client's stream once `count` have arrived (bounded: ~10 s)."""
    import asyncio

    for _ in range(100):
        found = [e for e in await stream(api, client) if e["type"] == kind]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    return [e for e in await stream(api, client) if e["type"] == kind]


async def test_node_down_moves_live_calls_once_across_two_platform_nodes(
        api: Client, aiohttp_client: MakeClient, config: Config) -> None:
    import asyncio

    second = await aiohttp_client(create_app(config))  # another platform node watching the same stream
    live = await call(api)
    ended = await call(api, teller=await person(api, "tom"), customer=await kiosk(api, "k2"))
    await post(api, f"/sessions/{ended.session['id']}/end", ended.teller)
    await add_node(api, "node-b", calls=0)
    await add_node(api, "node-a", alive=False)
    # In order: the ended call and an unknown id are handled before the live call is moved.
    sids = [ended.session["id"], "00000000-0000-0000-0000-000000000000", live.session["id"]]
    await api.app[REDIS].xadd("video:events", {"type": "node.down", "node": "node-a",
                                               "sessions": json.dumps(sids), "at": "0"})
    for party in (live.customer, live.teller):
        rejoin = await _wait_for(api, party.client, "video.rejoin")
        assert len(rejoin) == 1 and rejoin[0]["session"]["video_node"] == "node-b"
        assert rejoin[0]["video"]["node"] == "node-b" and "token" not in rejoin[0]["video"]
    await asyncio.sleep(0.5)  # give the other node's watcher the chance to (wrongly) act twice
    assert len([e for e in await stream(second, live.customer.client) if e["type"] == "video.rejoin"]) == 1
    assert [e for e in await stream(api, ended.customer.client) if e["type"] == "video.rejoin"] == []
    moved = [r for r in await api.app[AUDIT].records(subject=f"session:{live.session['id']}")
             if r.action == "session.moved"]
    assert len(moved) == 1 and moved[0].details == {"from_node": "node-a", "to_node": "node-b"}


async def test_garbage_on_the_video_event_stream_is_skipped(api: Client) -> None:
    c = await call(api)
    redis = api.app[REDIS]
    await add_node(api, "node-b")
    await redis.xadd("video:events", {"type": "node.down", "node": "node-a", "sessions": "{not json"})
    await redis.xadd("video:events", {"type": "node.up", "node": "node-a"})
    ours = json.dumps([c.session["id"]])
    await redis.xadd("video:events", {"type": "node.down", "node": "node-zzz", "sessions": ours})  # not its node
    await add_node(api, "node-a", alive=False)
    await redis.xadd("video:events", {"type": "node.down", "node": "node-a", "sessions": ours})
    rejoin = await _wait_for(api, c.customer.client, "video.rejoin")
    assert len(rejoin) == 1 and rejoin[0]["session"]["video_node"] == "node-b"


async def test_a_verified_phone_customer_is_a_party_like_a_kiosk(api: Client) -> None:
    start = await api.post("/phone/start", json={"phone": "+821055556666"})
    challenge = (await start.json())["challenge_id"]
    code = (api.app[CONFIG].data / "otp.log").read_text().split()[-1]  # the default sender's file
    verified = await (await api.post("/phone/verify", json={"challenge_id": challenge, "code": code})).json()
    phone = Person(verified["customer_id"], {"Authorization": f"Bearer {verified['token']}"},
                   f"phone:{verified['customer_id']}")
    c = await call(api, customer=phone)
    assert c.session["customer"] == phone.client and c.ticket["channel"] == "phone"
    video = (await (await post(api, f"/sessions/{c.session['id']}/join", phone)).json())["video"]
    assert (await verify_join(api, video["token"], c.session["id"])).sub == phone.client
    assert (await post(api, f"/sessions/{c.session['id']}/end", phone)).status == 200


async def test_each_party_lists_its_open_sessions_only(api: Client) -> None:
    c = await call(api)
    other = await call(api, teller=await person(api, "tom"), customer=await kiosk(api, "k2"))
    for who, expected in ((c.teller, [c.session["id"]]), (c.customer, [c.session["id"]]),
                          (other.customer, [other.session["id"]])):
        body = await (await api.get("/sessions", headers=who.headers)).json()
        assert [s["id"] for s in body["sessions"]] == expected
    await post(api, f"/sessions/{c.session['id']}/end", c.teller)
    await post(api, f"/sessions/{c.session['id']}/wrapup", c.teller, {"disposition": "done", "service_done": True})
    assert (await (await api.get("/sessions", headers=c.teller.headers)).json())["sessions"] == []
    assert (await api.get("/sessions", headers=_bearer(api, "x", "supervisor"))).status == 403
    assert (await api.get("/sessions")).status == 401


async def test_a_join_racing_the_node_watcher_gets_the_node_the_watcher_chose(
        api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The party's join finds the node dead just as the watcher moves the call: not a 409 (clients
    take that as "no call") but the new node's token, and the call is moved once."""
    from cloudbank.platform import sessions as sessions_module

    c = await call(api)
    await add_node(api, "node-b", calls=0)
    await add_node(api, "node-a", alive=False)
    real = sessions_module.Sessions.relocate

    async def watcher_first(self: Any, session: Any, who: str, skip_party: str = "") -> Any:
        await real(self, session, "platform")  # the watcher wins the compare-and-set ...
        return await real(self, session, who, skip_party)  # ... so the join's own move finds nothing to do

    monkeypatch.setattr(sessions_module.Sessions, "relocate", watcher_first)
    resp = await post(api, f"/sessions/{c.session['id']}/join", c.customer)
    assert resp.status == 200, await resp.text()
    video = (await resp.json())["video"]
    assert video["node"] == "node-b"
    assert (await verify_join(api, video["token"], c.session["id"])).get("node") == "node-b"
    moved = [r for r in await api.app[AUDIT].records(subject=f"session:{c.session['id']}")
             if r.action == "session.moved"]
    assert [r.details for r in moved] == [{"from_node": "node-a", "to_node": "node-b"}]

    # No live node at all: retryable 503, the call stays where it is.
    await add_node(api, "node-b", alive=False)
    monkeypatch.setattr(sessions_module.Sessions, "relocate", real)
    resp = await post(api, f"/sessions/{c.session['id']}/join", c.customer)
    body = await resp.json()
    assert resp.status == 503 and body["error"] == "no_video_node" and body["retry_after"] > 0
    assert await state_of(api, c.session["id"]) == "connecting"
