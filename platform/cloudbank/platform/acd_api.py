"""HTTP endpoints of the ACD: customers' tickets, tellers' state and offers, the wallboard, metrics.

Customers (kiosk `device` or verified `phone` tokens) own their tickets: another customer's id is
answered 404 as if it did not exist. A customer cannot choose a priority class (anyone could say they
are a VIP): `elderly` or `vip` is set by a supervisor of the queue or an admin on a waiting ticket.
Tellers act only on their own offers. A customer holds one live ticket at a time (a replayed
`POST tickets` gets 409 with the live one).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from cloudbank.platform import metrics, ratings, sessions
from cloudbank.platform.authorisations import overseen_queues
from cloudbank.platform.catalogue import ensure_queue
from cloudbank.platform.errors import BadRequest, Conflict, Forbidden, NotFound
from cloudbank.platform.identity import Directory
from cloudbank.platform.identity_api import current_device
from cloudbank.platform.matcher import QUEUE_LOG
from cloudbank.platform.routing import ROUTER
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, REDIS, authenticate
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()

ID_MAX = 64
LIVE_STATES = ("waiting", "offered", "connected", "callback")
WALLBOARD_PUSH_S = 2.0

SessionStarter = Callable[[web.Application, dict[str, Any], str], Awaitable[dict[str, Any]]]
# Tests may put a starter here to inject a fault; by default `sessions.start_session`.
SESSION_STARTER: web.AppKey[SessionStarter] = web.AppKey("acd_session_starter")


@dataclass(frozen=True)
class TicketBody:
    service: str = field(metadata=limit(64))
    priority: str = field(default="normal", metadata=limit(32))


@dataclass(frozen=True)
class PriorityBody:
    priority: str = field(metadata=limit(32))


@dataclass(frozen=True)
class CallbackBody:
    at: float | None = None


@dataclass(frozen=True)
class TellerStateBody:
    state: str = field(metadata=limit(16))
    reason: str = field(default="", metadata=limit(64))


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > ID_MAX:
        raise NotFound(f"no such {name.removesuffix('_id')}")
    return value


async def _customer(request: web.Request) -> tuple[str, str, str]:
    """(client id, channel, branch) of the calling kiosk or phone customer."""
    claims = await authenticate(request, roles=("device", "phone"))
    if claims.role == "device":
        device_id = await current_device(request)
        return f"device:{device_id}", "kiosk", str(claims.get("branch", ""))
    return f"phone:{claims.sub}", "phone", ""


async def _teller(request: web.Request) -> str:
    return (await authenticate(request, roles=("teller",))).sub


def _active_key(customer: str) -> str:
    return f"acd:active:{customer}"


# The customer's active-ticket key moves only from the value a request read, so two simultaneous
# POSTs (a double tap, a retry on another node) cannot both take a ticket.
_CLAIM = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
PENDING = "pending:"
CLAIM_S = 30


async def _claim_active(app: web.Application, customer: str) -> str:
    """Reserve the customer's one live ticket for this request; 409 when they hold one, or another
    request is taking one now. Returns the reservation, to replace with the ticket's id."""
    redis = app[REDIS]
    raw = await redis.get(_active_key(customer))
    seen = (raw.decode() if isinstance(raw, bytes) else str(raw)) if raw else ""
    busy = Conflict("a ticket is being taken for you already; wait for it")
    if seen.startswith(PENDING):
        raise busy
    if seen:
        with contextlib.suppress(NotFound):
            held = await app[ROUTER].ticket(seen, customer)
            if held["ticket"]["state"] in LIVE_STATES:
                raise Conflict("you already have a ticket; leave it first", ticket=held["ticket"])
    marker = PENDING + secrets.token_hex(8)
    if not await redis.eval(_CLAIM, 1, _active_key(customer), seen, marker, str(CLAIM_S)):
        raise busy
    return marker


@routes.post("/tickets")
async def create_ticket(request: web.Request) -> web.Response:
    """Take a ticket for a service; 201 with position and estimated wait."""
    customer, channel, branch = await _customer(request)
    body = await read_json(request, TicketBody)
    app = request.app
    router = app[ROUTER]
    marker = await _claim_active(app, customer)
    try:
        await ensure_queue(app, body.service)  # 404 for an unknown service
        if body.priority not in router.priorities:
            raise BadRequest(f"priority must be one of {', '.join(router.priorities)}", field="priority")
        if body.priority != "normal":
            # Nothing verifies a customer's claim when the ticket is taken (the ID check happens in the call).
            raise Forbidden("a customer cannot choose a priority class; staff set elderly or vip on the "
                            "waiting ticket", field="priority")
        ticket = await router.enqueue(service=body.service, customer=customer, channel=channel,
                                      priority=body.priority, branch=branch)
    except BaseException:
        await app[REDIS].eval(_RELEASE, 1, _active_key(customer), marker)
        raise
    await app[REDIS].set(_active_key(customer), ticket["id"], ex=24 * 3600)
    return web.json_response({"ticket": ticket}, status=201)


