"""The phone (H5) page in headless Chromium with mobile emulation (390x844, touch) and a fake
camera, against the real platform and video node: verify by one-time code, pick a service, wait,
then a call with a teller played by the SDK. Both sides decode the other's video: the teller's
SDK counts Chromium's frames, the page reads the teller's pixel stamps off its <video>."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.media_sources import synthetic

from .conftest import READ_STAMP, Stack, Teller, until

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]
TELLER_SOURCE = 33



@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[tuple[Page, list[str]]]:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                        is_mobile=True, has_touch=True, locale="en-US",
                                        permissions=["camera", "microphone"])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    yield page, errors
    await context.close()


def _otp(stack: Stack, phone: str) -> str:
    lines = [ln for ln in (stack.config.data / "otp.log").read_text().splitlines() if phone in ln]
    return re.findall(r"(\d{6})$", lines[-1])[0]


async def _sign_in(page: Page, stack: Stack, phone: str = "+821012345678") -> None:
    await page.goto(stack.url + "/phone/")
    await page.get_by_test_id("phone-number").fill(phone)
    await page.get_by_test_id("send-code").tap()
    await expect(page.get_by_test_id("otp-code")).to_be_visible()
    code = _otp(stack, phone)
    wrong = str((int(code) + 1) % 10**6).zfill(6)
    await page.get_by_test_id("otp-code").fill(wrong)
    await page.get_by_test_id("verify").tap()
    await expect(page.get_by_test_id("error")).not_to_be_empty()
    await expect(page.get_by_test_id("screen-verify")).to_be_visible()
    await page.get_by_test_id("otp-code").fill(code)
    await page.get_by_test_id("verify").tap()
    await expect(page.get_by_test_id("screen-services")).to_be_visible()


async def _no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide at a 390px viewport"


async def _every_control_has_a_testid(page: Page) -> None:
    missing = await page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea, canvas, a')]
        .filter((e) => !e.closest('[hidden]') && !e.dataset.testid).map((e) => e.outerHTML.slice(0, 80))""")
    assert missing == []


async def test_phone_call_with_a_teller_both_sides_decode_video(
        stack: Stack, teller: Teller, phone: tuple[Page, list[str]]) -> None:
    page, errors = phone
    await _sign_in(page, stack)
    await _every_control_has_a_testid(page)
    await page.get_by_test_id("service-general").tap()
    await expect(page.get_by_test_id("screen-wait")).to_be_visible()
    await expect(page.get_by_test_id("queue-position")).not_to_have_text("-")
    await _no_horizontal_scroll(page)

    session_id, grant = await teller.accept_next(timeout=30)
    call = Call(grant, synthetic(TELLER_SOURCE), ice_addresses=["127.0.0.1"])
    try:
        await call.join()
        await expect(page.get_by_test_id("screen-call")).to_be_visible()
        await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
        # The teller decodes Chromium's fake camera ...
        await call.wait_for(lambda: call.remote.frames["video"] >= 20, 30)
        assert call.remote.last_video.width > 0
        # ... and the page decodes the teller's stamped frames, in order.
        seen: list[Any] = []

        async def stamps() -> bool:
            stamp = await page.evaluate(READ_STAMP)
            if stamp and (not seen or stamp[1] != seen[-1][1]):
                seen.append(stamp)
            return len(seen) >= 5

        for _ in range(200):
            if await stamps():
                break
            await page.wait_for_timeout(50)
        assert len(seen) >= 5 and all(s[0] == TELLER_SOURCE for s in seen)
        counters = [s[1] for s in seen]
        assert counters == sorted(counters)
        await _no_horizontal_scroll(page)

        # A form, filled in and accepted on the phone.
        await teller.push(session_id, {"kind": "form", "title": "Confirm your details", "fields": [
            {"name": "name", "label": "Name", "value": "Kim", "required": True},
            {"name": "agree", "label": "I agree", "kind": "checkbox", "required": True}]})
        await expect(page.get_by_test_id("push-title")).to_have_text("Confirm your details")
        await page.get_by_test_id("push-confirm").tap()
        await expect(page.get_by_test_id("push-error")).to_contain_text("I agree")
        await page.get_by_test_id("push-field-agree").tap()
        await page.get_by_test_id("push-confirm").tap()
        await until(lambda: len(teller.of_type("push.response")) == 1, what="the form answer")
        assert teller.of_type("push.response")[0]["values"] == {"name": "Kim", "agree": "true"}

        # A signature drawn with a finger (touch pointer events) on the pad.
        await teller.push(session_id, {"kind": "signature_request", "title": "Please sign"})
        pad = page.get_by_test_id("signature-pad")
        await expect(pad).to_be_visible()
        await page.get_by_test_id("push-confirm").tap()
        await expect(page.get_by_test_id("push-error")).to_have_text("Please sign first.")
        box = await pad.bounding_box()
        assert box is not None
        await pad.dispatch_event("pointerdown", {"pointerType": "touch", "clientX": box["x"] + 20,
                                                 "clientY": box["y"] + 40, "pointerId": 1, "isPrimary": True})
        for i in range(1, 20):
            await pad.dispatch_event("pointermove", {"pointerType": "touch", "clientX": box["x"] + 20 + i * 12,
                                                     "clientY": box["y"] + 40 + (i % 5) * 8, "pointerId": 1})
        await pad.dispatch_event("pointerup", {"pointerType": "touch", "pointerId": 1})
        await page.get_by_test_id("push-confirm").tap()
        await until(lambda: len(teller.of_type("push.response")) == 2, what="the signature")
        assert teller.of_type("push.response")[1]["signature_sha256"]
        await expect(page.get_by_test_id("push-overlay")).to_be_hidden()

        # The phone's signalling drops: the page rejoins with a fresh token and media flows again.
        frames_before = call.remote.frames["video"]
        await page.evaluate("() => window.cloudbankPhone.call.ws.close()")
        await page.wait_for_function("() => window.cloudbankPhone.call.rejoins === 1")
        await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
        await call.wait_for(lambda: call.remote.frames["video"] > frames_before + 20, 30)
        assert call.state == "connected" and call.rejoins == 0   # the teller's side never noticed

        await teller.client.request("POST", f"sessions/{session_id}/end")
        await expect(page.get_by_test_id("screen-done")).to_be_visible()
    finally:
        await call.leave()
        call.sources.stop()
    assert errors == []


