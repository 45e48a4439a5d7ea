"""pocketsphinx through the Recognizer seam, on English that festival speaks at test time: the words
come out with times, partials stream before the final, the pool reuses decoders, and a video node's
default settings transcribe English."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
import redis.asyncio

from cloudbank.platform.config import Config
from cloudbank.platform.errors import ConfigError
from cloudbank.platform.events import add_to_audience, read
from cloudbank.video.asr import AsrResult, asr_service
from cloudbank.video.recorder import recording_folder
from cloudbank.video.sphinx import SphinxEngine, SphinxRecognizer, load_sphinx_engine
from cloudbank.video.transcript import TranscriptSink

from .conftest import ENGLISH_SENTENCES

pytestmark = pytest.mark.slow


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Edit distance in words (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def recognise(rec: SphinxRecognizer, pcm: bytes, chunk: int = 6400) -> tuple[list[AsrResult], AsrResult | None]:
    partials = [r for i in range(0, len(pcm), chunk) if (r := rec.accept(pcm[i:i + chunk]))]
    final = rec.finish()
    rec.reset()
    return partials, final


def test_festival_english_comes_out_as_its_words_with_times(sphinx_engine: SphinxEngine,
                                                            english_speech_16k: dict[str, bytes]) -> None:
    rec = sphinx_engine.recognizer()
    errors = total = 0
    for key, pcm in english_speech_16k.items():
        _, final = recognise(rec, pcm)
        assert final is not None and final.final, key
        ref = words_of(ENGLISH_SENTENCES[key])
        errors += word_errors(ref, [w.word for w in final.words])
        total += len(ref)
        assert final.text == " ".join(w.word for w in final.words)
        assert "(" not in final.text and "<" not in final.text  # no pronunciation variants or fillers
        duration = len(pcm) / 32000
        # Utterance-relative times, in order, inside the speech (0.4 s of silence before, 0.6 s after).
        assert 0.3 < final.start == final.words[0].start
        assert all(a.end <= b.start + 1e-6 for a, b in zip(final.words, final.words[1:], strict=False))
        assert final.end == final.words[-1].end < duration - 0.3
        assert all(0.0 <= w.conf <= 1.0 for w in final.words)
    assert errors / total <= 0.15, f"word error rate {errors / total:.0%} on festival speech"


def test_partials_stream_before_the_final(sphinx_engine: SphinxEngine, english_speech_16k: dict[str, bytes]) -> None:
    rec = sphinx_engine.recognizer()
    partials, final = recognise(rec, english_speech_16k["savings"], chunk=640)  # 20 ms, as the tap sends
    assert final is not None
    assert len(partials) >= 3 and not any(p.final for p in partials)
    assert len({p.text for p in partials}) == len(partials)  # only when the text changed
    assert partials[-1].text.split()[:3] == final.text.split()[:3]
    # A reset decoder starts the next utterance clean: the same audio gives the same words.
    _, again = recognise(rec, english_speech_16k["savings"], chunk=640)
    assert again is not None and again.text == final.text


def test_a_phrase_grammar_only_hears_its_phrases(sphinx_engine: SphinxEngine,
                                                 english_speech_16k: dict[str, bytes]) -> None:
    rec = sphinx_engine.recognizer(["please confirm your date of birth", "thank you for waiting"])
    assert recognise(rec, english_speech_16k["birth"])[1] is not None
    heard = recognise(rec, english_speech_16k["birth"])[1]
    assert heard is not None and heard.text == "please confirm your date of birth"
    thanks = recognise(rec, english_speech_16k["thanks"])[1]
    assert thanks is not None and thanks.text == "thank you for waiting"


async def test_pool_reuses_decoders_and_puts_results_on_the_call_timeline(
        config: Config, sphinx_engine: SphinxEngine, english_speech_16k: dict[str, bytes]) -> None:
    results: list[AsrResult] = []

    async def on_result(result: AsrResult) -> None:
        results.append(result)

    async with asr_service(config.with_(asr_pool_size=1), engine=sphinx_engine) as service:
        assert service.pool.idle == 1
        stream = service.stream(on_result)
        for n, key in enumerate(["thanks", "birth"]):
            pcm, t0 = english_speech_16k[key], 10.0 + 5 * n
            for i in range(0, len(pcm), 640):
                stream.feed(pcm[i:i + 640], t0 + i / 32000)
            stream.end()
        await stream.drain()
        assert service.pool.idle == 1 and service.pool.created == 1  # the one decoder, given back and reused
    finals = [r for r in results if r.final]
    assert [words_of(r.text) for r in finals] == [words_of(ENGLISH_SENTENCES[k]) for k in ("thanks", "birth")]
    assert 10.3 < finals[0].start < finals[0].end < 10.0 + len(english_speech_16k["thanks"]) / 32000
    assert 15.3 < finals[1].start < finals[1].end < 15.0 + len(english_speech_16k["birth"]) / 32000
    assert any(not r.final for r in results)


async def test_a_video_node_with_default_settings_transcribes_english(
        config: Config, redis_client: redis.asyncio.Redis, audio_sender: Any,
        english_speech: dict[str, np.ndarray]) -> None:
    """Nothing configured (as `cloudbank up` starts): Opus packets of English -> English transcript events."""
    assert Config().asr_engine == "pocketsphinx" and config.asr_model_path == "" and config.asr_language == ""
    await add_to_audience(redis_client, "call9", "user:teller1")
    async with asr_service(config.with_(asr_pool_size=1)) as asr:  # loads the engine the settings name
        assert asr.engine.name == "pocketsphinx" and asr.engine.language == "en-us"
        sink = TranscriptSink("call9", asr, redis_client, recording_folder(config, "call9"))
        sender = audio_sender(party="customer", session_id="call9", ssrc=5)
        pcm = np.concatenate([english_speech["rate"], np.zeros(48000, np.int16)])
        for packet in sender.packets(pcm, 48000):
            sink.on_rtp(sender.track, packet)
        await sink.close()
    events = [e for _, e in await read(redis_client, "user:teller1", count=1000)]
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    heard = [w["word"] for e in finals for w in e["words"]]
    ref = words_of(ENGLISH_SENTENCES["rate"])
    assert word_errors(ref, heard) <= 2, heard
    assert {"interest", "rate", "deposit"} <= set(heard)
    assert all(e["speaker"] == "customer" for e in finals)
    saved = json.loads((recording_folder(config, "call9") / "transcript.json").read_text())
    assert "interest" in saved["lines"][0]["text"]


def test_a_wrong_model_folder_or_language_names_the_setting(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="asr_model_path.*CLOUDBANK_ASR_MODEL_PATH"):
        load_sphinx_engine(str(tmp_path / "nope"), "")
    with pytest.raises(ConfigError, match="asr_model_path.*acoustic model"):
        load_sphinx_engine(str(tmp_path), "")
    with pytest.raises(ConfigError, match="asr_language.*CLOUDBANK_ASR_LANGUAGE.*asr_model_path"):
        load_sphinx_engine("", "zh-cn")
