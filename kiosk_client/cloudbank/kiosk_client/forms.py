"""Answering what a teller pushes during a call: forms (accept with values, or decline), signature
requests and documents, plus the images a kiosk has (a drawn signature, an ID-card scan from a file).

A signature travels as a PNG data URL inside `POST sessions/<id>/responses`. It is checked here
before sending (PNG by its magic bytes, at most `MAX_IMAGE_BYTES`, the platform's limit) so a kiosk
never uploads what the platform would refuse anyway; the platform checks again. An ID-card image
(JPEG or PNG, at most `MAX_ID_CARD_BYTES`) goes to `POST sessions/<id>/id_card` with `send_id_card`;
`read_id_card` validates the file when the kiosk starts, not mid-call.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.errors import KioskError

MAX_IMAGE_BYTES = 256 * 1024
MAX_ID_CARD_BYTES = 2 * 1024 * 1024  # the platform's limit for an ID-card image
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def signature_data_url(png: bytes) -> str:
    """A signature as the platform takes it: a PNG data URL of at most MAX_IMAGE_BYTES."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise KioskError("the signature must be a PNG image")
    return image_data_url(png, "signature")


def image_data_url(data: bytes, what: str = "image", max_bytes: int = MAX_IMAGE_BYTES) -> str:
    """A data URL for a PNG or JPEG, refusing anything else or anything too large."""
    if len(data) > max_bytes:
        raise KioskError(f"the {what} is {len(data)} bytes; at most {max_bytes} are accepted")
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
    id_card_data_url(data)   # validates type and size now, not mid-call
    return data


def id_card_data_url(data: bytes) -> str:
    """An ID-card image as the platform takes it: a JPEG or PNG data URL of at most MAX_ID_CARD_BYTES."""
    return image_data_url(data, "ID-card image", MAX_ID_CARD_BYTES)


async def send_id_card(client: PlatformClient, session_id: str, data: bytes, side: str = "front",
                       ) -> dict[str, Any]:
    """Send the card image to the call's teller; returns the platform's `id_card` description."""
    return dict((await client.send_id_card(session_id, id_card_data_url(data), side))["id_card"])


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


def scripted_values(push: Push) -> dict[str, str]:
    """Values a scripted kiosk fills in: each field's pre-filled value, else a plausible one for
    required fields (the first option, "true" for a checkbox, today for a date)."""
    values: dict[str, str] = {}
    for f in push.body.get("fields") or []:
        if not isinstance(f, dict) or not f.get("name"):
            continue
        value = str(f.get("value") or "")
        if not value and f.get("required"):
            kind = f.get("kind", "text")
            options = f.get("options") or []
            value = {"checkbox": "true", "number": "1", "date": date.today().isoformat(),
                     "select": str(options[0]) if options else "yes"}.get(str(kind), "confirmed at kiosk")
        if value:
            values[str(f["name"])] = value
    return values


async def answer(client: PlatformClient, push: Push, *, accept: bool, signature_png: bytes | None = None,
                 values: dict[str, str] | None = None) -> dict[str, Any]:
    """Answer one push ("accept" or "decline"). Accepting a signature request sends the signature
    (drawn when none is given); accepting a form sends `values` (default: `scripted_values`)."""
    extra: dict[str, Any] = {}
    if accept and push.kind == "signature_request":
        extra["signature"] = signature_data_url(signature_png or draw_signature())
    if accept and push.kind == "form":
        extra["values"] = scripted_values(push) if values is None else values
    return await client.respond(push.session_id, push.push_id, "accept" if accept else "decline", **extra)
