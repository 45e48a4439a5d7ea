"""The customer's screens in a call, as a customer meets them (issue 14, point 5): the kiosk screen at
1366x768 and the phone page at 390x844, in headless Chromium against the real platform and video
node, the teller played by the SDK. A recorded-call notice before and during the call, the teller's
name, a call timer, mute and camera controls, Hang up in view without scrolling, pushed forms beside
(not over) the teller's video, the video not cropped, and the screens in English and Chinese."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.kiosk_app import Kiosk, KioskOptions
from cloudbank.kiosk_client.kiosk_gui import create_gui_app
from cloudbank.kiosk_client.media_sources import synthetic

from .conftest import TELLER_PASSWORD, Stack, Teller, until
from .screens import ARGS, CHROMIUM, KIOSK, PHONE, new_context, otp, phone_sign_in, shoot

pytestmark = pytest.mark.slow
MakeServer = Callable[..., Awaitable[TestServer]]
VIEWPORTS = {"1366": KIOSK, "390": PHONE}
TELLER_NAME = "Kim Minji"

# Where the page's elements are, in viewport pixels, at the current scroll (null when not rendered).
RECT = """(id) => { const el = document.querySelector(`[data-testid="${id}"]`);
  if (!el || !el.getClientRects().length) return null;
  const r = el.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, vw: innerWidth, vh: innerHeight}; }"""
# The share of the teller's picture the customer sees: 1 unless object-fit crops it.
VISIBLE_SHARE = """() => { const v = document.querySelector('[data-testid="remote-video"]');
  const fit = getComputedStyle(v).objectFit, r = v.getBoundingClientRect();
  if (!v.videoWidth || fit !== "cover") return fit === "fill" ? -1 : 1;
  const el = r.width / r.height, vid = v.videoWidth / v.videoHeight;
  return Math.min(el / vid, vid / el); }"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


@pytest.fixture
async def named_teller(stack: Stack) -> AsyncIterator[Teller]:
    """A teller whose display name the customer should read (not the username)."""
    from cloudbank.kiosk_client.client import PlatformClient

    await stack.directory.add_user("kim", "teller", display_name=TELLER_NAME, password=TELLER_PASSWORD,
                                   skills={"general": 1})
    client = PlatformClient(stack.url)
    client.token = (await client.request("POST", "login", {"username": "kim", "password": TELLER_PASSWORD}))["token"]
    seat = Teller(client)
    await seat.start()
    yield seat
    await seat.close()


@pytest.fixture
async def kiosk_url(stack: Stack, tmp_path: Path, aiohttp_server: MakeServer) -> AsyncIterator[str]:
    k = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "kiosk", ice_addresses=("127.0.0.1",),
                           enrol_code=await stack.directory.create_enrolment_code("demo")))
    await k.start()
    gui = await aiohttp_server(create_gui_app(k))
    yield str(gui.make_url("/"))
    await k.close()


async def _to_services(app: str, page: Page, stack: Stack, kiosk_url: str) -> None:
    if app == "kiosk":
        await page.goto(kiosk_url)
        await page.get_by_test_id("start").tap()
        await expect(page.get_by_test_id("screen-services")).to_be_visible()
    else:
        await phone_sign_in(page, stack)


async def _remote_video_shows(page: Page) -> None:
    await page.wait_for_function("""() => { const v = document.querySelector('[data-testid="remote-video"]');
        return v && v.videoWidth > 0; }""", timeout=20_000)


