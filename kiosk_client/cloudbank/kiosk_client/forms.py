"""Answering what a teller pushes during a call: forms (confirm/decline), signature requests and
documents, plus the images a kiosk sends (a drawn signature, an ID-card scan from a file).

Images travel as data URLs inside `POST sessions/<id>/responses`. They are checked here before
sending (PNG or JPEG by their magic bytes, at most `MAX_IMAGE_BYTES`) so a kiosk never uploads
something the platform would refuse anyway; the platform checks again.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.errors import KioskError

MAX_IMAGE_BYTES = 256 * 1024
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def image_data_url(data: bytes, what: str = "image") -> str:
    """A data URL for a PNG or JPEG, refusing anything else or anything too large."""
    if len(data) > MAX_IMAGE_BYTES:
        raise KioskError(f"the {what} is {len(data)} bytes; at most {MAX_IMAGE_BYTES} are accepted")
    for magic, mime in _MAGIC.items():
        if data.startswith(magic):
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
    raise KioskError(f"the {what} must be a PNG or JPEG image")


def draw_signature(strokes: list[list[tuple[float, float]]] | None = None, width: int = 480,
                   height: int = 160) -> bytes:
    """A signature as a PNG: black strokes (points in 0..1 of the pad) on white."""
    canvas = np.full((height, width), 255, dtype=np.uint8)
    if strokes is None:   # a scripted kiosk signs with a fixed flourish
        xs = np.linspace(0.05, 0.95, 60)
        strokes = [[(float(x), float(0.5 + 0.3 * np.sin(x * 14) * (1 - x))) for x in xs]]
    for stroke in strokes:
        pts = np.array([[int(x * (width - 1)), int(y * (height - 1))] for x, y in stroke], dtype=np.int32)
        if len(pts) > 1:
            cv2.polylines(canvas, [pts], False, 0, 3, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise KioskError("could not encode the signature")
    return bytes(png.tobytes())


def read_id_card(path: Path) -> bytes:
    """The ID-card reader's stand-in: an image file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KioskError(f"cannot read the ID-card image {path}: {exc.strerror}") from None
    image_data_url(data, "ID-card image")   # validates type and size now, not mid-call
    return data


@dataclass(frozen=True)
class Push:
    """A pushed item as it arrives in a `push` event."""

    push_id: str
    session_id: str
    kind: str            # form | document | signature_request
    title: str
    body: dict[str, Any]

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Push:
        return cls(str(event.get("push_id", "")), str(event.get("session_id", "")), str(event.get("kind", "")),
                   str(event.get("title", "")), event)


async def answer(client: PlatformClient, push: Push, *, confirm: bool, signature_png: bytes | None = None,
                 id_card: bytes | None = None) -> dict[str, Any]:
    """Answer one push. A signature request is answered with the signature (or declined)."""
    extra: dict[str, Any] = {}
    if push.kind == "signature_request" and confirm:
        extra["signature"] = image_data_url(signature_png or draw_signature(), "signature")
    if id_card is not None and confirm:
        extra["id_card"] = image_data_url(id_card, "ID-card image")
    verdict = "confirm" if confirm else "decline"
    if push.kind == "document":
        verdict = "acknowledge" if confirm else "decline"
    return await client.respond(push.session_id, push.push_id, verdict, **extra)
