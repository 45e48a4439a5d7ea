"""Face match: is the face on the customer's ID card the face in the call?

A `FaceMatcher` finds the largest face on each of two images and gives the Euclidean distance between
their 128-d face embeddings, with a plain verdict band for the teller. `DlibFaceMatcher` is the one
implementation: dlib's HOG frontal-face detector, its 5-point shape predictor and its ResNet face
embedding (dlib reports 99.38 % on LFW; the same person is below ~0.6), from the `face` extra
(`pip install -e '.[face]'`: dlib-bin and face-recognition-models).

This is a decision aid for a person, never an identity proof: the result goes to the teller with the
two face crops, the teller decides, and both are evidence. Nothing here approves anything.

The work is CPU-bound (~0.5-1.5 s per image): callers run `match` in a worker thread; one lock keeps
the dlib models to one image at a time.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from cloudbank.platform.errors import CloudbankError

Band = Literal["likely_same", "check_carefully", "different", "no_face"]
# dlib's own threshold for "same person" is 0.6; below 0.5 the two faces are close enough to say so
# plainly; in between a person must look carefully.
LIKELY_SAME_BELOW = 0.5
DIFFERENT_FROM = 0.6
# A phone photo can be 4000 px wide: faces are found on a copy no larger than this (an ID card's face
# is still ~100 px there), then looked for again at twice the size (dlib's upsampling) for small ones.
MAX_SIDE = 1024
CROP_SIDE = 240
CROP_MARGIN = 0.35


class FaceMatchError(CloudbankError):
    """Face matching could not run; the message says why and what to do."""


class FaceMatchUnavailable(FaceMatchError):
    """The packaged face models are not installed."""


def band(distance: float | None) -> Band:
    """The verdict band of a distance (None: a face was not found on one of the images)."""
    if distance is None:
        return "no_face"
    if distance < LIKELY_SAME_BELOW:
        return "likely_same"
    if distance < DIFFERENT_FROM:
        return "check_carefully"
    return "different"


@dataclass(frozen=True)
class Face:
    """The face found on one image: its box (x, y, width, height) in that image's pixels, how many
    faces the image had, and a JPEG crop around it for the teller's screen."""

    box: tuple[int, int, int, int]
    faces: int
    crop_jpeg: bytes

    def public(self) -> dict[str, Any]:
        return {"box": list(self.box), "faces": self.faces}


@dataclass(frozen=True)
class FaceMatch:
    """Two images compared: the face on each (None: none found) and their embedding distance."""

    first: Face | None
    second: Face | None
    distance: float | None
    model: str

    @property
    def band(self) -> Band:
        return band(self.distance)


class FaceMatcher(Protocol):
    """Compares the faces on two images (JPEG or PNG bytes). Blocking: run it in a worker thread."""

    model: str

    def match(self, first: bytes, second: bytes) -> FaceMatch: ...


def decode(data: bytes) -> np.ndarray:
    """BGR pixels of a JPEG or PNG (EXIF orientation applied, as a phone camera's photo needs)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FaceMatchError("the image could not be decoded")
    return np.ascontiguousarray(bgr)


def crop(bgr: np.ndarray, box: tuple[int, int, int, int]) -> bytes:
    """A square JPEG around the face box with a margin, CROP_SIDE pixels on a side."""
    x, y, w, h = box
    side = int(max(w, h) * (1 + 2 * CROP_MARGIN))
    cx, cy = x + w // 2, y + h // 2
    x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
    x1, y1 = min(bgr.shape[1], x0 + side), min(bgr.shape[0], y0 + side)
    part = cv2.resize(bgr[y0:y1, x0:x1], (CROP_SIDE, CROP_SIDE), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise FaceMatchError("the face crop could not be encoded")
    return bytes(buf.tobytes())


def _models_folder() -> Path:
    """face-recognition-models' data folder, found without importing the package (it imports
    pkg_resources, which a fresh environment may not have)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceMatchUnavailable("face matching needs the face models: pip install -e '.[face]' "
                                   "(face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibFaceMatcher:
    """dlib's detector, 5-point landmarks and ResNet embedding; models load on the first match."""

    model = "dlib_face_recognition_resnet_model_v1"

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError:
            raise FaceMatchUnavailable("face matching needs dlib: pip install -e '.[face]' (dlib-bin)") from None
        folder = _models_folder()
        self._dlib: Any = dlib
        self._paths = (folder / "shape_predictor_5_face_landmarks.dat",
                       folder / "dlib_face_recognition_resnet_model_v1.dat")
        for path in self._paths:
            if not path.is_file():
                raise FaceMatchUnavailable(f"the face model {path} is missing: pip install -e '.[face]'")
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any] | None = None

    def _models(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            dlib = self._dlib
            self._loaded = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(self._paths[0])),
                            dlib.face_recognition_model_v1(str(self._paths[1])))
        return self._loaded

    def _face(self, data: bytes) -> tuple[Face, np.ndarray] | None:
        bgr = decode(data)
        scale = min(1.0, MAX_SIDE / max(bgr.shape[:2]))
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        detector, shapes, embedder = self._models()
        found = list(detector(rgb, 1))
        if not found:
            return None
        rect = max(found, key=lambda r: r.area())
        vector = np.array(embedder.compute_face_descriptor(rgb, shapes(rgb, rect)), dtype=np.float64)
        x0, y0 = max(0, rect.left()), max(0, rect.top())
        x1, y1 = min(bgr.shape[1], rect.right()), min(bgr.shape[0], rect.bottom())
        box = (round(x0 / scale), round(y0 / scale), round((x1 - x0) / scale), round((y1 - y0) / scale))
        return Face(box, len(found), crop(bgr, (x0, y0, x1 - x0, y1 - y0))), vector

    def match(self, first: bytes, second: bytes) -> FaceMatch:
        with self._lock:
            a, b = self._face(first), self._face(second)
        distance = None if a is None or b is None else float(np.linalg.norm(a[1] - b[1]))
        return FaceMatch(a[0] if a else None, b[0] if b else None, distance, self.model)
