"""`GET /api/ws?token=...&last_id=...`: one WebSocket per client carrying its event stream.

The stream lives in Redis (`cloudbank.platform.events`), so a client that reconnects to ANY
platform node with the id of the last event it saw receives everything after it. Without
`last_id` a connection starts at the stream's current end (the first message, `hello`, carries
that id); `last_id=0-0` replays all that is retained.

Server messages are the stream's events with their `id` added, plus `hello`, `pong` and `error`
(`{"type": "error", "code", "message", "id"}`). Client messages are JSON objects with a `type`;
only `ping` is understood today. Anything else gets an error message; a client that floods is
told so, then disconnected (close code 1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web
from redis.asyncio import Redis

from cloudbank.platform import access, events
from cloudbank.platform.errors import BadRequest, TooManyRequests
from cloudbank.platform.service import REDIS, REDIS_DOWN, authenticate
from cloudbank.platform.sessions import Sessions, VideoNode
from cloudbank.platform.tokens import PEOPLE, Claims
from cloudbank.platform.validation import decode_json, limit, parse

log = logging.getLogger("cloudbank.events")
routes = web.RouteTableDef()

LAST_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
# Client messages are tiny; anything larger is refused with an error (the socket stays open).
MAX_CLIENT_MESSAGE = 16 * 1024
# aiohttp closes the socket (1009) above this; below it we answer with a polite error.
MAX_FRAME = 2 * 1024 * 1024
HEARTBEAT_S = 20.0
# How long one XREAD blocks; bounds how late the pump notices a closed socket or an expired token.
BLOCK_MS = 5000
# Flood control per connection: a token bucket, then a disconnect after repeated violations.
RATE_PER_S = 10.0
BURST = 20
MAX_STRIKES = 5
CLOSE_POLICY = 1008
CLOSE_TOKEN_EXPIRED = 4001
# Each socket holds a Redis connection in XREAD BLOCK: cap the sockets one client may hold per node.
MAX_SOCKETS_PER_CLIENT = 5
# Open sockets per client id on this node (set in create_app).
WS_CLIENTS: web.AppKey[dict[str, int]] = web.AppKey("events_ws_clients")


def client_id(claims: Claims) -> str:
    """The event client id of an API token's holder (see `events`)."""
    if claims.role in PEOPLE:
        return f"user:{claims.sub}"
    if claims.role in ("device", "phone"):
        return f"{claims.role}:{claims.sub}"
    raise BadRequest(f"a {claims.role} token has no event stream")


@dataclass(frozen=True)
class Ping:
    type: Literal["ping"]
    nonce: str | None = field(default=None, metadata=limit(64))


# Every client message class, by type; the OpenAPI document lists them too.
CLIENT_MESSAGES: dict[str, type[Any]] = {"ping": Ping}


