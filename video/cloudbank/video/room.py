"""One room per call session: the parties' peer connections on this node and the packets between them.

Parties: customer and teller (1:1, each sends and receives audio+video) and supervisors (they
receive audio+video of the customer, then of the teller). A supervisor may also offer a fifth,
sendonly audio section (their microphone): the node drops its packets until the platform allowed a
whisper (forwarded to the teller only) or a barge-in (teller and customer), see `Member.talk`. A
teller or customer that offers a third, recvonly audio section receives that voice on it.

A second customer or teller is refused unless it is the same client (token `sub`) rejoining: then
its new peer connection replaces the old one and the other party's media keeps flowing without
renegotiation (the node's senders keep their SSRCs and continue their sequence numbers, see
forwarding.StreamRewriter).

Packets from a party go, as they arrive, to the room's sinks (recorder, audio tap, snapshot; see
packets.py) and then to every other member's sender for that party and kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from cloudbank.video.errors import BadSdp, NotAllowed, RoomFull, SignallingError
from cloudbank.video.forwarding import ReceiveTap, SendPort, add_forwarding_transceiver
from cloudbank.video.packets import KeyframeRequester, Kind, PacketSink, Party, TrackInfo

log = logging.getLogger("cloudbank.video.room")

PARTIES: tuple[Party, ...] = ("customer", "teller", "supervisor")
TALKERS: tuple[Party, ...] = ("customer", "teller")
MAX_SUPERVISORS = 3
MAX_SDP_MEDIA = 5
TALK_MODES = ("off", "whisper", "barge")
# Who hears a supervisor in each talk mode.
HEARERS: dict[str, tuple[Party, ...]] = {"off": (), "whisper": ("teller",), "barge": ("teller", "customer")}
MAX_SDP_CANDIDATES = 64

# Given a session id and a way to ask a party for a keyframe, make one of the room's sinks.
SinkFactory = Callable[[str, KeyframeRequester], PacketSink]
Notify = Callable[[dict[str, Any]], Awaitable[None]]
PreparePeer = Callable[[RTCPeerConnection], None]


def other(party: Party) -> Party:
    return "teller" if party == "customer" else "customer"


@dataclass(eq=False)
class Member:
    """One party's current peer connection in a room."""

    party: Party
    sub: str
    pc: RTCPeerConnection
    notify: Notify
    # Closes the member's signalling connection with an error (e.g. replaced by a rejoin).
    kick: Callable[[SignallingError], Awaitable[None]]
    taps: dict[Kind, ReceiveTap] = field(default_factory=dict)
    ports: dict[tuple[Party, Kind], SendPort] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    tracks: dict[tuple[int, int], TrackInfo] = field(default_factory=dict)
    # A supervisor's microphone: "off" (dropped), "whisper" (to the teller) or "barge" (to both).
    talk: str = "off"

    @property
    def key(self) -> str:
        return self.party if self.party != "supervisor" else f"supervisor:{self.sub}"


