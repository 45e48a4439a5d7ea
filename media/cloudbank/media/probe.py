"""How long a stored video plays: read from the file itself, so a playlist entry can default to it
(a 5 s clip is 5 s on the kiosk, not a guessed 30 s).

PyAV reads the container's duration (or the longest stream's); OpenCV's frame count over its frame
rate is the fallback for files whose header has neither. A blob is content-addressed and never
changes, so a result is kept per SHA-256 by the caller (`Durations`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import av

log = logging.getLogger(__name__)


def video_duration(path: Path) -> float | None:
    """Seconds of playback of the video at `path`, or None when it cannot be told."""
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return round(container.duration / av.time_base, 3)
            lengths = [float(s.duration * s.time_base) for s in container.streams
                       if s.duration and s.time_base is not None]
            if lengths:
                return round(max(lengths), 3)
    except (av.error.FFmpegError, OSError) as exc:
        log.info("probe: PyAV cannot read %s (%s)", path.name, exc)
    try:
        import cv2

        capture = cv2.VideoCapture(str(path))
        try:
            frames, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
        finally:
            capture.release()
        if frames > 0 and fps > 0:
            return round(frames / fps, 3)
    except Exception as exc:  # noqa: BLE001 - OpenCV raises its own error types; the answer is "unknown"
        log.info("probe: OpenCV cannot read %s (%s)", path.name, exc)
    return None


class Durations:
    """Video durations by SHA-256, probed once per blob (in a thread: it reads the file)."""

    def __init__(self) -> None:
        self._known: dict[str, float | None] = {}

    async def get(self, sha256: str, path: Path) -> float | None:
        if sha256 not in self._known:
            self._known[sha256] = await asyncio.to_thread(video_duration, path)
        return self._known[sha256]
