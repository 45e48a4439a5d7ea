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
