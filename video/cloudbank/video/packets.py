"""What the forwarder hands to the stages that watch a call's packets (recorder, audio tap, snapshot).

The forwarder calls `on_rtp` for every RTP packet it receives from a party, before rewriting it,
on the event loop: a sink must return quickly (queue work to a thread, never block).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from aiortc.rtp import RtpPacket

Party = Literal["customer", "teller", "supervisor"]
Kind = Literal["audio", "video"]


@dataclass(frozen=True)
class TrackInfo:
    """One incoming media stream of one party."""

    session_id: str
    party: Party
    kind: Kind
    mime_type: str  # e.g. "video/VP8", "video/H264", "audio/opus"
    clock_rate: int
    payload_type: int
    ssrc: int
    channels: int = 1


# Given to sinks by the forwarder: ask the party's sender for a video keyframe (PLI) now.
KeyframeRequester = Callable[[Party], None]


class PacketSink(Protocol):
    def on_rtp(self, track: TrackInfo, packet: RtpPacket) -> None:
        """Called for each received packet (after RTX unwrapping), on the event loop; must not block."""

    async def close(self) -> None:
        """The call ended or the party left for good: flush and release."""
