"""One call's transcript: recogniser results -> `transcript` events to the session's audience,
keyword events, and at the end a WebVTT file and a JSON file beside the recording.

    SpeechStream(customer) ─┐
    SpeechStream(teller)   ─┴─ Transcript.handler(speaker) ─> publish_to_session (Redis)
                                       └─ KeywordSpotter ─> `keyword` events
    phrase search (customer, teller) ─ Transcript.spot_handler(speaker) ─> KeywordSpotter.heard

The phrase search (when the engine has one) hears the same voiced audio as free decoding, per
speaker; its hits are the `keyword` events and free transcript lines are then not matched.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiortc.rtp import RtpPacket
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cloudbank.platform.events import publish_to_session
from cloudbank.video.asr import AsrResult, AsrService, ResultHandler, SpeechStream
from cloudbank.video.audio_tap import AudioTap, SpeechSink, TeeSink
from cloudbank.video.keywords import KeywordSpotter
from cloudbank.video.packets import TrackInfo
from cloudbank.video.recorder import first_free
from cloudbank.video.transcription import transcription_on

log = logging.getLogger(__name__)


def transcript_event(speaker: str, result: AsrResult) -> dict[str, Any]:
    """The protocol's `transcript` event (publish_to_session adds session_id)."""
    return {"type": "transcript", "speaker": speaker, "text": result.text, "final": result.final,
            "start": round(result.start, 3), "end": round(result.end, 3),
            "words": [w.to_json() for w in result.words]}


def vtt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # so no "-->" either


class Transcript:
    """Collects one call's results. Publishing never raises: a Redis outage loses live lines, not the file."""

    def __init__(self, session_id: str, redis: Redis | None, folder: Path,
                 spotter: KeywordSpotter | None = None) -> None:
        self.session_id = session_id
        self.redis = redis
        self.folder = folder
        self.spotter = spotter
        self.lines: list[tuple[str, AsrResult]] = []  # final results, as they came
        self.publish_failures = 0

    def handler(self, speaker: str) -> ResultHandler:
        """The `on_result` of one speaker's SpeechStream."""

        async def on_result(result: AsrResult) -> None:
            await self.add(speaker, result)

        return on_result

    def spot_handler(self, speaker: str) -> ResultHandler:
        """The `on_result` of one speaker's phrase search: its hits become `keyword` events."""

        async def on_result(result: AsrResult) -> None:
            if self.spotter is not None and result.final:
                for event in self.spotter.heard(speaker, result):
                    await self._publish(event)

        return on_result

    async def add(self, speaker: str, result: AsrResult) -> None:
        events = [transcript_event(speaker, result)]
        if result.final:
            self.lines.append((speaker, result))
            if self.spotter is not None:
                events += self.spotter.check(speaker, result)
        for event in events:
            await self._publish(event)

    async def _publish(self, event: dict[str, Any]) -> None:
        if self.redis is None:
            return
        try:
            await publish_to_session(self.redis, self.session_id, event)
        except (RedisError, OSError) as exc:
            self.publish_failures += 1
            log.warning("transcript %s: event not published (%s)", self.session_id, exc)

    def sorted_lines(self) -> list[tuple[str, AsrResult]]:
        return sorted(self.lines, key=lambda line: (line[1].start, line[1].end))

    def to_vtt(self) -> str:
        cues = ["WEBVTT", ""]
        for n, (speaker, r) in enumerate(self.sorted_lines(), 1):
            end = max(r.end, r.start + 0.001)
            cues += [str(n), f"{vtt_time(r.start)} --> {vtt_time(end)}",
                     f"<v {_vtt_escape(speaker)}>{_vtt_escape(r.text)}", ""]
        return "\n".join(cues)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "lines": [{k: v for k, v in transcript_event(s, r).items() if k not in ("type", "final")}
                      for s, r in self.sorted_lines()],
        }
        if self.spotter is not None:
            body["keywords"] = self.spotter.report()
        return body

    def write_files(self) -> list[Path]:
        """transcript.vtt and transcript.json in the recording folder (for the manifest); -2, -3...
        when an earlier room of the same session left its own (they are on the audit chain)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = first_free(self.folder, "transcript", ".vtt", ".json")
        vtt, js = self.folder / f"{stem}.vtt", self.folder / f"{stem}.json"
        vtt.write_text(self.to_vtt(), encoding="utf-8")
        js.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        return [vtt, js]


class TranscriptSink:
    """A room's PacketSink for live transcription: audio tap -> one SpeechStream per talker -> Transcript.

    Close it before the recording: `close()` finishes the last utterances, writes the VTT and JSON
    files and leaves their paths in `files`, for `finish_recording(..., transcripts=sink.files)`.
    Supervisors are not transcribed (they only listen).
    """

    def __init__(self, session_id: str, asr: AsrService, redis: Redis | None, folder: Path,
                 spotter: KeywordSpotter | None = None, epoch: float | None = None) -> None:
        self.transcript = Transcript(session_id, redis, folder)
        self.asr = asr
        self.spotting = False
        self.streams: dict[str, SpeechStream] = {}
        self.spot_streams: dict[str, SpeechStream] = {}
        self._sinks: dict[str, TeeSink] = {}
        self.tap = AudioTap(self._sink_for, epoch)
        self.files: list[Path] = []
        self.transcription = transcription_on(asr.engine.name, asr.engine.language)  # for `joined`
        if spotter is not None:
            self.set_spotter(spotter)

    def set_spotter(self, spotter: KeywordSpotter) -> None:
        """Check the call against `spotter`'s rules from now on (a node reads them as the call starts)."""
        self.transcript.spotter = spotter
        self.spotting = spotter.spotting = self.asr.spot_pool is not None
        for party in self._sinks:
            self._add_spotting(party)

    def _add_spotting(self, party: str) -> None:
        if not self.spotting or party in self.spot_streams:
            return
        spot = self.asr.spotting_stream(self.transcript.spot_handler(party))
        if spot is not None:
            self.spot_streams[party] = spot
            self._sinks[party].add(spot)

    def _sink_for(self, track: TrackInfo) -> SpeechSink | None:
        party = track.party
        if party not in ("customer", "teller"):
            return None
        if party not in self._sinks:
            self.streams[party] = self.asr.stream(self.transcript.handler(party))
            self._sinks[party] = TeeSink(self.streams[party])
            self._add_spotting(party)
        return self._sinks[party]

    def on_rtp(self, track: TrackInfo, packet: RtpPacket) -> None:
        self.tap.on_rtp(track, packet)

    async def close(self) -> None:
        await self.tap.close()
        for stream in [*self.streams.values(), *self.spot_streams.values()]:
            try:
                await stream.drain()
            finally:
                await stream.close()
        self.files = self.transcript.write_files()
