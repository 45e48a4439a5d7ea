"""Recordings a person can use (issue 14, points 4 and 1): real calls through a real video node
(tests/media/real_call.py), then the catalogue and the console's one-call player in Chromium.

- a finished call is in the catalogue without "Rescan" (indexed as its audit record is written);
- each segment file starts at 0 and lasts as long as it is (it used to carry the call's timeline,
  so a segment 20-30 s played as 30 s with its first 20 s empty);
- search finds a call by the teller's username and display name;
- a call whose teller's media never connected is listed as "Teller's video missing" and verifies as
  incomplete, not as intact, and not as tampered;
- one player per call: both parties side by side, in step, seekable, opened in view, with the
  transcript beside it.
Run inside `unshare -n` (loopback only)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from playwright.async_api import Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"]
PASSWORD = "correct-horse-battery"
Deployment = Any  # conftest.Deployment: url, config, ids (username -> user id)

pytestmark = pytest.mark.slow


@pytest.fixture
def dep(call_deployment: Deployment) -> Deployment:
    return call_deployment


@pytest.fixture
def real_call(make_call: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    return make_call


async def api(dep: Deployment, method: str, path: str, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{dep.url}/api/login", json={"username": "admin1", "password": PASSWORD}) as resp:
            token = (await resp.json())["token"]
        async with http.request(method, f"{dep.url}/media/api/{path}", headers={"Authorization": f"Bearer {token}"},
                                **kwargs) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def indexed(dep: Deployment, session_id: str, within_s: float = 10.0) -> dict[str, Any]:
    """The catalogue row of a call, waiting at most `within_s` (never asking for a rescan; without
    indexing-as-it-finishes the next housekeeping scan is 300 s away). Measured: ~1-2 s; 10 s leaves
    room for a loaded CI machine."""
    deadline = time.monotonic() + within_s
    while True:
        rows = (await api(dep, "GET", "recordings", params={"session": session_id}))["recordings"]
        if rows:
            return dict(rows[0])
        assert time.monotonic() < deadline, f"{session_id} was not indexed within {within_s} s of the call's end"
        await asyncio.sleep(0.2)


def manifest_of(dep: Deployment, session_id: str) -> dict[str, Any]:
    return dict(json.loads((dep.config.data / "recordings" / session_id / "manifest.json").read_text()))


async def test_a_call_is_catalogued_as_it_finishes_with_segments_that_start_at_zero(
        dep: Deployment, real_call: Any) -> None:
    await real_call(dep, "call-a", dep.ids["tlee"], seconds=3.5)
    row = await indexed(dep, "call-a")  # no POST recordings/scan anywhere in this test
    assert row["teller_id"] == dep.ids["tlee"] and row["missing"] == []

    manifest = manifest_of(dep, "call-a")
    video = next(t for t in manifest["tracks"] if (t["party"], t["kind"]) == ("customer", "video"))
    assert len(video["segments"]) >= 3  # 1 s segments
    later = video["segments"][-2]
    assert later["start_s"] > 1.5
    with av.open(str(dep.config.data / later["path"])) as container:
        stream = container.streams.video[0]
        first = next(container.demux(stream))
        assert first.pts is not None and first.time_base is not None
        start = float(first.pts * first.time_base)
        length = container.duration / 1e6 if container.duration else 0.0
    assert start < 0.1, f"the segment's first frame is at {start:.2f} s in its own file (its timeline place leaked in)"
    assert length < later["duration_s"] + 0.5, f"the file says {length:.2f} s for a {later['duration_s']} s segment"


async def test_search_finds_calls_by_the_tellers_username_and_display_name(dep: Deployment, real_call: Any) -> None:
    await real_call(dep, "call-t", dep.ids["tlee"], seconds=1.5)
    await real_call(dep, "call-b", dep.ids["bkim"], seconds=1.5)
    await indexed(dep, "call-t")
    await indexed(dep, "call-b")

    async def found(teller: str) -> list[str]:
        rows = (await api(dep, "GET", "recordings", params={"teller": teller}))["recordings"]
        return sorted(r["session_id"] for r in rows)

    assert await found("tlee") == ["call-t"]
    assert await found("Teresa Lee") == ["call-t"]
    assert await found("teresa") == ["call-t"]
    assert await found("kim") == ["call-b"]
    assert await found(dep.ids["bkim"]) == ["call-b"]  # the user id still works
    assert await found("nobody") == []
    assert await found("%") == []  # a LIKE wildcard is a literal


async def test_a_call_without_the_tellers_media_is_incomplete_not_intact_nor_tampered(
        dep: Deployment, real_call: Any) -> None:
    await real_call(dep, "call-half", dep.ids["tlee"], seconds=2.0, teller_media=False)
    row = await indexed(dep, "call-half")
    assert row["missing"] == ["teller audio", "teller video"]
    report = (await api(dep, "POST", "recordings/call-half/verify"))["report"]
    assert report["ok"] is True and report["status"] == "incomplete"
    assert report["missing"] == ["teller audio", "teller video"]

    await real_call(dep, "call-full", dep.ids["tlee"], seconds=2.0)
    await indexed(dep, "call-full")
    report = (await api(dep, "POST", "recordings/call-full/verify"))["report"]
    assert (report["ok"], report["status"], report["missing"]) == (True, "intact", [])

    # A changed file is tampered, whatever else is missing.
    segment = dep.config.data / manifest_of(dep, "call-half")["tracks"][0]["segments"][0]["path"]
    segment.write_bytes(segment.read_bytes() + b"x")
    report = (await api(dep, "POST", "recordings/call-half/verify"))["report"]
    assert (report["ok"], report["status"]) == (False, "tampered")


async def sign_in(page: Page, url: str) -> None:
    await page.goto(f"{url}/media/")
    await page.get_by_test_id("login-username").fill("admin1")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("who")).to_contain_text("Admin One")


async def in_view(page: Page, testid: str) -> None:
    box = await page.get_by_test_id(testid).bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    assert 0 <= box["y"] and box["y"] + min(box["height"], 200) <= viewport["height"], (testid, box, viewport)


async def player_state(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate("""() => {
        const p = document.querySelector('[data-testid=call-player]');
        const v = (party) => { const el = document.querySelector(`[data-testid=player-video-${party}]`);
            return el ? {segment: el.dataset.segment, time: el.currentTime, paused: el.paused,
                         ready: el.readyState, width: el.videoWidth} : null; };
        return {time: Number(p.dataset.time), customer: v('customer'), teller: v('teller')};
    }"""))


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 390, "height": 844}])
async def test_one_player_per_call_in_view_in_step_and_seekable(dep: Deployment, real_call: Any,
                                                         viewport: dict[str, int]) -> None:
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await (await browser.new_context(viewport=viewport, locale="en-US")).new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            await sign_in(page, dep.url)
            await page.get_by_test_id("tab-recordings").click()
            await expect(page.get_by_test_id("recording-empty")).to_be_visible()

            # Two calls end while the console is open; Search (not Rescan) lists them.
            await real_call(dep, "call-one", dep.ids["tlee"], seconds=4.0)
            await real_call(dep, "call-half", dep.ids["bkim"], seconds=2.0, teller_media=False)
            await indexed(dep, "call-half")
            await page.get_by_test_id("search-teller").fill("Teresa")
            await page.get_by_test_id("search-submit").click()
            await expect(page.get_by_test_id("recording-call-one")).to_be_visible()
            await expect(page.get_by_test_id("recording-call-half")).to_have_count(0)
            await page.get_by_test_id("search-teller").fill("bkim")
            await page.get_by_test_id("search-submit").click()
            half = page.get_by_test_id("recording-call-half")
            await expect(half.get_by_test_id("recording-missing")).to_have_text(
                "Teller's audio missing · Teller's video missing")
            await half.get_by_test_id("recording-open").click()
            await expect(page.get_by_test_id("player-missing-teller")).to_have_text("Teller's video missing")
            await page.get_by_test_id("verify-recording").click()
            await expect(page.get_by_test_id("verify-result")).to_have_attribute("data-status", "incomplete")
            await expect(page.get_by_test_id("verify-result")).to_contain_text("Incomplete (not tampered)")

            await page.get_by_test_id("search-teller").fill("")
            await page.get_by_test_id("search-submit").click()
            await page.get_by_test_id("recording-call-one").get_by_test_id("recording-open").click()
            await expect(page.get_by_test_id("recording-detail")).to_contain_text("call-one")
            # One player, not a button per segment, and it opens where the person is looking.
            await expect(page.get_by_test_id("call-player")).to_have_count(1)
            await expect(page.locator("[data-testid^='play-']")).to_have_count(0)
            await in_view(page, "call-player")
            await expect(page.get_by_test_id("player-video-customer")).to_be_visible()
            await expect(page.get_by_test_id("player-video-teller")).to_be_visible()
            duration = float(await page.get_by_test_id("call-player").get_attribute("data-duration") or 0)
            assert 3.0 < duration < 6.5, duration

            # Play: both parties' videos run together on the call's clock.
            await page.get_by_test_id("player-play").click()
            manifest = manifest_of(dep, "call-one")
            starts = {(t["party"], Path(s["path"]).name): s["start_s"]
                      for t in manifest["tracks"] for s in t["segments"]}

            def steady(state: dict[str, Any]) -> bool:
                return all(state[p] and not state[p]["paused"] and state[p]["segment"]
                           and abs(starts[(p, state[p]["segment"])] + state[p]["time"] - state["time"]) < 0.6
                           for p in ("customer", "teller"))

            await page.wait_for_timeout(2000)
            for _ in range(10):  # a moment past a file switch or a correction (1 s files here: often)
                state = await player_state(page)
                if steady(state):
                    break
                await page.wait_for_timeout(100)
            assert 1.5 < state["time"] < 3.6, state
            for party in ("customer", "teller"):
                v = state[party]
                assert v and not v["paused"] and v["ready"] >= 2 and v["width"] == 640, (party, state)
                on_timeline = starts[(party, v["segment"])] + v["time"]
                assert abs(on_timeline - state["time"]) < 0.6, (party, on_timeline, state)

            # Seek back to 0.5 s: both follow; the time label says where.
            await page.get_by_test_id("player-play").click()  # pause
            await page.get_by_test_id("player-seek").fill("0.5")
            await page.wait_for_timeout(700)
            state = await player_state(page)
            assert abs(state["time"] - 0.5) < 0.05, state
            for party in ("customer", "teller"):
                v = state[party]
                assert v["segment"].endswith("-0001.webm"), (party, state)
                start = starts[(party, v["segment"])]  # a party that joined after 0.5 s waits on its first frame
                assert abs(start + v["time"] - max(0.5, start)) < 0.3, (party, start, state)
            await expect(page.get_by_test_id("player-time")).to_have_text(f"0:00 / 0:0{int(duration)}")
            assert errors == [], errors
        finally:
            await browser.close()


async def test_the_transcript_sits_beside_the_player_and_seeks_it(dep: Deployment, record_into: Any) -> None:
    """A recording written by the video node's Recorder with a transcript (record_call: the ASR model is
    too heavy to load here); a click on a line moves the player to it."""
    await record_into(dep.config, "call-said", teller_id=dep.ids["tlee"], frames=40)
    await indexed(dep, "call-said")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
            page.set_default_timeout(10_000)
            await sign_in(page, dep.url)
            await page.get_by_test_id("tab-recordings").click()
            await page.get_by_test_id("recording-call-said").get_by_test_id("recording-open").click()
            transcript = page.get_by_test_id("player-transcript")
            await expect(transcript.get_by_test_id("cue-0")).to_contain_text("안녕하세요")
            await expect(transcript.get_by_test_id("cue-0")).to_contain_text("Customer")
            player = await page.get_by_test_id("call-player").bounding_box()
            beside = await transcript.bounding_box()
            assert player and beside and beside["x"] > player["x"] + 300  # beside the videos, not under
            await page.get_by_test_id("player-seek").fill("0.8")
            await transcript.get_by_test_id("cue-0").click()
            await expect(page.get_by_test_id("call-player")).to_have_attribute("data-time", "0.00")
            await expect(transcript.get_by_test_id("cue-0")).to_have_attribute("aria-current", "true")
        finally:
            await browser.close()
