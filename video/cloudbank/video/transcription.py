"""Whether a call is transcribed, as the node tells each party in signalling's `joined` message, so
a teller's transcript panel can say "transcription is off" instead of staying empty.

A room sink that transcribes (or knows why it cannot) has a `transcription` attribute holding one of:

    {"state": "on", "engine": "pocketsphinx", "language": "en-us"}
    {"state": "off", "reason": "disabled"}      the node's video_transcribe setting is off
    {"state": "off", "reason": "unavailable"}   no speech engine could be loaded (model missing)

A room none of whose sinks has one is not transcribed (`reason: "none"`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

OffReason = Literal["disabled", "unavailable", "none"]


def transcription_on(engine: str, language: str) -> dict[str, Any]:
    return {"state": "on", "engine": engine, "language": language}


def transcription_off(reason: OffReason) -> dict[str, Any]:
    return {"state": "off", "reason": reason}


def room_transcription(sinks: Iterable[Any]) -> dict[str, Any]:
    """The first sink's `transcription` that is on, else the first one's that says why not."""
    states = [s for s in (getattr(sink, "transcription", None) for sink in sinks) if isinstance(s, dict)]
    on = [s for s in states if s.get("state") == "on"]
    return dict(on[0]) if on else dict(states[0]) if states else transcription_off("none")
