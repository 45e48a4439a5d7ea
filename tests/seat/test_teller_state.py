"""The teller's state on screen has one source: the top bar and the page never disagree (an offer
ringing, the wrap-up time running out), the wrap-up says when the customer hung up, hold shows a
banner with a timer, and accepting a call puts the focus in the call (issue 14, point 6)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def badge_and_page(page: Page) -> tuple[str | None, str | None]:
    return (await page.get_by_test_id("my-state").get_attribute("data-state"),
            await page.get_by_test_id("state-now").get_attribute("data-state"))


async def test_the_top_bar_and_the_page_say_ringing_together(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    assert await badge_and_page(page) == ("ready", "ready")
    await kiosk.client.create_ticket("loans")  # rings 2 s, then the offer times out
    await expect(page.get_by_test_id("offer")).to_be_visible()
    await expect(page.get_by_test_id("my-state")).to_have_text("Ringing")
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "offered")
    await expect(page.get_by_test_id("state-now")).to_contain_text("You are: Ringing")
    # Unanswered: the ACD makes the teller not ready; both say so, from the same answer.
    await expect(page.get_by_test_id("offer")).to_have_count(0, timeout=8000)
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "not_ready")
    await expect(page.get_by_test_id("my-state")).to_have_attribute("data-state", "not_ready")
    await expect(page.get_by_test_id("my-state")).to_have_text("Not ready")


async def test_when_wrap_up_time_runs_out_the_form_says_the_teller_is_ready(seat: Any, page: Page,
                                                                            kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")  # wrap-up time 2 s
    await seat.accept_offer(page, kiosk, join=False)
    # Every text the countdown and the badge show, as the page shows them: the 2 s of wrap-up can be
    # over before a poll of the page comes round on a loaded machine.
    await page.evaluate("""() => {
      window.shown = [];
      new MutationObserver(() => {
        const left = document.querySelector('[data-testid=wrapup-time-left]');
        const badge = document.querySelector('[data-testid=my-state]');
        window.shown.push(`${left ? left.textContent : ''}|${badge ? badge.textContent : ''}`);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    }""")
    await page.get_by_test_id("end-call").click()
    left = page.get_by_test_id("wrapup-time-left")
    # The platform ends the wrap-up time: badge and form change together, the form is not left at "0 s".
    await expect(page.get_by_test_id("my-state")).to_have_text("Ready", timeout=8000)
    shown: list[str] = await page.evaluate("window.shown")
    assert any(re.fullmatch(r"Wrap-up time left: [12] s\|Wrap-up", x) for x in shown), shown
    await expect(left).to_have_attribute("data-over", "true")
    await expect(left).to_have_text("Wrap-up time is over: you are Ready now. Save this call's outcome.")
    # The outcome can still be recorded, and home agrees with the badge.
    await page.get_by_test_id("wrapup-code").select_option("resolved")
    await page.get_by_test_id("wrapup-submit").click()
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready")
    await expect(page.get_by_test_id("my-state")).to_have_attribute("data-state", "ready")


async def test_the_teller_is_told_the_customer_ended_the_call(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    await kiosk.client.request("POST", f"sessions/{session_id}/end", {})
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await expect(page.get_by_test_id("wrapup-ended-by")).to_have_text("The customer ended the call.")
    # ...and still after a reload of the wrap-up.
    await page.reload()
    await expect(page.get_by_test_id("wrapup-ended-by")).to_have_text("The customer ended the call.")


async def test_the_teller_who_hangs_up_is_not_told_the_customer_did(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await page.wait_for_timeout(1000)  # the session.ended event has arrived
    await expect(page.get_by_test_id("wrapup-ended-by")).to_be_hidden()


async def test_hold_shows_a_banner_with_a_timer(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk)
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    await expect(page.get_by_test_id("hold-banner")).to_be_hidden()
    await page.get_by_test_id("call-hold").click()
    banner = page.get_by_test_id("hold-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("On hold: the customer cannot see or hear you")
    await expect(page.get_by_test_id("hold-timer")).to_have_text(re.compile(r"^0:0[2-9]$"), timeout=5000)
    # The banner survives a reload of the console (the platform says the call is on hold).
    await page.reload()
    await expect(banner).to_be_visible(timeout=10_000)
    await page.get_by_test_id("hold-resume").click()
    await expect(banner).to_be_hidden()
    session_id = await page.get_by_test_id("call").get_attribute("data-session")
    assert (await kiosk.client.request("GET", f"sessions/{session_id}"))["session"]["state"] == "active"


async def test_after_accepting_the_focus_is_in_the_call(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer-accept")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("call")).to_be_visible()
    await expect(page.get_by_test_id("call-mute")).to_be_focused()
    assert await page.evaluate("document.activeElement.closest('[data-testid=call]') !== null")
