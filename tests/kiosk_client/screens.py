"""Helpers for the customer screens' browser tests: a browser context per viewport, the kiosk app's
screen and the phone page reached at the call, and viewport screenshots for the issue notes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from .conftest import Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]
KIOSK: ViewportSize = {"width": 1366, "height": 768}
PHONE: ViewportSize = {"width": 390, "height": 844}
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "issue-14"


async def new_context(browser: Browser, viewport: ViewportSize, locale: str = "en-US") -> BrowserContext:
    mobile = viewport["width"] < 600
    return await browser.new_context(viewport=viewport, has_touch=True, is_mobile=mobile, locale=locale,
                                     permissions=["camera", "microphone"])


async def shoot(page: Page, name: str) -> None:
    """With CLOUDBANK_SCREENSHOTS=before|after, save the viewport as <name>-<when>-<width>.png."""
    when = os.environ.get("CLOUDBANK_SCREENSHOTS")
    if when:
        SHOTS.mkdir(parents=True, exist_ok=True)
        width = (page.viewport_size or {"width": 0})["width"]
        await page.screenshot(path=str(SHOTS / f"{name}-{when}-{width}.png"))


def otp(stack: Stack, phone: str) -> str:
    lines = [ln for ln in (stack.config.data / "otp.log").read_text().splitlines() if phone in ln]
    return str(re.findall(r"(\d{6})$", lines[-1])[0])


async def phone_sign_in(page: Page, stack: Stack, phone: str = "+821012345678") -> None:
    await page.goto(stack.url + "/phone/")
    await page.get_by_test_id("phone-number").fill(phone)
    await page.get_by_test_id("send-code").tap()
    await expect(page.get_by_test_id("otp-code")).to_be_visible()
    await page.get_by_test_id("otp-code").fill(otp(stack, phone))
    await page.get_by_test_id("verify").tap()
    await expect(page.get_by_test_id("screen-services")).to_be_visible()
