"""An offered call in the browser: it rings (WebAudio and a visual), shows service, channel with
the branch's name, priority and time waited, counts down, and can be declined or missed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Page, expect

from cloudbank.kiosk_client.client import PlatformClient

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_offer_rings_with_details_and_decline_puts_the_customer_back(seat: Any, page: Page, kiosk: Any) -> None:
    ticket = await kiosk.client.create_ticket("deposit")
    # The customer cannot claim VIP; a supervisor of the queue sets it while the ticket waits.
    supervisor = PlatformClient(seat.url)
    try:
        signed_in = await supervisor.request("POST", "login", {"username": "super1", "password": seat.password})
        supervisor.token = signed_in["token"]
        await supervisor.request("POST", f"tickets/{ticket['id']}/priority", {"priority": "vip"})
    finally:
        await supervisor.close()
    await seat.login(page, "teller1")
    await page.get_by_test_id("state-ready").click()  # offered at once: the ticket waits already
    offer = page.get_by_test_id("offer")
    await expect(offer).to_be_visible()
    await expect(offer).to_have_attribute("role", "alertdialog")
    await expect(page.get_by_test_id("offer-service")).to_have_text("Deposits")
    await expect(page.get_by_test_id("offer-channel")).to_have_text("Kiosk at Demo Branch")
    await expect(page.get_by_test_id("offer-priority")).to_have_text("VIP")
    waited = page.get_by_test_id("offer-waited")
    await expect(waited).to_have_text(re.compile(r"^0:\d\d$"))
    await expect(waited).not_to_have_text(await waited.text_content() or "", timeout=3000)
    # The ring is a WebAudio beep loop while the offer is up.
    assert await page.evaluate("window.cloudbankSeat.ringer.ringing") is True
    countdown = page.get_by_test_id("offer-countdown")
    first = await countdown.text_content()
    await expect(countdown).not_to_have_text(first or "", timeout=3000)

    await page.get_by_test_id("offer-decline").click()
    await expect(offer).to_have_count(0)
    assert await page.evaluate("window.cloudbankSeat.ringer.ringing") is False
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "not_ready")
    await expect(page.get_by_test_id("state-now")).to_contain_text("Declined a call")
    await expect(page.get_by_test_id("today-counts").locator("[data-count=declined]")).to_have_text("1")
    # The customer keeps their place in the queue.
    assert (await kiosk.client.ticket(ticket["id"]))["state"] == "waiting"


async def test_escape_declines_from_the_keyboard(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer-accept")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("offer")).to_have_count(0)
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "not_ready")


async def test_an_unanswered_offer_times_out_and_says_so(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("loans")  # rings for 2 s
    await expect(page.get_by_test_id("offer-service")).to_have_text("Loans")
    await expect(page.get_by_test_id("offer")).to_have_count(0, timeout=8000)
    await expect(page.get_by_test_id("notice")).to_have_text("You missed a call, so you are now not ready.")
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "not_ready")
    await expect(page.get_by_test_id("state-now")).to_contain_text("Missed a call")
    await expect(page.get_by_test_id("today-counts").locator("[data-count=missed]")).to_have_text("1")
    # Ready again, the customer (who kept their place) rings again; in the call the warning is gone.
    await page.get_by_test_id("state-ready").click()
    await page.get_by_test_id("offer-accept").click()
    await expect(page.get_by_test_id("call")).to_be_visible()
    await expect(page.get_by_test_id("notice")).to_be_hidden()


async def test_not_ready_with_a_reason_gets_no_offer(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await page.get_by_test_id("not-ready-reason").select_option("lunch")
    await page.get_by_test_id("state-not-ready").click()
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "not_ready")
    await expect(page.get_by_test_id("state-now")).to_contain_text("Lunch")
    await expect(page.get_by_test_id("state-not-ready")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("my-state")).to_have_text("Not ready")
    await kiosk.client.create_ticket("deposit")
    # The queue shows the waiting customer, and no offer rings.
    await expect(page.get_by_test_id("my-queues").locator("[data-queue=deposit] [data-field=waiting]")
                 ).to_have_text("1", timeout=8000)
    await expect(page.get_by_test_id("my-queues").locator("[data-queue=deposit] th")).to_have_text("Deposits")
    await expect(page.get_by_test_id("offer")).to_have_count(0)


async def test_the_countdown_is_right_when_this_computers_clock_is_wrong(seat: Any, page: Page,
                                                                         kiosk: Any) -> None:
    await seat.teller_ready(page)
    # This browser's clock runs an hour fast; the offer's expiry is on the server's clock.
    now = await page.evaluate("Date.now()")
    await page.clock.set_system_time(datetime.fromtimestamp(now / 1000 + 3600, tz=UTC))
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer-countdown")).to_have_text(re.compile(r"^Answer within (1\d|20) s$"))