class _Bucket:
    """A token bucket: `take()` is False when the client sends faster than allowed."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Connection:
    """One client's socket: the pump from Redis and the handling of what the client sends."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse, cid: str, claims: Claims,
                 last_id: str) -> None:
        self.app, self.ws, self.redis, self.cid, self.claims = app, ws, app[REDIS], cid, claims
        self.last_id = last_id
        self.bucket = _Bucket(RATE_PER_S, BURST)
        self.strikes = 0
        # The pump and the receive loop both send; one frame at a time.
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                await self.ws.send_str(json.dumps(message, ensure_ascii=False))

    async def error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message, "stream_id": self.last_id})

    async def pump(self) -> None:
        """Forward the client's stream from `last_id` until the socket closes or the token expires."""
        try:
            await self._pump()
        except Exception as exc:
            # Redis gone or the like: say so and close, so the client reconnects (maybe to another
            # node) and resumes from last_id.
            if isinstance(exc, REDIS_DOWN):
                log.warning("event stream of %s stopped: Redis unavailable (%s)", self.cid, type(exc).__name__)
            else:
                log.exception("event stream of %s failed", self.cid)
            with contextlib.suppress(Exception):
                await self.error("unavailable", "the event stream is unavailable for a moment; reconnect "
                                                "with last_id")
            await self.ws.close(code=1011, message=b"event stream unavailable; reconnect with last_id")

    async def _pump(self) -> None:
        while not self.ws.closed:
            if time.time() >= self.claims.exp:
                await self.error("token_expired", "the token expired; reconnect with a fresh one and last_id")
                await self.ws.close(code=CLOSE_TOKEN_EXPIRED, message=b"token expired")
                return
            block = int(min(BLOCK_MS, max(1.0, (self.claims.exp - time.time()) * 1000)))
            batch = await events.read(self.redis, self.cid, self.last_id, block_ms=block)
            for event_id, event in batch:
                # The stream position has its own field: an event keeps its own `id` (a push id, ...).
                await self.send({**self._deliverable(event), "stream_id": event_id})
                self.last_id = event_id

    def _deliverable(self, event: dict[str, Any]) -> dict[str, Any]:
        """`video.rejoin` gets its join token (and TURN credentials) here, as it is delivered: kept in
        the stream they would sit in Redis's append-only file, in the data folder, in clear."""
        video, session = event.get("video"), event.get("session")
        if event.get("type") != "video.rejoin" or not isinstance(video, dict) or not isinstance(session, dict):
            return event
        node = VideoNode(str(video.get("node", "")), str(video.get("url", "")), 0, 0.0, False)
        grant = Sessions(self.app).video(str(session.get("id", "")), node, self.cid, str(event.get("party", "")))
        return {**event, "video": grant}

    async def handle(self, raw: str) -> None:
        """Validate one client message and answer it."""
        if not self.bucket.take():
            self.strikes += 1
            if self.strikes >= MAX_STRIKES:
                await self.error("flooding", "too many messages; disconnecting")
                await self.ws.close(code=CLOSE_POLICY, message=b"flooding")
            elif self.strikes == 1 or self.strikes % 2 == 0:
                await self.error("rate_limited", f"send at most {RATE_PER_S:g} messages per second")
            return
        if len(raw) > MAX_CLIENT_MESSAGE:
            await self.error("too_large", f"client messages are at most {MAX_CLIENT_MESSAGE} bytes")
            return
        try:
            data = decode_json(raw, "the message")
        except BadRequest as exc:
            await self.error("bad_json", exc.message)
            return
        kind = data.get("type") if isinstance(data, dict) else None
        model = CLIENT_MESSAGES.get(kind) if isinstance(kind, str) else None
        if model is not None and self.claims.role not in access.EVENTS_MESSAGES.get(str(kind), ()):
            await self.error("not_allowed", f"a {self.claims.role} may not send {kind} messages")
            return
        if model is None:
            shown = kind[:64] if isinstance(kind, str) else kind if kind is None else type(kind).__name__
            await self.error("unknown_type", f"unknown message type {shown!r}; send a JSON object with "
                                             f"type one of {', '.join(sorted(CLIENT_MESSAGES))}")
            return
        try:
            message = parse(model, data)
        except BadRequest as exc:
            await self.error("bad_message", exc.message)
            return
        if isinstance(message, Ping):
            reply: dict[str, Any] = {"type": "pong", "stream_id": self.last_id, "at": time.time()}
            if message.nonce is not None:
                reply["nonce"] = message.nonce
            await self.send(reply)


async def _stream_end(redis: Redis, cid: str) -> str:
    """The id of the newest event in the client's stream ("0-0" when there is none)."""
    newest = await redis.xrevrange(events.stream_key(cid), count=1)
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


@routes.get("/ws")
async def events_ws(request: web.Request) -> web.WebSocketResponse:
    """The caller's events as a WebSocket (token and last_id in the query string)."""
    claims = await authenticate(request, url_token=True)  # who may: access.ROUTES
    last_id = request.query.get("last_id", "")
    if last_id and not LAST_ID_RE.match(last_id):
        raise BadRequest("last_id must be an event id like 1700000000000-0 (the id of the last event seen)")
    cid = client_id(claims)
    redis = request.app[REDIS]
    open_sockets = request.app[WS_CLIENTS]
    if open_sockets.get(cid, 0) >= MAX_SOCKETS_PER_CLIENT:
        raise TooManyRequests(f"at most {MAX_SOCKETS_PER_CLIENT} event sockets per client; close one", 5)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_FRAME)
    open_sockets[cid] = open_sockets.get(cid, 0) + 1
    try:
        return await _serve(request, ws, redis, cid, claims, last_id)
    finally:
        open_sockets[cid] -= 1
        if open_sockets[cid] <= 0:
            del open_sockets[cid]


async def _serve(request: web.Request, ws: web.WebSocketResponse, redis: Redis, cid: str, claims: Claims,
                 last_id: str) -> web.WebSocketResponse:
    await ws.prepare(request)
    conn = _Connection(request.app, ws, cid, claims, last_id or await _stream_end(redis, cid))
    await conn.send({"type": "hello", "stream_id": conn.last_id, "client": cid})
    pump = asyncio.create_task(conn.pump())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await conn.handle(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await conn.error("binary", "send JSON text messages")
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        if not ws.closed:
            await ws.close()
    return ws
