"""The call screen keeps the call's history: changing the language re-renders it in place (no page
reload: the video link, the log, the transcript and the answers stay), and after a reload it is
rebuilt from the platform (the transcript so far, keyword hits, snapshots, pushes and answers, ID
cards, the call log, hold)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from playwright.async_api import Page, expect

from cloudbank.kiosk_client import forms
from cloudbank.platform import events
from cloudbank.platform.service import redis_client

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LINES = [("customer", "I would like to open a savings account", 1.0), ("teller", "Of course, let me help", 4.0)]


async def say(seat: Any, session_id: str) -> None:
    """What the video node's transcript and snapshot stages send to the call's audience."""
    redis = redis_client(str(seat.config.redis_url))
    try:
        for speaker, text, start in LINES:
            await events.publish_to_session(redis, session_id, {
                "type": "transcript", "speaker": speaker, "text": text[:10], "final": False, "start": start,
                "end": start + 1, "words": []})
            await events.publish_to_session(redis, session_id, {
                "type": "transcript", "speaker": speaker, "text": text, "final": True, "start": start,
                "end": start + 2, "words": []})
        await events.publish_to_session(redis, session_id, {"type": "keyword", "rule": "deposit", "phrase": "savings",
                                                            "kind": "suggest", "service": "deposit"})
        await events.publish_to_session(redis, session_id, {"type": "snapshot", "url": "/video/snap/1.jpg",
                                                            "faces": [[1, 2, 3, 4]]})
    finally:
        await redis.aclose()


async def check_history(page: Page, lang: str = "en") -> None:
    finals = page.get_by_test_id("transcript-final")
    await expect(finals).to_have_count(2)
    await expect(finals.locator(".text")).to_have_text([text for _, text, _ in LINES])
    await expect(finals.first.locator("mark")).to_have_text("savings")
    await expect(page.get_by_test_id("transcript-partial")).to_have_count(0)
    await expect(page.get_by_test_id("keyword-suggest")).to_have_count(1)
    await expect(page.get_by_test_id("snapshot-item")).to_have_count(1)
    item = page.get_by_test_id("push-item")
    await expect(item).to_have_count(1)
    await expect(item).to_have_attribute("data-state", "accept")
    await expect(item.get_by_test_id("push-title")).to_have_text("Open an account")
    await expect(item.locator("dd")).to_have_text(["Kim"])
    await expect(page.get_by_test_id("id-card")).to_have_count(1)
    confirmed = {"en": "The customer confirmed: Open an account", "zh": "客户已确认：Open an account"}[lang]
    await expect(page.get_by_test_id("call-log")).to_contain_text(confirmed)


async def test_language_switch_in_place_and_reload_rebuild_the_call(seat: Any, page: Page, kiosk: Any,
                                                                    page_errors: list[str]) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk)
    await seat.wait_frames_rising(page)

    await page.get_by_test_id("push-form").click()
    await page.get_by_test_id("action-title").fill("Open an account")
    await page.get_by_test_id("action-fields").fill("Account name")
    await page.get_by_test_id("action-send").click()
    push = await kiosk.wait_event("push")
    await kiosk.client.respond(session_id, push["push_id"], "accept", values={"account_name": "Kim"})
    ok, jpg = cv2.imencode(".jpg", np.random.default_rng(3).integers(0, 255, (120, 190, 3), dtype=np.uint8))
    assert ok
    await forms.send_id_card(kiosk.client, session_id, jpg.tobytes(), "front")
    await say(seat, session_id)
    await check_history(page)

    # Chinese, in place: no navigation, the same media link, the same history, new words.
    await page.evaluate("window.__cbSamePage = true")
    rejoins = await page.evaluate("window.cloudbankSeat.screen.link.rejoins")
    await page.get_by_test_id("language").select_option("zh")
    await expect(page.locator("#call-title")).to_contain_text("与客户通话")
    await expect(page.get_by_test_id("call-mute")).to_have_text("静音")
    await expect(page.locator("#conn")).to_have_text("已连接")  # the top bar too
    assert await page.evaluate("window.__cbSamePage === true"), "the page was reloaded"
    await check_history(page, "zh")
    assert await page.evaluate("window.cloudbankSeat.screen.link.rejoins") == rejoins
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
    await seat.wait_frames_rising(page)
    await page.get_by_test_id("language").select_option("en")
    await expect(page.get_by_test_id("call-mute")).to_have_text("Mute")

    # On hold, then a reload: everything comes back from the platform.
    await page.get_by_test_id("call-hold").click()
    await expect(page.get_by_test_id("call-hold")).to_have_attribute("aria-pressed", "true")
    await page.reload()
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)
    await check_history(page)
    await expect(page.get_by_test_id("call-hold")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("call-hold")).to_have_text("Resume")
    assert not [e for e in page_errors if "pageerror" in e], page_errors


async def test_the_wrap_up_switches_language_in_place_keeping_what_was_typed(seat: Any, page: Page,
                                                                               kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await page.get_by_test_id("wrapup-code").select_option("follow_up")
    await page.get_by_test_id("wrapup-notes").fill("call back about the fund")
    await page.get_by_test_id("wrapup-not-ready").check()
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    await page.get_by_test_id("language").select_option("zh")
    await expect(page.get_by_test_id("wrapup-submit")).to_have_text("完成话后处理")
    assert await page.evaluate("window.__sameDocument === true"), "the language switch reloaded the page"
    await expect(page.get_by_test_id("wrapup-code")).to_have_value("follow_up")
    await expect(page.get_by_test_id("wrapup-notes")).to_have_value("call back about the fund")
    await expect(page.get_by_test_id("wrapup-not-ready")).to_be_checked()
    await expect(page.get_by_test_id("wrapup-time-left")).not_to_be_empty()
