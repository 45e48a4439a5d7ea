"""One party's video call: an aiortc peer connection to the video node, signalled over its WebSocket.

The client always offers (docs/protocol.md, "Video signalling"). aiortc puts its gathered candidates
in the offer; candidates the node trickles are added as they come. When the signalling socket or
the peer connection drops, the call rejoins by itself: a fresh join token (when it has a way to get
one), a new socket, a new peer connection and offer, with the same local sources; the node keeps
the other party's media flowing meanwhile.

When the call's video node dies, the platform moves the call to another node and sends each party
`video.rejoin {session, video}`; pass the owner's platform events to `handle_event` (or call
`rejoin(grant)`) and the call moves to the new node. Only one rejoin runs at a time: a grant that
arrives while one is retrying (e.g. against the dead node, still listed until its heartbeat key
expires) is used at its next attempt, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.errors import CallError
from cloudbank.kiosk_client.ice import gather_only_on
from cloudbank.kiosk_client.media_sources import MediaSources, read_stamp

log = logging.getLogger("cloudbank.kiosk_client.call")

GrantSource = Callable[[], Awaitable[VideoGrant]]
FrameCallback = Callable[[str, Any], None]


def outgoing(relay: MediaRelay, track: MediaStreamTrack) -> MediaStreamTrack:
    """What a peer connection sends of a source track (the relay lets a rejoin send it again).

    Video is unbuffered: a frame the sender could not take in time is worthless once the next one
    exists. Audio is buffered: every 20 ms frame is sent, or words go missing from what the teller
    hears and from the transcript whenever the event loop was busy for a moment.
    """
    return relay.subscribe(track, buffered=track.kind == "audio")


@dataclass
class RemoteMedia:
    """What arrived from the other side: frame counts per kind, decoded stamps, the last frame."""

    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    stamps: list[tuple[int, int]] = field(default_factory=list)
    last_video: Any = None
    read_stamps: bool = True
    max_stamps: int = 10000

    def add(self, kind: str, frame: Any) -> None:
        self.frames[kind] = self.frames.get(kind, 0) + 1
        if kind == "video":
            self.last_video = frame
            if self.read_stamps and len(self.stamps) < self.max_stamps:
                stamp = read_stamp(frame)
                if stamp is not None:
                    self.stamps.append(stamp)


def _ice_servers(raw: Sequence[dict[str, Any]]) -> list[RTCIceServer]:
    servers = []
    for s in raw:
        urls = s.get("urls")
        if urls:
            servers.append(RTCIceServer(urls=urls, username=s.get("username"), credential=s.get("credential")))
    return servers


class SdpRoute(Protocol):
    """Rewrites the SDP a call sends and receives (tests route media through a relay this way)."""

    def offer(self, sdp: str) -> str: ...

    def answer(self, sdp: str) -> str: ...


class Call:
    """A party in one session's call. Use `await call.join()`, then `await call.leave()`."""

    def __init__(self, grant: VideoGrant, sources: MediaSources, *, refresh: GrantSource | None = None,
                 ice_addresses: Sequence[str] = (), auto_rejoin: bool = True, max_rejoins: int = 5,
                 connect_timeout_s: float = 20.0, on_frame: FrameCallback | None = None,
                 read_stamps: bool = True, session_id: str = "", route: SdpRoute | None = None) -> None:
        self.grant = grant
        self.route = route  # tests: rewrites offer and answer, e.g. through cloudbank.video.testing_link
        self.session_id = session_id
        self.sources = sources
        self.refresh = refresh
        self.ice_addresses = tuple(ice_addresses)
        self.auto_rejoin = auto_rejoin
        self.max_rejoins = max_rejoins
        self.connect_timeout_s = connect_timeout_s
        self.on_frame = on_frame
        self.remote = RemoteMedia(read_stamps=read_stamps)
        # A supervisor's voice (barge-in) on the call's third audio section; `talk` is what the node
        # last said about it: "off", or "barge" while a supervisor speaks to the customer too.
        self.supervisor_voice = RemoteMedia(read_stamps=False)
        self.talk = "off"
        self.joined_info: dict[str, Any] = {}
        self.peers: set[str] = set()
        self.rejoins = 0
        self.state = "new"   # new, connecting, connected, rejoining, left, failed
        self.changed = asyncio.Condition()
        self._relay = MediaRelay()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._leaving = False
        self._rejoining = asyncio.Lock()
        self._offered: VideoGrant | None = None   # from the platform (video.rejoin), not yet used
        self._offer_arrived = asyncio.Event()

    @classmethod
    async def for_session(cls, client: PlatformClient, session_id: str, sources: MediaSources,
                          **options: Any) -> Call:
        """A customer's call: join tokens come from `POST sessions/<id>/join` (fresh on rejoin)."""
        async def refresh() -> VideoGrant:
            return await client.join_session(session_id)

        return cls(await refresh(), sources, refresh=refresh, session_id=session_id, **options)

    @property
    def pc(self) -> RTCPeerConnection | None:
        return self._pc

    async def _set_state(self, state: str) -> None:
        self.state = state
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Wait until `predicate()` holds (checked on every state change and every 0.1 s)."""
        async def check() -> None:
            while not predicate():
                async with self.changed:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), 0.1)

        await asyncio.wait_for(check(), timeout)

    # -- joining --------------------------------------------------------------------------------

    async def join(self) -> None:
        """Connect to the node and wait until media flows; raises CallError when refused."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        await self._set_state("connecting")
        try:
            await self._connect()
        except BaseException:
            await self._teardown()
            await self._set_state("failed")
            raise
        self._supervisor = asyncio.create_task(self._supervise())

    async def _connect(self) -> None:
        if self._http is None:  # a call whose first join failed may still be moved (`rejoin(grant)`)
            self._http = aiohttp.ClientSession()
        self._lost.clear()
        try:
            ws = await self._http.ws_connect(self.grant.ws_url, heartbeat=10)
        except aiohttp.WSServerHandshakeError as exc:
            raise CallError(f"the video node refused the join ({exc.status} {exc.message})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise CallError(f"cannot reach the video node at {self.grant.url}: {exc}") from None
        self._ws = ws
        joined = await self._receive(ws, "joined")
        self.joined_info = joined
        self.peers = {str(p.get("party") if isinstance(p, dict) else p) for p in joined.get("peers") or []}
        servers = _ice_servers(joined.get("ice_servers") or self.grant.ice_servers)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._pc = pc
        for track in (self.sources.audio, self.sources.video):
            if track is not None:
                pc.addTrack(outgoing(self._relay, track))
        pc.addTransceiver("audio", direction="recvonly")  # where a supervisor who barges in is heard
        if self.ice_addresses:
            gather_only_on(pc, self.ice_addresses)
        connected = asyncio.get_running_loop().create_future()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            voice = any(t.receiver.track is track for t in pc.getTransceivers()[2:])
            self._spawn(self._consume(track, self.supervisor_voice if voice else self.remote))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and not connected.done():
                connected.set_result(True)
            elif pc.connectionState in ("failed", "closed") and pc is self._pc:
                if not connected.done():
                    connected.set_exception(CallError(f"the peer connection {pc.connectionState}"))
                self._lost.set()

        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        await ws.send_json({"type": "offer", "sdp": self.route.offer(offer) if self.route else offer})
        self._reader = asyncio.create_task(self._read(ws, pc))
        try:
            await asyncio.wait_for(asyncio.shield(connected), self.connect_timeout_s)
        except TimeoutError:
            raise CallError(f"no media connection to the video node within {self.connect_timeout_s} s") from None
        await self._set_state("connected")

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, expected: str) -> dict[str, Any]:
        try:
            msg = await asyncio.wait_for(ws.receive(), self.connect_timeout_s)
        except TimeoutError:
            raise CallError(f"the video node did not say '{expected}' in time") from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise CallError(f"the video node closed the signalling socket ({ws.close_code})")
        data = json.loads(msg.data)
        if data.get("type") == "error":
            raise CallError(f"the video node refused: {data.get('code')}: {data.get('message')}")
        if data.get("type") != expected:
            raise CallError(f"expected '{expected}' from the video node, got '{data.get('type')}'")
        return dict(data)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, pc: RTCPeerConnection) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                await self._handle(data, pc)
        finally:
            if not self._leaving and ws is self._ws:
                self._lost.set()

    async def _handle(self, data: dict[str, Any], pc: RTCPeerConnection) -> None:
        kind = data.get("type")
        if kind == "answer":
            answer = str(data["sdp"])
            if self.route is not None:
                answer = self.route.answer(answer)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        elif kind == "candidate":
            raw = data.get("candidate") or {}
            text = str(raw.get("candidate") or "")
            if text:
                candidate = candidate_from_sdp(text.removeprefix("candidate:"))
                candidate.sdpMid = raw.get("sdpMid")
                candidate.sdpMLineIndex = raw.get("sdpMLineIndex")
                await pc.addIceCandidate(candidate)
        elif kind == "peer.joined":
            self.peers.add(str(data.get("party")))
            await self._set_state(self.state)
        elif kind == "peer.left":
            self.peers.discard(str(data.get("party")))
            await self._set_state(self.state)
        elif kind == "talk":
            self.talk = "barge" if data.get("mode") == "barge" else "off"
            await self._set_state(self.state)
        elif kind == "error":
            log.warning("video node: %s: %s", data.get("code"), data.get("message"))

    async def _consume(self, track: MediaStreamTrack, into: RemoteMedia) -> None:
        kind = track.kind
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            into.add(kind, frame)
            if self.on_frame is not None and into is self.remote:
                self.on_frame(kind, frame)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- staying connected ----------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._leaving:
            await self._lost.wait()
            async with self._rejoining:
                if self._leaving:
                    return
                if not self._lost.is_set() and self._offered is None:
                    continue  # a rejoin ran while we waited for the lock: nothing left to do
                if not self.auto_rejoin:
                    await self._set_state("failed")
                    self._lost.clear()  # a grant from the platform (`rejoin(grant)`) may still revive it
                    continue
                try:
                    await self._rejoin_locked()
                except CallError as exc:
                    log.warning("call: giving up: %s", exc)   # state is "failed"; the owner decides
                    self._lost.clear()

    async def handle_event(self, event: dict[str, Any]) -> bool:
        """Act on a platform event meant for this call (`video.rejoin`: move to the node it names).
        Returns True when the event was this call's."""
        if event.get("type") != "video.rejoin" or not isinstance(event.get("video"), dict):
            return False
        session = event.get("session")
        session_id = str(session.get("id") if isinstance(session, dict) else session or "")
        if self.session_id and session_id != self.session_id:
            return False
        log.info("call: the platform moved the call to %s; rejoining there", event["video"].get("node"))
        await self.rejoin(VideoGrant.from_json(event["video"]))
        return True

    async def rejoin(self, grant: VideoGrant | None = None) -> None:
        """Drop the current connection and join again: with `grant` (e.g. from `video.rejoin`), else
        a fresh token when one can be had. While another rejoin is retrying, `grant` is handed to it
        and this returns at once."""
        if self._leaving:
            return
        if grant is not None:
            self._offered = grant
            self._offer_arrived.set()
            if self._rejoining.locked():
                return
        async with self._rejoining:
            if self._leaving or (grant is not None and self._offered is None):
                return  # the running rejoin used the grant already
            await self._rejoin_locked()

    async def _rejoin_locked(self) -> None:
        await self._set_state("rejoining")
        backoff, attempts = 0.3, 0
        while not self._leaving:
            self.rejoins += 1
            attempts += 1
            await self._close_connection()
            grant, self._offered = self._offered, None
            self._offer_arrived.clear()
            try:
                if grant is not None:
                    attempts = 1  # a new grant from the platform: a fresh budget of attempts
                    self.grant = grant
                elif self.refresh is not None:
                    self.grant = await self.refresh()
                await self._connect()
                log.info("call: rejoined (%d)", self.rejoins)
                return
            except Exception as exc:  # noqa: BLE001 - any failure is retried up to the limit
                log.warning("call: rejoin %d failed: %s", self.rejoins, exc)
                if attempts >= self.max_rejoins and self._offered is None:
                    await self._set_state("failed")
                    raise CallError(f"could not rejoin the call after {attempts} attempts: {exc}") from None
                # Back off, but go at once when the platform sends a grant for another node.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._offer_arrived.wait(), backoff)
                backoff = min(3.0, backoff * 2)

    async def drop(self) -> None:
        """Lose the connection abruptly, as a network drop would (no 'leave'); for tests and drills."""
        if self._ws is not None:
            await self._ws.close()

    async def _close_connection(self) -> None:
        ws, pc, reader = self._ws, self._pc, self._reader
        self._ws, self._pc, self._reader = None, None, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()

    async def _teardown(self) -> None:
        await self._close_connection()
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def leave(self) -> None:
        """Say goodbye to the node and close everything (local sources stay open)."""
        self._leaving = True
        self._lost.set()
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.send_json({"type": "leave"})
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._teardown()
        await self._set_state("left")