@routes.get("/tickets/{ticket_id}")
async def get_ticket(request: web.Request) -> web.Response:
    customer, _, _ = await _customer(request)
    view = await request.app[ROUTER].ticket(_path_id(request, "ticket_id"), customer)
    return web.json_response({"ticket": view["ticket"]})


@routes.delete("/tickets/{ticket_id}")
async def leave(request: web.Request) -> web.Response:
    """Leave the queue (abandoned, with the time waited) or cancel a booked call-back."""
    customer, _, _ = await _customer(request)
    ticket = await request.app[ROUTER].abandon(_path_id(request, "ticket_id"), customer)
    return web.json_response({"ticket": ticket})


@routes.post("/tickets/{ticket_id}/priority")
async def set_priority(request: web.Request) -> web.Response:
    """A supervisor of the ticket's queue, or an admin, puts a waiting ticket in a priority class."""
    claims = await authenticate(request)
    body = await read_json(request, PriorityBody)
    router = request.app[ROUTER]
    ticket_id = _path_id(request, "ticket_id")
    raw = (await router.ticket(ticket_id))["raw"]
    overseen = await overseen_queues(request.app, claims)
    if overseen and raw["queue"] not in overseen:
        raise Forbidden("only a supervisor of this ticket's queue may change its priority")
    ticket = await router.set_priority(ticket_id, body.priority)
    await request.app[AUDIT].append(claims.sub, "ticket.priority", f"ticket:{ticket_id}", {
        "queue": raw["queue"], "priority": body.priority, "from": raw.get("priority", "normal")})
    return web.json_response({"ticket": ticket})


@routes.post("/tickets/{ticket_id}/callback")
async def book_callback(request: web.Request) -> web.Response:
    """Book the offered call-back: leave the queue now, be queued again at `at` (epoch seconds)."""
    customer, _, _ = await _customer(request)
    ticket_id = _path_id(request, "ticket_id")
    body = await read_json(request, CallbackBody)
    ticket = await request.app[ROUTER].book_callback(ticket_id, customer, body.at)
    return web.json_response({"ticket": ticket})


@routes.post("/teller/state")
async def teller_state(request: web.Request) -> web.Response:
    """ready / not_ready (reason) / offline. Going ready reloads the teller's skills."""
    teller_id = await _teller(request)
    body = await read_json(request, TellerStateBody)
    if body.state not in ("ready", "not_ready", "offline"):
        raise BadRequest("state must be ready, not_ready or offline", field="state")
    user = await Directory(request.app[ENGINE]).get_user(teller_id)
    if user.disabled:
        raise Forbidden("this account is disabled")
    view = await request.app[ROUTER].set_state(teller_id, body.state, body.reason.strip(), skills=user.skills)
    return web.json_response({"teller": view})


@routes.get("/teller")
async def get_teller(request: web.Request) -> web.Response:
    """The teller's state, today's counts and the queues they serve (with how many wait)."""
    teller_id = await _teller(request)
    router = request.app[ROUTER]
    view = await router.teller(teller_id)
    snap = await router.snapshot()
    # The router learns skills when the teller goes ready; before that (a first sign-in) the directory
    # has them, so the home screen shows the queues instead of "not assigned to any queue".
    skills = view["skills"] or (await Directory(request.app[ENGINE]).get_user(teller_id)).skills
    queues = [{"code": code, "waiting": q["waiting"], "longest_wait_s": q["longest_wait_s"]}
              for code, q in snap["queues"].items() if q["skill"] in skills]
    return web.json_response({"teller": view, "queues": queues})


async def _session_starter(app: web.Application) -> SessionStarter:
    """The injected starter, else sessions.start_session on a video node picked *before* the offer is
    consumed: with no live node the 503 leaves the offer ringing and the teller may retry."""
    injected = app.get(SESSION_STARTER)
    if injected is not None:
        return injected
    node = await sessions.pick_node(app[REDIS])

    async def start(app: web.Application, ticket: dict[str, Any], teller_id: str) -> dict[str, Any]:
        return await sessions.start_session(app, ticket=ticket, teller_id=teller_id, node=node)

    return start


