"""Screenshot helper for issue 14 point 8 (the seat console at narrow widths); not part of the suite.
SHOT_PHASE=before|after; run explicitly: pytest tests/seat/shots_issue14_seat_narrow.py"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
OUT = Path(__file__).resolve().parents[2] / "docs/screenshots/issue-14"
PHASE = os.environ.get("SHOT_PHASE", "before")


async def shoot(page: Page, screen: str) -> None:
    for w, h in ((1366, 768), (768, 1024), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        await page.wait_for_timeout(400)
        over = await page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
        print(f"{screen} {w}: overflow {over}px")
        if w != 768:
            await page.screenshot(path=str(OUT / f"8-seat-{screen}-{PHASE}-{w}.png"))
    await page.set_viewport_size({"width": 1366, "height": 768})


async def test_shots(seat: Any, page: Page, second_page: Page, kiosk: Any) -> None:
    await page.goto(seat.seat_url)
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
    await shoot(page, "signin")
    await seat.teller_ready(page)
    await shoot(page, "home")
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer")).to_be_visible()
    await shoot(page, "offer")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    await shoot(page, "call")
    sup = second_page
    await seat.login(sup, "super1")
    await page.get_by_test_id("ask-authorisation").click()
    await page.get_by_test_id("action-reason").fill("Waive the card fee")
    await page.get_by_test_id("action-send").click()
    await expect(sup.get_by_test_id("authorisations").locator("li")).to_have_count(1, timeout=8000)
    await shoot(sup, "supervisor")
    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor")).to_be_visible()
    await shoot(sup, "monitor")
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await shoot(page, "wrapup")


async def test_shots_offer_over_open_wrapup(seat: Any, page: Page, kiosk: Any) -> None:
    """An offer ringing while the last call's wrap-up form is open (before: the console of the
    commit before the fix, served from /tmp/old_<name>.js by the caller)."""
    if PHASE == "before":
        def old(name: str) -> Any:
            return lambda r: r.fulfill(path=f"/tmp/old_{name}.js", content_type="text/javascript")
        for name in ("main", "offer", "wrapup"):
            await page.route(f"**/js/{name}.js", old(name))
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup-time-left")).to_have_attribute("data-over", "true", timeout=10_000)
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer")).to_be_visible()
    for w, h in ((1366, 768), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(OUT / f"seat-offer_over_wrapup-{PHASE}-{w}.png"))
