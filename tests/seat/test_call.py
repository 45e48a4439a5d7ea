"""The whole call in a real browser: a teller goes ready, a kiosk (the kiosk SDK, aiortc) takes a
ticket, the offer rings, the teller accepts, video flows both ways through the real video node, a
supervisor sees and monitors the call, the call ends, wrap-up is submitted, the teller is ready."""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.async_api import Page, expect

from cloudbank.kiosk_client import forms

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_a_whole_call_from_ready_to_ready(seat: Any, page: Page, second_page: Page, kiosk: Any,
                                                page_errors: list[str]) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, call = await seat.accept_offer(page, kiosk)

    # Video both ways: the browser decodes the kiosk's frames; the kiosk receives the fake camera.
    await seat.wait_frames_rising(page)
    await call.wait_for(lambda: call.remote.frames["video"] > 5, timeout=20)
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
    await expect(page.get_by_test_id("call-quality")).to_contain_text("kbit/s")

    # A supervisor of the queue sees the call and monitors it receive-only.
    sup = second_page
    await seat.login(sup, "super1")
    await expect(sup.get_by_test_id("wallboard").locator("[data-queue=deposit] th")).to_have_text("Deposits")
    await expect(sup.get_by_test_id(f"call-row-{session_id}")).to_contain_text("Teller1")
    await sup.get_by_test_id(f"monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected",
                                                                         timeout=20_000)
    await seat.wait_frames_rising(sup, "monitor-customer")
    await seat.wait_frames_rising(sup, "monitor-teller")
    # Two similar pictures side by side: each says whose it is.
    await expect(sup.get_by_test_id("monitor-customer-label")).to_have_text("Customer")
    await expect(sup.get_by_test_id("monitor-teller-label")).to_have_text("Teller")
    await sup.get_by_test_id("monitor-stop").click()
    await expect(sup.get_by_test_id("monitor")).to_have_count(0)

    # End the call, wrap up, and the teller is ready again after the queue's wrap-up time.
    events_before = len(kiosk.events)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    ended = await kiosk.wait_event("session.ended", after=events_before)
    assert ended["by"] == "teller"
    # The countdown is the queue's own wrap-up time (2 s for this queue), not the default 30 s.
    await expect(page.get_by_test_id("wrapup-time-left")).to_have_text(re.compile(r"^Wrap-up time left: [0-2] s$"))
    await page.get_by_test_id("wrapup-submit").click()
    await expect(page.get_by_test_id("wrapup-error")).to_have_text("Choose a disposition code first.")
    await page.get_by_test_id("wrapup-code").select_option("resolved")
    await page.get_by_test_id("wrapup-notes").fill("opened a savings account")
    await page.get_by_test_id("wrapup-submit").click()
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready", timeout=15_000)
    await expect(page.get_by_test_id("today-counts").locator("[data-count=calls]")).to_have_text("1")
    assert not [e for e in page_errors if "pageerror" in e], page_errors


async def test_the_customers_id_card_shows_in_the_call_screen(seat: Any, page: Page, second_page: Page,
                                                               kiosk: Any, page_errors: list[str]) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)  # the card needs no media
    pixels = np.random.default_rng(5).integers(0, 255, (214, 340, 3), dtype=np.uint8)
    ok, jpg = cv2.imencode(".jpg", pixels)
    assert ok
    card = await forms.send_id_card(kiosk.client, session_id, jpg.tobytes(), "back")
    shown = page.get_by_test_id("id-card")
    await expect(shown).to_have_count(1)
    await expect(shown).to_have_attribute("data-sha256", card["sha256"])
    await expect(shown.locator("figcaption")).to_have_text("ID card (back)")
    # The image was fetched with the teller's token and decoded, not just linked.
    for _ in range(50):
        if await shown.locator("img").evaluate("(img) => img.complete && img.naturalWidth") == 340:
            break
        await page.wait_for_timeout(100)
    assert await shown.locator("img").evaluate("(img) => img.naturalWidth") == 340
    await expect(page.get_by_test_id("call-log")).to_contain_text("The customer sent an ID card (back)")
    # A reloaded console did not see the event: it lists the session's cards.
    await page.reload()
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)
    await expect(page.get_by_test_id("id-card")).to_have_attribute("data-sha256", card["sha256"])
    # So does a supervisor of the queue who starts monitoring after the card was sent.
    await seat.login(second_page, "super1")
    await second_page.get_by_test_id(f"monitor-{session_id}").click()
    await expect(second_page.get_by_test_id("monitor").get_by_test_id("id-card")).to_have_attribute(
        "data-sha256", card["sha256"])
    assert not [e for e in page_errors if "pageerror" in e], page_errors
