"""`GET /video/ws?token=<join token>`: one party's signalling connection (docs/protocol.md).

The token is checked before the WebSocket opens (401/403/409 as JSON): a `join` token scoped
`session:<id>`, with a `party` claim and a `node` claim naming this node. Then the client offers,
may trickle candidates, and the node answers. Every refusal afterwards is an
`{"type": "error", "code", "message"}` message; the fatal ones (flooding, ICE timeout, replaced by
a rejoin, room full, shutdown) also close the socket. Whatever happens, the party's peer connection
is closed and the room forgets it when the socket ends, and the other party is not disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from aiohttp import WSMsgType, web
from aiortc.sdp import candidate_from_sdp

from cloudbank.platform import access
from cloudbank.platform.errors import BadRequest, Conflict, Forbidden
from cloudbank.platform.events import ended_key
from cloudbank.platform.service import CONFIG, REDIS, authenticate
from cloudbank.platform.talk import talk_key
from cloudbank.platform.validation import decode_json, limit, parse
from cloudbank.video.errors import (
    BadMessage,
    Draining,
    Flooding,
    IceTimeout,
    NotAllowed,
    RoomFull,
    SignallingError,
)
from cloudbank.video.ice import ice_servers
from cloudbank.video.packets import Party
from cloudbank.video.registry import NODE_ID, REGISTRY
from cloudbank.video.room import HEARERS, PARTIES, ROOMS, Member, Room
from cloudbank.video.transcription import room_transcription

log = logging.getLogger("cloudbank.video.signalling")

MAX_MESSAGE_BYTES = 64 * 1024  # an SDP offer with many candidates fits easily
MAX_SDP_CHARS = 60_000
MAX_CANDIDATES = 64
RATE_PER_S = 20.0  # sustained messages a second; a burst of BURST is fine
BURST = 60.0
FATAL = (Flooding, IceTimeout, RoomFull, Draining)


@dataclass(frozen=True)
class Offer:
    type: Literal["offer"]
    sdp: str = field(metadata=limit(MAX_SDP_CHARS))


@dataclass(frozen=True)
class CandidateBody:
    candidate: str = field(metadata=limit(512))
    sdpMid: str | None = field(default=None, metadata=limit(32))  # noqa: N815 - the browser's name
    sdpMLineIndex: int | None = None  # noqa: N815
    usernameFragment: str | None = field(default=None, metadata=limit(256))  # noqa: N815


@dataclass(frozen=True)
class CandidateMessage:
    type: Literal["candidate"]
    candidate: CandidateBody | None = None


@dataclass(frozen=True)
class Talk:
    """A supervisor's microphone: on to the teller (whisper), to both (barge) or off."""

    type: Literal["talk"]
    mode: Literal["off", "whisper", "barge"]


@dataclass(frozen=True)
class Simple:
    type: Literal["snapshot", "leave"]


@dataclass(frozen=True)
class Ping:
    """A liveness check (the events socket has the same): answered `{type: "pong", nonce?}`."""

    type: Literal["ping"]
    nonce: str | None = field(default=None, metadata=limit(64))


def session_of(scope: str) -> str:
    prefix, _, session_id = scope.partition(":")
    if prefix != "session" or not session_id or len(session_id) > 128:
        raise Forbidden("a join token is scoped to one session ('session:<id>')")
    return session_id


async def video_ws(request: web.Request) -> web.StreamResponse:
    """Check the join token, then run the party's signalling over a WebSocket."""
    app = request.app
    claims = await authenticate(request, roles=["join"], scope=None, url_token=True)
    session_id = session_of(claims.scope)
    party = claims.get("party")
    if party not in PARTIES:
        raise Forbidden("the join token names no party (customer, teller or supervisor)")
    if claims.get("node") != app[NODE_ID]:
        raise Forbidden("the join token is for another video node; ask the platform to join again")
    if await app[REDIS].exists(ended_key(session_id)):
        raise Conflict("this call has ended; a join token cannot open it again", code="call_ended")
    rooms = app[ROOMS]
    room = rooms.get(session_id)
    if room is not None and room.closed:
        room = None  # still flushing its recording on the way out: this party starts a new one
    if room is None and app[REGISTRY].draining:
        raise Conflict("this video node is draining and takes no new calls; ask the platform again",
                       code="draining")
    if room is not None:
        try:
            room.admit(cast(Party, party), claims.sub)
        except RoomFull as exc:
            raise Conflict(exc.message, code=exc.code) from None
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=20.0)
    await ws.prepare(request)
    room = rooms.open(session_id)
    connection = Connection(ws, room, cast(Party, party), claims.sub, app[CONFIG].video_ice_timeout_s)
    connection.redis = app[REDIS]
    servers = ice_servers(app[CONFIG], claims.sub)
    app[REGISTRY].changed()
    try:
        await connection.run(servers)
    finally:
        app[REGISTRY].changed()
    return ws


