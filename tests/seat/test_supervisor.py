"""The supervisor view in the browser, fed by the real platform: the wallboard per queue (waiting,
longest wait, service level, ASA, abandonment, tellers by state) updating live, the list of calls
only for the supervisor's queues, and monitoring refused outside them; the tellers with their state
and time in state, the monitor in view at 1366x768 with the call's live transcript, and
authorisation requests naming the service, who asked and when (issue 14, point 7); the monitor filled in
with what was said before it opened (from the call's history)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from cloudbank.platform.events import publish_to_session
from cloudbank.video.asr import AsrResult
from cloudbank.video.transcript import transcript_event

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


async def test_the_teller_list_shows_each_tellers_state_and_time_in_state(seat: Any, page: Page,
                                                                         second_page: Page, kiosk: Any) -> None:
    sup = second_page
    await seat.login(sup, "super1")
    one, two = seat.people["teller1"], seat.people["teller2"]
    await expect(sup.get_by_test_id("teller-list")).to_be_visible()
    await expect(sup.get_by_test_id("my-state")).to_be_hidden()  # a supervisor has no teller state to show
    await expect(sup.get_by_test_id(f"teller-state-{two}")).to_have_text("Offline")
    await expect(sup.get_by_test_id(f"teller-since-{two}")).to_have_text("–")
    await seat.teller_ready(page)
    row = sup.get_by_test_id(f"teller-row-{one}")
    await expect(sup.get_by_test_id(f"teller-state-{one}")).to_have_text("Ready", timeout=8000)
    # Time in state counts on the screen: 0:00, then 0:02 two seconds later.
    since = sup.get_by_test_id(f"teller-since-{one}")
    await expect(since).to_have_text(re.compile(r"^0:0[0-2]$"))
    await expect(since).to_have_text(re.compile(r"^0:0[2-5]$"), timeout=5000)
    # One row per teller (not a count per queue): the call shows on teller1's row.
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    await expect(sup.get_by_test_id(f"teller-state-{one}")).to_have_text("In a call", timeout=8000)
    await expect(row.locator("[data-field=call]")).to_contain_text("Deposits", timeout=8000)
    await expect(sup.get_by_test_id(f"teller-monitor-{session_id}")).to_have_accessible_name("Monitor Teller1's call")
    await expect(sup.get_by_test_id("teller-list").locator("tbody tr")).to_have_count(2)
    await page.get_by_test_id("end-call").click()
    await expect(sup.get_by_test_id(f"teller-state-{one}")).to_have_text("Wrap-up", timeout=8000)


def in_view(box: Any, width: int = 1366, height: int = 768) -> bool:
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height and box["x"] + box["width"] <= width


async def test_the_monitor_is_in_view_with_the_calls_live_transcript(seat: Any, page: Page, second_page: Page,
                                                                     kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk)
    sup = second_page
    await seat.login(sup, "super1")
    # A pending request and a few teller rows: the page is longer than the screen.
    await page.get_by_test_id("ask-authorisation").click()
    await page.get_by_test_id("action-reason").fill("Waive the card fee")
    await page.get_by_test_id("action-send").click()
    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    for testid in ("monitor-customer", "monitor-teller", "monitor-transcript", "monitor-stop"):
        assert in_view(await sup.get_by_test_id(testid).bounding_box()), f"{testid} is not in view at 1366x768"
    # What the video node's recogniser publishes reaches the monitor's transcript as it is said.
    client = aioredis.Redis.from_url(seat.config.redis_url)
    try:
        await publish_to_session(client, session_id, transcript_event(
            "customer", AsrResult(text="I would like to open a savings account", final=True, start=1.0, end=3.0)))
        await publish_to_session(client, session_id, transcript_event(
            "teller", AsrResult(text="certainly let me help", final=False, start=3.5, end=4.0)))
    finally:
        await client.aclose()
    transcript = sup.get_by_test_id("monitor-transcript")
    await expect(transcript.get_by_test_id("transcript-final")).to_contain_text("open a savings account")
    await expect(transcript.get_by_test_id("transcript-partial")).to_contain_text("certainly let me help")
    await seat.wait_frames_rising(sup, "monitor-customer")


async def test_authorisation_requests_name_the_service_who_asked_and_when(seat: Any, page: Page,
                                                                         second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    sup = second_page
    await seat.login(sup, "super1")
    await expect(sup.get_by_test_id("authorisations")).to_contain_text("No pending requests.")
    await page.get_by_test_id("ask-authorisation").click()
    await page.get_by_test_id("action-reason").fill("Withdrawal over the daily limit")
    await page.get_by_test_id("action-send").click()
    item = sup.get_by_test_id("authorisations").locator("li")
    await expect(item).to_have_count(1, timeout=8000)
    aid = await item.get_attribute("data-authorisation")
    await expect(sup.get_by_test_id(f"auth-teller-{aid}")).to_have_text("Teller1")
    await expect(sup.get_by_test_id(f"auth-service-{aid}")).to_have_text("Deposits")
    await expect(sup.get_by_test_id(f"auth-time-{aid}")).to_have_text(re.compile(r"^asked at \d\d:\d\d:\d\d$"))
    assert "deposit" not in (await item.inner_text()).replace("Deposits", "")
    await expect(sup.get_by_test_id(f"auth-text-{aid}")).to_have_text("Withdrawal over the daily limit")
    # ...and still after a reload (the platform lists pending requests).
    await sup.reload()
    await expect(sup.get_by_test_id(f"auth-service-{aid}")).to_have_text("Deposits")
    await sup.get_by_test_id(f"auth-reason-{aid}").fill("known customer")
    await sup.get_by_test_id(f"auth-grant-{aid}").click()
    await expect(sup.get_by_test_id(f"auth-{aid}")).to_have_count(0)
    await expect(page.get_by_test_id("call-log")).to_contain_text("known customer")


async def test_the_monitor_shows_what_was_said_before_monitoring_began(seat: Any, page: Page, second_page: Page,
                                                                       kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    sup = second_page
    await seat.login(sup, "super1")
    client = aioredis.Redis.from_url(seat.config.redis_url)
    try:
        # Said before the supervisor opened the monitor: the teller's screen has it, and now the monitor.
        await publish_to_session(client, session_id, transcript_event(
            "customer", AsrResult(text="I lost my debit card yesterday", final=True, start=1.0, end=3.0)))
        await publish_to_session(client, session_id, transcript_event(
            "teller", AsrResult(text="I will block it for you now", final=True, start=3.5, end=5.0)))
        await expect(page.get_by_test_id("transcript-final")).to_have_count(2)
        await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
        lines = sup.get_by_test_id("monitor-transcript").get_by_test_id("transcript-final")
        await expect(lines).to_have_count(2)
        await expect(lines.nth(0)).to_contain_text("lost my debit card")
        await expect(lines.nth(1)).to_contain_text("block it for you")
        # What is said next follows them, once each.
        await publish_to_session(client, session_id, transcript_event(
            "customer", AsrResult(text="thank you very much", final=True, start=6.0, end=7.0)))
        await expect(lines).to_have_count(3)
        await expect(lines.nth(2)).to_contain_text("thank you very much")
    finally:
        await client.aclose()
