"""When the call's media cannot connect, the teller's console says why in words and offers "Try
again" instead of rejoining in a silent loop. The browser is made to fail as a blocked network
does: its offer carries no addresses and the node's answer points at a closed port, so every ICE
check goes unanswered. Unblocked, "Try again" brings the customer's video back."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from cloudbank.platform.config import Config

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# Page-side network block for the video signalling: no candidates out, the node's candidates moved
# to a closed UDP port on loopback in. `window.__cbBlockMedia = false` lifts it.
BLOCK_ICE = """(closedPort) => {
  window.__cbBlockMedia = true;
  const lines = (sdp, fn) => sdp.split('\\r\\n').map(fn).filter((l) => l !== null).join('\\r\\n');
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (window.__cbBlockMedia && typeof data === 'string' && data.includes('"type":"offer"')) {
      const msg = JSON.parse(data);
      msg.sdp = lines(msg.sdp, (l) => (l.startsWith('a=candidate') ? null : l));
      data = JSON.stringify(msg);
    }
    return send.call(this, data);
  };
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
    if (window.__cbBlockMedia && desc && desc.sdp) {
      desc = { type: desc.type, sdp: lines(desc.sdp, (l) => (l.startsWith('a=candidate')
        ? l.split(' ').map((w, i) => (i === 5 ? String(closedPort) : w)).join(' ') : l)) };
    }
    return setRemote.call(this, desc);
  };
}"""


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def seat(config: Config, seat_with: Callable[..., Any]) -> AsyncIterator[Any]:
    """The usual deployment, but the node gives up on ICE after 3 s (default 15 s) so attempts are quick."""
    async with seat_with(config.with_(video_transcribe=False, video_ice_timeout_s=3.0)) as running:
        yield running


async def test_blocked_media_is_explained_and_try_again_recovers(seat: Any, page: Page, kiosk: Any,
                                                                 page_errors: list[str]) -> None:
    await seat.teller_ready(page)
    await page.evaluate(BLOCK_ICE, closed_udp_port())
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk)

    problem = page.get_by_test_id("media-problem")
    await expect(problem).to_be_visible(timeout=15_000)
    await expect(problem).to_have_attribute("data-reason", "blocked")
    await expect(page.get_by_test_id("media-reason")).to_contain_text("a firewall between this computer and "
                                                                      "the video node blocks it")
    # The facts it rests on, as the browser's own stats give them: pairs tried, none answered.
    detail = page.get_by_test_id("media-detail")
    await expect(detail).to_contain_text("candidate pair(s) tried, 0 answered")
    await expect(detail).to_contain_text("video node said: ice_timeout")
    await expect(page.get_by_test_id("media-next")).to_contain_text("Rejoining by itself (attempt 1 of 3)")
    # After three failed attempts the console stops and waits for the teller, instead of looping.
    status = page.get_by_test_id("call-status")
    await expect(status).to_have_attribute("data-state", "failed", timeout=30_000)
    await expect(status).to_have_text("No video")
    await expect(problem).to_have_attribute("data-gave-up", "true")
    await expect(page.get_by_test_id("media-next")).to_contain_text("Stopped rejoining after 3 attempts")
    rejoins = await page.evaluate("window.cloudbankSeat.screen.link.rejoins")
    await page.wait_for_timeout(4000)
    assert await page.evaluate("window.cloudbankSeat.screen.link.rejoins") == rejoins
    await expect(page.get_by_test_id("call-log")).to_contain_text("a firewall between this computer")
    assert "Something went wrong" not in await page.get_by_test_id("call-log").inner_text()

    # The network is fixed; the teller presses Try again and the customer's video comes back.
    await page.evaluate("window.__cbBlockMedia = false")
    retry = page.get_by_test_id("media-retry")
    await expect(retry).to_have_accessible_name("Try again")
    await retry.click()
    await expect(status).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(problem).to_be_hidden()
    await seat.wait_frames_rising(page)
    assert not [e for e in page_errors if "pageerror" in e], page_errors


# The video node's signalling socket cannot be reached (a proxy refusing it): every socket the
# page opens to /video/ws is sent to a path nothing serves, so its handshake fails.
BLOCK_NODE = """() => {
  window.__cbBlockNode = true;
  const Real = WebSocket;
  window.WebSocket = function (url, protocols) {
    if (window.__cbBlockNode && String(url).includes('/video/ws')) {
      url = String(url).replace('/video/ws', '/video/ws-blocked');
    }
    return new Real(url, protocols);
  };
  window.WebSocket.prototype = Real.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
}"""


async def test_an_unreachable_video_node_is_named_and_try_again_recovers(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await page.evaluate(BLOCK_NODE)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk)
    problem = page.get_by_test_id("media-problem")
    await expect(problem).to_have_attribute("data-reason", "node_unreachable", timeout=15_000)
    await expect(page.get_by_test_id("media-reason")).to_have_text(
        "The video node cannot be reached: it may be down, or the network blocks it.")
    await expect(problem).to_have_attribute("data-gave-up", "true", timeout=30_000)
    await page.evaluate("window.__cbBlockNode = false")
    await page.get_by_test_id("media-retry").click()
    await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected", timeout=15_000)
    await seat.wait_frames_rising(page)


async def test_the_status_says_when_the_customer_is_not_in_the_video(seat: Any, page: Page, kiosk: Any) -> None:
    """A black picture with the teller's own media up is the customer's side: the status says which."""
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk, join=False)
    status = page.get_by_test_id("call-status")
    await expect(status).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(status).to_have_text("Video connected; waiting for the customer to join the video.")
    session_id = await page.get_by_test_id("call").get_attribute("data-session")
    call = await kiosk.join(str(session_id))
    await expect(status).to_have_text("Video connected")
    await call.leave()
    kiosk.call = None
    await expect(status).to_have_attribute("data-customer", "left")
    await expect(status).to_have_text("The customer has left the video call; their picture returns when they rejoin.")
    await expect(page.get_by_test_id("media-problem")).to_be_hidden()
