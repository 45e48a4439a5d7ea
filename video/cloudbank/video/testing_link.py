"""An impaired network link for tests and benches: a userspace UDP relay on 127.0.0.1 that loses,
delays (with jitter) and blacks out packets between a peer and a video node.

This kernel has no netem, so the link sits in the ICE path instead: the peer's offer is rewritten so
the node sees the relay's *node face* as the peer's only candidate, and the node's answer so the
peer sees the relay's *peer face* as the node's. Every packet each side sends (STUN, DTLS, SRTP)
then goes through the relay, which forwards it out of its other face.

    peer 127.0.0.1:P  <->  [peer face A | relay | node face B]  <->  node 127.0.0.1:N

Counters say what passed and what was dropped, so a test can prove the media really took this
path, and RTCP feedback is counted by type (see `_feedback`).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Literal, cast

Direction = Literal["up", "down"]  # up: peer -> node; down: node -> peer
Address = tuple[str, int]

# RFC 5245 host candidate on UDP: "a=candidate:<f> <c> udp <prio> <ip> <port> typ host"
_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ host.*)$", re.I | re.M)

# RTCP feedback types (RFC 4585): transport-layer 205 fmt 1 is a generic NACK, payload-specific
# 206 fmt 1 a PLI and fmt 4 a FIR.
RTPFB, PSFB = 205, 206


@dataclass
class Impairment:
    """What the link does to each packet, in each direction."""

    loss: float = 0.0  # probability a packet is dropped
    delay_s: float = 0.0  # one-way delay
    jitter_s: float = 0.0  # each packet's delay is delay_s +- up to jitter_s (slight reordering)
    seed: int = 1


@dataclass
class Counters:
    """One direction's packets."""

    received: int = 0
    forwarded: int = 0
    lost: int = 0  # dropped by random loss
    blacked_out: int = 0  # dropped during a blackout
    rtp: int = 0  # forwarded packets that were RTP (media)
    media_bytes: int = 0
    nacks: int = 0  # RTCP generic NACKs seen (before loss)
    plis: int = 0
    firs: int = 0
    last_forwarded: float = 0.0
    keyframe_requests_at: list[float] = field(default_factory=list)  # PLI/FIR arrivals (monotonic)


@dataclass
class _Face(asyncio.DatagramProtocol):
    link: LossyLink
    direction: Direction  # the direction of packets arriving on this face
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.link._arrived(self.direction, data)


