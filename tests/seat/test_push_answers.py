"""What the customer answered, in the teller's call screen: each pushed form, signature request or
document is named by its title (never its id), its answer shows whether the customer accepted or
declined, an accepted form's values by their labels, a signature as its picture (fetched with the
teller's token); all of it stays for the rest of the call, across a reload of the console."""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.async_api import Locator, Page, expect

from cloudbank.kiosk_client import forms

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def push_form(page: Page, kiosk: Any, title: str, fields: str, after: int) -> dict[str, Any]:
    await page.get_by_test_id("push-form").click()
    await page.get_by_test_id("action-title").fill(title)
    await page.get_by_test_id("action-fields").fill(fields)
    await page.get_by_test_id("action-send").click()
    await expect(page.get_by_test_id("action-panel")).to_have_count(0)
    event: dict[str, Any] = await kiosk.wait_event("push", after=after)
    return event


def item(page: Page, push: dict[str, Any]) -> Locator:
    return page.locator(f"[data-testid=push-item][data-push-id='{push['push_id']}']")


async def signature_pixels(img: Locator) -> tuple[int, int]:
    for _ in range(50):
        if await img.evaluate("(i) => i.complete && i.naturalWidth > 0"):
            break
        await img.page.wait_for_timeout(100)
    width, height = await img.evaluate("(i) => [i.naturalWidth, i.naturalHeight]")
    return int(width), int(height)


async def check_answers(page: Page, form: dict[str, Any], declined: dict[str, Any], sig: dict[str, Any],
                        sha256: str) -> None:
    accepted = item(page, form)
    await expect(accepted.get_by_test_id("push-title")).to_have_text("Open an account")
    await expect(accepted).to_have_attribute("data-state", "accept")
    await expect(accepted.get_by_test_id("push-answer")).to_have_text("Confirmed by the customer")
    values = accepted.get_by_test_id("push-values")
    await expect(values.locator("dt")).to_have_text(["Account name", "Monthly deposit"])
    await expect(values.locator("dd")).to_have_text(["Kim Min-jun", "100"])
    no = item(page, declined)
    await expect(no.get_by_test_id("push-title")).to_have_text("Direct debit")
    await expect(no).to_have_attribute("data-state", "decline")
    await expect(no.get_by_test_id("push-answer")).to_have_text("Declined by the customer")
    await expect(no.get_by_test_id("push-values")).to_have_count(0)
    signed = item(page, sig)
    await expect(signed.get_by_test_id("push-answer")).to_have_text("Signed by the customer")
    img = signed.get_by_test_id("push-signature")
    await expect(img).to_have_attribute("data-sha256", sha256)
    assert await signature_pixels(img) == (320, 120)  # the customer's own picture, decoded
    await expect(signed.get_by_test_id("push-signature")).to_have_attribute("alt", "The customer's signature: "
                                                                             "Sign the account terms")


async def test_the_customers_answers_show_in_the_call_screen_and_stay(seat: Any, page: Page, kiosk: Any,
                                                                      page_errors: list[str]) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)

    form = await push_form(page, kiosk, "Open an account", "Account name\nMonthly deposit", 0)
    waiting = item(page, form)
    await expect(waiting).to_have_attribute("data-state", "pending")
    await expect(waiting.get_by_test_id("push-answer")).to_have_text("Waiting for the customer's answer")
    await kiosk.client.respond(session_id, form["push_id"], "accept",
                               values={"account_name": "Kim Min-jun", "monthly_deposit": "100"})
    await expect(page.get_by_test_id("call-log")).to_contain_text("The customer confirmed: Open an account")

    declined = await push_form(page, kiosk, "Direct debit", "Bank account", kiosk.events.index(form) + 1)
    await kiosk.client.respond(session_id, declined["push_id"], "decline")
    await expect(page.get_by_test_id("call-log")).to_contain_text("The customer declined: Direct debit")

    await page.get_by_test_id("request-signature").click()
    await page.get_by_test_id("action-title").fill("Sign the account terms")
    await page.get_by_test_id("action-send").click()
    sig = await kiosk.wait_event("push", after=kiosk.events.index(declined) + 1)
    pixels = np.full((120, 320, 3), 255, dtype=np.uint8)
    cv2.line(pixels, (20, 90), (300, 30), (0, 0, 0), 4)
    ok, png = cv2.imencode(".png", pixels)
    assert ok
    await kiosk.client.respond(session_id, sig["push_id"], "accept", signature=forms.signature_data_url(png.tobytes()))
    sha256 = hashlib.sha256(png.tobytes()).hexdigest()
    await expect(page.get_by_test_id("call-log")).to_contain_text("The customer signed: Sign the account terms")
    log = await page.get_by_test_id("call-log").inner_text()
    for push in (form, declined, sig):
        assert push["push_id"] not in log
    await check_answers(page, form, declined, sig, sha256)

    # A reload (or a language change) rebuilds the same answers from the platform.
    await page.reload()
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)
    await expect(page.get_by_test_id("push-item")).to_have_count(3)
    await check_answers(page, form, declined, sig, sha256)
    assert not [e for e in page_errors if "pageerror" in e], page_errors
