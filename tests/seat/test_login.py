"""The login screen in a real browser against the real platform API: signing in, wrong password,
lockout, an expired or revoked session, keyboard use and the Chinese strings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Page, expect

from cloudbank.platform.records import create_engine
from cloudbank.platform.tokens import KeyRing

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def stored_auth(page: Page) -> object:
    raw = await page.evaluate("sessionStorage.getItem('cloudbank.seat.auth')")
    return json.loads(raw) if raw else None


async def test_teller_signs_in_and_sees_the_home(seat: Any, page: Page) -> None:
    await seat.login(page, "teller1")
    await expect(page.get_by_test_id("state-ready")).to_be_visible()
    await expect(page.get_by_test_id("state-not-ready")).to_be_visible()
    await expect(page.get_by_test_id("who")).to_contain_text("Teller1")
    auth = await stored_auth(page)
    assert isinstance(auth, dict) and auth["user"]["username"] == "teller1"


async def test_wrong_password_says_so_and_stores_nothing(seat: Any, page: Page) -> None:
    await seat.login(page, "teller1", "not-the-password")
    await expect(page.get_by_test_id("login-error")).to_have_text(
        "Wrong username or password. Check both and try again.")
    await expect(page.get_by_test_id("login-password")).to_have_value("")
    await expect(page.get_by_test_id("login-password")).to_be_focused()
    assert await stored_auth(page) is None
    await expect(page.get_by_test_id("state-ready")).to_have_count(0)


async def test_unknown_user_gets_the_same_message(seat: Any, page: Page) -> None:
    await seat.login(page, "nobody", "whatever-password")
    await expect(page.get_by_test_id("login-error")).to_have_text(
        "Wrong username or password. Check both and try again.")


async def test_empty_fields_are_refused_before_asking_the_server(seat: Any, page: Page) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/api/login") else None)
    await page.goto(seat.seat_url)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_have_text("Enter your username and password.")
    await expect(page.get_by_test_id("login-username")).to_be_focused()
    assert requests == []


async def test_lockout_after_repeated_failures_is_explained(seat: Any, page: Page) -> None:
    for _ in range(seat.config.login_max_failures):
        await seat.login(page, "teller1", "wrong-password-x")
        await expect(page.get_by_test_id("login-error")).to_contain_text("Wrong username or password")
    # Now even the right password is refused, and the message says why and for how long.
    await seat.login(page, "teller1")
    error = page.get_by_test_id("login-error")
    await expect(error).to_contain_text("locked")
    await expect(error).to_contain_text("Try again in")
    assert await stored_auth(page) is None


async def test_expired_session_returns_to_login_with_a_reason(seat: Any, page: Page) -> None:
    engine = create_engine(seat.config.effective_database_url)
    try:
        keys = KeyRing(engine)
        await keys.load()
        expired = keys.issue(seat.people["teller1"], "teller", "api", -60, name="teller1")
    finally:
        await engine.dispose()
    await page.goto(seat.seat_url)
    auth = {"token": expired, "user": {"id": seat.people["teller1"], "username": "teller1", "role": "teller",
                                       "display_name": "Teller1"}, "expires_at": 4102444800}
    await page.evaluate("a => sessionStorage.setItem('cloudbank.seat.auth', a)", json.dumps(auth))
    await page.reload()
    await expect(page.get_by_test_id("login-notice")).to_have_text("Your session has expired. Sign in again.")
    await expect(page.get_by_test_id("state-ready")).to_have_count(0)
    assert await stored_auth(page) is None


async def test_a_session_signed_out_elsewhere_is_refused(seat: Any, page: Page) -> None:
    await seat.login(page, "teller1")
    await expect(page.get_by_test_id("state-ready")).to_be_visible()
    auth = await stored_auth(page)
    assert isinstance(auth, dict)
    # The same token is revoked (signed out from another tab); the next reload must not trust it.
    status = await page.evaluate(
        "t => fetch('/api/logout', {method: 'POST', headers: {Authorization: 'Bearer ' + t}}).then(r => r.status)",
        auth["token"])
    assert status == 200
    await page.reload()
    await expect(page.get_by_test_id("login-notice")).to_have_text("Your session has expired. Sign in again.")


async def test_sign_out_clears_the_seat_and_goes_offline(seat: Any, page: Page) -> None:
    await seat.login(page, "teller1")
    await page.get_by_test_id("state-ready").click()
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready")
    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("login-notice")).to_have_text("You have signed out.")
    assert await stored_auth(page) is None
    await page.reload()
    await expect(page.get_by_test_id("login-username")).to_be_visible()
    # Signed out means offline: no call is offered to an empty seat.
    await seat.login(page, "teller1")
    await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "offline")


async def test_login_works_from_the_keyboard_alone(seat: Any, page: Page) -> None:
    await page.goto(seat.seat_url)
    await expect(page.get_by_test_id("login-username")).to_be_focused()
    await page.keyboard.type("teller1")
    await page.keyboard.press("Tab")
    await expect(page.get_by_test_id("login-password")).to_be_focused()
    await page.keyboard.type(seat.password)
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("state-ready")).to_be_visible()


async def test_controls_are_labelled(seat: Any, page: Page) -> None:
    await page.goto(seat.seat_url)
    await expect(page.get_by_label("Username")).to_have_attribute("data-testid", "login-username")
    await expect(page.get_by_label("Password")).to_have_attribute("data-testid", "login-password")


async def test_chinese_strings_come_from_the_chinese_table(seat: Any, page: Page) -> None:
    await page.goto(seat.seat_url)
    await page.get_by_test_id("language").select_option("zh")
    await expect(page.get_by_test_id("login-submit")).to_have_text("登录")
    await seat.login(page, "teller1", "not-the-password")
    await expect(page.get_by_test_id("login-error")).to_have_text("用户名或密码错误，请检查后重试。")
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"


async def test_an_admin_is_pointed_to_the_media_console(seat: Any, page: Page) -> None:
    await seat.login(page, "admin1")
    await expect(page.get_by_test_id("wrong-role")).to_contain_text("/media/")


async def test_no_script_errors_and_no_csp_violations_on_the_login(seat: Any, page: Page,
                                                                   page_errors: list[str]) -> None:
    await page.goto(seat.seat_url)
    await expect(page.get_by_test_id("login-form")).to_be_visible()
    assert page_errors == []


async def test_a_session_expiring_in_use_returns_to_login(short_token_seat: Any, page: Page) -> None:
    seat = short_token_seat
    await seat.login(page, "teller1")
    await expect(page.get_by_test_id("state-ready")).to_be_visible()
    # Nothing is clicked: the event socket is closed at expiry, and the console says why.
    await expect(page.get_by_test_id("login-notice")).to_have_text("Your session has expired. Sign in again.",
                                                                   timeout=15_000)
    assert await stored_auth(page) is None