@dataclass
class LossyLink:
    """The relay; `await start()`, route a peer through it with `offer()`/`answer()`, `close()`."""

    impairment: Impairment = field(default_factory=Impairment)
    host: str = "127.0.0.1"
    up: Counters = field(default_factory=Counters)
    down: Counters = field(default_factory=Counters)
    peer_address: Address | None = None  # the peer's own candidate, from its offer
    node_address: Address | None = None  # the node's candidate, from its answer
    _peer_face: _Face | None = None
    _node_face: _Face | None = None
    _dark_until: float = 0.0
    _random: random.Random = field(default_factory=random.Random)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._random.seed(self.impairment.seed)
        _, self._peer_face = await loop.create_datagram_endpoint(
            lambda: _Face(self, "up"), local_addr=(self.host, 0))
        _, self._node_face = await loop.create_datagram_endpoint(
            lambda: _Face(self, "down"), local_addr=(self.host, 0))

    def _face_address(self, face: _Face | None) -> Address:
        assert face is not None and face.transport is not None, "start() the link first"
        host, port = face.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def peer_face(self) -> Address:
        """Where the peer sends: the node's address as the peer sees it."""
        return self._face_address(self._peer_face)

    @property
    def node_face(self) -> Address:
        """Where the node sends: the peer's address as the node sees it."""
        return self._face_address(self._node_face)

    def counters(self, direction: Direction) -> Counters:
        return self.up if direction == "up" else self.down

    # -- putting the link in the path ----------------------------------------------------------

    def offer(self, sdp: str) -> str:
        """The peer's offer as the node must see it: its one host candidate is the node face."""
        self.peer_address = _only_candidate(sdp, "offer")
        return _replace_candidates(sdp, self.node_face)

    def answer(self, sdp: str) -> str:
        """The node's answer as the peer must see it: its one host candidate is the peer face."""
        self.node_address = _only_candidate(sdp, "answer")
        return _replace_candidates(sdp, self.peer_face)

    # -- impairing ------------------------------------------------------------------------------

    def blackout(self, seconds: float) -> float:
        """Drop every packet both ways for `seconds` from now; returns when it ends (monotonic)."""
        self._dark_until = time.monotonic() + seconds
        return self._dark_until

    @property
    def dark(self) -> bool:
        return time.monotonic() < self._dark_until

    def _arrived(self, direction: Direction, data: bytes) -> None:
        c = self.counters(direction)
        c.received += 1
        _feedback(data, c)
        if self.dark:
            c.blacked_out += 1
            return
        imp = self.impairment
        if imp.loss and self._random.random() < imp.loss:
            c.lost += 1
            return
        delay = max(0.0, imp.delay_s + self._random.uniform(-imp.jitter_s, imp.jitter_s))
        if delay:
            asyncio.get_running_loop().call_later(delay, self._deliver, direction, data)
        else:
            self._deliver(direction, data)

    def _deliver(self, direction: Direction, data: bytes) -> None:
        face, to = ((self._node_face, self.node_address) if direction == "up"
                    else (self._peer_face, self.peer_address))
        if face is None or face.transport is None or face.transport.is_closing() or to is None:
            return
        face.transport.sendto(data, to)
        c = self.counters(direction)
        c.forwarded += 1
        c.last_forwarded = time.monotonic()
        if _is_rtp(data):
            c.rtp += 1
            c.media_bytes += len(data)

    def close(self) -> None:
        for face in (self._peer_face, self._node_face):
            if face is not None and face.transport is not None:
                face.transport.close()


def _only_candidate(sdp: str, what: str) -> Address:
    """The candidate of the first media section: with BUNDLE the only transport that carries media
    (a peer without max-bundle offers one per section; the node's answer keeps the first)."""
    found = [(m.group(2), int(m.group(3))) for m in _CANDIDATE.finditer(sdp)]
    if not found:
        raise ValueError(f"the {what} carries no UDP host candidate to relay")
    if "a=group:BUNDLE" not in sdp and len(set(found)) > 1:
        raise ValueError(f"the {what} has several transports and no BUNDLE: {sorted(set(found))}")
    return found[0]


def _replace_candidates(sdp: str, to: Address) -> str:
    sdp = _CANDIDATE.sub(lambda m: f"{m.group(1)}{to[0]} {to[1]}{m.group(4)}", sdp)
    # The default candidate (m= port, c= address) must match, or the peer may reject the SDP.
    sdp = re.sub(r"^(m=\S+ )\d+", lambda m: f"{m.group(1)}{to[1]}", sdp, flags=re.M)
    return re.sub(r"^c=IN IP4 \S+", f"c=IN IP4 {to[0]}", sdp, flags=re.M)


def _is_rtp(data: bytes) -> bool:
    # RFC 7983 demultiplexing: 128-191 is RTP/RTCP; RTCP packet types are 192-223 (RFC 5761).
    return len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223


def _feedback(data: bytes, c: Counters) -> None:
    """Count RTCP NACK/PLI/FIR by the first packet's header.

    SRTCP leaves the first 8 bytes (V/P/FMT, packet type, length, sender SSRC) in clear and
    encrypts the rest, so only the first packet of a compound is visible. aiortc sends each
    NACK and PLI alone (`RTCRtpReceiver._send_rtcp_nack/_pli` pass one packet), so for aiortc
    peers this counts them all; a browser puts them after a receiver report, hidden.
    """
    if len(data) < 8 or not 128 <= data[0] <= 191:
        return
    fmt, kind = data[0] & 0x1F, data[1]
    if kind == RTPFB and fmt == 1:
        c.nacks += 1
    elif kind == PSFB and fmt in (1, 4):
        if fmt == 1:
            c.plis += 1
        else:
            c.firs += 1
        if len(c.keyframe_requests_at) < 10_000:
            c.keyframe_requests_at.append(time.monotonic())