@pytest.mark.parametrize("app", ["kiosk", "phone"])
@pytest.mark.parametrize("width", ["1366", "390"])
async def test_screens_tour(app: str, width: str, stack: Stack, teller: Teller, kiosk_url: str,
                            browser: Browser) -> None:
    """The screens a customer passes through, one screenshot each (CLOUDBANK_SCREENSHOTS=after)."""
    context = await new_context(browser, VIEWPORTS[width])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    call: Call | None = None
    try:
        await teller.client.request("POST", "teller/state", {"state": "not_ready"})
        await _to_services(app, page, stack, kiosk_url)
        await shoot(page, f"5-{app}_services")
        await page.get_by_test_id("service-general").tap()
        await expect(page.get_by_test_id("screen-wait")).to_be_visible()
        await expect(page.get_by_test_id("queue-position")).not_to_have_text("-")
        await shoot(page, f"5-{app}_wait")
        await teller.client.request("POST", "teller/state", {"state": "ready"})
        session_id, grant = await teller.accept_next(timeout=30)
        call = Call(grant, synthetic(21), ice_addresses=["127.0.0.1"])
        await call.join()
        await _remote_video_shows(page)
        await page.wait_for_timeout(1500)
        await shoot(page, f"5-{app}_call")
        await teller.push(session_id, {"kind": "form", "title": "Confirm the transfer", "fields": [
            {"name": "amount", "label": "Amount", "value": "100", "required": True},
            {"name": "to", "label": "To account", "value": "110-234-567890"}]})
        await expect(page.get_by_test_id("push-confirm")).to_be_visible()
        await shoot(page, f"5-{app}_call_form")
        await page.get_by_test_id("push-confirm").tap()
        await page.get_by_test_id("hang-up").tap()
        await expect(page.get_by_test_id("screen-done")).to_be_visible()
    finally:
        await context.close()
        if call is not None:
            await call.leave()
            call.sources.stop()



async def _in_view(page: Page, testid: str) -> dict[str, float]:
    rect = await page.evaluate(RECT, testid)
    assert rect is not None, f"{testid} is not shown"
    assert rect["top"] >= 0 and rect["left"] >= 0 and rect["bottom"] <= rect["vh"] + 0.5 and \
        rect["right"] <= rect["vw"] + 0.5, f"{testid} is not in view without scrolling: {rect}"
    return dict(rect)


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def _luma(frame: Any) -> float:
    return float(frame.to_ndarray(format="gray").mean())


async def _a_call_as_the_customer_meets_it(page: Page, teller: Teller, session_id: str, call: Call,
                                           peaks: list[tuple[float, int]]) -> None:
    """The call screen's promises, on whichever screen `page` shows (scrolled to the top)."""
    await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
    await _remote_video_shows(page)
    assert await page.evaluate("() => scrollY") == 0
    # Told it is recorded, and by whom they are served: the display name, not the username.
    await expect(page.get_by_test_id("recording-notice")).to_contain_text("This call is recorded")
    await _in_view(page, "recording-notice")
    await expect(page.get_by_test_id("teller-name")).to_have_text(f"Your teller: {TELLER_NAME}")
    # The timer counts the call's time.
    first = await page.get_by_test_id("call-timer").text_content()
    assert first is not None and first.startswith("0:0")
    await expect(page.get_by_test_id("call-timer")).not_to_have_text(first, timeout=3000)
    # Hang up, mute and camera are on screen without scrolling; the teller's picture is whole.
    for control in ("hang-up", "mute", "camera", "remote-video"):
        await _in_view(page, control)
    assert await page.evaluate(VISIBLE_SHARE) >= 0.99, "the teller's video is cropped"

    # Camera off: the teller's picture of the customer goes black, and comes back.
    await call.wait_for(lambda: call.remote.last_video is not None and _luma(call.remote.last_video) > 40, 20)
    await page.get_by_test_id("camera").tap()
    await expect(page.get_by_test_id("camera")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("camera")).to_have_text("Camera on")
    await expect(page.get_by_test_id("camera-off-note")).to_be_visible()
    await call.wait_for(lambda: _luma(call.remote.last_video) < 20, 20)
    await page.get_by_test_id("camera").tap()
    await call.wait_for(lambda: _luma(call.remote.last_video) > 40, 20)
    # Mute: the teller hears silence, then the customer again.
    loud_before = max(p for t, p in peaks[-200:])
    assert loud_before > 1000, "the teller hears the customer's (fake) microphone before muting"
    await page.get_by_test_id("mute").tap()
    await expect(page.get_by_test_id("mute")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("muted-note")).to_be_visible()
    await page.wait_for_timeout(800)
    since = time.monotonic()
    await page.wait_for_timeout(2500)
    assert max((p for t, p in peaks if t > since), default=0) < 200, "the teller still hears a muted customer"
    await page.get_by_test_id("mute").tap()
    await expect(page.get_by_test_id("mute")).to_have_text("Mute")
    since = time.monotonic()
    await until(lambda: any(p > 1000 for t, p in peaks if t > since), 10, "the customer heard again")

    # A pushed form sits beside (or below) the teller's video, never over it; Hang up stays in view.
    await teller.push(session_id, {"kind": "form", "title": "Confirm the transfer", "fields": [
        {"name": "amount", "label": "Amount", "value": "100", "required": True}]})
    await expect(page.get_by_test_id("push-confirm")).to_be_visible()
    await page.get_by_test_id("push-confirm").scroll_into_view_if_needed()
    video = await _in_view(page, "remote-video")
    form = await page.evaluate(RECT, "push")
    assert form is not None and not _overlap(video, form), f"the form {form} covers the video {video}"
    await _in_view(page, "hang-up")
    await page.get_by_test_id("push-confirm").tap()
    await until(lambda: bool(teller.of_type("push.response")), what="the form answer")