async def test_the_customer_reads_plain_words_from_queue_to_hang_up(
        stack: Stack, teller: Teller, phone: tuple[Page, list[str]]) -> None:
    # The customer's page joins first; the teller's arrival is a signalling message ("peer.joined")
    # that used to replace "connected" on the customer's screen.
    page, errors = phone
    await page.goto(stack.url + "/phone/")
    await page.get_by_test_id("phone-number").fill("12345")
    await page.get_by_test_id("send-code").tap()
    await expect(page.get_by_test_id("error")).to_have_text(
        "Enter your mobile number: 6 to 15 digits, for example +82 10 1234 5678.")
    await page.get_by_test_id("phone-number").fill("+821012345678")
    await page.get_by_test_id("send-code").tap()
    await expect(page.get_by_test_id("otp-code")).to_be_visible()
    wrong = str((int(_otp(stack, "+821012345678")) + 1) % 10**6).zfill(6)
    await page.get_by_test_id("otp-code").fill(wrong)
    await page.get_by_test_id("verify").tap()
    await expect(page.get_by_test_id("error")).to_have_text("The code is wrong.")  # a sentence
    await _sign_in(page, stack)
    await page.get_by_test_id("service-general").tap()
    # Offered to the (ready) teller, the ticket is out of the queue: "next", not "number 0".
    await expect(page.get_by_test_id("queue-next")).to_be_visible()
    await expect(page.get_by_test_id("queue-line")).to_be_hidden()
    session_id, grant = await teller.accept_next(timeout=30)
    await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
    call = Call(grant, synthetic(TELLER_SOURCE), ice_addresses=["127.0.0.1"])
    try:
        await call.join()
        for _ in range(200):  # the teller's frames arrive after the message that announced them
            if await page.evaluate(READ_STAMP):
                break
            await page.wait_for_timeout(50)
        assert await page.evaluate(READ_STAMP)
        await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected")
        # A signature request still open when the call ends goes away with the call.
        await teller.push(session_id, {"kind": "signature_request", "title": "Sign here"})
        await expect(page.get_by_test_id("push-overlay")).to_be_visible()
        await teller.client.request("POST", f"sessions/{session_id}/end")
        await expect(page.get_by_test_id("screen-done")).to_be_visible()
        await expect(page.get_by_test_id("push-overlay")).to_be_hidden()
    finally:
        await call.leave()
        call.sources.stop()
    assert errors == []


async def test_no_call_back_is_offered_when_the_wait_is_short(stack: Stack, phone: tuple[Page, list[str]]) -> None:
    page, errors = phone
    await _sign_in(page, stack, "+821077776666")
    await page.get_by_test_id("service-general").tap()
    await expect(page.get_by_test_id("screen-wait")).to_be_visible()
    await expect(page.get_by_test_id("queue-wait")).not_to_have_text("-")
    await expect(page.get_by_test_id("book-callback")).to_be_hidden()
    assert errors == []


@pytest.mark.parametrize("stack_overrides", [{"callback_threshold_s": 1.0}])
async def test_phone_can_leave_the_queue_and_book_a_call_back(
        stack: Stack, phone: tuple[Page, list[str]]) -> None:
    page, errors = phone
    await _sign_in(page, stack, "+821099998888")
    await page.get_by_test_id("service-general").tap()
    await expect(page.get_by_test_id("screen-wait")).to_be_visible()
    await expect(page.get_by_test_id("callback-offer")).to_be_visible()
    await page.get_by_test_id("leave-queue").tap()
    await expect(page.get_by_test_id("done-message")).to_have_text("You left the queue.")
    await page.get_by_test_id("start-over").tap()
    await page.get_by_test_id("service-general").tap()
    await expect(page.get_by_test_id("screen-wait")).to_be_visible()
    await page.get_by_test_id("book-callback").tap()
    await expect(page.get_by_test_id("screen-done")).to_be_visible()
    await expect(page.get_by_test_id("done-message")).to_contain_text("call you back")
    assert errors == []


async def test_the_page_is_served_under_a_strict_policy(stack: Stack) -> None:
    async with PlatformClient(stack.url) as client:
        async with client.http.get(stack.url + "/phone/") as resp:
            assert resp.status == 200
            policy = resp.headers["Content-Security-Policy"]
            html = await resp.text()
        async with client.http.get(stack.url + "/phone/static/js/phone.js") as js:
            assert js.status == 200 and "javascript" in js.headers["Content-Type"]
        async with client.http.get(stack.url + "/phone/static/../phone_app.py") as trick:
            assert trick.status in (403, 404)
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in html and 'style="' not in html
