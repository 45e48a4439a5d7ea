"""Keyword rules from catalogue data raise the right events; the report says what was (not) said."""

from __future__ import annotations

import pytest

from cloudbank.video.asr import AsrResult
from cloudbank.video.keywords import KeywordRule, KeywordSpotter, normalise, rules_from_services

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
