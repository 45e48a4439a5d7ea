"""A new offer rings while the last call's wrap-up form is still open (its time ran out, so the ACD
made the teller ready): the offer says what accepting does with the form, and accepting saves the
form as it stands (the chosen outcome, else "no outcome recorded") in the audit chain before the new
call opens, so no call is left without a wrap-up record (issue 14, seat console)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.async_api import Page, expect

from cloudbank.platform.records import audit_log, create_engine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def wrapup_records(seat: Any, session_id: str) -> list[dict[str, Any]]:
    engine = create_engine(seat.config.effective_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(audit_log.c.actor, audit_log.c.details).where(
                audit_log.c.action == "session.wrapup", audit_log.c.subject == f"session:{session_id}"))).all()
    finally:
        await engine.dispose()
    return [{"actor": r.actor, **json.loads(r.details)} for r in rows]


async def a_call_then_wrap_up_time_over(seat: Any, page: Page, kiosk: Any) -> str:
    """teller1 takes a call, hangs up, and lets the wrap-up time (2 s) run out with the form open."""
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    first, _ = await seat.accept_offer(page, kiosk, join=False)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    await expect(page.get_by_test_id("wrapup-time-left")).to_have_attribute("data-over", "true", timeout=10_000)
    return str(first)


async def accept_next(page: Page, kiosk: Any, first: str) -> str:
    """The next customer's offer rings over the open form; accepting opens the new call."""
    after = len(kiosk.events)
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer")).to_be_visible()
    await expect(page.get_by_test_id("offer-wrapup-open")).to_contain_text("accepting saves it as it stands")
    await page.get_by_test_id("offer-accept").click()
    started = await kiosk.wait_event("session.started", after=after)
    second = str(started["session"]["id"])
    assert second != first
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", second)
    return second


async def test_accepting_a_call_saves_an_open_wrap_up_as_no_outcome(seat: Any, page: Page, kiosk: Any) -> None:
    first = await a_call_then_wrap_up_time_over(seat, page, kiosk)
    await accept_next(page, kiosk, first)
    await expect(page.get_by_test_id("notice")).to_have_text(
        "The last call's wrap-up was saved as \"No outcome recorded\".")
    records = await wrapup_records(seat, first)
    assert len(records) == 1, records
    assert records[0]["actor"] == seat.people["teller1"]
    assert records[0]["disposition"] == "no_outcome"
    assert records[0]["service_done"] is False
    assert records[0]["notes"] == "[saved when the next call was accepted]"
    token = await seat.token(page)
    status, state = await page.evaluate(
        "([sid, t]) => fetch(`/api/sessions/${sid}`, {headers: {Authorization: `Bearer ${t}`}})"
        ".then(async r => [r.status, (await r.json()).session.state])", [first, token])
    assert (status, state) == (200, "closed")
    # A reload lands in the new call, not back in the old wrap-up.
    await page.reload()
    await expect(page.get_by_test_id("call")).to_be_visible()
    await expect(page.get_by_test_id("wrapup")).to_have_count(0)


async def test_what_the_teller_had_filled_in_is_what_is_saved(seat: Any, page: Page, kiosk: Any) -> None:
    first = await a_call_then_wrap_up_time_over(seat, page, kiosk)
    await page.get_by_test_id("wrapup-code").select_option("follow_up")
    await page.get_by_test_id("wrapup-notes").fill("Call back about the card limit")
    await accept_next(page, kiosk, first)
    await expect(page.get_by_test_id("notice")).to_contain_text("saved as \"Needs follow-up\"")
    records = await wrapup_records(seat, first)
    assert [(r["disposition"], r["notes"]) for r in records] == [
        ("follow_up", "[saved when the next call was accepted] Call back about the card limit")]
