"""Screenshot helper for issue 10 (the phone page's ID photo button); not part of the suite.
SHOT_PHASE=before|after; run explicitly: pytest tests/kiosk_client/shots_issue10_phone_id.py"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.media_sources import synthetic

from .conftest import Stack, Teller
from .test_phone_page import TELLER_SOURCE, _sign_in, browser, phone  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
OUT = Path(__file__).resolve().parents[2] / "docs/screenshots/issue-10"
PHASE = os.environ.get("SHOT_PHASE", "before")


async def test_shots(stack: Stack, teller: Teller, phone: tuple[Page, list[str]]) -> None:  # noqa: F811
    page, _ = phone
    await _sign_in(page, stack)
    await page.get_by_test_id("service-general").tap()
    session_id, grant = await teller.accept_next(timeout=30)
    call = Call(grant, synthetic(TELLER_SOURCE), ice_addresses=["127.0.0.1"])
    try:
        await call.join()
        await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
        if PHASE == "after":
            import skimage

            async with page.expect_file_chooser() as chooser:
                await page.get_by_test_id("id-photo-take").tap()
            await (await chooser.value).set_files(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))
            await expect(page.get_by_test_id("id-photo-status")).to_have_text(
                "Your teller has the photo of your ID card.", timeout=20_000)
        OUT.mkdir(parents=True, exist_ok=True)
        for w, h in ((1366, 768), (390, 844)):
            await page.set_viewport_size({"width": w, "height": h})
            await page.wait_for_timeout(400)
            await page.screenshot(path=str(OUT / f"phone-id-call-{PHASE}-{w}.png"), scale="css")
    finally:
        await call.leave()
        call.sources.stop()
