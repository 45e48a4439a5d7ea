"""Where a kiosk's audio and video come from: a real camera and microphone, files, or synthetic
sources for tests and load.

Synthetic video frames are "pixel-stamped": the top of each frame carries a frame counter and a
source id as large black/white cells (plus a check byte), which survive VP8 compression, so a test
can read back on the far side exactly which frames of which sender arrived.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer

from cloudbank.kiosk_client.errors import KioskError

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
_BITS = 16
_ROWS = 2


def _check_byte(counter: int, source: int) -> int:
    return ((counter & 0xFF) ^ (counter >> 8) ^ source ^ 0x5A) & 0xFF


def stamp_cells(counter: int, source: int) -> list[list[int]]:
    """The 2x16 bit cells of a stamp: counter (16 bits), then source id and check byte (8 + 8)."""
    counter &= 0xFFFF
    row0 = [(counter >> (15 - i)) & 1 for i in range(_BITS)]
    low = (source & 0xFF) << 8 | _check_byte(counter, source & 0xFF)
    row1 = [(low >> (15 - i)) & 1 for i in range(_BITS)]
    return [row0, row1]


def stamped_luma(width: int, height: int, counter: int, source: int) -> np.ndarray:
    """A grey frame's luma plane with the stamp in its top quarter and a moving bar below."""
    y = np.full((height, width), 96, dtype=np.uint8)
    cell_w, cell_h = width // _BITS, max(8, height // 8)
    for r, row in enumerate(stamp_cells(counter, source)):
        for c, bit in enumerate(row):
            y[r * cell_h:(r + 1) * cell_h, c * cell_w:(c + 1) * cell_w] = 235 if bit else 16
    # Motion below the stamp keeps the encoder honest (not only skip blocks).
    bar = (counter * 8) % max(1, width - 16)
    y[_ROWS * cell_h + 8:, bar:bar + 16] = 200
    return y


