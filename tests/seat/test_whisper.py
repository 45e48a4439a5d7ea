"""Whisper (issue 14, point 7): a monitoring supervisor presses "Whisper" and speaks to the teller
only. A real browser supervisor (Chromium's fake microphone) whispers to a real browser teller, with
the kiosk SDK as the customer: the teller's page decodes audio on its second inbound audio track and
says "Supervisor is whispering"; the customer receives none of it; the supervisor's audio is
recorded as its own track; the platform audits it. Refused: a teller asking to whisper, a
supervisor of another queue, a whisper on an ended call, and a supervisor's microphone the platform
did not allow."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.async_api import Page, expect

from cloudbank.platform.records import audit_log, create_engine
from cloudbank.video.recorder import recording_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# The teller page's second inbound audio track (transceiver 2: the supervisor's voice).
WHISPER_STATS = """async () => {
  const t = window.cloudbankSeat.screen.link.pc.getTransceivers()[2];
  let packets = 0, energy = 0;
  (await t.receiver.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
    packets = r.packetsReceived;
    energy = r.totalAudioEnergy || 0;
  });
  return { packets, energy, mid: t.mid, direction: t.currentDirection };
}"""
TELLER_SENT = """async () => {
  let sent = 0;
  (await window.cloudbankSeat.screen.link.pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "audio") sent = r.packetsSent;
  });
  return sent;
}"""


class PacketLog:
    """Every decrypted RTP packet the customer's peer connection receives, by SSRC, routed or not."""

    def __init__(self, pc: Any) -> None:
        transport = pc.getTransceivers()[0].receiver.transport
        self.by_ssrc: Counter[int] = Counter()
        original = transport._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int) -> None:
            if len(data) >= 12:
                self.by_ssrc[int.from_bytes(data[8:12], "big")] += 1
            await original(data, arrival_time_ms)

        transport._handle_rtp_data = handle


def answer_ssrcs(sdp: str) -> list[set[int]]:
    """The node's sending SSRCs per m-section, in order, from the answer it gave."""
    out: list[set[int]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append(set())
        m = re.match(r"a=ssrc:(\d+) ", line)
        if m:
            out[-1].add(int(m.group(1)))
    return out


async def until(check: Any, timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.3)


async def audit_actions(seat: Any, session_id: str) -> list[str]:
    engine = create_engine(seat.config.effective_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(audit_log.c.action).where(
                audit_log.c.subject == f"session:{session_id}").order_by(audit_log.c.seq))).all()
    finally:
        await engine.dispose()
    return [r.action for r in rows]


async def talk(page: Page, token: str, session_id: str, mode: str) -> int:
    return int(await page.evaluate(
        "async ([sid, t, mode]) => (await fetch(`/api/sessions/${sid}/talk`, {method: 'POST', headers: "
        "{Authorization: `Bearer ${t}`, 'Content-Type': 'application/json'}, body: JSON.stringify({mode})})).status",
        [session_id, token, mode]))


