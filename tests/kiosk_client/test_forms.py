"""Signature and ID-card images are checked before they leave the kiosk; scripted form values."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloudbank.kiosk_client.errors import KioskError
from cloudbank.kiosk_client.forms import (
    MAX_ID_CARD_BYTES,
    MAX_IMAGE_BYTES,
    Push,
    draw_signature,
    image_data_url,
    read_id_card,
    scripted_values,
    signature_data_url,
)


def test_drawn_signature_is_a_small_png_with_ink() -> None:
    png = draw_signature([[(0.1, 0.5), (0.9, 0.5)]])
    assert png.startswith(b"\x89PNG") and len(png) < MAX_IMAGE_BYTES
    image = cv2.imdecode(np.frombuffer(png, "uint8"), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (160, 480) and image.min() < 50 and image.max() == 255
    url = signature_data_url(png)
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == png


def test_oversized_or_non_png_signatures_are_refused() -> None:
    with pytest.raises(KioskError, match="at most"):
        signature_data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES)
    with pytest.raises(KioskError, match="PNG"):
        signature_data_url(b"\xff\xd8\xff" + b"\0" * 100)
    with pytest.raises(KioskError, match="PNG or JPEG"):
        image_data_url(b"GIF89a....")


def test_id_card_file_is_validated(tmp_path: Path) -> None:
    jpg = tmp_path / "card.jpg"
    ok, data = cv2.imencode(".jpg", np.zeros((54, 86, 3), "uint8"))
    jpg.write_bytes(data.tobytes())
    assert read_id_card(jpg) == jpg.read_bytes()
    with pytest.raises(KioskError, match="cannot read"):
        read_id_card(tmp_path / "missing.jpg")
    # A card photo may be larger than a signature (up to the platform's 2 MB), not more.
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * MAX_IMAGE_BYTES)
    assert len(read_id_card(tmp_path / "photo.jpg")) > MAX_IMAGE_BYTES
    (tmp_path / "big.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * MAX_ID_CARD_BYTES)
    with pytest.raises(KioskError, match="at most"):
        read_id_card(tmp_path / "big.jpg")
    (tmp_path / "card.gif").write_bytes(b"GIF89a" + b"\0" * 100)
    with pytest.raises(KioskError, match="PNG or JPEG"):
        read_id_card(tmp_path / "card.gif")


def test_scripted_values_fill_required_fields_plausibly() -> None:
    push = Push.from_event({"type": "push", "push_id": "p", "session_id": "s", "kind": "form", "title": "t",
                            "fields": [{"name": "a", "value": "given"},
                                       {"name": "b", "kind": "checkbox", "required": True},
                                       {"name": "c", "kind": "select", "options": ["x", "y"], "required": True},
                                       {"name": "d", "kind": "number", "required": True},
                                       {"name": "optional", "kind": "text"}, "not-a-field"]})
    assert scripted_values(push) == {"a": "given", "b": "true", "c": "x", "d": "1"}
