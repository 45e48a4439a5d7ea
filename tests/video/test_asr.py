"""vosk through the Recognizer seam: Korean words come back with timings; the warm pool reuses recognisers;
the asr_engine setting picks vosk or pocketsphinx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cloudbank.platform.config import Config
from cloudbank.platform.errors import ConfigError
from cloudbank.video.asr import (
    AsrResult,
    Recognizer,
    RecognizerPool,
    SpeechStream,
    VoskRecognizer,
    asr_service,
    load_vosk_model,
)

pytestmark = pytest.mark.slow


def recognise(rec: Recognizer, pcm: bytes) -> AsrResult | None:
    finals = [r for i in range(0, len(pcm), 640) if (r := rec.accept(pcm[i:i + 640])) and r.final]
    last = rec.finish()
    return last or (finals[-1] if finals else None)


@pytest.fixture(scope="module")
def speech16k(korean_speech_16k: dict[str, bytes]) -> dict[str, bytes]:
    return korean_speech_16k


def test_each_korean_word_recognised_with_utterance_relative_timings(vosk_model: Any, grammar: str,
                                                                      speech16k: dict[str, bytes]) -> None:
    rec = VoskRecognizer(vosk_model, json.loads(grammar))
    for word, pcm in speech16k.items():
        result = recognise(rec, pcm)
        assert result is not None and result.final, word
        assert result.text == word
        [w] = result.words
        duration = len(pcm) / 32000
        # Times count from this utterance (not from the recogniser's creation): the word is inside the
        # 0.4 s of padding on either side.
        assert 0.2 < w.start < w.end < duration - 0.2, (word, w, duration)
        rec.reset()


def test_partial_results_come_before_the_final(vosk_model: Any, speech16k: dict[str, bytes]) -> None:
    rec = VoskRecognizer(vosk_model)  # free decoding: partials as the words come
    pcm = b"".join(speech16k.values())
    results = [r for i in range(0, len(pcm), 640) if (r := rec.accept(pcm[i:i + 640]))]
    results.append(rec.finish())
    assert any(r is not None and not r.final for r in results)
    assert any(r is not None and r.final and r.words for r in results)


async def test_pool_hands_out_warm_recognisers_and_reuses_them(vosk_model: Any, grammar: str) -> None:
    import concurrent.futures

    made: list[VoskRecognizer] = []

    def factory() -> VoskRecognizer:
        made.append(VoskRecognizer(vosk_model, json.loads(grammar)))
        return made[-1]

    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        pool = RecognizerPool(factory, executor, size=1, max_size=2, warm_s=0.2)
        await pool.start()
        assert len(made) == 1 and pool.idle == 1
        first = await pool.acquire()
        await pool.release(first)
        assert await pool.acquire() is first and len(made) == 1  # reused, not re-created
        second = await pool.acquire()  # all busy: one more is created, up to max_size
        assert second is not first and len(made) == 2
        third = asyncio.ensure_future(pool.acquire())  # at max_size: waits for a release
        await asyncio.sleep(0.05)
        assert not third.done()
        await pool.release(second)
        assert await asyncio.wait_for(third, 5) is second
        assert len(made) == 2


async def test_stream_puts_results_on_the_call_timeline(config: Config, vosk_model: Any, grammar: str,
                                                        speech16k: dict[str, bytes]) -> None:
    results: list[AsrResult] = []

    async def on_result(result: AsrResult) -> None:
        results.append(result)

    async with asr_service(config.with_(asr_engine="vosk", asr_pool_size=1),
                           json.loads(grammar), model=vosk_model) as service:
        assert service.pool.idle == 1
        stream = service.stream(on_result)
        for n, word in enumerate(["계좌", "확인"]):
            pcm, t0 = speech16k[word], 10.0 + 5 * n
            for i in range(0, len(pcm), 640):
                stream.feed(pcm[i:i + 640], t0 + i / 32000)
            stream.end()
        await stream.drain()
        assert service.pool.idle == 1  # given back after each utterance
    finals = [r for r in results if r.final]
    assert [r.text for r in finals] == ["계좌", "확인"]
    assert 10.2 < finals[0].words[0].start < 11.5
    assert 15.2 < finals[1].words[0].start < 16.5


class FailingOnce(VoskRecognizer):
    """Injects a fault: the first accept() raises, as a crashed native call would."""

    failed = False

    def accept(self, pcm: bytes) -> AsrResult | None:
        if not FailingOnce.failed:
            FailingOnce.failed = True
            raise RuntimeError("injected recogniser failure")
        return super().accept(pcm)


async def test_a_failing_recogniser_or_handler_does_not_stop_the_stream(vosk_model: Any, grammar: str,
                                                                        speech16k: dict[str, bytes]) -> None:
    import concurrent.futures

    seen: list[str] = []

    async def on_result(result: AsrResult) -> None:
        seen.append(result.text)
        raise ValueError("consumer bug")

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        pool = RecognizerPool(lambda: FailingOnce(vosk_model, json.loads(grammar)), executor, size=1, warm_s=0)
        await pool.start()
        stream = SpeechStream(pool, on_result)
        for word in ["저축", "얼마"]:
            pcm = speech16k[word]
            for i in range(0, len(pcm), 3200):
                stream.feed(pcm[i:i + 3200], 0.0)
            stream.end()
        await stream.drain()
        assert stream.failures == 1
        assert "얼마" in seen


def test_missing_or_wrong_model_names_the_setting(tmp_path: Any) -> None:
    for path in ("", str(tmp_path / "nope"), str(tmp_path)):
        with pytest.raises(ConfigError, match="asr_model_path.*CLOUDBANK_ASR_MODEL_PATH"):
            load_vosk_model(path)


def test_the_engine_is_chosen_by_setting(vosk_model: Any, grammar: str, korean_speech_16k: dict[str, bytes],
                                         english_speech_16k: dict[str, bytes]) -> None:
    """asr_engine picks the engine and its packaged model: English words from pocketsphinx by default,
    Korean from vosk when CLOUDBANK_ASR_ENGINE=vosk; a bad engine or language stops start-up."""
    from cloudbank.platform.config import load_config
    from cloudbank.video.asr import VoskEngine, load_engine
    from cloudbank.video.sphinx import SphinxEngine

    english = load_engine(load_config(environ={}))
    assert isinstance(english, SphinxEngine) and (english.name, english.language) == ("pocketsphinx", "en-us")
    result = recognise(english.recognizer(), english_speech_16k["thanks"])
    assert result is not None and result.text == "thank you for waiting"

    korean = load_engine(load_config(environ={"CLOUDBANK_ASR_ENGINE": "vosk"}))
    assert isinstance(korean, VoskEngine) and (korean.name, korean.language) == ("vosk", "ko")
    result = recognise(korean.recognizer(json.loads(grammar)), korean_speech_16k["계좌"])
    assert result is not None and result.text == "계좌"

    with pytest.raises(ConfigError, match="asr_engine.*CLOUDBANK_ASR_ENGINE.*pocketsphinx, vosk"):
        load_config(environ={"CLOUDBANK_ASR_ENGINE": "kaldi"})
    with pytest.raises(ConfigError, match="asr_language.*only packaged vosk model is Korean"):
        load_engine(load_config(environ={"CLOUDBANK_ASR_ENGINE": "vosk", "CLOUDBANK_ASR_LANGUAGE": "zh-CN"}))


async def test_a_vosk_model_needs_the_vosk_setting(config: Config, vosk_model: Any) -> None:
    with pytest.raises(ConfigError, match="asr_engine.*set asr_engine=vosk"):
        async with asr_service(config, model=vosk_model):
            pass
