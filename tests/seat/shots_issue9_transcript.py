"""Screenshot helper for issue 9 (the teller sees speech as it is); not part of the suite.
SHOT_PHASE=before|after; run explicitly: pytest tests/seat/shots_issue9_transcript.py"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page, expect

from cloudbank.platform.config import Config
from cloudbank.video.speech_synth import festival_pcm, write_pcm

_spec = importlib.util.spec_from_file_location("live_media", Path(__file__).with_name("test_live_media.py"))
assert _spec is not None and _spec.loader is not None
_live = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_live)
customer_call = _live.customer_call

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
OUT = Path(__file__).resolve().parents[2] / "docs/screenshots/issue-9"
PHASE = os.environ.get("SHOT_PHASE", "before")


async def shoot(page: Page, screen: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for w, h in ((1366, 768), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        await page.wait_for_timeout(300)
        await page.get_by_test_id("transcript").scroll_into_view_if_needed()
        await page.screenshot(path=str(OUT / f"transcript-{screen}-{PHASE}-{w}.png"))
    await page.set_viewport_size({"width": 1366, "height": 768})


async def test_shots(config: Config, seat_with: Any, page: Page, tmp_path: Path) -> None:
    silence = np.zeros(48000, np.int16)
    wav = write_pcm(tmp_path / "customer.wav", np.concatenate(
        [silence, festival_pcm("I would like to open a savings account.", tmp_path, "a", 48000), silence,
         festival_pcm("How much is the interest rate on a fixed deposit?", tmp_path, "b", 48000), silence, silence]),
        48000)
    async with (seat_with(config.with_(video_transcribe=True, asr_pool_size=1)) as seat,
                customer_call(seat, page, wav)):
        await expect(page.get_by_test_id("transcript-final").first).to_be_visible(timeout=60_000)
        await page.wait_for_timeout(2500)  # the second sentence: partial or final, as it is then
        await shoot(page, "call")


async def test_shots_off(config: Config, seat_with: Any, page: Page, tmp_path: Path) -> None:
    silence = np.zeros(48000, np.int16)
    wav = write_pcm(tmp_path / "customer.wav", np.concatenate([silence, silence]), 48000)
    async with seat_with(config.with_(video_transcribe=False)) as seat, customer_call(seat, page, wav):
        await page.wait_for_timeout(1500)
        await shoot(page, "off")
