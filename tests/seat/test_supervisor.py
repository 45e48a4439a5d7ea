"""The supervisor view in the browser, fed by the real platform: the wallboard per queue (waiting,
longest wait, service level, ASA, abandonment, tellers by state) updating live, the list of calls
only for the supervisor's queues, and monitoring refused outside them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def cell(page: Page, queue: str, field: str) -> Any:
    return page.get_by_test_id("wallboard").locator(f"[data-queue={queue}] [data-field={field}]")


async def test_wallboard_shows_the_queues_and_updates_live(seat: Any, page: Page, second_page: Page,
                                                           kiosk: Any) -> None:
    sup = second_page
    await seat.login(sup, "super1")
    await expect(sup.get_by_test_id("wallboard").locator("caption")).to_have_text("Wallboard")
    ticket = await kiosk.client.create_ticket("deposit")
    # Nobody is ready: the customer waits, and the wallboard says so without a reload.
    await expect(cell(sup, "deposit", "waiting")).to_have_text("1", timeout=8000)
    await expect(cell(sup, "deposit", "longest")).not_to_have_text("0:00", timeout=8000)

    await seat.login(page, "teller1")
    await page.get_by_test_id("state-ready").click()  # a customer waits: the offer comes at once
    await seat.accept_offer(page, kiosk, join=False)
    await expect(cell(sup, "deposit", "waiting")).to_have_text("0", timeout=8000)
    await expect(cell(sup, "deposit", "tellers").locator("[data-state=busy]")).to_have_text("In a call 1",
                                                                                            timeout=8000)
    # Answered within the service-level time: 100%, and an average speed of answer.
    await expect(cell(sup, "deposit", "service_level")).to_have_text("100%", timeout=8000)
    await expect(cell(sup, "deposit", "asa")).to_have_text(re.compile(r"^0:[0-5]\d$"))  # the wait it had
    await expect(cell(sup, "deposit", "abandoned")).to_have_text("0 (0%)")
    assert ticket["service"] == "deposit"


async def test_an_abandoned_ticket_counts_on_the_wallboard(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.login(page, "super1")
    ticket = await kiosk.client.create_ticket("loans")
    await expect(cell(page, "loans", "waiting")).to_have_text("1", timeout=8000)
    await kiosk.client.leave(ticket["id"])
    await expect(cell(page, "loans", "abandoned")).to_have_text("1 (100%)", timeout=8000)
    await expect(cell(page, "loans", "service_level")).to_have_text("0%")


async def test_a_supervisor_of_other_queues_neither_sees_nor_monitors_the_call(
        seat: Any, page: Page, second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    sup = second_page
    await seat.login(sup, "super2")  # oversees only the "other" queue
    await expect(sup.get_by_test_id("active-calls")).to_contain_text("No calls in progress.")
    await expect(sup.get_by_test_id(f"monitor-{session_id}")).to_have_count(0)
    status = await sup.evaluate(
        "([sid, t]) => fetch(`/api/sessions/${sid}/monitor`, {method: 'POST', headers: {Authorization: `Bearer ${t}`}})"
        ".then(r => r.status)", [session_id, await seat.token(sup)])
    assert status == 403


async def test_the_supervisor_view_in_chinese(seat: Any, page: Page) -> None:
    await page.goto(seat.seat_url)
    await page.get_by_test_id("language").select_option("zh")
    await expect(page.get_by_test_id("login-submit")).to_have_text("登录")  # the page reloaded in Chinese
    await seat.login(page, "super1")
    await expect(page.get_by_test_id("wallboard").locator("caption")).to_have_text("监控大屏")
    await expect(page.get_by_test_id("active-calls")).to_have_text("当前没有通话。")
