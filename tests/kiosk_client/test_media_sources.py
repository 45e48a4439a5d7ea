"""Media sources: stamps survive a real VP8 encode/decode; files and synthetic fallbacks open."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.codecs import get_decoder, get_encoder
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from cloudbank.kiosk_client.errors import KioskError
from cloudbank.kiosk_client.media_sources import (
    StampedVideoTrack,
    ToneAudioTrack,
    open_sources,
    read_stamp,
    stamp_cells,
    stamped_luma,
)

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000)


def _frame(luma: np.ndarray) -> av.VideoFrame:
    h, w = luma.shape
    return av.VideoFrame.from_ndarray(np.vstack([luma, np.full((h // 2, w), 128, np.uint8)]), format="yuv420p")


@pytest.mark.parametrize("counter,source", [(0, 0), (1, 1), (0xFFFF, 255), (12345, 77)])
def test_stamp_round_trip(counter: int, source: int) -> None:
    assert read_stamp(_frame(stamped_luma(320, 240, counter, source))) == (source, counter)


def test_a_frame_without_a_stamp_reads_as_none() -> None:
    assert read_stamp(_frame(np.full((240, 320), 96, np.uint8))) is None
    # One flipped cell breaks the check byte.
    luma = stamped_luma(320, 240, 1000, 5)
    bit = stamp_cells(1000, 5)[0][15]
    luma[0:30, 300:320] = 16 if bit else 235
    assert read_stamp(_frame(luma)) is None


async def test_stamps_survive_vp8_through_aiortc_codecs() -> None:
    """What a call does to each frame: aiortc's VP8 encoder, then its decoder."""
    track = StampedVideoTrack(9, 320, 240, fps=120)
    encoder, decoder = get_encoder(VP8), get_decoder(VP8)
    seen = []
    for _ in range(20):
        payloads, _ts = encoder.encode(await track.recv(), force_keyframe=False)
        for decoded in decoder.decode(JitterFrame(data=b"".join(
                _depay(p) for p in payloads), timestamp=0)):
            stamp = read_stamp(decoded)
            if stamp:
                seen.append(stamp)
    track.stop()
    assert [c for _s, c in seen] == list(range(20)) and {s for s, _c in seen} == {9}


def _depay(payload: bytes) -> bytes:
    _desc, data = VpxPayloadDescriptor.parse(payload)
    return bytes(data)


async def test_tone_frames_are_20ms_mono_48k() -> None:
    tone = ToneAudioTrack(1000)
    frame = await tone.recv()
    samples = frame.to_ndarray()
    assert frame.sample_rate == 48000 and samples.shape == (1, 960)
    assert 0.15 * 32767 < np.abs(samples).max() <= 0.21 * 32767
    silent = await ToneAudioTrack(0).recv()
    assert not silent.to_ndarray().any()


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "hello.wav"
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", str(path), "synth", "1", "sine", "500"], check=True)
    return path


async def test_files_open_and_the_rest_is_synthetic(wav: Path) -> None:
    sources = open_sources(audio_file=wav, synthetic_source=3)
    assert sources.description == {"video": "synthetic stamped source 3", "audio": f"file {wav}"}
    assert sources.camera_ok and sources.microphone_ok
    frame = await sources.audio.recv()  # type: ignore[union-attr]
    assert frame.samples > 0
    sources.stop()
    assert not sources.camera_ok and not sources.microphone_ok


def test_bad_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KioskError, match="either a camera or a video file"):
        open_sources(camera="/dev/video0", video_file=tmp_path / "x.webm")
    with pytest.raises(KioskError, match="cannot open media source"):
        open_sources(video_file=tmp_path / "missing.webm")
    with pytest.raises(KioskError, match="cannot open media source"):
        open_sources(camera=str(tmp_path / "no-such-camera"))