@routes.post("/offers/{offer_id}/accept")
async def accept(request: web.Request) -> web.Response:
    """Take the offered call: the session starts and the teller gets `{session, video, ticket}`."""
    teller_id = await _teller(request)
    offer_id = _path_id(request, "offer_id")
    app = request.app
    router = app[ROUTER]
    await router.check_offer(offer_id, teller_id)  # 404/409 before a video node is reserved
    starter = await _session_starter(app)
    raw = await router.accept(offer_id, teller_id)
    ticket = {"id": raw["id"], "service": raw["queue"], "customer": raw["customer"], "channel": raw["channel"],
              "branch": raw.get("branch", ""), "priority": raw["priority"],
              "transfers": int(raw.get("transfers") or 0), "waited_s": round(
                  float(raw["accepted_at"]) - float(raw["enq"]), 1)}
    try:
        started = await starter(app, ticket, teller_id)
    except Exception:
        # the call cannot start: the customer keeps their place, the teller is not ready
        await router.undo_accept(teller_id, raw["id"])
        raise
    await app[AUDIT].append(teller_id, "offer.accepted", f"ticket:{raw['id']}", {"service": raw["queue"]})
    return web.json_response({**started, "ticket": ticket})


@routes.post("/offers/{offer_id}/decline")
async def decline(request: web.Request) -> web.Response:
    teller_id = await _teller(request)
    view = await request.app[ROUTER].decline(_path_id(request, "offer_id"), teller_id)
    return web.json_response({"teller": view})


async def wallboard_body(app: web.Application) -> dict[str, Any]:
    router = app[ROUTER]
    config = app[CONFIG]
    snap = await router.snapshot()
    now = snap["at"]
    events = await app[QUEUE_LOG].recent(now - config.metrics_window_s, now)
    computed = metrics.compute(events, now=now, window_s=config.metrics_window_s,
                               service_level_s=config.service_level_s)
    for code, q in snap["queues"].items():
        q["metrics"] = computed.get(code, metrics.QueueMetrics()).public()
    csat = await ratings.summary(app, now - config.metrics_window_s, now)  # per queue and per teller
    return {**snap, "window_s": config.metrics_window_s, "service_level_s": config.service_level_s, "csat": csat}


class WallboardFeed:
    """The wallboard body shared by this node's wallboard sockets: computed at most once per
    `max_age_s` however many supervisors watch (each computation reads the metrics window's log)."""

    def __init__(self, max_age_s: float = WALLBOARD_PUSH_S / 2) -> None:
        self.max_age_s = max_age_s
        self._body: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, app: web.Application) -> dict[str, Any]:
        async with self._lock:  # one computation at a time; the others take its result
            if self._body is None or time.monotonic() - self._at >= self.max_age_s:
                self._body = await wallboard_body(app)
                self._at = time.monotonic()
            return self._body


WALLBOARD_FEED = web.AppKey("acd_wallboard_feed", WallboardFeed)


@routes.get("/wallboard")
async def wallboard(request: web.Request) -> web.Response:
    """Queues (waiting, longest wait, metrics over the window, tellers by state) and every teller."""
    await authenticate(request)
    return web.json_response(await wallboard_body(request.app))


@routes.get("/wallboard/ws")
async def wallboard_ws(request: web.Request) -> web.WebSocketResponse:
    """The wallboard pushed every couple of seconds as `{type: "wallboard", ...}`."""
    claims = await authenticate(request, url_token=True)
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)

    async def reader() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_json({"type": "error", "code": "read_only",
                                    "message": "the wallboard feed takes no messages"})
            elif msg.type == WSMsgType.ERROR:
                break

    reading = asyncio.create_task(reader())
    try:
        while not ws.closed and not reading.done():
            if claims.exp < time.time():
                await ws.send_json({"type": "error", "code": "token_expired", "message": "sign in again"})
                break
            feed = request.app.get(WALLBOARD_FEED)
            body = await feed.get(request.app) if feed is not None else await wallboard_body(request.app)
            await ws.send_json({"type": "wallboard", **body})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), WALLBOARD_PUSH_S)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await ws.close()
    return ws


@routes.get("/metrics")
async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus text format (scrape with a supervisor or admin bearer token)."""
    await authenticate(request)
    body = await wallboard_body(request.app)
    computed = {code: metrics.QueueMetrics(**{k: v for k, v in q["metrics"].items()})
                for code, q in body["queues"].items()}
    text = metrics.prometheus(computed, body, request.app[CONFIG].metrics_window_s)
    text += ratings.prometheus(body["csat"], request.app[CONFIG].metrics_window_s)
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-store"})
