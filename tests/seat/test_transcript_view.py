"""The teller sees speech as it is (issue 9): a partial line greyed with its speaker and time that
settles into its final in place; the phrases the engine's phrase search heard marked in the line at
the time and for the speaker it heard them, with their kind; and, on a node that does not transcribe,
a sentence in the panel saying so (the node tells each party in signalling's `joined`).

Results are given to the video node's real transcript publisher (`Transcript` with the catalogue's
rules and a phrase search's hits) and travel the real platform event stream to the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from cloudbank.platform.service import redis_client
from cloudbank.video.asr import AsrResult, Word
from cloudbank.video.keywords import KeywordSpotter, rules_from_services
from cloudbank.video.transcript import Transcript

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SERVICES = [{"code": "deposit", "keywords": ["savings account", "fixed deposit"],
             "forbidden_phrases": ["guaranteed return"]}]


def words(text: str, start: float, step: float = 0.4) -> tuple[Word, ...]:
    return tuple(Word(w, start + i * step, start + (i + 1) * step - 0.05, 0.9) for i, w in enumerate(text.split()))


def line(text: str, start: float) -> AsrResult:
    ws = words(text, start)
    return AsrResult(text, True, ws[0].start, ws[-1].end, ws)


async def test_partials_settle_and_heard_phrases_are_marked_where_and_by_whom(
        seat: Any, page: Page, kiosk: Any, tmp_path: Path) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    redis = redis_client(str(seat.config.redis_url))
    spotter = KeywordSpotter(rules_from_services(SERVICES), "deposit", spotting=True)
    transcript = Transcript(session_id, redis, tmp_path, spotter)
    try:
        # A partial shows who and when, greyed; its final takes its place in the list.
        await transcript.add("teller", line("good morning", 0.2))
        await transcript.add("customer", AsrResult("i would like", False, 1.0, 1.8))
        partial = page.get_by_test_id("transcript-partial")
        await expect(partial).to_contain_text("0:01")
        await expect(partial).to_contain_text("Customer")
        await expect(partial).to_have_css("color", "rgb(138, 148, 158)")
        await transcript.add("teller", AsrResult("how can", False, 1.2, 1.9))
        await expect(partial).to_have_count(2)
        said = "i would like to open a savings count"  # free decoding misheard the last word
        await transcript.add("customer", line(said, 1.0))
        await expect(partial).to_have_count(1)
        lines = page.get_by_test_id("transcript-lines").locator("li")
        await expect(lines).to_have_count(3)
        await expect(lines.nth(1)).to_have_attribute("data-testid", "transcript-final")
        await expect(lines.nth(1)).to_contain_text(said)
        await expect(lines.nth(2)).to_have_attribute("data-testid", "transcript-partial")

        # The phrase search heard "savings account" from the customer where "savings count" is.
        await transcript.spot_handler("customer")(
            AsrResult("savings account", True, 3.4, 4.1, (Word("savings account", 3.4, 4.1, 0.9),)))
        customer = page.get_by_test_id("transcript-final").and_(page.locator("[data-speaker=customer]"))
        mark = customer.nth(0).locator("mark")
        await expect(mark).to_have_text("savings")
        await expect(mark).to_have_attribute("title", "Heard: savings account")
        await expect(mark).to_have_class("kw kw-suggest")
        await expect(page.get_by_test_id("keyword-suggest")).to_have_attribute("data-service", "deposit")
        # Heard where free decoding has other words altogether: the words at that time are marked.
        await transcript.add("customer", line("how much on a fix the posit", 12.0))
        await transcript.spot_handler("customer")(
            AsrResult("fixed deposit", True, 13.6, 14.75, (Word("fixed deposit", 13.6, 14.75, 0.9),)))
        await expect(customer.nth(1).locator("mark")).to_have_text("fix the posit")

        # The teller saying the same words is not marked: the search did not hear it from the teller.
        await transcript.add("teller", line("a savings account pays more", 5.0))
        teller = page.get_by_test_id("transcript-final").and_(page.locator("[data-speaker=teller]"))
        await expect(teller).to_have_count(2)
        await expect(teller.nth(1).locator("mark")).to_have_count(0)
        # A forbidden phrase heard from the teller is marked as one.
        await transcript.add("teller", line("it is a guaranteed return", 8.0))
        await transcript.spot_handler("teller")(
            AsrResult("guaranteed return", True, 9.2, 10.0, (Word("guaranteed return", 9.2, 10.0, 0.9),)))
        forbidden = teller.nth(2).locator("mark")
        await expect(forbidden).to_have_text("guaranteed return")
        await expect(forbidden).to_have_class("kw kw-forbidden")
        await expect(page.get_by_test_id("keyword-forbidden")).to_be_visible()
    finally:
        await redis.aclose()


async def test_a_call_the_node_does_not_transcribe_says_so_in_the_panel(seat: Any, page: Page, kiosk: Any) -> None:
    # The deployment's video node runs with video_transcribe off (the seat fixture).
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    notice = page.get_by_test_id("transcript-engine")
    await expect(notice).to_have_text("Live transcription is off on this video node (its video_transcribe setting): "
                                      "nothing said in this call will appear here.", timeout=15_000)
    await expect(notice).to_have_attribute("data-state", "off")
    await expect(page.get_by_test_id("transcript-empty")).to_be_hidden()
    # In the other UI language too.
    await page.get_by_test_id("language").select_option("zh")
    await expect(page.get_by_test_id("transcript-engine")).to_contain_text("已关闭实时转写")
