"""Transcript: spoken Korean through Opus packets, the tap and vosk comes back as `transcript` events
(and `keyword` events) on the session's event streams, and as WebVTT + JSON beside the recording."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio

from cloudbank.platform.config import Config
from cloudbank.platform.events import add_to_audience, read
from cloudbank.video.asr import AsrResult, Word, asr_service
from cloudbank.video.audio_tap import AudioTap
from cloudbank.video.keywords import KeywordSpotter, rules_from_services
from cloudbank.video.packets import TrackInfo
from cloudbank.video.recorder import recording_folder
from cloudbank.video.transcript import Transcript, vtt_time

SERVICES = [
    {"code": "deposit", "keywords": ["저축"], "dual_recording": False},
    {"code": "fund", "keywords": [], "dual_recording": True, "required_phrases": ["확인", "설명서"],
     "forbidden_phrases": ["보장"]},
]


@pytest.mark.slow
async def test_spoken_korean_becomes_transcript_and_keyword_events(
        config: Config, redis_client: redis.asyncio.Redis, vosk_model: Any, grammar: str, audio_sender: Any,
        korean_speech: dict[str, tuple[np.ndarray, int]]) -> None:
    await add_to_audience(redis_client, "call7", "user:teller1")
    await add_to_audience(redis_client, "call7", "device:kiosk1")
    folder = recording_folder(config, "call7")
    transcript = Transcript("call7", redis_client, folder, KeywordSpotter(rules_from_services(SERVICES), "fund"))
    said = {"customer": ["안녕하세요", "저축", "얼마"], "teller": ["감사합니다", "확인"]}
    async with asr_service(config.with_(asr_engine="vosk", asr_pool_size=2),
                           json.loads(grammar), model=vosk_model) as asr:
        streams = {party: asr.stream(transcript.handler(party)) for party in said}
        tap = AudioTap(lambda track: streams[track.party])
        senders = {party: audio_sender(party=party, session_id="call7", ssrc=n + 10)
                   for n, party in enumerate(said)}
        for party, words in said.items():
            pcm = np.concatenate([korean_speech[w][0] for w in words] + [np.zeros(48000, np.int16)])
            for packet in senders[party].packets(pcm, 48000):
                tap.on_rtp(senders[party].track, packet)
        await tap.close()
        for stream in streams.values():
            await stream.drain()

    events = [e for _, e in await read(redis_client, "user:teller1", count=1000)]
    kiosk = [e for _, e in await read(redis_client, "device:kiosk1", count=1000)]
    # Everyone in the call gets every event (two speakers publish at once, so order may differ).
    assert sorted(map(json.dumps, events)) == sorted(map(json.dumps, kiosk))
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    for party, words in said.items():
        got = [w["word"] for e in finals if e["speaker"] == party for w in e["words"]]
        assert got == words, (party, finals)
    for e in finals:
        assert e["session_id"] == "call7" and set(e) == {"type", "session_id", "speaker", "text", "final",
                                                          "start", "end", "words"}
        assert e["text"] == " ".join(w["word"] for w in e["words"])
        assert e["start"] <= e["words"][0]["start"] <= e["words"][-1]["end"] <= e["end"] + 1e-6
    customer = [e for e in finals if e["speaker"] == "customer"]
    assert [e["start"] for e in customer] == sorted(e["start"] for e in customer)
    assert customer[-1]["start"] - customer[0]["start"] > 2.0  # times on the call's timeline, not per utterance

    keyword = [(e["kind"], e.get("service"), e["phrase"], e["speaker"]) for e in events if e["type"] == "keyword"]
    # The two speakers' streams run at once, so their events interleave in any order.
    assert sorted(keyword) == [("required", "fund", "확인", "teller"), ("suggest", "deposit", "저축", "customer")]

    vtt_path, json_path = transcript.write_files()
    assert vtt_path.parent == folder and json_path.parent == folder
    vtt = vtt_path.read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\n") and vtt.count(" --> ") == len(finals)
    assert "<v customer>저축" in vtt and "<v teller>확인" in vtt
    body = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(body["lines"]) == len(finals)
    assert body["keywords"]["required"] == {"said": ["확인"], "missing": ["설명서"]}


def line(text: str, start: float, final: bool = True) -> AsrResult:
    return AsrResult(text, final, start, start + 0.5, (Word(text, start, start + 0.5, 1.0),) if final else ())


async def test_partials_are_published_but_only_finals_kept(redis_client: redis.asyncio.Redis,
                                                           tmp_path: Path) -> None:
    await add_to_audience(redis_client, "s2", "user:t")
    transcript = Transcript("s2", redis_client, tmp_path)
    await transcript.add("customer", line("계", 1.0, final=False))
    await transcript.add("customer", line("계좌", 1.0))
    events = [e for _, e in await read(redis_client, "user:t")]
    assert [(e["text"], e["final"]) for e in events] == [("계", False), ("계좌", True)]
    assert events[0]["words"] == [] and events[1]["words"][0]["word"] == "계좌"
    assert [r.text for _, r in transcript.lines] == ["계좌"]


async def test_redis_outage_loses_live_lines_not_the_file(tmp_path: Path) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    transcript = Transcript("s3", dead, tmp_path)
    await transcript.add("teller", line("확인", 2.0))
    await dead.aclose()
    assert transcript.publish_failures == 1
    vtt, _ = transcript.write_files()
    assert "확인" in vtt.read_text(encoding="utf-8")


def test_vtt_is_ordered_escaped_and_well_timed(tmp_path: Path) -> None:
    transcript = Transcript("s4", None, tmp_path)
    transcript.lines += [("teller", line("b", 3723.25)), ("customer", line("<a> & -->", 1.0))]
    vtt = transcript.to_vtt()
    assert vtt.split("\n")[2:5] == ["1", "00:00:01.000 --> 00:00:01.500", "<v customer>&lt;a&gt; &amp; --&gt;"]
    assert "01:02:03.250 --> 01:02:03.750" in vtt
    assert vtt_time(-1) == "00:00:00.000"


def test_tracks_use_the_protocol_speaker_names() -> None:
    # The speaker of an event is the party of the track it came from (customer/teller/supervisor).
    track = TrackInfo("s", "teller", "audio", "audio/opus", 48000, 111, 1, 2)
    assert track.party in ("customer", "teller", "supervisor")


@pytest.mark.slow
async def test_transcript_sink_feeds_the_recording_manifest(
        config: Config, redis_client: redis.asyncio.Redis, vosk_model: Any, grammar: str, audio_sender: Any,
        korean_speech: dict[str, tuple[np.ndarray, int]]) -> None:
    """A room's two sinks as the node wires them: transcript closed first, its files in the manifest."""
    from cloudbank.platform.audit import AuditChain
    from cloudbank.platform.records import create_engine, migrate
    from cloudbank.video.recorder import Recorder, finish_recording
    from cloudbank.video.transcript import TranscriptSink

    await add_to_audience(redis_client, "call8", "user:teller1")
    folder = recording_folder(config, "call8")
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    audit = AuditChain(engine)
    try:
        async with asr_service(config.with_(asr_engine="vosk", asr_pool_size=1),
                               json.loads(grammar), model=vosk_model) as asr:
            recorder = Recorder("call8", folder, lambda party: None, segment_s=60)
            sink = TranscriptSink("call8", asr, redis_client, folder, epoch=recorder.started_at)
            customer = audio_sender(party="customer", session_id="call8", ssrc=1)
            supervisor = audio_sender(party="supervisor", session_id="call8", ssrc=3)
            pcm = np.concatenate([korean_speech["계좌"][0], korean_speech["확인"][0], np.zeros(48000, np.int16)])
            for sender in (customer, supervisor):
                for packet in sender.packets(pcm, 48000):
                    recorder.on_rtp(sender.track, packet)
                    sink.on_rtp(sender.track, packet)
            await sink.close()
            manifest_path = await finish_recording(recorder, audit, config.data, actor="video:n1",
                                                   transcripts=sink.files)
        events = [e for _, e in await read(redis_client, "user:teller1", count=100)]
        finals = [e for e in events if e["type"] == "transcript" and e["final"]]
        assert {e["speaker"] for e in finals} == {"customer"}  # supervisors are not transcribed
        assert [w["word"] for e in finals for w in e["words"]] == ["계좌", "확인"]
        manifest = json.loads(manifest_path.read_text())
        assert sorted(Path(t["path"]).name for t in manifest["transcripts"]) == ["transcript.json",
                                                                                  "transcript.vtt"]
        assert "계좌" in (folder / "transcript.vtt").read_text(encoding="utf-8")
        assert (await audit.verify(base=config.data)).ok
    finally:
        await engine.dispose()


async def test_a_second_room_of_the_session_writes_beside_the_first_transcript(tmp_path: Path) -> None:
    """Both parties dropped and rejoined: the first room's files are on the audit chain, keep them."""
    first = Transcript("s5", None, tmp_path)
    await first.add("customer", line("계좌", 1.0))
    first_files = first.write_files()
    before = [p.read_bytes() for p in first_files]
    second = Transcript("s5", None, tmp_path)
    await second.add("teller", line("확인", 2.0))
    vtt, js = second.write_files()
    assert (vtt.name, js.name) == ("transcript-2.vtt", "transcript-2.json")
    assert [p.read_bytes() for p in first_files] == before
    assert "확인" in vtt.read_text(encoding="utf-8") and "계좌" not in vtt.read_text(encoding="utf-8")