def _audio_peaks(peaks: list[tuple[float, int]]) -> Callable[[str, Any], None]:
    def on_frame(kind: str, frame: Any) -> None:
        if kind == "audio":
            peaks.append((time.monotonic(), int(abs(frame.to_ndarray()).max())))
    return on_frame


@pytest.mark.parametrize(("app", "viewport"), [("kiosk", KIOSK), ("phone", PHONE)], ids=["kiosk-1366", "phone-390"])
async def test_the_customer_is_told_of_the_recording_and_controls_the_call(
        app: str, viewport: ViewportSize, stack: Stack, named_teller: Teller, kiosk_url: str,
        browser: Browser) -> None:
    context = await new_context(browser, viewport)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    peaks: list[tuple[float, int]] = []
    call: Call | None = None
    try:
        await named_teller.client.request("POST", "teller/state", {"state": "not_ready"})
        await _to_services(app, page, stack, kiosk_url)
        # Told before the call that calls are recorded: when choosing, and while waiting.
        await expect(page.get_by_test_id("recording-notice-services")).to_contain_text("recorded")
        await page.get_by_test_id("service-general").tap()
        await expect(page.get_by_test_id("recording-notice-wait")).to_be_visible()
        await named_teller.client.request("POST", "teller/state", {"state": "ready"})
        session_id, grant = await named_teller.accept_next(timeout=30)
        call = Call(grant, synthetic(21), ice_addresses=["127.0.0.1"], on_frame=_audio_peaks(peaks))
        await call.join()
        await _a_call_as_the_customer_meets_it(page, named_teller, session_id, call, peaks)
        await page.get_by_test_id("hang-up").tap()
        await expect(page.get_by_test_id("screen-done")).to_be_visible()
        assert errors == []
    finally:
        await context.close()
        if call is not None:
            await call.leave()
            call.sources.stop()


# Every control a customer uses has a data-testid and a name a screen reader can say.
UNNAMED = """() => [...document.querySelectorAll("button, input, select, textarea, video, canvas, a, img")]
  .filter((el) => !el.closest("[hidden]"))
  .filter((el) => {
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("alt")
      || (el.textContent || "").trim();
    return !el.dataset.testid || !named;
  })
  .map((el) => el.outerHTML.slice(0, 120))"""
# Every string shown comes from the zh table: no English word left on a Chinese screen (names and
# figures excepted: the brand, the teller's name, the form's own text from the teller, "English").
ENGLISH_LEFT = """(allowed) => { const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest("[hidden]") || !n.textContent.trim()) continue;
    let text = n.textContent;
    for (const a of allowed) text = text.split(a).join("");
    if (/[A-Za-z]{3,}/.test(text)) out.push(n.textContent.trim());
  }
  return out; }"""
ALLOWED_EN = ["cloudbank", "English", TELLER_NAME, "Confirm the transfer", "Amount"]


async def _controls_named(page: Page) -> None:
    assert await page.evaluate(UNNAMED) == []


