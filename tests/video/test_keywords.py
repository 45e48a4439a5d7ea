"""Keyword rules from catalogue data raise the right events; the report says what was (not) said; the
engine's phrase search spots them per speaker with times; words the engine cannot hear are named."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import redis.asyncio

from cloudbank.platform.config import Config
from cloudbank.video.asr import AsrResult
from cloudbank.video.keywords import (
    KeywordRule,
    KeywordSpotter,
    normalise,
    rules_from_services,
    spot_phrases,
    unheard_words,
)

SERVICES = [
    {"code": "deposit", "keywords": ["저축", "적금"], "dual_recording": False,
     "required_phrases": [], "forbidden_phrases": []},
    {"code": "fund", "keywords": ["펀드"], "dual_recording": True,
     "required_phrases": ["원금 손실 가능", "투자 설명서"], "forbidden_phrases": ["원금 보장"]},
    {"code": "card", "keywords": ["카드"], "dual_recording": False,
     "required_phrases": [], "forbidden_phrases": ["비밀번호를 알려"]},
]


def final(text: str, start: float = 1.0) -> AsrResult:
    return AsrResult(text, True, start, start + 1.0)


def test_rules_from_catalogue_data() -> None:
    rules = rules_from_services(SERVICES)
    kinds = {(r.service, r.kind, r.phrase, r.speaker) for r in rules}
    assert ("deposit", "suggest", "저축", None) in kinds
    assert ("fund", "required", "원금 손실 가능", "teller") in kinds
    assert ("fund", "forbidden", "원금 보장", "teller") in kinds
    # required phrases of a service that is not dual-recorded are not rules
    assert not rules_from_services([{**SERVICES[0], "required_phrases": ["x"]}])[2:]


def test_suggestions_fire_once_per_call_whoever_speaks() -> None:
    spotter = KeywordSpotter(rules_from_services(SERVICES), service="card")
    events = spotter.check("customer", final("저축 하고 싶어요"))
    assert [(e["kind"], e["service"], e["phrase"], e["speaker"]) for e in events] == \
        [("suggest", "deposit", "저축", "customer")]
    assert spotter.check("customer", final("저축 저축")) == []
    assert spotter.check("customer", AsrResult("펀드", False, 0, 1)) == []  # partials raise nothing


def test_required_phrases_report_said_and_missing() -> None:
    spotter = KeywordSpotter(rules_from_services(SERVICES), service="fund")
    assert spotter.check("customer", final("원금 손실 가능 하나요")) == []  # the customer saying it does not count
    events = spotter.check("teller", final("이 상품은 원금손실 가능 합니다", start=12.5))
    assert [(e["kind"], e["phrase"], e["at"]) for e in events] == [("required", "원금 손실 가능", 12.5)]
    assert spotter.check("teller", final("원금 손실 가능")) == []
    report = spotter.report()
    assert report["required"] == {"said": ["원금 손실 가능"], "missing": ["투자 설명서"]}


def test_forbidden_phrases_fire_every_time_only_for_their_service() -> None:
    spotter = KeywordSpotter(rules_from_services(SERVICES), service="fund")
    assert [e["kind"] for e in spotter.check("teller", final("원금 보장 됩니다"))] == ["forbidden"]
    assert [e["kind"] for e in spotter.check("teller", final("원금, 보장!"))] == ["forbidden"]
    assert spotter.check("teller", final("비밀번호를 알려 주세요")) == []  # a card rule, not this call's
    assert len(spotter.report()["forbidden"]) == 2
    other = KeywordSpotter(rules_from_services(SERVICES), service="deposit")
    assert other.check("teller", final("원금 보장")) == []
    assert other.report()["required"] == {"said": [], "missing": []}


def test_rules_without_service_apply_to_every_call_and_normalising() -> None:
    rule = KeywordRule("all:hi", "required", "Good  Morning", None, "teller")
    spotter = KeywordSpotter([rule], service="anything")
    [event] = spotter.check("teller", final("good morning, sir"))
    assert event["rule"] == "all:hi" and "service" not in event
    assert normalise("A-b c!") == "abc"


@pytest.mark.parametrize("phrase", ["", "  ", "?!", "--"])
def test_empty_phrases_are_refused(phrase: str) -> None:
    with pytest.raises(ValueError):
        KeywordRule("x", "forbidden", phrase)


# English phrases spotted by pocketsphinx's phrase search, beside free decoding, on festival speech.
ENGLISH_SERVICES = [
    {"code": "open_account", "keywords": ["savings account"], "dual_recording": False},
    {"code": "deposit", "keywords": ["fixed deposit"], "dual_recording": False},
    # A short word is easy to hear falsely ("wire" in "for waiting"): never said here, never heard.
    {"code": "transfer", "keywords": ["wire"], "dual_recording": False},
    {"code": "wealth", "keywords": ["investment"], "dual_recording": True,
     "required_phrases": ["you may lose money", "cooling-off period"], "forbidden_phrases": ["guaranteed return"]},
]


def test_phrases_for_the_search_are_spoken_forms_once_each() -> None:
    rules = rules_from_services(ENGLISH_SERVICES) + [
        KeywordRule("x", "suggest", "Savings  Account!", threshold=1e-30)]
    phrases = dict(spot_phrases(rules, 1e-5))
    assert phrases["savings account"] == 1e-30  # the most sensitive of the two rules
    # Per word: a long phrase scores lower than a short one, so its threshold is lower.
    assert phrases["investment"] == 1e-5 and phrases["guaranteed return"] == pytest.approx(1e-10)
    assert phrases["cooling off period"] == pytest.approx(1e-15)
    assert phrases["you may lose money"] == pytest.approx(1e-20)
    assert len(phrases) == 7


def test_words_the_dictionary_lacks_are_named(sphinx_engine: Any) -> None:
    lexicon = sphinx_engine.lexicon
    assert [unheard_words(lexicon, svc) for svc in ENGLISH_SERVICES] == [[]] * len(ENGLISH_SERVICES)
    bad = {"code": "x", "keywords": ["open an acount", "계좌"], "forbidden_phrases": ["zorblax fees"]}
    assert unheard_words(lexicon, bad) == [("keywords", "open an acount", ["acount"]), ("keywords", "계좌", ["계좌"]),
                                           ("forbidden_phrases", "zorblax fees", ["zorblax"])]
    # The engine leaves such phrases out of its search instead of failing (older services).
    assert sphinx_engine.spottable([("zorblax fees", 1e-20), ("savings account", 1e-20)]) == [
        ("savings account", 1e-20)]


@pytest.mark.slow
async def test_phrases_are_spotted_per_speaker_with_times_and_the_wrong_party_ticks_nothing(
        config: Config, redis_client: redis.asyncio.Redis, audio_sender: Any, sphinx_engine: Any,
        english_speech: dict[str, np.ndarray]) -> None:
    from cloudbank.platform.events import add_to_audience, read
    from cloudbank.video.asr import asr_service
    from cloudbank.video.recorder import recording_folder
    from cloudbank.video.transcript import TranscriptSink

    await add_to_audience(redis_client, "call10", "user:teller1")
    rules = rules_from_services(ENGLISH_SERVICES)
    spotter = KeywordSpotter(rules, "wealth")
    pause = np.zeros(48000, np.int16)
    # The customer says the disclosure too (reading it aloud): only the teller's counts.
    said = {"customer": ["savings", "fund", "rate"], "teller": ["thanks", "fund"]}
    async with asr_service(config.with_(asr_pool_size=2), engine=sphinx_engine,
                           phrases=spot_phrases(rules, config.asr_kws_threshold)) as asr:
        assert asr.spot_pool is not None
        starts: dict[str, dict[str, float]] = {}
        streams = []
        for n, (party, keys) in enumerate(said.items()):
            sender = audio_sender(party=party, session_id="call10", ssrc=20 + n)
            parts, t = [], 0.0
            for key in keys:
                starts.setdefault(party, {})[key] = t
                parts += [english_speech[key], pause]
                t += (len(english_speech[key]) + len(pause)) / 48000
            streams.append([(sender.track, p) for p in sender.packets(np.concatenate(parts), 48000)])
        # Both parties talk at once, packets interleaved as they would arrive; the call starts now.
        sink = TranscriptSink("call10", asr, redis_client, recording_folder(config, "call10"), spotter)
        for pair in itertools.zip_longest(*streams):
            for item in pair:
                if item is not None:
                    sink.on_rtp(*item)
        await sink.close()
    events = [e for _, e in await read(redis_client, "user:teller1", count=1000)]
    keywords = sorted((e["speaker"], e["kind"], e["phrase"]) for e in events if e["type"] == "keyword")
    assert keywords == [("customer", "suggest", "fixed deposit"), ("customer", "suggest", "savings account"),
                        ("teller", "required", "you may lose money")]
    at = {(e["speaker"], e["phrase"]): (e["at"], e["end"]) for e in events if e["type"] == "keyword"}
    # Times on the call's timeline, inside the sentence that holds the phrase (each clip: 0.4 s of
    # silence, the sentence, 0.6 s of silence).
    for (speaker, phrase), key in ((("customer", "savings account"), "savings"),
                                   (("customer", "fixed deposit"), "rate"), (("teller", "you may lose money"), "fund")):
        begin = starts[speaker][key]
        start, end = at[(speaker, phrase)]
        assert begin + 0.4 < start < end < begin + len(english_speech[key]) / 48000 - 0.3, (phrase, start, end)
    assert at[("teller", "you may lose money")][0] > starts["teller"]["fund"]  # the teller's second sentence
    report = spotter.report()
    assert report["required"] == {"said": ["you may lose money"], "missing": ["cooling-off period"]}
    assert report["forbidden"] == []  # "not guaranteed" is not "guaranteed return"
    # Free decoding ran on the same audio: the transcript lines are there too.
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    assert {"savings", "account", "money"} <= {w["word"] for e in finals for w in e["words"]}