def check_offer(sdp: str, party: Party) -> bool:
    """Refuse an offer that aiortc cannot parse or that does not fit the party (BadSdp).

    True when it has the extra audio section: a supervisor's microphone (sendonly), or a
    talker's section for a supervisor's voice (recvonly).
    """
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # noqa: BLE001 - aiortc's parser raises whatever it trips on
        raise BadSdp(f"the offer is not valid SDP ({type(exc).__name__})") from None
    media = description.media
    kinds = [m.kind for m in media]
    if not media or len(media) > MAX_SDP_MEDIA or any(k not in ("audio", "video") for k in kinds):
        raise BadSdp("the offer must have audio and video sections only (no data channels)")
    extra = False
    if party == "supervisor":
        extra = kinds == ["audio", "video", "audio", "video", "audio"]
        if kinds not in (["audio", "video"], ["audio", "video", "audio", "video"]) and not extra:
            raise BadSdp("a supervisor offers recvonly audio+video for the customer, then the teller, "
                         "then optionally a sendonly audio section (their microphone)")
        watched = media[:4]
        if any(m.direction not in ("recvonly", "inactive") for m in watched):
            raise BadSdp("a supervisor receives the parties: offer recvonly transceivers for them")
        if extra and media[4].direction not in ("sendonly", "inactive"):
            raise BadSdp("a supervisor's microphone section is sendonly")
    else:
        extra = len(kinds) == 3 and kinds[2] == "audio"
        if sorted(kinds[:2]) != ["audio", "video"] or len(kinds) > 2 and not extra:
            raise BadSdp("offer one audio and one video section (and optionally a recvonly audio section "
                         "for a supervisor's voice)")
        if any(m.direction not in ("sendrecv", "sendonly") for m in media[:2]):
            raise BadSdp("the customer and the teller send audio and video: offer sendrecv")
        if extra and media[2].direction not in ("recvonly", "inactive"):
            raise BadSdp("the section for a supervisor's voice is recvonly")
    if sum(len(m.ice_candidates) for m in media) > MAX_SDP_CANDIDATES:
        raise BadSdp(f"the offer has more than {MAX_SDP_CANDIDATES} ICE candidates")
    for m in media:
        ice = m.ice
        if ice is None or not ice.usernameFragment or not ice.password or m.dtls is None or not m.dtls.fingerprints:
            raise BadSdp("the offer lacks ICE credentials or a DTLS fingerprint")
    return extra


