"""The seat console at a phone's width (390x844) and a tablet's (768x1024): on every screen (sign-in,
home, offer, call, wrap-up, the supervisor's view with its teller list, authorisations, wallboard and
monitor) nothing scrolls sideways and the person's controls are on the screen (issue 14, point 8)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# Every control a person uses, and every labelled element, must lie inside the window's width.
OFF_SCREEN = """() => {
  const out = [];
  for (const el of document.querySelectorAll('button, input, select, textarea, video, [data-testid]')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
    const what = el.dataset.testid || el.tagName;
    if (r.left < -1 || r.right > innerWidth + 1) out.push(`${what} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return out;
}"""


async def fits(page: Page, screen: str, *testids: str) -> None:
    """No sideways scroll, nothing cut off at the sides, and the screen's key controls visible."""
    for testid in testids:
        await expect(page.get_by_test_id(testid)).to_be_visible()
    width = await page.evaluate("innerWidth")
    scroll = await page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"{screen}: the page scrolls sideways ({scroll} px wide in a {width} px window)"
    cut = await page.evaluate(OFF_SCREEN)
    assert not cut, f"{screen}: cut off at {width} px: {cut}"


@pytest.mark.parametrize("size", [(390, 844), (768, 1024)], ids=["phone", "tablet"])
async def test_every_seat_screen_fits_a_narrow_window(seat: Any, page: Page, second_page: Page, kiosk: Any,
                                                      size: tuple[int, int]) -> None:
    await page.set_viewport_size({"width": size[0], "height": size[1]})
    await second_page.set_viewport_size({"width": size[0], "height": size[1]})
    await page.goto(seat.seat_url)
    await fits(page, "sign-in", "login-username", "login-password", "login-submit", "language")

    await seat.teller_ready(page)
    await fits(page, "home", "state-ready", "state-not-ready", "my-state", "connection-status", "language", "logout")

    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer")).to_be_visible()
    await fits(page, "offer", "offer-accept", "offer-decline", "offer-countdown")
    for testid in ("offer-accept", "offer-decline"):  # the offer floats: it must not hang below the window
        box = await page.get_by_test_id(testid).bounding_box()
        assert box is not None and box["y"] + box["height"] <= size[1], f"{testid} is below the window"

    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    await fits(page, "call", "remote-video", "call-timer", "call-mute", "call-camera", "call-hold", "end-call",
               "logout")

    sup = second_page
    await seat.login(sup, "super1")
    await page.get_by_test_id("ask-authorisation").click()
    await page.get_by_test_id("action-reason").fill("Waive the card fee")
    await page.get_by_test_id("action-send").click()
    item = sup.get_by_test_id("authorisations").locator("li")
    await expect(item).to_have_count(1, timeout=8000)
    aid = await item.get_attribute("data-authorisation")
    await expect(sup.get_by_test_id("wallboard").locator("[data-queue=deposit]")).to_be_visible(timeout=8000)
    await fits(sup, "supervisor", "teller-list", f"teller-monitor-{session_id}", f"auth-reason-{aid}",
               f"auth-grant-{aid}", f"auth-refuse-{aid}", f"monitor-{session_id}", "wallboard", "logout")
    # The teller list reads as one block per teller, each value captioned with its column's heading.
    since = sup.get_by_test_id(f"teller-since-{seat.people['teller1']}")
    assert await since.get_attribute("data-label") == "Time in state"

    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor")).to_be_visible()
    await fits(sup, "monitor", "monitor-stop", "monitor-customer", "monitor-teller", "monitor-transcript")

    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await fits(page, "wrap-up", "wrapup-code", "wrapup-service", "wrapup-notes", "wrapup-not-ready", "wrapup-submit")