@pytest.mark.parametrize(("app", "viewport"), [("kiosk", KIOSK), ("phone", PHONE)], ids=["kiosk-1366", "phone-390"])
async def test_the_customer_switches_to_chinese_at_any_step_without_a_reload(
        app: str, viewport: ViewportSize, stack: Stack, named_teller: Teller, kiosk_url: str,
        browser: Browser) -> None:
    context = await new_context(browser, viewport)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    call: Call | None = None
    try:
        await named_teller.client.request("POST", "teller/state", {"state": "not_ready"})
        if app == "kiosk":
            await page.goto(kiosk_url)
            await _controls_named(page)
            await page.get_by_test_id("lang-zh").tap()
            await expect(page.get_by_test_id("start")).to_have_text("点击这里与柜员视频通话")
            await page.get_by_test_id("start").tap()
        else:
            await page.goto(stack.url + "/phone/")
            await page.get_by_test_id("lang-zh").tap()
            await expect(page.get_by_test_id("send-code")).to_have_text("发送验证码")
            # The platform's refusals (written in English) reach a Chinese screen in Chinese.
            await page.get_by_test_id("phone-number").fill("12345")
            await page.get_by_test_id("send-code").tap()
            await expect(page.get_by_test_id("error")).to_have_text(
                "请输入手机号码：6 到 15 位数字，例如 +82 10 1234 5678。")
            await page.get_by_test_id("phone-number").fill("+821055554444")
            await page.get_by_test_id("send-code").tap()
            await expect(page.get_by_test_id("otp-code")).to_be_visible()
            wrong = str((int(otp(stack, "+821055554444")) + 1) % 10**6).zfill(6)
            await page.get_by_test_id("otp-code").fill(wrong)
            await page.get_by_test_id("verify").tap()
            await expect(page.get_by_test_id("error")).to_have_text("验证码错误。")
            await shoot(page, "5-phone_verify_zh")
            await page.get_by_test_id("lang-en").tap()
            await phone_sign_in(page, stack)
            await page.get_by_test_id("lang-zh").tap()
        await page.evaluate("() => { window.sameDocument = true; }")
        # The services in Chinese, from the catalogue (not from the page's own tables).
        await expect(page.get_by_test_id("service-general")).to_have_text("一般咨询")
        await expect(page.get_by_test_id("service-lost_card")).to_contain_text("挂失银行卡")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        assert await page.evaluate(ENGLISH_LEFT, ALLOWED_EN) == []
        await shoot(page, f"5-{app}_services_zh")
        await page.get_by_test_id("service-general").tap()
        await expect(page.get_by_test_id("queue-wait")).to_contain_text("分钟")
        assert await page.evaluate(ENGLISH_LEFT, ALLOWED_EN) == []
        await _controls_named(page)
        await named_teller.client.request("POST", "teller/state", {"state": "ready"})
        session_id, grant = await named_teller.accept_next(timeout=30)
        call = Call(grant, synthetic(21), ice_addresses=["127.0.0.1"])
        await call.join()
        await expect(page.get_by_test_id("call-state")).to_have_text("已接通", timeout=20_000)
        await expect(page.get_by_test_id("teller-name")).to_have_text(f"为您服务的柜员：{TELLER_NAME}")
        await expect(page.get_by_test_id("recording-notice")).to_have_text("本次通话正在录音录像")
        await named_teller.push(session_id, {"kind": "form", "title": "Confirm the transfer", "fields": [
            {"name": "amount", "label": "Amount", "value": "100"}]})
        await expect(page.get_by_test_id("push-confirm")).to_have_text("确认")
        await _remote_video_shows(page)
        assert await page.evaluate(ENGLISH_LEFT, ALLOWED_EN) == []
        await _controls_named(page)
        await shoot(page, f"5-{app}_call_zh")
        # Back to English mid-call: the same call, every text in English again.
        await page.get_by_test_id("lang-en").tap()
        await expect(page.get_by_test_id("hang-up")).to_have_text("Hang up")
        await expect(page.get_by_test_id("push-confirm")).to_have_text("Confirm")
        await expect(page.get_by_test_id("teller-name")).to_have_text(f"Your teller: {TELLER_NAME}")
        await expect(page.get_by_test_id("call-state")).to_have_text("Connected")
        await page.get_by_test_id("lang-zh").tap()
        await page.get_by_test_id("hang-up").tap()
        await expect(page.get_by_test_id("done-message")).to_have_text("您已结束通话。")
        assert await page.evaluate("() => window.sameDocument") is True
        if app == "kiosk":
            # The next customer at the kiosk starts in the kiosk's own language.
            await page.get_by_test_id("done").tap()
            await expect(page.get_by_test_id("start")).to_have_text("Touch here to talk to a teller")
        assert errors == []
    finally:
        await context.close()
        if call is not None:
            await call.leave()
            call.sources.stop()


