"""What a call sends of its sources: all of the audio, only the newest video."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from cloudbank.kiosk_client.call import outgoing

FRAMES = 40


class Burst(MediaStreamTrack):
    """FRAMES frames at once, as a source whose loop was stalled hands over what piled up."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.n = 0

    async def recv(self) -> av.AudioFrame | av.VideoFrame:
        if self.n == FRAMES:
            self.stop()
            raise MediaStreamError
        frame: av.AudioFrame | av.VideoFrame
        if self.kind == "audio":
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.time_base = 48000, fractions.Fraction(1, 48000)
            frame.pts = self.n * 960
        else:
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.time_base, frame.pts = fractions.Fraction(1, 90000), self.n * 6000
        self.n += 1
        return frame


async def _read_slowly(track: MediaStreamTrack) -> list[int]:
    """The pts of what a sender busy for 5 ms per frame gets."""
    got = []
    try:
        while True:
            frame = await asyncio.wait_for(track.recv(), 2)
            got.append(frame.pts)
            await asyncio.sleep(0.005)
    except (TimeoutError, MediaStreamError):
        return got


async def test_every_audio_frame_is_sent_even_when_the_sender_falls_behind() -> None:
    got = await _read_slowly(outgoing(MediaRelay(), Burst("audio")))
    assert got == [n * 960 for n in range(FRAMES)]


async def test_video_frames_the_sender_could_not_take_are_skipped() -> None:
    got = await _read_slowly(outgoing(MediaRelay(), Burst("video")))
    assert len(got) < FRAMES and got == sorted(got)
