"""RTP packet forwarding on aiortc: packets from one party's peer connection leave through another
party's peer connection as they arrive, without decoding.

aiortc has no public way to do this, so this module (with ice.py) is the only place that touches
aiortc internals. Pinned to aiortc==1.16.0; `check_receiver`/`check_sender` raise
`AiortcIncompatible` naming the hook when an upgrade moves one, and tests/video/test_forwarding.py
exercises every hook.

Receiving (`ReceiveTap`): `RTCRtpReceiver._handle_rtp_packet` is wrapped per receiver. Our wrapper
unwraps RTX (retransmissions the node asked for upstream), hands the packet on, then runs aiortc's
own handler so receiver reports, upstream NACKs and REMB keep working. The receiver's jitter buffer
is replaced by one that never releases a frame, so nothing is ever decoded on the node.

Sending (`SendPort`): each node-side transceiver has a `HoldTrack` that never yields, so the
transceiver stays sendrecv/sendonly while aiortc's encoder loop sleeps. A forwarded packet is
rewritten to this sender's own SSRC, payload type, continuous sequence numbers and timestamps
(`StreamRewriter`, which survives the source rejoining with a new SSRC) and header extensions (mid,
abs-send-time from the sender's extension map), stored in the sender's RTP history so aiortc answers
NACKs from it, sent through the sender's transport, and counted in the sender's packet/octet/RTP
timestamp counters so its RTCP sender reports stay consistent. A PLI/FIR the viewer sends to this
sender (aiortc's `_send_keyframe`) is passed to `on_keyframe_request`, which the room forwards to
the source's receiver as a PLI.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, clock
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, unwrap_rtx

from cloudbank.video.errors import AiortcIncompatible

log = logging.getLogger("cloudbank.video.forwarding")

AIORTC_VERSION = "1.16.0"
KEYFRAME_REQUEST_INTERVAL_S = 0.3  # at most ~3 PLIs a second upstream: many viewers, one encoder

_RECEIVER_HOOKS = ("_handle_rtp_packet", "_send_rtcp_pli", "_enabled", "_RTCRtpReceiver__codecs",
                   "_RTCRtpReceiver__rtx_ssrc", "_RTCRtpReceiver__jitter_buffer")
_SENDER_HOOKS = ("send", "_send_keyframe", "_ssrc", "_RTCRtpSender__rtp_history",
                 "_RTCRtpSender__rtp_header_extensions_map", "_RTCRtpSender__ntp_timestamp",
                 "_RTCRtpSender__rtp_timestamp", "_RTCRtpSender__octet_count", "_RTCRtpSender__packet_count")


def _check(obj: Any, hooks: tuple[str, ...]) -> None:
    if aiortc.__version__ != AIORTC_VERSION:
        raise AiortcIncompatible(f"aiortc {aiortc.__version__} is installed")
    missing = [h for h in hooks if not hasattr(obj, h)]
    if missing:
        raise AiortcIncompatible(f"{type(obj).__name__} lacks {', '.join(missing)}")


def check_receiver(receiver: RTCRtpReceiver) -> None:
    """Raise AiortcIncompatible unless every receiver hook ReceiveTap uses is there."""
    _check(receiver, _RECEIVER_HOOKS)


def check_sender(sender: RTCRtpSender) -> None:
    """Raise AiortcIncompatible unless every sender hook SendPort uses is there."""
    _check(sender, _SENDER_HOOKS)


class HoldTrack(MediaStreamTrack):
    """A sender track that never yields a frame: the transceiver sends, the encoder loop sleeps."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.get_running_loop().create_future()  # cancelled when the sender stops


