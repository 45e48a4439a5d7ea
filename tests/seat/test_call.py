"""The whole call in a real browser: a teller goes ready, a kiosk (the kiosk SDK, aiortc) takes a
ticket, the offer rings, the teller accepts, video flows both ways through the real video node, a
supervisor sees and monitors the call, the call ends, wrap-up is submitted, the teller is ready."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.media_sources import synthetic
from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.slow


class Kiosk:
    """A kiosk customer driven from the test: platform client, event stream, call."""

    def __init__(self, client: PlatformClient) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.stream = client.events()
        self.reader = asyncio.create_task(self._read())
        self.call: Call | None = None

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    async def wait_event(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                for e in self.events:
                    if e.get("type") == kind:
                        return e
                await asyncio.sleep(0.1)

        return await asyncio.wait_for(find(), timeout)

    async def join(self, session_id: str) -> Call:
        self.call = await Call.for_session(self.client, session_id, synthetic(1), ice_addresses=["127.0.0.1"])
        await self.call.join()
        return self.call

    async def close(self) -> None:
        if self.call is not None:
            await self.call.leave()
        await self.stream.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        await self.client.close()


@pytest.fixture
async def kiosk(seat: Any) -> AsyncIterator[Kiosk]:
    client = PlatformClient(seat.url)
    await client.enrol(await seat.enrolment_code(), "kiosk-1")
    k = Kiosk(client)
    await k.stream.wait_connected()
    yield k
    await k.close()


async def frames_decoded(page: Page, testid: str = "remote-video") -> int:
    value = await page.get_by_test_id(testid).get_attribute("data-frames-decoded")
    return int(value or 0)


async def wait_frames_rising(page: Page, testid: str = "remote-video", timeout: float = 20.0) -> tuple[int, int]:
    """framesDecoded (from getStats) above zero, then higher a moment later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first = 0
    while loop.time() < deadline and first == 0:
        first = await frames_decoded(page, testid)
        await asyncio.sleep(0.3)
    assert first > 0, "the remote video never decoded a frame"
    second = first
    while loop.time() < deadline and second <= first:
        await asyncio.sleep(0.5)
        second = await frames_decoded(page, testid)
    assert second > first, "framesDecoded stopped rising"
    return first, second


async def teller_ready(page: Page, seat: Any, username: str = "teller1") -> None:
    await seat.login(page, username)
    await page.get_by_test_id("state-ready").click()
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready")


async def accept_offer(page: Page, kiosk: Kiosk) -> tuple[str, Call]:
    offer = page.get_by_test_id("offer")
    await expect(offer).to_be_visible()
    await expect(page.get_by_test_id("offer-service")).to_have_text("Deposits")
    await expect(page.get_by_test_id("offer-channel")).to_have_text("Kiosk at Demo Branch")
    await expect(page.get_by_test_id("offer-countdown")).to_contain_text("Answer within")
    await expect(page.get_by_test_id("offer-accept")).to_be_focused()
    await page.get_by_test_id("offer-accept").click()
    await expect(page.get_by_test_id("call")).to_be_visible()
    started = await kiosk.wait_event("session.started")
    session_id = started["session"]["id"]
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)
    call = await kiosk.join(session_id)
    return session_id, call


async def test_a_whole_call_from_ready_to_ready(seat: Any, page: Page, browser: Browser, kiosk: Kiosk,
                                                page_errors: list[str]) -> None:
    await teller_ready(page, seat)
    await kiosk.client.create_ticket("deposit")
    session_id, call = await accept_offer(page, kiosk)

    # Video both ways: the browser decodes the kiosk's frames; the kiosk receives the fake camera.
    await wait_frames_rising(page)
    await call.wait_for(lambda: call.remote.frames["video"] > 5, timeout=20)
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
    await expect(page.get_by_test_id("call-quality")).to_contain_text("kbit/s")

    # A supervisor of the queue sees the call and monitors it receive-only.
    sup_context = await browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        sup = await sup_context.new_page()
        await seat.login(sup, "super1")
        await expect(sup.get_by_test_id("wallboard")).to_contain_text("deposit")
        await expect(sup.get_by_test_id(f"call-row-{session_id}")).to_contain_text("Teller1")
        await sup.get_by_test_id(f"monitor-{session_id}").click()
        await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected",
                                                                             timeout=20_000)
        await wait_frames_rising(sup, "monitor-customer")
    finally:
        await sup_context.close()

    # End the call, wrap up, and the teller is ready again after the queue's wrap-up time.
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await page.get_by_test_id("wrapup-submit").click()
    await expect(page.get_by_test_id("wrapup-error")).to_have_text("Choose a disposition code first.")
    await page.get_by_test_id("wrapup-code").select_option("resolved")
    await page.get_by_test_id("wrapup-notes").fill("opened a savings account")
    await page.get_by_test_id("wrapup-submit").click()
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready", timeout=15_000)
    await expect(page.get_by_test_id("today-counts").locator("[data-count=calls]")).to_have_text("1")
    assert not [e for e in page_errors if "pageerror" in e], page_errors
