"""The call's actions in the browser against the real platform: hold and resume, pushing a form
and a signature request that the kiosk answers, asking a supervisor for authorisation (granted
and refused from the supervisor view), transferring, and the snapshot button."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from cloudbank.platform import events
from cloudbank.platform.service import redis_client

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def session_state(kiosk: Any, session_id: str) -> str:
    return str((await kiosk.client.request("GET", f"sessions/{session_id}"))["session"]["state"])


async def test_hold_and_resume(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk)
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    hold = page.get_by_test_id("call-hold")
    await hold.click()
    await expect(hold).to_have_attribute("aria-pressed", "true")
    await expect(hold).to_have_text("Resume")
    assert await session_state(kiosk, session_id) == "on_hold"
    # On hold the teller's own camera and microphone are off.
    assert await page.evaluate(
        "window.cloudbankSeat.screen.stream.getTracks().every(t => !t.enabled)") is True
    await hold.click()
    await expect(hold).to_have_attribute("aria-pressed", "false")
    assert await session_state(kiosk, session_id) == "active"


async def test_mute_and_camera_off_are_local_toggles(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    for _ in range(50):  # the camera opens asynchronously (wait_for_function would need eval: CSP)
        if await page.evaluate("Boolean(window.cloudbankSeat.screen.stream)"):
            break
        await page.wait_for_timeout(100)
    mute = page.get_by_test_id("call-mute")
    await mute.focus()
    await page.keyboard.press("Enter")
    await expect(mute).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate("window.cloudbankSeat.screen.stream.getAudioTracks()[0].enabled") is False
    await page.get_by_test_id("call-camera").click()
    assert await page.evaluate("window.cloudbankSeat.screen.stream.getVideoTracks()[0].enabled") is False


async def test_push_a_form_and_a_signature_request_the_kiosk_answers(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)

    await page.get_by_test_id("push-form").click()
    await expect(page.get_by_test_id("action-title")).to_be_focused()
    await page.get_by_test_id("action-send").click()
    await expect(page.get_by_test_id("action-error")).to_have_text("Fill in every field.")
    await page.get_by_test_id("action-title").fill("Open an account")
    await page.get_by_test_id("action-fields").fill("Account name\nMonthly deposit")
    before = len(kiosk.events)
    await page.get_by_test_id("action-send").click()
    await expect(page.get_by_test_id("action-panel")).to_have_count(0)
    await expect(page.get_by_test_id("call-log")).to_contain_text("Sent to the customer: Open an account")
    push = await kiosk.wait_event("push", after=before)
    assert push["kind"] == "form" and [f["name"] for f in push["fields"]] == ["account_name", "monthly_deposit"]
    await kiosk.client.respond(session_id, push["push_id"], "accept",
                               values={"account_name": "Kim", "monthly_deposit": "100"})
    await expect(page.get_by_test_id("call-log")).to_contain_text("The customer confirmed: Open an account")

    await page.get_by_test_id("request-signature").click()
    await page.get_by_test_id("action-title").fill("Sign the account terms")
    await page.keyboard.press("Enter")
    # after the form's push itself: session.started may reach the kiosk after `before` was counted
    sig = await kiosk.wait_event("push", after=kiosk.events.index(push) + 1)
    assert sig["kind"] == "signature_request" and sig["title"] == "Sign the account terms"


async def test_a_panel_closes_with_escape_and_returns_focus(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    await page.get_by_test_id("push-document").click()
    await expect(page.get_by_test_id("action-panel")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("action-panel")).to_have_count(0)
    await expect(page.get_by_test_id("push-document")).to_be_focused()


async def test_authorisation_granted_and_refused_by_a_supervisor(seat: Any, page: Page, second_page: Page,
                                                                 kiosk: Any) -> None:
    sup = second_page
    await seat.login(sup, "super1")
    await expect(sup.get_by_test_id("authorisations")).to_contain_text("No pending requests.")
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)

    for reason, grant in (("waive the transfer fee", True), ("raise the daily limit", False)):
        await page.get_by_test_id("ask-authorisation").click()
        await page.get_by_test_id("action-reason").fill(reason)
        await page.get_by_test_id("action-send").click()
        await expect(page.get_by_test_id("call-log")).to_contain_text("Authorisation request sent to a supervisor")
        item = sup.locator("[data-authorisation]", has_text=reason)
        await expect(item).to_be_visible()
        auth_id = await item.get_attribute("data-authorisation")
        # A decision needs a reason.
        await sup.get_by_test_id(f"auth-grant-{auth_id}").click()
        await expect(item).to_contain_text("Give a reason first.")
        await sup.get_by_test_id(f"auth-reason-{auth_id}").fill("checked with the branch")
        await sup.get_by_test_id(f"auth-{'grant' if grant else 'refuse'}-{auth_id}").click()
        await expect(item).to_have_count(0)
        word = "granted" if grant else "refused"
        await expect(page.get_by_test_id("call-log")).to_contain_text(f"Authorisation {word}: checked with the branch")


async def test_transfer_to_another_queue_ends_the_tellers_leg(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    ticket = await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    await page.get_by_test_id("transfer").click()
    await page.get_by_test_id("action-target").select_option("loans")
    await page.get_by_test_id("action-send").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    back = await kiosk.client.ticket(ticket["id"])
    assert back["service"] == "loans" and back["state"] in ("waiting", "offered")


async def test_snapshot_is_taken_by_the_video_node_and_shown(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk)
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    await seat.wait_frames_rising(page)
    await page.get_by_test_id("snapshot").click()
    item = page.get_by_test_id("snapshot-item")
    await expect(item).to_have_count(1, timeout=15_000)
    await expect(item).to_contain_text("face(s) found")
    await expect(page.get_by_test_id("call-log")).to_contain_text("Snapshot taken")
    img = item.locator("img")
    assert f"/video/snapshots/{session_id}/" in (await img.get_attribute("src") or "")
    # The node serves it to the call's teller (join token in the query); the picture decodes.
    await expect(img).to_have_js_property("complete", True)
    assert await img.evaluate("i => i.naturalWidth") > 0

    # A snapshot announced on the platform's event stream (e.g. taken on another node) is shown too.
    redis = redis_client(str(seat.config.redis_url))
    try:
        await events.publish_to_session(redis, session_id, {"type": "snapshot", "url": "/video/snap/1.jpg",
                                                            "faces": [{"x": 1, "y": 2, "w": 3, "h": 4}]})
    finally:
        await redis.aclose()
    await expect(item).to_have_count(2)
    await expect(item.first).to_contain_text("1 face(s) found")