def codec_preferences(kind: str, video_mime: str = "video/VP8") -> list[RTCRtpCodecCapability]:
    """One codec per kind (Opus; `video_mime` plus RTX): every leg of a call uses the same codec."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    mime = "audio/opus" if kind == "audio" else video_mime
    chosen = [c for c in caps if c.mimeType.lower() == mime.lower()][:1]
    if not chosen:
        raise ValueError(f"aiortc cannot negotiate {mime}")
    if kind == "video":
        chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return chosen


def add_forwarding_transceiver(pc: RTCPeerConnection, kind: str, direction: str,
                               video_mime: str = "video/VP8") -> RTCRtpTransceiver:
    transceiver = pc.addTransceiver(HoldTrack(kind), direction=direction)
    transceiver.setCodecPreferences(codec_preferences(kind, video_mime))
    return transceiver


def _newer(a: int, b: int) -> bool:
    """Sequence number `a` comes after `b` (16-bit wraparound)."""
    return 0 < ((a - b) & 0xFFFF) < 0x8000


class StreamRewriter:
    """Maps incoming (ssrc, seq, timestamp) to one continuous outgoing sequence and clock.

    When the source changes SSRC (a party rejoined with a new peer connection), the outgoing
    stream continues: next sequence number, and the timestamp advanced by the wall-clock gap.
    """

    def __init__(self, clock_rate: int, seq_start: int | None = None, ts_start: int | None = None) -> None:
        self.clock_rate = clock_rate
        self._next_seq = random.randrange(0, 0x8000) if seq_start is None else seq_start
        self._next_ts = random.randrange(0, 1 << 32) if ts_start is None else ts_start
        self.source: int | None = None
        self._seq_off = 0
        self._ts_off = 0
        self._high_in = 0
        self._high_out_seq = 0
        self._high_out_ts = 0
        self._last_time = 0.0

    def rewrite(self, ssrc: int, seq: int, ts: int, now: float) -> tuple[int, int]:
        if ssrc != self.source:
            if self.source is not None:
                self._next_seq = (self._high_out_seq + 1) & 0xFFFF
                gap = max(1, round((now - self._last_time) * self.clock_rate))
                self._next_ts = (self._high_out_ts + gap) & 0xFFFFFFFF
            self._seq_off = (self._next_seq - seq) & 0xFFFF
            self._ts_off = (self._next_ts - ts) & 0xFFFFFFFF
            self.source = ssrc
            self._high_in = (seq - 1) & 0xFFFF
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        if _newer(seq, self._high_in):
            self._high_in = seq
            self._high_out_seq = out_seq
            self._high_out_ts = out_ts
            self._last_time = now
        return out_seq, out_ts


def keyframe_start(mime_type: str, payload: bytes) -> bool:
    """Whether this RTP payload begins a keyframe (VP8 or H.264); a new viewer starts there."""
    mime = mime_type.lower()
    try:
        if mime == "video/vp8":
            descriptor, rest = VpxPayloadDescriptor.parse(payload)
            # First packet of partition 0, and the frame tag's P bit clear: a key frame.
            return bool(descriptor.partition_start and descriptor.partition_id == 0 and rest
                        and not rest[0] & 0x01)
        if mime == "video/h264" and payload:
            nal = payload[0] & 0x1F
            if nal == 24:  # STAP-A: aggregated NAL units, each with a 2-byte size
                pos = 1
                while pos + 2 < len(payload):
                    size = int.from_bytes(payload[pos:pos + 2], "big")
                    if payload[pos + 2] & 0x1F in (5, 7):
                        return True
                    pos += 2 + size
                return False
            if nal == 28 and len(payload) > 1:  # FU-A: the start fragment of an IDR slice
                return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
            return nal in (5, 7)
    except ValueError:
        return False
    return True  # audio and codecs we cannot inspect: every packet is a fine place to start


class _NoFrames:
    """Stands in for the receiver's jitter buffer: frames are never assembled, so never decoded."""

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        return False, None


PacketHandler = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]


