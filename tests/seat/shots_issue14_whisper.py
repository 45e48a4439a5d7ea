"""Screenshot helper for issue 14 point 7 (whisper); not part of the suite.
SHOT_PHASE=before|after; run explicitly: pytest tests/seat/shots_issue14_whisper.py"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
OUT = Path(os.environ.get("SHOT_OUT", Path(__file__).resolve().parents[2] / "docs/screenshots/issue-14"))
PHASE = os.environ.get("SHOT_PHASE", "before")


async def shoot(page: Page, screen: str) -> None:
    for w, h in ((1366, 768), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(OUT / f"7-{screen}-{PHASE}-{w}.png"))
    await page.set_viewport_size({"width": 1366, "height": 768})


async def test_shots(seat: Any, page: Page, second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk)
    sup = second_page
    await seat.login(sup, "super1")
    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    if PHASE == "after":
        await sup.get_by_test_id("whisper").click()
        await expect(page.get_by_test_id("supervisor-talking")).to_be_visible()
    await page.wait_for_timeout(1500)
    await shoot(sup, "supervisor_monitor")
    await shoot(page, "teller_call")
