"""The phone page's ID photo in headless Chromium (390x844, touch): during a call the customer taps
"Photograph your ID card", the phone's file chooser (camera) gives a real photo larger than the
platform's 2 MB cap (scikit-image's astronaut at 3000 px), the page sends it downscaled as a JPEG and
the teller gets the call's ID card. A file that is not a photo, or one that cannot be decoded, is
refused on the page with a plain sentence and nothing reaches the teller."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import skimage
from playwright.async_api import Page, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.media_sources import synthetic
from cloudbank.platform.id_cards import MAX_ID_CARD_BYTES

from .conftest import Stack, Teller, until
from .test_phone_page import TELLER_SOURCE, _every_control_has_a_testid, _sign_in, browser, phone  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_the_customer_photographs_the_id_card_and_the_teller_gets_it(
        stack: Stack, teller: Teller, phone: tuple[Page, list[str]], tmp_path: Path) -> None:  # noqa: F811
    page, errors = phone
    big = tmp_path / "IMG_0001.png"
    photo = cv2.imread(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))
    assert cv2.imwrite(str(big), cv2.resize(photo, (3000, 3000), interpolation=cv2.INTER_CUBIC))
    assert big.stat().st_size > MAX_ID_CARD_BYTES  # as a phone camera's file: too big to send as it is

    await _sign_in(page, stack)
    await page.get_by_test_id("service-general").tap()
    session_id, grant = await teller.accept_next(timeout=30)
    call = Call(grant, synthetic(TELLER_SOURCE), ice_addresses=["127.0.0.1"])
    try:
        await call.join()
        await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
        take = page.get_by_test_id("id-photo-take")
        await expect(take).to_have_text("Photograph your ID card")
        field = page.get_by_test_id("id-photo-input")
        assert await field.get_attribute("accept") == "image/*"
        assert await field.get_attribute("capture") is not None
        await _every_control_has_a_testid(page)

        # Not a photo: refused on the page, nothing sent.
        async with page.expect_file_chooser() as chooser:
            await take.tap()
        await (await chooser.value).set_files(
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"my card number is 1234"})
        await expect(page.get_by_test_id("id-photo-status")).to_have_text(
            "That file is not a photo. Take a photo of your ID card, or choose a JPEG or PNG picture.")
        async with page.expect_file_chooser() as chooser:
            await take.tap()
        await (await chooser.value).set_files(
            {"name": "IMG_0002.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff" + b"\x00" * 500})
        await expect(page.get_by_test_id("id-photo-status")).to_have_text(
            "That photo could not be read. Please take it again.")
        assert teller.of_type("id_card") == []

        # The real photo, larger than the cap: the page sends it downscaled, the teller has it.
        async with page.expect_file_chooser() as chooser:
            await take.tap()
        await (await chooser.value).set_files(str(big))
        await expect(page.get_by_test_id("id-photo-status")).to_have_text(
            "Your teller has the photo of your ID card.", timeout=20_000)
        await until(lambda: len(teller.of_type("id_card")) == 1, what="the ID card event")
        card = teller.of_type("id_card")[0]
        assert card["session_id"] == session_id and card["content_type"] == "image/jpeg"
        assert 0 < card["bytes"] <= MAX_ID_CARD_BYTES
        listed = await teller.client.request("GET", f"sessions/{session_id}/id_card")
        assert [c["sha256"] for c in listed["id_cards"]] == [card["sha256"]]

        # In Chinese the line follows, in place.
        await page.get_by_test_id("lang-zh").tap()
        await expect(page.get_by_test_id("id-photo-status")).to_have_text("柜员已收到您的身份证照片。")
        await expect(take).to_have_text("拍摄身份证")
    finally:
        await call.leave()
        call.sources.stop()
    assert errors == []