async def test_a_supervisor_whispers_to_the_teller_and_the_customer_hears_none_of_it(
        seat: Any, page: Page, second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, call = await seat.accept_offer(page, kiosk)
    assert call is not None and call.pc is not None
    customer_log = PacketLog(call.pc)
    sup = second_page
    await seat.login(sup, "super1")
    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    whisper = sup.get_by_test_id("whisper")
    await expect(whisper).to_have_accessible_name("Whisper")
    await expect(sup.get_by_test_id("barge-in")).to_have_accessible_name("Barge in")
    await expect(page.get_by_test_id("supervisor-talking")).to_be_hidden()
    # Monitoring alone: the teller's section for a supervisor's voice is up, and silent.
    before = await page.evaluate(WHISPER_STATS)
    assert before["direction"] == "recvonly" and before["packets"] == 0

    await whisper.click()
    await expect(whisper).to_have_attribute("aria-pressed", "true")
    await expect(whisper).to_have_text("Stop whispering")
    await expect(page.get_by_test_id("supervisor-talking")).to_have_text("Supervisor is whispering")
    # The teller's page receives and decodes the supervisor's audio on that second audio track.
    first = await until(lambda: _rising(page, 0))
    assert first["packets"] > 0, f"no whisper packets reached the teller: {first}"
    customer_start = dict(customer_log.by_ssrc)
    teller_sent_start = await page.evaluate(TELLER_SENT)
    second = await until(lambda: _rising(page, first["packets"] + 50))
    assert second["packets"] >= first["packets"] + 50 and second["energy"] > first["energy"]

    # The customer: packets only on the node's two streams for the teller (audio; video and its RTX),
    # none on its section for a supervisor's voice (that is for a barge-in), and as many audio
    # packets as the teller sent, not the teller's and the supervisor's together.
    teller_audio, teller_video, voice = answer_ssrcs(call.pc.remoteDescription.sdp)
    assert voice and not voice & set(customer_log.by_ssrc), customer_log.by_ssrc
    assert set(customer_log.by_ssrc) <= teller_audio | teller_video, customer_log.by_ssrc
    assert call.supervisor_voice.frames["audio"] == 0
    (audio_ssrc,) = teller_audio
    got = customer_log.by_ssrc[audio_ssrc] - customer_start.get(audio_ssrc, 0)
    sent = await page.evaluate(TELLER_SENT) - teller_sent_start
    assert sent > 40 and got <= sent * 1.2 + 10, f"customer got {got} audio packets while the teller sent {sent}"

    # The supervisor's voice is recorded as its own track.
    folder = recording_folder(seat.config, session_id)
    assert await until(lambda: _has(folder, "supervisor-audio"), 10), sorted(p.name for p in folder.iterdir())

    await whisper.click()
    await expect(whisper).to_have_attribute("aria-pressed", "false")
    await expect(page.get_by_test_id("supervisor-talking")).to_be_hidden()
    stopped = await page.evaluate(WHISPER_STATS)
    await asyncio.sleep(1.5)
    assert (await page.evaluate(WHISPER_STATS))["packets"] - stopped["packets"] < 10  # the node drops it again
    actions = await audit_actions(seat, session_id)
    assert actions.count("session.whisper_started") == 1 and actions.count("session.whisper_stopped") == 1
    assert actions.index("session.whisper_started") < actions.index("session.whisper_stopped")


async def _rising(page: Page, above: int) -> dict[str, Any] | None:
    stats: dict[str, Any] = await page.evaluate(WHISPER_STATS)
    return stats if stats["packets"] > above else None


async def _has(folder: Path, prefix: str) -> bool:
    def look() -> bool:
        return folder.is_dir() and any(p.name.startswith(prefix) for p in folder.iterdir())

    return await asyncio.to_thread(look)


async def test_whisper_refusals(seat: Any, page: Page, second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, _ = await seat.accept_offer(page, kiosk)
    teller_token = await seat.token(page)
    # A teller cannot whisper (not even in their own call).
    assert await talk(page, teller_token, session_id, "whisper") == 403
    # A supervisor of other queues cannot.
    sup = second_page
    await seat.login(sup, "super2")
    await expect(sup.get_by_test_id("wallboard")).to_be_visible()
    assert await talk(sup, await seat.token(sup), session_id, "whisper") == 403
    # A supervisor of the queue whose microphone the platform never allowed: the node refuses it.
    await sup.evaluate("sessionStorage.clear()")
    await seat.login(sup, "super1")
    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    await sup.evaluate("window.cloudbankSeat.screen.monitor.link.send({type: 'talk', mode: 'whisper'})")
    await expect(sup.get_by_test_id("supervisor-error")).to_contain_text("has not allowed you to whisper")
    assert (await page.evaluate(WHISPER_STATS))["packets"] == 0
    # The call ends: a whisper is refused.
    super1 = await seat.token(sup)
    await page.get_by_test_id("end-call").click()
    await expect(page.get_by_test_id("wrapup")).to_be_visible()
    assert await talk(sup, super1, session_id, "whisper") == 409
    actions = await audit_actions(seat, session_id)
    assert "session.whisper_started" not in actions, actions


async def test_a_supervisor_barges_in_and_the_customer_hears_them_too(
        seat: Any, page: Page, second_page: Page, kiosk: Any) -> None:
    await seat.teller_ready(page)
    await kiosk.client.create_ticket("deposit")
    session_id, call = await seat.accept_offer(page, kiosk)
    assert call is not None
    sup = second_page
    await seat.login(sup, "super1")
    await sup.get_by_test_id(f"teller-monitor-{session_id}").click()
    await expect(sup.get_by_test_id("monitor-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    # Whispering first: the customer's section for a supervisor's voice stays silent.
    await sup.get_by_test_id("whisper").click()
    await expect(page.get_by_test_id("supervisor-talking")).to_have_text("Supervisor is whispering")
    assert await until(lambda: _rising(page, 50))
    assert call.supervisor_voice.frames["audio"] == 0 and call.talk == "off"

    barge = sup.get_by_test_id("barge-in")
    await barge.click()
    await expect(barge).to_have_attribute("aria-pressed", "true")
    await expect(sup.get_by_test_id("whisper")).to_have_attribute("aria-pressed", "false")
    await expect(page.get_by_test_id("supervisor-talking")).to_have_text("A supervisor has joined the call")
    await call.wait_for(lambda: call.talk == "barge" and call.supervisor_voice.frames["audio"] > 50)
    teller_heard = (await page.evaluate(WHISPER_STATS))["packets"]
    assert await until(lambda: _rising(page, teller_heard + 25))  # the teller still hears it too

    await barge.click()
    await expect(page.get_by_test_id("supervisor-talking")).to_be_hidden()
    await call.wait_for(lambda: call.talk == "off")
    heard = call.supervisor_voice.frames["audio"]
    await asyncio.sleep(1.5)
    assert call.supervisor_voice.frames["audio"] - heard < 10
    actions = await audit_actions(seat, session_id)
    assert [a for a in actions if a.startswith(("session.whisper", "session.barge"))] == [
        "session.whisper_started", "session.whisper_stopped", "session.barge_started", "session.barge_stopped"]
