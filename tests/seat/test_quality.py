"""Connection quality from getStats in the browser: the numbers shown, and the warning when a call
is bad. Loopback has no loss to speak of (and this kernel has no netem), so a peer connection whose
getStats reports loss and delay is injected for the bad case; the good case is a real call."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

# Each browser test takes seconds; a hang must not eat the suite.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BAD_LINK = """async ({loss, rtt}) => {
  const { QualityMeter } = await import("./static/js/quality.js");
  const el = document.createElement("p");
  el.dataset.testid = "probe-quality";
  document.body.append(el);
  let n = 0;
  const fakePc = { getStats: async () => {
    n += 1;
    const received = 100 * n, lost = Math.round(received * loss / (1 - loss));
    return new Map([
      ["in", { type: "inbound-rtp", kind: "video", timestamp: 1000 * n, bytesReceived: 40000 * n,
               packetsReceived: received, packetsLost: lost, framesDecoded: 15 * n, trackIdentifier: "t" }],
      ["cp", { type: "candidate-pair", nominated: true, state: "succeeded", currentRoundTripTime: rtt }],
    ]);
  } };
  window.probe = new QualityMeter(() => fakePc, el, null);
}"""


async def test_a_real_call_shows_bitrate_loss_and_rtt_without_a_warning(seat: Any, page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    await seat.accept_offer(page, kiosk)
    quality = page.get_by_test_id("call-quality")
    await expect(quality.get_by_test_id("quality-bitrate")).to_contain_text("kbit/s", timeout=15_000)
    await expect(quality.get_by_test_id("quality-loss")).to_have_text("loss 0%")
    await expect(quality.get_by_test_id("quality-rtt")).to_contain_text("RTT")
    await page.wait_for_timeout(3500)
    await expect(quality).to_have_attribute("data-quality", "good")
    await expect(page.get_by_test_id("quality-warning")).to_have_count(0)


@pytest.mark.parametrize(("loss", "rtt"), [(0.2, 0.05), (0.0, 0.9)])
async def test_a_lossy_or_slow_link_raises_the_warning(seat: Any, page: Page, loss: float, rtt: float) -> None:
    await page.goto(seat.seat_url)
    await page.evaluate(BAD_LINK, {"loss": loss, "rtt": rtt})
    probe = page.get_by_test_id("probe-quality")
    await expect(probe).to_have_attribute("data-quality", "good")  # one bad second is noise
    await expect(probe).to_have_attribute("data-quality", "bad", timeout=6000)
    await expect(probe.get_by_test_id("quality-warning")).to_contain_text("Poor connection")
    if loss:
        await expect(probe.get_by_test_id("quality-loss")).to_have_text("loss 20%")
    else:
        await expect(probe.get_by_test_id("quality-rtt")).to_have_text("RTT 900 ms")
    await page.evaluate("window.probe.stop()")


async def test_a_customer_on_a_failing_line_raises_the_warning_from_real_stats(seat: Any, page: Page,
                                                                                kiosk: Any) -> None:
    """Chromium is the teller; the kiosk's media reaches the node only through a lossy relay. When the
    line blacks out, the teller's received bitrate (real getStats) falls under the limit and the
    console warns; when it is back, the warning goes."""
    from cloudbank.kiosk_client.call import Call
    from cloudbank.kiosk_client.media_sources import synthetic
    from cloudbank.video.testing_link import Impairment, LossyLink

    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk, join=False)
    link = LossyLink(Impairment(loss=0.03, delay_s=0.150, jitter_s=0.020, seed=5))
    await link.start()
    media = synthetic(1)
    call = await Call.for_session(kiosk.client, session_id, media, ice_addresses=["127.0.0.1"], route=link)
    try:
        await call.join()
        quality = page.get_by_test_id("call-quality")
        await expect(quality.get_by_test_id("quality-bitrate")).to_contain_text("kbit/s", timeout=15_000)
        await seat.wait_frames_rising(page)
        assert link.up.rtp > 0, "the kiosk's media did not go through the relay"
        await expect(quality).to_have_attribute("data-quality", "good", timeout=10_000)
        link.blackout(4.0)
        await expect(page.get_by_test_id("quality-warning")).to_be_visible(timeout=4_000)
        await expect(quality).to_have_attribute("data-quality", "bad")
        await expect(quality).to_have_attribute("data-quality", "good", timeout=10_000)
        await expect(page.get_by_test_id("quality-warning")).to_have_count(0)
    finally:
        await call.leave()
        link.close()
        media.stop()
