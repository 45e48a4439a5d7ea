"""The call's WebRTC link in the browser survives a network drop and a page reload: it rejoins the
room with a new offer (a fresh join token from the platform) while the kiosk's media goes on."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def in_a_call(seat: Any, page: Page, kiosk: Any) -> tuple[str, Any]:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, call = await seat.accept_offer(page, kiosk)
    await seat.wait_frames_rising(page)
    return session_id, call


async def test_a_dropped_link_rejoins_and_video_resumes(seat: Any, page: Page, kiosk: Any) -> None:
    session_id, call = await in_a_call(seat, page, kiosk)
    kiosk_frames = call.remote.frames["video"]
    await page.evaluate("window.cloudbankSeat.screen.link.drop()")
    status = page.get_by_test_id("call-status")
    await expect(status).to_have_attribute("data-state", "reconnecting")
    await expect(status).to_have_attribute("data-state", "connected", timeout=20_000)
    assert await page.evaluate("window.cloudbankSeat.screen.link.rejoins") >= 1
    await seat.wait_frames_rising(page)
    # The kiosk was not disturbed: same connection, and the teller's video reaches it again.
    assert call.rejoins == 0
    await call.wait_for(lambda: call.remote.frames["video"] > kiosk_frames + 5, timeout=20)
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)


async def test_a_reload_during_the_call_returns_to_it(seat: Any, page: Page, kiosk: Any) -> None:
    session_id, call = await in_a_call(seat, page, kiosk)
    await page.reload()
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    await seat.wait_frames_rising(page)
    assert call.rejoins == 0
    # Still the same call: ending it leads to its wrap-up.
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()


async def test_a_reload_during_wrapup_returns_to_the_wrapup(seat: Any, page: Page, kiosk: Any) -> None:
    await in_a_call(seat, page, kiosk)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await page.reload()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await page.get_by_test_id("wrapup-code").select_option("follow_up")
    await page.get_by_test_id("wrapup-not-ready").check()
    await page.get_by_test_id("wrapup-submit").click()
    # Not-ready was chosen: the teller stays not ready after the wrap-up time.
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "not_ready", timeout=10_000)


async def test_the_customer_hanging_up_leads_to_wrapup(seat: Any, page: Page, kiosk: Any) -> None:
    session_id, _ = await in_a_call(seat, page, kiosk)
    await kiosk.client.request("POST", f"sessions/{session_id}/end")
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