class ReceiveTap:
    """Hands every RTP packet a receiver gets (RTX unwrapped) to `on_packet`, as it arrives."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
        check_receiver(receiver)
        self.receiver = receiver
        self.on_packet = on_packet
        self.last_ssrc: int | None = None
        self._last_pli = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._original = receiver._handle_rtp_packet
        receiver._handle_rtp_packet = self._handle  # type: ignore[method-assign]
        receiver._RTCRtpReceiver__jitter_buffer = _NoFrames()  # type: ignore[attr-defined]

    def _unwrap(self, packet: RtpPacket) -> tuple[RtpPacket, RTCRtpCodecParameters] | None:
        codecs: dict[int, RTCRtpCodecParameters] = self.receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return None
        if not is_rtx(codec):
            return packet, codec
        rtx_ssrc: dict[int, int] = self.receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        original_ssrc = rtx_ssrc.get(packet.ssrc)
        apt = codec.parameters.get("apt")
        if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
            return None
        return unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc), codecs[apt]

    async def _handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if self.receiver._enabled:
            unwrapped = self._unwrap(packet)
            if unwrapped is not None:
                self.last_ssrc = unwrapped[0].ssrc
                try:
                    await self.on_packet(*unwrapped)
                except Exception:  # noqa: BLE001 - one bad packet or sink must not stop the call
                    log.exception("forwarding a packet failed")
        await self._original(packet, arrival_time_ms)

    def request_keyframe(self) -> bool:
        """Send a PLI upstream for the current source (rate-limited); False when nothing was sent."""
        now = time.monotonic()
        if self.last_ssrc is None or now - self._last_pli < KEYFRAME_REQUEST_INTERVAL_S:
            return False
        self._last_pli = now
        task = asyncio.ensure_future(self.receiver._send_rtcp_pli(self.last_ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True


class SendPort:
    """Sends forwarded packets as `sender`'s own stream; see the module docstring."""

    def __init__(self, sender: RTCRtpSender, on_keyframe_request: Callable[[], None],
                 on_started: Callable[[], None] | None = None) -> None:
        check_sender(sender)
        self.sender = sender
        self.on_keyframe_request = on_keyframe_request
        self.on_started = on_started
        self.codec: RTCRtpCodecParameters | None = None
        self.rewriter: StreamRewriter | None = None
        self.forwarded = 0
        # A new viewer of video starts on a keyframe: earlier packets could not be decoded.
        self.waiting_for_keyframe = sender.kind == "video"
        self._mid: str | None = None
        self._original_send = sender.send
        sender.send = self._send  # type: ignore[method-assign]
        sender._send_keyframe = self._keyframe_requested  # type: ignore[method-assign]

    @property
    def started(self) -> bool:
        return self.codec is not None

    async def _send(self, parameters: RTCRtpSendParameters) -> None:
        await self._original_send(parameters)
        if self.codec is None:
            self.codec = parameters.codecs[0]
            self._mid = parameters.muxId
            self.rewriter = StreamRewriter(self.codec.clockRate)
            if self.on_started is not None:
                self.on_started()

    def _keyframe_requested(self) -> None:
        self.on_keyframe_request()

    async def forward(self, packet: RtpPacket) -> bool:
        """Send `packet` (not modified) as this sender's; False when the sender is not ready."""
        if self.codec is None or self.rewriter is None:
            return False
        sender = self.sender
        transport = sender.transport
        if transport.state != "connected":
            return False
        if self.waiting_for_keyframe:
            if not keyframe_start(self.codec.mimeType, packet.payload):
                self.on_keyframe_request()  # rate-limited upstream by the source's ReceiveTap
                return False
            self.waiting_for_keyframe = False
        seq, ts = self.rewriter.rewrite(packet.ssrc, packet.sequence_number, packet.timestamp,
                                        time.monotonic())
        out = RtpPacket(payload_type=self.codec.payloadType or 0, marker=packet.marker,
                        sequence_number=seq, timestamp=ts, ssrc=sender._ssrc, payload=packet.payload)
        out.padding_size = packet.padding_size
        ntp = clock.current_ntp_time()  # once per packet: it is not free
        out.extensions.mid = self._mid
        out.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        out.extensions.audio_level = packet.extensions.audio_level
        s: Any = sender
        s._RTCRtpSender__rtp_history[seq % RTP_HISTORY_SIZE] = out
        try:
            await transport._send_rtp(out.serialize(s._RTCRtpSender__rtp_header_extensions_map))
        except ConnectionError:
            return False
        # What aiortc's own send loop updates, so its RTCP sender reports describe this stream.
        s._RTCRtpSender__ntp_timestamp = ntp
        s._RTCRtpSender__rtp_timestamp = ts
        s._RTCRtpSender__octet_count += len(packet.payload)
        s._RTCRtpSender__packet_count += 1
        self.forwarded += 1
        return True
