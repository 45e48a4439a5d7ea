"""Synthetic call parties for tests and `cloudbank bench media`: real aiortc peers that join a video
node over its signalling WebSocket, send pixel-stamped video and a tone, and check what arrives.

A stamp encodes (source, counter) as 32 black/white blocks along the top of each frame, bold
enough to survive VP8 at low bitrates, so a receiver can tell that frames arrive intact (the
stamp reads back with the right source) and in order (counters increase).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from cloudbank.video.ice import restrict_ice

BITS = 32
VIDEO_CLOCK = 90000
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def stamp_bits(source: int, counter: int) -> list[int]:
    value = ((source & 0xFF) << 24) | (counter & 0xFFFFFF)
    return [(value >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def stamped_frame(source: int, counter: int, width: int = 640, height: int = 480) -> av.VideoFrame:
    """A yuv420p frame whose top band carries (source, counter) and whose body moves a little."""
    luma = np.full((height, width), 96, dtype=np.uint8)
    block = width // BITS
    band = max(16, block)
    for i, bit in enumerate(stamp_bits(source, counter)):
        luma[:band, i * block:(i + 1) * block] = 235 if bit else 16
    x = (counter * 7) % max(1, width - 64)
    luma[band + 32:band + 96, x:x + 64] = 200  # motion, so the encoder has something to code
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
    return frame


def read_stamp(frame: av.VideoFrame) -> tuple[int, int] | None:
    """(source, counter) from a decoded stamped frame, or None when the band is not a stamp."""
    luma = frame.to_ndarray(format="gray")
    height, width = luma.shape
    block = width // BITS
    band = max(16, block)
    if height < band:
        return None
    value = 0
    for i in range(BITS):
        cell = luma[band // 4: band * 3 // 4, i * block + block // 4: (i + 1) * block - block // 4]
        mean = float(cell.mean())
        if 70 < mean < 180:
            return None  # neither black nor white: not a stamp (or a badly damaged frame)
        value = (value << 1) | (1 if mean >= 128 else 0)
    return value >> 24, value & 0xFFFFFF


class StampedVideoTrack(MediaStreamTrack):
    """Video frames stamped with `source` and a counter, at `fps`."""

    kind = "video"

    def __init__(self, source: int, width: int = 640, height: int = 480, fps: int = 15) -> None:
        super().__init__()
        self.source, self.width, self.height, self.fps = source, width, height, fps
        self.counter = 0
        self._start: float | None = None
        self.sent_at: dict[int, float] = {}

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.counter / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = stamped_frame(self.source, self.counter, self.width, self.height)
        frame.pts = self.counter * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        if len(self.sent_at) < 100_000:
            self.sent_at[self.counter] = time.monotonic()
        self.counter += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 20 ms mono 48 kHz sine tone, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self.samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.samples / 48000
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (np.arange(960) + self.samples) / 48000
        pcm = (0.2 * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += 960
        return frame


@dataclass
class Received:
    """What a peer got: frames per kind and the stamps it read (source, counter, arrival)."""

    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    stamps: list[tuple[int, int, float]] = field(default_factory=list)
    unreadable: int = 0
    tracks: int = 0

    def counters(self, source: int) -> list[int]:
        return [c for s, c, _ in self.stamps if s == source]


class SdpRoute(Protocol):
    """Rewrites the SDP a peer sends and receives, e.g. to route its media through a relay."""

    def offer(self, sdp: str) -> str: ...

    def answer(self, sdp: str) -> str: ...


class Peer:
    """A customer, teller or supervisor that joins a node's room with an aiortc peer connection."""

    def __init__(self, party: str, source: int = 0, *, tracks: Sequence[MediaStreamTrack] | None = None,
                 addresses: Sequence[str] = ("127.0.0.1",), read_stamps: bool = True,
                 microphone: MediaStreamTrack | None = None, route: SdpRoute | None = None) -> None:
        self.party = party
        self.route = route  # e.g. testing_link.LossyLink: the peer's packets go through it
        self.microphone = microphone  # a supervisor's: offered as a fifth, sendonly audio section
        self.source = source
        self.addresses = list(addresses)
        self.read_stamps = read_stamps
        if tracks is None and party != "supervisor":
            tracks = [ToneTrack(), StampedVideoTrack(source)]
        self.tracks = list(tracks or [])
        self.pc: RTCPeerConnection | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session: aiohttp.ClientSession | None = None
        self.messages: list[dict[str, Any]] = []
        self.received = Received()
        self._tasks: list[asyncio.Task[Any]] = []
        self._answer: asyncio.Future[str] | None = None

    async def join(self, url: str, token: str, *, session: aiohttp.ClientSession | None = None,
                   timeout: float = 20.0) -> None:
        """Open the WebSocket, offer, apply the answer and wait until media is connected."""
        self.session = session or aiohttp.ClientSession()
        self._own_session = session is None
        self.ws = await self.session.ws_connect(f"{url}?token={token}")
        joined = await self.ws.receive_json(timeout=timeout)
        if joined.get("type") != "joined":
            raise RuntimeError(f"not joined: {joined}")
        self.messages.append(joined)
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        if self.party == "supervisor":
            for _ in range(2):
                pc.addTransceiver("audio", direction="recvonly")
                pc.addTransceiver("video", direction="recvonly")
            if self.microphone is not None:
                pc.addTransceiver(self.microphone, direction="sendonly")
        else:
            for track in self.tracks:
                pc.addTrack(track)
        restrict_ice(pc, self.addresses, LOOPBACK)
        pc.on("track", self._on_track)
        self._answer = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._read()))
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        await self.ws.send_json({"type": "offer", "sdp": self.route.offer(offer) if self.route else offer})
        answer = await asyncio.wait_for(self._answer, timeout)
        if self.route is not None:
            answer = self.route.answer(answer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        deadline = time.monotonic() + timeout
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise RuntimeError(f"{self.party} did not connect: {pc.connectionState}")
            await asyncio.sleep(0.05)

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            self.messages.append(data)
            if data.get("type") == "answer" and self._answer is not None and not self._answer.done():
                self._answer.set_result(data["sdp"])
            elif data.get("type") == "error" and self._answer is not None and not self._answer.done():
                self._answer.set_exception(RuntimeError(f"{data.get('code')}: {data.get('message')}"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.received.tracks += 1
        self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.received.frames[track.kind] += 1
                if track.kind == "video" and self.read_stamps and isinstance(frame, av.VideoFrame):
                    stamp = read_stamp(frame)
                    if stamp is None:
                        self.received.unreadable += 1
                    elif len(self.received.stamps) < 100_000:
                        self.received.stamps.append((stamp[0], stamp[1], time.monotonic()))

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "error"]

    async def drop(self) -> None:
        """Vanish without a word (a network drop): close the peer connection and the socket."""
        await self.close(say_leave=False)

    async def close(self, say_leave: bool = True) -> None:
        if self.ws is not None and not self.ws.closed and say_leave:
            with contextlib.suppress(Exception):
                await self.ws.send_json({"type": "leave"})
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        if self.session is not None and self._own_session:
            await self.session.close()


async def join_token(engine: Any, session_id: str, party: str, node: str, sub: str | None = None,
                     ttl_s: float = 300) -> str:
    """A join token as the platform issues it, from a KeyRing on the same database."""
    from cloudbank.platform.tokens import KeyRing

    keys = KeyRing(engine)
    await keys.load()
    return keys.issue(sub or f"{party}-1", "join", f"session:{session_id}", ttl_s, party=party, node=node)