class Room:
    """The parties of one session on this node."""

    def __init__(self, session_id: str, *, sinks: Sequence[SinkFactory] = (), video_mime: str = "video/VP8",
                 prepare_peer: PreparePeer | None = None,
                 on_empty: Callable[[Room], None] | None = None) -> None:
        self.session_id = session_id
        self.video_mime = video_mime
        self.members: dict[str, Member] = {}
        self.prepare_peer = prepare_peer
        self.on_empty = on_empty
        self.closed = False
        self.sockets = 0  # signalling connections open on this room, offered or not
        self._lock = asyncio.Lock()
        self.sinks: list[PacketSink] = []
        for factory in sinks:
            try:
                self.sinks.append(factory(session_id, self.request_keyframe))
            except Exception:  # noqa: BLE001 - the call goes on without that sink
                log.exception("room %s: a sink could not start", session_id)

    # --- who is here -------------------------------------------------------------------------
    def parties(self) -> list[Party]:
        return sorted({m.party for m in self.members.values()}, key=PARTIES.index)

    def peer_connections(self) -> list[RTCPeerConnection]:
        return [m.pc for m in self.members.values()]

    def admit(self, party: Party, sub: str) -> None:
        """Raise RoomFull unless `party`/`sub` may join now (a rejoin of the same client may)."""
        if self.closed:
            raise RoomFull("the call has ended")
        if party in TALKERS:
            current = self.members.get(party)
            if current is not None and current.sub != sub:
                raise RoomFull(f"this call already has a {party}")
        elif f"supervisor:{sub}" not in self.members:
            count = sum(1 for m in self.members.values() if m.party == "supervisor")
            if count >= MAX_SUPERVISORS:
                raise RoomFull("this call has as many supervisors as it allows")

    # --- joining and leaving -----------------------------------------------------------------
    async def join(self, party: Party, sub: str, offer_sdp: str, notify: Notify,
                   kick: Callable[[SignallingError], Awaitable[None]]) -> tuple[Member, str]:
        """Answer `offer_sdp` with a new peer connection for the party; returns it and the answer SDP.

        A rejoin replaces the party's previous member only once the new offer has been answered,
        so a bad rejoin never breaks a working call.
        """
        extra = check_offer(offer_sdp, party)
        self.admit(party, sub)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        member = Member(party=party, sub=sub, pc=pc, notify=notify, kick=kick)
        try:
            self._build(member, extra)
            if self.prepare_peer is not None:
                self.prepare_peer(pc)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:  # noqa: BLE001 - aiortc refuses bad offers with many types
                raise BadSdp(f"the offer cannot be answered: {str(exc)[:200] or type(exc).__name__}") from None
        except BaseException:
            await pc.close()
            raise
        async with self._lock:
            try:
                self.admit(party, sub)  # someone else may have joined while we negotiated
            except RoomFull:
                await pc.close()
                raise
            previous = self.members.get(member.key)
            self.members[member.key] = member
        self._watch(member)
        if previous is not None:
            await self._drop(previous)
            await previous.kick(_replaced())
        else:
            await self._tell_others(member, {"type": "peer.joined", "party": party})
        return member, pc.localDescription.sdp

    async def leave(self, member: Member) -> None:
        """The member's connection ended (leave, socket closed, ICE failed or timed out)."""
        async with self._lock:
            current = self.members.get(member.key) is member
            if current:
                del self.members[member.key]
        await self._drop(member)
        if current:
            if member.talk != "off":
                await self._tell_hearers(member.talk, {"type": "talk", "mode": "off"})
            await self._tell_others(member, {"type": "peer.left", "party": member.party})
            if not self.members and not self.sockets:
                await self.close()

    async def close(self) -> None:
        """End the call: every member dropped, every sink closed."""
        if self.closed:
            return
        self.closed = True
        members = list(self.members.values())
        self.members.clear()
        for m in members:
            await self._drop(m)
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:  # noqa: BLE001 - one sink failing must not keep others open
                log.exception("room %s: closing a sink failed", self.session_id)
        if self.on_empty is not None:
            self.on_empty(self)

    async def _drop(self, member: Member) -> None:
        member.failed.set()
        with contextlib.suppress(Exception):
            await member.pc.close()

    async def _tell_others(self, member: Member, message: dict[str, Any]) -> None:
        for m in list(self.members.values()):
            if m is not member:
                with contextlib.suppress(Exception):
                    await m.notify(message)

    async def _tell_hearers(self, mode: str, message: dict[str, Any]) -> None:
        for party in HEARERS.get(mode, ()):
            m = self.members.get(party)
            if m is not None:
                with contextlib.suppress(Exception):
                    await m.notify(message)

    def talking(self) -> Member | None:
        """The supervisor whose microphone is on (one at a time), if any."""
        return next((m for m in self.members.values() if m.party == "supervisor" and m.talk != "off"), None)

    async def set_talk(self, member: Member, mode: str) -> None:
        """Turn a supervisor's microphone to `mode` (the platform allowed it); tells who hears it."""
        if mode not in TALK_MODES:
            raise ValueError(mode)
        speaking = self.talking()
        if mode != "off" and speaking is not None and speaking is not member:
            raise NotAllowed("another supervisor is speaking in this call")
        before, member.talk = member.talk, mode
        if before == mode:
            return
        # Who stops hearing is told "off"; who starts hearing (or hears it differently) the new mode.
        stopped = [p for p in HEARERS[before] if p not in HEARERS[mode]]
        for party in stopped:
            m = self.members.get(party)
            if m is not None:
                with contextlib.suppress(Exception):
                    await m.notify({"type": "talk", "mode": "off"})
        await self._tell_hearers(mode, {"type": "talk", "mode": mode})

    # --- media -------------------------------------------------------------------------------
    def _build(self, member: Member, extra: bool = False) -> None:
        """Transceivers, taps and ports of a new member's peer connection, before the offer."""
        pc = member.pc
        if member.party == "supervisor":
            for source in TALKERS:
                for kind in cast(tuple[Kind, ...], ("audio", "video")):
                    t = add_forwarding_transceiver(pc, kind, "sendonly", self.video_mime)
                    member.ports[(source, kind)] = self._port(t.sender, source)
            if extra:  # the supervisor's microphone
                t = add_forwarding_transceiver(pc, "audio", "recvonly", self.video_mime)
                member.taps["audio"] = ReceiveTap(t.receiver, self._receiver_for(member, "audio"))
            return
        for kind in cast(tuple[Kind, ...], ("audio", "video")):
            t = add_forwarding_transceiver(pc, kind, "sendrecv", self.video_mime)
            member.ports[(other(member.party), kind)] = self._port(t.sender, other(member.party))
            member.taps[kind] = ReceiveTap(t.receiver, self._receiver_for(member, kind))
        if extra:  # a supervisor's voice, when one whispers or barges in
            t = add_forwarding_transceiver(pc, "audio", "sendonly", self.video_mime)
            member.ports[("supervisor", "audio")] = self._port(t.sender, "supervisor")

    def _port(self, sender: Any, source: Party) -> SendPort:
        # A viewer that loses a picture (PLI/FIR), or just started, needs a keyframe from the source.
        return SendPort(sender, on_keyframe_request=lambda: self.request_keyframe(source),
                        on_started=lambda: self.request_keyframe(source))

    def _receiver_for(self, member: Member, kind: Kind) -> Callable[[RtpPacket, RTCRtpCodecParameters],
                                                                    Awaitable[None]]:
        async def on_packet(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            if self.members.get(member.key) is not member:
                return  # replaced by a rejoin: its late packets go nowhere
            hearers: tuple[Party, ...] | None = None
            if member.party == "supervisor":
                hearers = HEARERS.get(member.talk, ())
                if not hearers:
                    return  # a microphone the platform has not allowed is neither heard nor recorded
            info = member.tracks.get((packet.ssrc, packet.payload_type))
            if info is None:
                info = TrackInfo(session_id=self.session_id, party=member.party, kind=kind,
                                 mime_type=codec.mimeType, clock_rate=codec.clockRate,
                                 payload_type=packet.payload_type, ssrc=packet.ssrc,
                                 channels=codec.channels or 1)
                member.tracks[(packet.ssrc, packet.payload_type)] = info
            for sink in self.sinks:
                try:
                    sink.on_rtp(info, packet)
                except Exception:  # noqa: BLE001 - a sink's bug must not stop the call's media
                    log.exception("room %s: a sink failed on a packet", self.session_id)
            for m in list(self.members.values()):
                port = m.ports.get((member.party, kind))
                if port is not None and m is not member and (hearers is None or m.party in hearers):
                    await port.forward(packet)

        return on_packet

    def request_keyframe(self, party: Party) -> None:
        """Ask the party's current video sender for a keyframe (PLI); a KeyframeRequester."""
        member = self.members.get(party)
        tap = member.taps.get("video") if member is not None else None
        if tap is not None:
            tap.request_keyframe()

    def _watch(self, member: Member) -> None:
        @member.pc.on("connectionstatechange")
        def on_state() -> None:
            state = member.pc.connectionState
            if state == "connected":
                member.connected.set()
            elif state in ("failed", "closed"):
                member.failed.set()

        if member.pc.connectionState == "connected":
            member.connected.set()


def _replaced() -> SignallingError:
    from cloudbank.video.errors import Replaced

    return Replaced("you joined again on another connection; this one is closed")


class Rooms:
    """The rooms of this node by session id."""

    def __init__(self, *, sinks: Sequence[SinkFactory] = (), video_mime: str = "video/VP8",
                 prepare_peer: PreparePeer | None = None) -> None:
        self.rooms: dict[str, Room] = {}
        self.sinks = list(sinks)
        self.video_mime = video_mime
        self.prepare_peer = prepare_peer

    def get(self, session_id: str) -> Room | None:
        return self.rooms.get(session_id)

    def open(self, session_id: str) -> Room:
        room = self.rooms.get(session_id)
        if room is None or room.closed:
            room = Room(session_id, sinks=self.sinks, video_mime=self.video_mime,
                        prepare_peer=self.prepare_peer, on_empty=self._forget)
            self.rooms[session_id] = room
        return room

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.session_id) is room:
            del self.rooms[room.session_id]

    @property
    def calls(self) -> int:
        return len(self.rooms)

    def peer_connections(self) -> int:
        return sum(len(r.members) for r in self.rooms.values())

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            for m in list(room.members.values()):
                with contextlib.suppress(Exception):
                    await m.kick(SignallingError("the video node is shutting down"))
            await room.close()


ROOMS = web.AppKey("video_rooms", Rooms)
