"""Keyword rules on the live transcript: phrases that suggest a service, phrases a teller must say
in a dual-recorded sale, phrases that must never be said.

Rules are data: `rules_from_services` builds them from the service catalogue's entries
(`keywords` suggest the service, `required_phrases`, `forbidden_phrases`). A `KeywordSpotter`
checks each final result of one call and returns the `keyword` events to send; at the end of
the call `report()` says which required phrases were and were not said.

Where the engine has a phrase search (pocketsphinx), the phrases are spotted by it, beside free
decoding on the same audio and per speaker (`spot_phrases` gives it the phrases, `heard` takes its
hits with their times): a noisy free transcript neither hides nor invents them. Otherwise (vosk)
each final line is matched: ignoring case, punctuation and spacing (ASR output spaces Korean
inconsistently), so a phrase matches anywhere inside an utterance, including inside a longer word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cloudbank.video.asr import AsrResult, SpotPhrase
from cloudbank.video.lexicon import Lexicon, spoken_form
from cloudbank.video.packets import Party

RuleKind = Literal["suggest", "required", "forbidden"]
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case, NFC, no punctuation or spaces."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFC", text).casefold())


@dataclass(frozen=True)
class KeywordRule:
    """One phrase to listen for. `speaker` None: anyone; `service` None: every call.
    `threshold`: the phrase search's detection threshold (None: the asr_kws_threshold setting)."""

    name: str
    kind: RuleKind
    phrase: str
    service: str | None = None
    speaker: Party | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not normalise(self.phrase):
            raise ValueError(f"rule {self.name}: the phrase {self.phrase!r} has nothing to match")


def rules_from_services(services: Iterable[Mapping[str, Any]]) -> list[KeywordRule]:
    """Rules from catalogue entries (`Service.full()` dicts): `keywords` suggest the service (said by
    anyone), `required_phrases` the teller must say, `forbidden_phrases` the teller must never say."""
    rules: list[KeywordRule] = []
    for svc in services:
        code = str(svc["code"])
        for phrase in svc.get("keywords", ()):
            rules.append(KeywordRule(f"{code}:suggest:{phrase}", "suggest", phrase, code))
        if svc.get("dual_recording"):
            for phrase in svc.get("required_phrases", ()):
                rules.append(KeywordRule(f"{code}:required:{phrase}", "required", phrase, code, "teller"))
        for phrase in svc.get("forbidden_phrases", ()):
            rules.append(KeywordRule(f"{code}:forbidden:{phrase}", "forbidden", phrase, code, "teller"))
    return rules


PHRASE_FIELDS = ("keywords", "required_phrases", "forbidden_phrases")


def unheard_words(lexicon: Lexicon, service: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(field, phrase, unknown words) for each phrase of a catalogue entry with a word `lexicon`
    lacks: such a phrase could never be heard."""
    out = []
    for name in PHRASE_FIELDS:
        for phrase in service.get(name, ()):
            unknown = lexicon.unknown(phrase)
            if unknown:
                out.append((name, phrase, unknown))
    return out


def spot_phrases(rules: Iterable[KeywordRule], per_word_threshold: float) -> list[SpotPhrase]:
    """The phrases for an engine's phrase search (`AsrService(phrases=...)`), once each. A rule's own
    threshold is used as it is; otherwise a phrase of n words gets `per_word_threshold` ** n (a search
    scores a whole phrase, so one threshold for all lets short words be heard everywhere)."""
    seen: dict[str, float] = {}
    for rule in rules:
        form = spoken_form(rule.phrase)
        threshold = rule.threshold if rule.threshold is not None else per_word_threshold ** len(form.split())
        if form:
            seen[form] = min(threshold, seen.get(form, threshold))
    return list(seen.items())


@dataclass
class _Hit:
    rule: KeywordRule
    speaker: str
    start: float
    text: str


@dataclass
class KeywordSpotter:
    """Checks one call's final transcript lines against the rules that apply to its service.

    Suggestions apply whatever the call's service (they point at another one) and fire once per call;
    required and forbidden phrases apply to the call's own service and to rules without a service.
    A required phrase fires when first said; a forbidden one every time it is said.
    """

    rules: list[KeywordRule]
    service: str | None = None
    hits: list[_Hit] = field(default_factory=list)
    # True when the engine's phrase search feeds `heard`: transcript lines are then not matched.
    spotting: bool = False

    def _applies(self, rule: KeywordRule, speaker: str) -> bool:
        return ((rule.kind == "suggest" or rule.service in (None, self.service))
                and (rule.speaker is None or rule.speaker == speaker))

    def _fire(self, rule: KeywordRule, speaker: str, start: float, end: float | None,
              text: str) -> dict[str, Any] | None:
        if rule.kind != "forbidden" and any(h.rule == rule for h in self.hits):
            return None
        self.hits.append(_Hit(rule, speaker, start, text))
        event: dict[str, Any] = {"type": "keyword", "rule": rule.name, "phrase": rule.phrase,
                                 "kind": rule.kind, "speaker": speaker, "at": round(start, 3)}
        if end is not None:
            event["end"] = round(end, 3)
        if rule.service is not None:
            event["service"] = rule.service
        return event

    def check(self, speaker: str, result: AsrResult) -> list[dict[str, Any]]:
        """The `keyword` events (without session_id) that this transcript line raises. Partials raise
        none, and no line does while the phrase search is `spotting`."""
        if not result.final or self.spotting:
            return []
        text = normalise(result.text)
        events: list[dict[str, Any]] = []
        for rule in self.rules:
            if self._applies(rule, speaker) and normalise(rule.phrase) in text:
                event = self._fire(rule, speaker, result.start, None, result.text)
                if event is not None:
                    events.append(event)
        return events

    def heard(self, speaker: str, result: AsrResult) -> list[dict[str, Any]]:
        """The `keyword` events that a phrase search's result raises: each of its words is a phrase
        heard (spoken form) at its own time."""
        events: list[dict[str, Any]] = []
        for hit in result.words:
            for rule in self.rules:
                if self._applies(rule, speaker) and spoken_form(rule.phrase) == hit.word:
                    event = self._fire(rule, speaker, hit.start, hit.end, hit.word)
                    if event is not None:
                        events.append(event)
        return events

    def report(self) -> dict[str, Any]:
        """For the end of the call (and the manifest): required phrases said/missing, other hits."""
        required = [r for r in self.rules if r.kind == "required" and r.service in (None, self.service)]
        said = {h.rule for h in self.hits}
        return {
            "service": self.service,
            "required": {"said": [r.phrase for r in required if r in said],
                         "missing": [r.phrase for r in required if r not in said]},
            "forbidden": [{"phrase": h.rule.phrase, "speaker": h.speaker, "at": round(h.start, 3)}
                          for h in self.hits if h.rule.kind == "forbidden"],
            "suggested": [{"service": h.rule.service, "phrase": h.rule.phrase, "at": round(h.start, 3)}
                          for h in self.hits if h.rule.kind == "suggest"],
        }
