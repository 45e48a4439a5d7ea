"""The console's controller: a teller cannot open another teller's call, and the event socket
reconnects and resumes after the last event it saw."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_a_teller_cannot_open_another_tellers_call(seat: Any, page: Page, second_page: Page,
                                                         kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)

    other = second_page
    await seat.login(other, "teller2")
    await expect(other.get_by_test_id("state-ready")).to_be_visible()
    await other.goto(f"{seat.seat_url}#/call/{session_id}")
    await other.reload()
    await expect(other.get_by_test_id("notice")).to_have_text(
        "This call is not yours or has ended, so it cannot be opened.")
    await expect(other.get_by_test_id("call")).to_have_count(0)
    await expect(other.get_by_test_id("state-ready")).to_be_visible()
    assert await other.evaluate("location.hash") == ""
    # The platform is what refuses: teller2's token gets no join token for it.
    status = await other.evaluate(
        "([sid, t]) => fetch(`/api/sessions/${sid}/join`, {method: 'POST', headers: {Authorization: `Bearer ${t}`}})"
        ".then(r => r.status)", [session_id, await seat.token(other)])
    assert status == 404
    # ...and the owner's call is untouched.
    await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)


async def test_a_teller_who_closed_the_browser_mid_call_gets_back_into_it(seat: Any, page: Page,
                                                                         second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    await page.goto("about:blank")  # the console is gone

    # A fresh browser (nothing remembered): home says "in a call" with both switches disabled,
    # so the only way on is the button back into the open call.
    again = second_page
    await seat.login(again, "teller1")
    await expect(again.get_by_test_id("state-now")).to_have_attribute("data-state", "busy")
    await expect(again.get_by_test_id("state-ready")).to_be_disabled()
    await again.get_by_test_id("resume-call").click()
    await expect(again.get_by_test_id("call")).to_have_attribute("data-session", session_id)
    await again.get_by_test_id("end-call").click()
    await expect(again.get_by_test_id("wrapup")).to_be_visible()


async def test_a_made_up_call_link_is_refused_too(seat: Any, page: Page) -> None:
    await seat.login(page, "teller1")
    await expect(page.get_by_test_id("state-ready")).to_be_visible()
    await page.goto(f"{seat.seat_url}#/call/00000000-0000-0000-0000-000000000000")
    await page.reload()
    await expect(page.get_by_test_id("notice")).to_contain_text("not yours")
    await expect(page.get_by_test_id("call")).to_have_count(0)


async def test_events_missed_while_disconnected_arrive_after_reconnecting(seat: Any, page: Page,
                                                                         kiosk: Any) -> None:
    await seat.teller_ready(page)
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "online")
    await page.evaluate("window.cloudbankSeat.events.stop()")
    await kiosk.client.create_ticket("deposit")  # the offer is published while the socket is down
    await kiosk.wait_event("ticket.update")
    await page.wait_for_timeout(500)
    await expect(page.get_by_test_id("offer")).to_have_count(0)
    await page.evaluate("window.cloudbankSeat.events.start()")
    await expect(page.get_by_test_id("offer")).to_be_visible()
    await expect(page.get_by_test_id("offer-service")).to_have_text("Deposits")


async def test_a_dropped_event_socket_reconnects_by_itself(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    status = page.get_by_test_id("connection-status")
    await expect(status).to_have_attribute("data-status", "online")
    await page.evaluate("window.cloudbankSeat.events.drop()")
    await expect(status).to_have_attribute("data-status", "offline")
    await expect(status).to_contain_text("Connection lost, reconnecting in")
    await expect(status).to_have_attribute("data-status", "online", timeout=10_000)
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer")).to_be_visible()


# Every control a person uses has a stable data-testid and a name a screen reader can say (and ids
# are unique, or labels point at the wrong thing).
UNLABELLED = """() => [...document.querySelectorAll("button, input, select, textarea, video, [role=log], [aria-live]")]
  .filter((el) => !el.closest("[hidden]"))
  .filter((el) => {
    const named = el.labels && el.labels.length ? true
      : Boolean(el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || (el.textContent || "").trim());
    const live = el.matches("[role=log], [aria-live]");
    return !el.dataset.testid || (!named && !live && el.tagName !== "VIDEO");
  })
  .map((el) => el.outerHTML.slice(0, 120))
  .concat([...document.querySelectorAll("[id]")].map((el) => el.id)
    .filter((id, i, all) => all.indexOf(id) !== i).map((id) => `duplicate id ${id}`))"""


async def test_every_control_has_a_testid_and_a_name_on_every_screen(seat: Any, page: Page, second_page: Page,
                                                                     kiosk: Any) -> None:
    await page.goto(seat.seat_url)
    assert await page.evaluate(UNLABELLED) == [], "login"
    await seat.teller_ready(page)
    assert await page.evaluate(UNLABELLED) == [], "home"
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer")).to_be_visible()
    assert await page.evaluate(UNLABELLED) == [], "offer"
    await seat.accept_offer(page, kiosk, join=False)
    for action in ("push-form", "transfer", "ask-authorisation"):
        await page.get_by_test_id(action).click()
        assert await page.evaluate(UNLABELLED) == [], action
        await page.get_by_test_id("action-cancel").click()
    assert await page.evaluate(UNLABELLED) == [], "call"
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    assert await page.evaluate(UNLABELLED) == [], "wrap-up"
    await seat.login(second_page, "super1")
    await expect(second_page.get_by_test_id("wallboard").get_by_role("table", name="Wallboard")).to_be_visible()
    assert await second_page.evaluate(UNLABELLED) == [], "supervisor"


async def test_a_call_can_be_handled_with_the_keyboard_alone(seat: Any, page: Page, kiosk: Any) -> None:
    await page.goto(seat.seat_url)
    await expect(page.get_by_test_id("login-username")).to_be_focused()
    await page.keyboard.type("teller1")
    await page.keyboard.press("Tab")
    await page.keyboard.type(seat.password)
    await page.keyboard.press("Enter")
    await page.get_by_test_id("state-ready").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready")
    await kiosk.client.create_ticket("deposit")
    await expect(page.get_by_test_id("offer-accept")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("call")).to_be_visible()
    await page.get_by_test_id("end-call").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("wrapup-code")).to_be_focused()
    await page.keyboard.press("ArrowDown")  # the first disposition
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_test_id("wrapup-notes")).to_be_focused()
    await page.keyboard.type("all done")
    await page.get_by_test_id("wrapup-submit").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready", timeout=10_000)