async def test_a_service_nobody_can_serve_now_says_so_and_offers_the_others(
        stack: Stack, teller: Teller, kiosk_url: str, browser: Browser) -> None:
    # The signed-in teller serves general and accounts; nobody signed in has the wealth skill.
    context = await new_context(browser, KIOSK)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    try:
        await teller.client.request("POST", "teller/state", {"state": "not_ready"})
        await page.goto(kiosk_url)
        await page.get_by_test_id("start").tap()
        await expect(page.get_by_test_id("service-wealth")).to_contain_text("no teller available now")
        await expect(page.get_by_test_id("service-general")).not_to_contain_text("no teller")
        await page.get_by_test_id("service-wealth").tap()
        await expect(page.get_by_test_id("no-teller-message")).to_have_text(
            "Nobody is available for “Wealth product (fund / insurance)” right now.")
        await expect(page.get_by_test_id("queue-estimate")).to_be_hidden()   # no "Estimated wait: 30 min"
        await expect(page.get_by_test_id("other-service-general")).to_be_visible()
        await expect(page.get_by_test_id("other-service-open_account")).to_be_visible()
        await expect(page.get_by_test_id("other-service-lost_card")).to_have_count(0)  # nobody for cards either
        await expect(page.get_by_test_id("leave-queue")).to_be_visible()      # or keep waiting, or leave
        await shoot(page, "8-kiosk_no_teller")
        await page.set_viewport_size(PHONE)
        await shoot(page, "8-kiosk_no_teller")
        await page.set_viewport_size(KIOSK)
        wealth = await _ticket_of(stack, "wealth")
        # Taking another service leaves the wealth queue and joins the other one, in the same visit.
        await page.get_by_test_id("other-service-general").tap()
        await expect(page.get_by_test_id("no-teller")).to_be_hidden()
        await expect(page.get_by_test_id("queue-estimate")).to_be_visible()
        await expect(page.get_by_test_id("queue-position")).to_have_text("1")
        await expect(page.get_by_test_id("screen-wait")).to_be_visible()
        assert (await _ticket_of(stack, "wealth", wealth)) == "abandoned"
        await teller.client.request("POST", "teller/state", {"state": "ready"})
        await until(lambda: bool(teller.of_type("offer")), what="the general ticket offered to the teller")
        assert teller.of_type("offer")[-1]["service"] == "general"
    finally:
        await context.close()


async def _ticket_of(stack: Stack, service: str, ticket_id: str = "") -> str:
    """The id of a ticket for `service` or, given an id, that ticket's state (read off the ACD's Redis)."""
    from cloudbank.platform.service import redis_client

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    redis = redis_client(stack.config.redis_url or "")
    try:
        if ticket_id:
            return text(await redis.hget(f"acd:t:{ticket_id}", "state"))
        async for key in redis.scan_iter("acd:t:*"):
            if text(await redis.hget(text(key), "queue")) == service:
                return text(key).removeprefix("acd:t:")
        raise AssertionError(f"no ticket for {service}")
    finally:
        await redis.aclose()


@pytest.mark.parametrize("app", ["kiosk", "phone"])
async def test_a_teller_who_accepts_before_the_ticket_answer_arrives_keeps_the_call_on_screen(
        app: str, stack: Stack, teller: Teller, kiosk_url: str, browser: Browser) -> None:
    # A ready teller is offered the ticket as it is created and may accept at once: the events then
    # start the call before the page has read its own POST tickets answer (seen in CI: the queue
    # screen came back over the call and the customer never saw the end of it).
    context = await new_context(browser, PHONE if app == "phone" else KIOSK)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    held: list[Any] = []

    async def hold_ticket_answer(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()  # the platform has the ticket; the page does not know yet
        held.append((route, response))

    try:
        await _to_services(app, page, stack, kiosk_url)
        await page.route("**/tickets", hold_ticket_answer)
        await page.get_by_test_id("service-general").tap()
        session_id, _ = await teller.accept_next(timeout=30)
        await expect(page.get_by_test_id("screen-call")).to_be_visible()
        await until(lambda: bool(held), 10)
        route, response = held[0]
        await route.fulfill(response=response)
        await page.wait_for_function("() => performance.getEntriesByType('resource')"
                                     ".some((e) => e.name.endsWith('/tickets'))")
        await page.wait_for_timeout(300)  # the page's handler of that answer has run
        await expect(page.get_by_test_id("screen-call")).to_be_visible()
        await expect(page.get_by_test_id("screen-wait")).to_be_hidden()
        await teller.client.request("POST", f"sessions/{session_id}/end")
        await expect(page.get_by_test_id("screen-done")).to_be_visible()
    finally:
        await context.close()
