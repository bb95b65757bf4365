"""Finding faces of any size in frames of any size (docs/faces.md has the measurements).

dlib's HOG detector has an 80-pixel window: it finds faces from about 80 px up (its image pyramid
covers the larger ones), so a full-frame search scales the frame by ``80 / min_face`` first, up
for small faces, down for large ones. Around a face already known, the search runs on a small
region scaled so that face is about 100 px, which costs a few milliseconds at any frame size. dlib's
CNN detector (``mmod_human_face_detector``, shipped by ``face-recognition-models``) finds turned
heads HOG misses, but costs about 30x HOG per pixel, so it only re-searches the region of a face HOG
has just lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import face as F
from ._optional import require

HOG_WINDOW = 80      # smallest face side (px) dlib's frontal HOG detector finds at scale 1
CNN_WINDOW = 80      # the same for the mmod CNN detector (measured: 40-px faces need it at 2x)
NEAR_FACE = 100      # a region search scales the known face to about this side
NEAR_REGION = 2.5    # a region search covers this many face sides around the face's centre
CNN_MODEL = "mmod_human_face_detector.dat"


@dataclass(frozen=True)
class DetectSettings:
    """What a face search looks for.

    ``min_face``: smallest face side (frame pixels) a full-frame search finds; ``threshold``: HOG
    score threshold (dlib's default 0); ``cnn_fallback``: search a lost face's region with the CNN
    detector; ``max_pixels``: a full search never processes more pixels than this (a 4K frame at
    2x is 33 M), larger frames get a larger effective ``min_face``.
    """

    min_face: int = 40
    threshold: float = 0.0
    cnn_fallback: bool = True
    max_pixels: int = 36_000_000

    def __post_init__(self) -> None:
        if self.min_face < 8:
            raise ValueError(f"min_face={self.min_face}: faces below 8 pixels cannot be found")
        if self.max_pixels < 4096:
            raise ValueError(f"max_pixels={self.max_pixels}: too small to search anything")


_DEFAULT = DetectSettings()


@lru_cache(maxsize=1)
def _cnn() -> Any:
    return require("dlib", "face detection").cnn_face_detection_model_v1(F.model_path(CNN_MODEL))


def _cv2() -> Any:
    return require("cv2", "face search at any scale")


def scaled(gray: np.ndarray, k: float) -> np.ndarray:
    """``gray`` (uint8) scaled by ``k`` (bilinear up, area-averaged down; no copy at 1)."""
    gray = np.ascontiguousarray(gray, np.uint8)
    h, w = gray.shape[:2]
    size = (max(1, round(w * k)), max(1, round(h * k)))
    if size == (w, h):
        return gray
    cv2 = _cv2()
    return cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)


def hog(gray: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """HOG detections (K, 5) ``x0, y0, x1, y1, score`` in ``gray``'s pixels, best first."""
    rects, scores, _ = F._detector().run(np.ascontiguousarray(gray, np.uint8), 0, threshold)
    out = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s] for r, s in zip(rects, scores)],
                   np.float64).reshape(-1, 5)
    return out[np.argsort(-out[:, 4], kind="stable")]


def cnn(gray: np.ndarray) -> np.ndarray:
    """CNN (mmod) detections (K, 5) like :func:`hog`; the score is the network's confidence."""
    found = _cnn()(np.ascontiguousarray(gray, np.uint8), 0)
    out = np.array([[m.rect.left(), m.rect.top(), m.rect.right() + 1, m.rect.bottom() + 1, m.confidence]
                    for m in found], np.float64).reshape(-1, 5)
    return out[np.argsort(-out[:, 4], kind="stable")]


def frame_scale(shape: tuple[int, ...], s: DetectSettings) -> float:
    """The scale a full search of a ``shape`` frame runs at: ``HOG_WINDOW / min_face``, where
    ``min_face`` is also at most a fifth of the frame's smaller side (small frames: a 96-pixel crop
    is searched for faces from 19 px, at little cost); lowered when the scaled frame would exceed
    ``max_pixels``."""
    h, w = shape[:2]
    k = HOG_WINDOW / min(s.min_face, max(8.0, min(h, w) / 5))
    return min(k, float(np.sqrt(s.max_pixels / max(1, h * w))))


def search_frame(gray: np.ndarray, s: DetectSettings = _DEFAULT) -> np.ndarray:
    """Every face of at least ``s.min_face`` pixels in the frame (HOG): (K, 5) in frame pixels."""
    k = frame_scale(gray.shape, s)
    d = hog(scaled(gray, k), s.threshold)
    d[:, :4] /= k
    return d


def near_region(shape: tuple[int, ...], box: np.ndarray) -> tuple[int, int, int, int]:
    """The integer region ``x0, y0, x1, y1`` (inside the frame) searched around face ``box``."""
    h, w = shape[:2]
    side = max(box[2] - box[0], box[3] - box[1], 1.0)
    cx, cy, r = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, NEAR_REGION * side / 2
    x0, y0 = max(0, int(np.floor(cx - r))), max(0, int(np.floor(cy - r)))
    x1, y1 = min(w, int(np.ceil(cx + r))), min(h, int(np.ceil(cy + r)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def search_near(gray: np.ndarray, box: np.ndarray, s: DetectSettings = _DEFAULT,
                use_cnn: bool = False) -> np.ndarray:
    """Faces in the region around the known face ``box`` (frame pixels), searched at the scale that
    makes that face about ``NEAR_FACE`` pixels (or ``CNN_WINDOW`` for the CNN): (K, 5) in frame pixels."""
    x0, y0, x1, y1 = near_region(gray.shape, box)
    side = max(box[2] - box[0], box[3] - box[1], 1.0)
    k = (CNN_WINDOW * 1.2 if use_cnn else NEAR_FACE) / side
    region = scaled(gray[y0:y1, x0:x1], k)
    d = cnn(region) if use_cnn else hog(region, s.threshold)
    d[:, :4] /= k
    d[:, [0, 2]] += x0
    d[:, [1, 3]] += y0
    return d
