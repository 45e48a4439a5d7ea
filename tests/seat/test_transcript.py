"""The live transcript in the browser: results from the video node's transcript publisher
(`cloudbank.video.transcript.Transcript` with the catalogue's keyword rules) travel the real
platform event stream; partials show greyed and are replaced, finals carry time and speaker,
keywords are highlighted and suggest a service.

The recogniser's output is given here as `AsrResult`s (the video tests drive vosk itself), so this
checks everything from the publisher to the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from cloudbank.platform.service import redis_client
from cloudbank.video.asr import AsrResult
from cloudbank.video.keywords import KeywordSpotter, rules_from_services
from cloudbank.video.transcript import Transcript

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SERVICES = [{"code": "deposit", "keywords": ["savings"]},
            {"code": "cards", "keywords": ["credit card"], "forbidden_phrases": ["guaranteed"]}]


async def test_partials_finals_and_keywords(seat: Any, page: Page, kiosk: Any, tmp_path: Path) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    await expect(page.get_by_test_id("transcript-empty")).to_be_visible()

    redis = redis_client(str(seat.config.redis_url))
    transcript = Transcript(session_id, redis, tmp_path, KeywordSpotter(rules_from_services(SERVICES), "deposit"))
    try:
        await transcript.add("customer", AsrResult("i would like", False, 1.0, 1.8))
        partial = page.get_by_test_id("transcript-partial")
        await expect(partial).to_contain_text("i would like")
        await expect(partial).to_have_attribute("data-speaker", "customer")
        await expect(partial).to_have_css("font-style", "italic")
        await transcript.add("customer", AsrResult("i would like to open a savings account", False, 1.0, 3.0))
        await expect(partial).to_contain_text("savings account")
        await expect(partial).to_have_count(1)

        await transcript.add("customer", AsrResult("i would like to open a savings account", True, 1.0, 3.2))
        final = page.get_by_test_id("transcript-final")
        await expect(final).to_have_count(1)
        await expect(partial).to_have_count(0)
        await expect(final).to_contain_text("0:01")
        await expect(final).to_contain_text("Customer")
        # The suggest rule fired: the phrase is marked and the service suggested.
        await expect(final.locator("mark")).to_have_text("savings")
        await expect(page.get_by_test_id("keyword-suggest")).to_have_text("Suggested: deposit")

        await transcript.add("teller", AsrResult("do you also want a credit card", True, 4.0, 6.0))
        await expect(final).to_have_count(2)
        await expect(final.nth(1)).to_have_attribute("data-speaker", "teller")
        await expect(final.nth(1)).to_contain_text("Teller")
        await expect(final.nth(1).locator("mark")).to_have_text("credit card")
        await expect(page.get_by_test_id("suggestions").locator("[data-service=cards]")).to_have_count(1)

        # Text from the network is text, never markup.
        await transcript.add("customer", AsrResult("<img src=x onerror=alert(1)>", True, 7.0, 8.0))
        await expect(final).to_have_count(3)
        await expect(final.nth(2).locator("img")).to_have_count(0)
        await expect(final.nth(2)).to_contain_text("<img src=x onerror=alert(1)>")
    finally:
        await redis.aclose()