def read_stamp(frame: av.VideoFrame) -> tuple[int, int] | None:
    """(source, counter) from a received frame, or None when it carries no valid stamp."""
    gray = frame.to_ndarray(format="gray")
    height, width = gray.shape
    cell_w, cell_h = width / _BITS, max(8, height // 8)
    bits: list[list[int]] = []
    for r in range(_ROWS):
        cy = int((r + 0.5) * cell_h)
        row = []
        for c in range(_BITS):
            cx = int((c + 0.5) * cell_w)
            patch = gray[max(0, cy - 2):cy + 3, max(0, int(cx) - 2):int(cx) + 3]
            row.append(1 if float(patch.mean()) > 125 else 0)
        bits.append(row)
    counter = int("".join(map(str, bits[0])), 2)
    low = int("".join(map(str, bits[1])), 2)
    source, check = low >> 8, low & 0xFF
    if check != _check_byte(counter, source):
        return None
    return source, counter


class StampedVideoTrack(MediaStreamTrack):
    """Synthetic video: yuv420p frames at `fps`, each stamped with its counter and `source`."""

    kind = "video"

    def __init__(self, source: int, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.source = source & 0xFF
        self.width, self.height, self.fps = width, height, fps
        self.sent = 0
        self._start: float | None = None
        self._chroma = np.full((height // 2, width), 128, dtype=np.uint8)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise _media_ended()
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        luma = stamped_luma(self.width, self.height, self.sent, self.source)
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, self._chroma]), format="yuv420p")
        frame.pts = int(self.sent * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent += 1
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """Synthetic audio: a sine tone (frequency 0 gives silence), 20 ms mono s16 frames at 48 kHz."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.2) -> None:
        super().__init__()
        self.frequency, self.amplitude = frequency, amplitude
        self.samples = AUDIO_RATE // 50
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise _media_ended()
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.sent * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(self.samples) + self.sent * self.samples) / AUDIO_RATE
        wave = self.amplitude * np.sin(2 * math.pi * self.frequency * t) if self.frequency else np.zeros(self.samples)
        data = (wave * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.sent * self.samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.sent += 1
        return frame


def _media_ended() -> Exception:
    from aiortc.mediastreams import MediaStreamError

    return MediaStreamError()


@dataclass
class MediaSources:
    """The tracks a client sends, plus what to stop afterwards and what the heartbeat reports."""

    audio: MediaStreamTrack | None
    video: MediaStreamTrack | None
    players: list[MediaPlayer] = field(default_factory=list)
    description: dict[str, str] = field(default_factory=dict)

    @property
    def camera_ok(self) -> bool:
        return self.video is not None and self.video.readyState == "live"

    @property
    def microphone_ok(self) -> bool:
        return self.audio is not None and self.audio.readyState == "live"

    def stop(self) -> None:
        for track in (self.audio, self.video):
            if track is not None:
                track.stop()
        for player in self.players:
            for track in (player.audio, player.video):
                if track is not None:
                    track.stop()


def synthetic(source: int, *, tone_hz: float = 440.0, width: int = 320, height: int = 240,
              fps: int = 15) -> MediaSources:
    """Stamped video and a tone: for tests, load runs and kiosks without a camera."""
    return MediaSources(ToneAudioTrack(tone_hz), StampedVideoTrack(source, width, height, fps),
                        description={"video": f"synthetic stamped source {source}", "audio": f"tone {tone_hz} Hz"})


def _player(file: str, fmt: str | None = None, options: dict[str, str] | None = None,
            loop: bool = False) -> MediaPlayer:
    try:
        return MediaPlayer(file, format=fmt, options=options or {}, loop=loop)
    except (av.FFmpegError, OSError) as exc:
        raise KioskError(f"cannot open media source {file!r}: {exc}") from None


def open_sources(*, camera: str | None = None, video_file: Path | None = None,
                 audio_file: Path | None = None, microphone: str | None = None,
                 synthetic_source: int = 1, size: str = "640x480", fps: int = 15) -> MediaSources:
    """Open what the options name; anything not named is synthetic (stamped video, a tone).

    `camera` is a v4l2 device (/dev/video0); `microphone` an ALSA device ("default", "hw:0") or
    "pulse" for PulseAudio's default source. Files loop so a kiosk demo never runs dry.
    """
    if camera and video_file:
        raise KioskError("choose either a camera or a video file, not both")
    players: list[MediaPlayer] = []
    description: dict[str, str] = {}
    video: MediaStreamTrack | None = None
    audio: MediaStreamTrack | None = None
    if camera:
        player = _player(camera, "v4l2", {"video_size": size, "framerate": str(fps)})
        players.append(player)
        video, description["video"] = player.video, f"camera {camera}"
    elif video_file:
        player = _player(str(video_file), loop=True)
        players.append(player)
        video, description["video"] = player.video, f"file {video_file}"
        if player.audio is not None and audio_file is None and microphone is None:
            audio, description["audio"] = player.audio, f"file {video_file}"
    if audio_file:
        player = _player(str(audio_file), loop=True)
        players.append(player)
        audio, description["audio"] = player.audio, f"file {audio_file}"
    elif microphone:
        fmt = "pulse" if microphone == "pulse" else "alsa"
        player = _player("default" if microphone == "pulse" else microphone, fmt)
        players.append(player)
        audio, description["audio"] = player.audio, f"{fmt} {microphone}"
    if players and video is None and (camera or video_file):
        raise KioskError("the video source has no video stream")
    if players and audio is None and (audio_file or microphone):
        raise KioskError("the audio source has no audio stream")
    if video is None:
        video = StampedVideoTrack(synthetic_source)
        description["video"] = f"synthetic stamped source {synthetic_source}"
    if audio is None:
        audio, description["audio"] = ToneAudioTrack(), "tone 440 Hz"
    return MediaSources(audio, video, players, description)