class Connection:
    """One party's signalling socket and, once it offered, its member of the room."""

    def __init__(self, ws: web.WebSocketResponse, room: Room, party: Party, sub: str, ice_timeout_s: float) -> None:
        self.ws = ws
        self.room = room
        self.party = party
        self.sub = sub
        self.ice_timeout_s = ice_timeout_s
        self.member: Member | None = None
        self.pending: list[CandidateBody] = []
        self.candidates = 0
        self._tokens = BURST
        self._last = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        self._main: asyncio.Task[Any] | None = None
        self._fatal: SignallingError | None = None
        self.redis: Any = None  # where the platform says whether this supervisor may talk

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_json(message)

    async def kick(self, error: SignallingError) -> None:
        """End this connection with `error`, from any task (a rejoin, the ICE watchdog, shutdown).

        The socket is closed by its own handler task: closing it from another task while the
        handler reads would wait for the close handshake in the wrong place.
        """
        if self._main is None or self._main is asyncio.current_task():
            await self._close_with(error)
        elif self._fatal is None:
            self._fatal = error
            self._main.cancel()

    async def _close_with(self, error: SignallingError) -> None:
        with contextlib.suppress(Exception):
            await self.send(error.to_message())
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def run(self, servers: list[dict[str, Any]]) -> None:
        self._main = asyncio.current_task()
        self.room.sockets += 1  # the room must not end under a socket that has not offered yet
        try:
            await self.send({"type": "joined", "session_id": self.room.session_id, "party": self.party,
                             "peers": [p for p in self.room.parties() if p != self.party],
                             "ice_servers": servers, "transcription": room_transcription(self.room.sinks)})
            deadline = time.monotonic() + self.ice_timeout_s
            while not self.ws.closed:
                timeout = None if self.member is not None else max(0.0, deadline - time.monotonic())
                try:
                    msg = await self.ws.receive(timeout=timeout)
                except TimeoutError:
                    raise IceTimeout("no offer arrived in time; join again") from None
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                try:
                    self._throttle()
                    if msg.type != WSMsgType.TEXT:
                        raise BadMessage("send JSON text messages")
                    if await self._handle(msg.data) == "leave":
                        break
                except SignallingError as exc:
                    if isinstance(exc, FATAL):
                        raise
                    await self.send(exc.to_message())
        except SignallingError as exc:
            await self._close_with(exc)
        except asyncio.CancelledError:
            if self._fatal is None or self._main is None:
                raise  # the server is shutting down
            self._main.uncancel()
            await self._close_with(self._fatal)
        finally:
            # aiohttp cancels the handler when the client's connection drops: the clean-up must
            # still run to the end, so it runs in its own task.
            await asyncio.shield(asyncio.ensure_future(self._cleanup()))

    async def _cleanup(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(BaseException):
                await self._watchdog
        self.room.sockets -= 1
        if self.member is not None:
            await self.room.leave(self.member)
        if not self.room.members and not self.room.sockets and not self.room.closed:
            await self.room.close()  # the last one out ends the call
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()

    def _throttle(self) -> None:
        now = time.monotonic()
        self._tokens = min(BURST, self._tokens + (now - self._last) * RATE_PER_S)
        self._last = now
        if self._tokens < 1:
            raise Flooding("too many messages; this connection is closed")
        self._tokens -= 1

    async def _handle(self, text: str) -> str:
        try:
            data = decode_json(text, "the message")
        except BadRequest as exc:
            raise BadMessage(exc.message) from None
        kind = data.get("type") if isinstance(data, dict) else None
        allowed = access.SIGNALLING_MESSAGES.get(kind) if isinstance(kind, str) else None
        if allowed is not None and self.party not in allowed:
            raise NotAllowed(f"a {self.party} may not send {kind} messages (only {' or '.join(allowed)})")
        try:
            if kind == "offer":
                await self._offer(parse(Offer, data))
            elif kind == "candidate":
                await self._candidate(parse(CandidateMessage, data))
            elif kind == "talk":
                await self._talk(parse(Talk, data))
            elif kind in ("snapshot", "leave"):
                parse(Simple, data)
                if kind == "leave":
                    return "leave"
                await self._snapshot()
            elif kind == "ping":
                ping = parse(Ping, data)
                await self.send({"type": "pong"} if ping.nonce is None else {"type": "pong", "nonce": ping.nonce})
            else:
                raise BadMessage("unknown message type; expected offer, candidate, talk, snapshot, leave or ping")
        except BadRequest as exc:
            raise BadMessage(exc.message) from None
        return str(kind)

    async def _offer(self, offer: Offer) -> None:
        if self.member is not None:
            raise BadMessage("this connection already has a peer connection; to start over, join again")
        self.member, answer = await self.room.join(self.party, self.sub, offer.sdp, self.send, self.kick)
        await self.send({"type": "answer", "sdp": answer})
        speaking = self.room.talking()
        if speaking is not None and self.party in HEARERS[speaking.talk]:
            await self.send({"type": "talk", "mode": speaking.talk})  # a rejoin hears it still
        pending, self.pending = self.pending, []
        for c in pending:
            await self._add_candidate(c)
        self._watchdog = asyncio.create_task(self._watch(self.member))

    async def _candidate(self, message: CandidateMessage) -> None:
        body = message.candidate
        if body is None or not body.candidate:
            return  # end of candidates: aiortc keeps checking what it has
        self.candidates += 1
        if self.candidates > MAX_CANDIDATES:
            raise BadMessage(f"more than {MAX_CANDIDATES} candidates; the rest are ignored")
        text = body.candidate.removeprefix("candidate:")
        try:
            candidate_from_sdp(text)
        except Exception:  # noqa: BLE001 - aiortc's parser raises several types on garbage
            raise BadMessage("the candidate is not a valid ICE candidate line") from None
        if self.member is None:
            self.pending.append(body)
        else:
            await self._add_candidate(body)

    async def _add_candidate(self, body: CandidateBody) -> None:
        assert self.member is not None
        candidate = candidate_from_sdp(body.candidate.removeprefix("candidate:"))
        # The node bundles everything on its first transport; aiortc only adds a candidate to an
        # unbundled transceiver, so address the first one whatever m-line the client named.
        transceivers = self.member.pc.getTransceivers()
        candidate.sdpMid = transceivers[0].mid if transceivers else None
        candidate.sdpMLineIndex = 0
        try:
            await self.member.pc.addIceCandidate(candidate)
        except Exception as exc:  # noqa: BLE001
            raise BadMessage(f"the candidate was refused ({type(exc).__name__})") from None

    async def _talk(self, message: Talk) -> None:
        """Turn this supervisor's microphone on or off (access.SIGNALLING_MESSAGES: supervisors only);
        on only as far as the platform allowed it."""
        member = self.member
        if member is None or "audio" not in member.taps:
            raise BadMessage("offer a sendonly audio section (your microphone) before you talk")
        if message.mode != "off":
            allowed = await self.redis.get(talk_key(self.room.session_id, self.sub)) if self.redis else None
            allowed = allowed.decode() if isinstance(allowed, bytes) else allowed
            if allowed != message.mode:
                raise NotAllowed(f"the platform has not allowed you to {message.mode} in this call; "
                                 f"ask it first (POST sessions/<id>/talk)")
        await self.room.set_talk(member, message.mode)
        await self.send({"type": "talk", "mode": message.mode})

    async def _snapshot(self) -> None:
        for sink in self.room.sinks:
            take = getattr(sink, "snapshot", None)
            if take is not None:
                result = await take()
                await self.send({"type": "snapshot", **result})
                return
        raise SignallingError("snapshots are not available on this node")

    async def _watch(self, member: Member) -> None:
        """ICE and DTLS must complete in time; a connection that fails later ends the socket too."""
        try:
            await asyncio.wait_for(member.connected.wait(), self.ice_timeout_s)
        except TimeoutError:
            await self.kick(IceTimeout("the media connection did not come up in time; join again"))
            return
        await member.failed.wait()
        if self.room.members.get(member.key) is member:
            await self.kick(SignallingError("the media connection failed; join again"))
