"""Real face photos for the face-match tests (shipped in scikit-image and matplotlib, see
../shared/notes/face-match.md): the kiosk's video as a file made from a photo, with slight motion."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def photo(name: str) -> np.ndarray:
    """BGR pixels of `astronaut` (scikit-image) or `grace_hopper` (matplotlib)."""
    if name == "astronaut":
        import skimage

        path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    else:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(bgr)


def jpeg(bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(buf.tobytes())


def id_card_jpeg(name: str = "astronaut") -> bytes:
    """An ID-card-like picture: the photo scaled down, rotated a little and darkened, on a pale card."""
    face = photo(name)
    h, w = face.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 0.6)
    turned = cv2.warpAffine(face, m, (w, h), borderValue=(235, 235, 235))
    darker = np.clip(turned.astype(np.float32) * 0.8, 0, 255).astype(np.uint8)
    card = np.full((int(h * 0.75), int(w * 1.2), 3), 235, np.uint8)
    part = cv2.resize(darker, (int(w * 0.6), int(h * 0.6)))[:, :]
    card[20:20 + part.shape[0], 20:20 + part.shape[1]] = part
    return jpeg(card)


def write_video(path: Path, bgr: np.ndarray, seconds: float = 60.0, fps: int = 8) -> Path:
    """A Motion-JPEG video of the photo drifting a few pixels (so the encoder keeps sending frames),
    long enough for a whole test: the file source's loop is not relied on."""
    h, w = (bgr.shape[0] // 2) * 2, (bgr.shape[1] // 2) * 2
    bgr = cv2.resize(bgr, (w, h))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    shifted = [cv2.warpAffine(bgr, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
               for dx in (-3, -2, -1, 0, 1, 2, 3, 2, 1, 0, -1, -2)]
    try:
        for i in range(int(seconds * fps)):
            writer.write(shifted[i % len(shifted)])
    finally:
        writer.release()
    return path


@contextlib.asynccontextmanager
async def face_call(kiosk: Any, session_id: str, folder: Path, name: str = "astronaut") -> AsyncIterator[Any]:
    """The kiosk joins the call with the photo as its camera."""
    from cloudbank.kiosk_client.call import Call
    from cloudbank.kiosk_client.media_sources import open_sources

    video = write_video(folder / f"{name}.avi", cv2.resize(photo(name), (640, 512)))
    call = await Call.for_session(kiosk.client, session_id, open_sources(video_file=video),
                                  ice_addresses=["127.0.0.1"])
    kiosk.call = call
    await call.join()
    try:
        yield call
    finally:
        with contextlib.suppress(Exception):
            await call.leave()
        kiosk.call = None
