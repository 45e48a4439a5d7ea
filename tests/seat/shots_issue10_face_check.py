"""Screenshot helper for issue 10 (ID check with face match, the teller's call screen); not part of
the suite. SHOT_PHASE=before|after; run explicitly: pytest tests/seat/shots_issue10_face_check.py"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
OUT = Path(__file__).resolve().parents[2] / "docs/screenshots/issue-10"
PHASE = os.environ.get("SHOT_PHASE", "before")


async def shoot(page: Page, screen: str, testid: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for w, h in ((1366, 768), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        await page.wait_for_timeout(400)
        await page.get_by_test_id(testid).first.scroll_into_view_if_needed()
        await page.screenshot(path=str(OUT / f"face-check-{screen}-{PHASE}-{w}.png"))
    await page.set_viewport_size({"width": 1366, "height": 768})


async def test_shots(seat: Any, page: Page, kiosk: Any, tmp_path: Path) -> None:
    from cloudbank.kiosk_client import forms

    from .face_media import face_call, id_card_jpeg

    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    async with face_call(kiosk, session_id, tmp_path):
        await seat.wait_frames_rising(page)
        await forms.send_id_card(kiosk.client, session_id, id_card_jpeg(), "front")
        await expect(page.get_by_test_id("id-card")).to_have_count(1)
        if PHASE == "after":
            await page.wait_for_timeout(3000)
            await page.get_by_test_id("snapshot").click()
            await expect(page.get_by_test_id("face-check-run")).to_be_enabled(timeout=15_000)
            await page.get_by_test_id("face-check-run").click()
            await expect(page.get_by_test_id("face-check-band")).to_be_visible(timeout=30_000)
            await shoot(page, "call", "face-check")
        else:
            await shoot(page, "call", "id-cards")
