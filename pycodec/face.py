"""Faces: dlib's HOG detector, the 68-point shape predictor shipped by the PyPI package
``face-recognition-models``, one face per frame for the dataset's crops (choose, cut into shots,
smooth), crops and coordinates; :class:`FaceTrack`, the crop mode's view of a face.  Finding faces
of any size and following several is :mod:`pycodec.facedet` and :mod:`pycodec.tracks`.

``make dataset`` uses these on the source video (crops) and on the decoded crops (landmarks), and
``pycodec restore`` on the decoded frames of its input, so both see the same boxes and landmarks.
dlib and the model files are loaded on first use (``pip install .[models]``).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ._optional import EXTRA, MissingDependency, require
from .errors import PycodecError

PREDICTOR = "shape_predictor_68_face_landmarks.dat"
# Detection runs on a copy whose larger side is this many pixels (faces of 256-pixel face crops are
# ~140 px, well inside the HOG detector's range, which starts at 80 px); tiny crops are enlarged.
DETECT_SIDE = 256


class NoFaceError(PycodecError):
    """Too few frames with a face (``found`` of ``tried`` searched); ``reason`` is "no-face"."""

    reason = "no-face"

    def __init__(self, message: str, found: int = 0, tried: int = 0) -> None:
        super().__init__(message)
        self.found, self.tried = found, tried


def model_path(name: str = PREDICTOR) -> str:
    """Path of a model file in ``face_recognition_models``, found without importing the package
    (its ``__init__`` imports ``pkg_resources``, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    dirs = list(spec.submodule_search_locations or []) if spec else []
    for d in dirs:
        p = os.path.join(d, "models", name)
        if os.path.isfile(p):
            return p
    raise MissingDependency(f"{name}: not found, it comes with the Python package 'face-recognition-models'; "
                            f"install the model extras with `{EXTRA}` (or `pip install face-recognition-models`)")


def _dlib() -> Any:
    return require("dlib", "face detection and landmarks")


@lru_cache(maxsize=1)
def _detector() -> Any:
    return _dlib().get_frontal_face_detector()


@lru_cache(maxsize=1)
def _predictor() -> Any:
    return _dlib().shape_predictor(model_path())


def detect(gray: np.ndarray, upsample: int = 0) -> np.ndarray:
    """Face rectangles (K, 5) float64 ``x0, y0, x1, y1, score`` in ``gray``'s pixels, best first."""
    rects, scores, _ = _detector().run(np.ascontiguousarray(gray, np.uint8), upsample, 0.0)
    out = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s] for r, s in zip(rects, scores)],
                   np.float64).reshape(-1, 5)
    return out[np.argsort(-out[:, 4])] if len(out) else out


def resize(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """``gray`` (uint8) resized bilinearly to ``height`` x ``width`` (dlib; no copy when unchanged)."""
    gray = np.ascontiguousarray(gray, np.uint8)
    if gray.shape == (height, width):
        return gray
    return np.asarray(_dlib().resize_image(gray, int(height), int(width)))


def detect_scaled(gray: np.ndarray, side: int = DETECT_SIDE, retry_upsampled: bool = True) -> np.ndarray:
    """:func:`detect` on a copy of ``gray`` scaled (aspect kept) to ``side`` pixels on its larger
    side; boxes in ``gray``'s pixels.  When nothing is found, ``retry_upsampled`` searches once more
    at twice the size (finds faces down to ~40 px of the scaled copy)."""
    h, w = gray.shape[:2]
    k = side / max(h, w)
    small = resize(gray, max(1, round(h * k)), max(1, round(w * k)))
    ky, kx = small.shape[0] / h, small.shape[1] / w
    d = detect(small, 0)
    if not len(d) and retry_upsampled:
        d = detect(small, 1)
    d[:, [0, 2]] /= kx
    d[:, [1, 3]] /= ky
    return d


def landmarks(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The 68 landmarks (68, 2) float32 ``x, y`` (pixel centres) in the face rectangle ``box``."""
    dlib = _dlib()
    x0, y0, x1, y1 = (round(float(v)) for v in box[:4])
    shape = _predictor()(np.ascontiguousarray(gray, np.uint8), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class TrackSettings:
    """How faces are followed and cropped (all documented in docs/dataset.md)."""

    margin: float = 1.8           # crop side = margin x the face box's larger side
    smooth_s: float = 0.25        # Gaussian sigma of the crop's centre and size, in seconds
    cut_iou: float = 0.3          # a chosen face overlapping its predecessor less than this starts a new shot
    min_face_frac: float = 0.5    # fewer frames with a face than this fraction: "no-face"


def choose_faces(dets: list[np.ndarray]) -> np.ndarray:
    """One face per frame (N, 4), NaN where none: keep following the face that overlaps the one
    chosen before; take the largest detection when nothing overlaps (first frame, shot change)."""
    out = np.full((len(dets), 4), np.nan)
    prev = None
    for t, d in enumerate(dets):
        if not len(d):
            continue
        if prev is not None:
            ious = [iou(prev, r) for r in d]
            k = int(np.argmax(ious))
            if ious[k] > 0:
                prev = d[k, :4]
                out[t] = prev
                continue
        areas = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
        prev = d[int(np.argmax(areas)), :4]
        out[t] = prev
    return out


def segments(faces: np.ndarray, cut_iou: float) -> list[tuple[int, int]]:
    """Split frames [0, N) into shots: a new shot starts where consecutive detected faces barely overlap."""
    starts = [0]
    last = None
    for t in range(len(faces)):
        if np.isnan(faces[t, 0]):
            continue
        if last is not None and iou(faces[last], faces[t]) < cut_iou:
            starts.append(last + 1 if t - last > 1 else t)
        last = t
    bounds = starts + [len(faces)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _gauss_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with edge replication (sigma in samples)."""
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], r, 0), x, np.repeat(x[-1:], r, 0)])
    return np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(x.shape[1])], 1)


def track(dets: list[np.ndarray], fps: float, s: TrackSettings,
          attempted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame face boxes and square crop boxes, both (N, 4) ``x0, y0, x1, y1`` in source pixels.

    Within each shot: frames without a detection are interpolated (held at the ends), then the face
    centre and size are smoothed with a Gaussian of ``smooth_s`` seconds; the crop is a square of
    side ``margin`` x the larger face side, centred on the face.  Shots are smoothed separately, so a
    cut is not blurred into a pan.  ``attempted`` marks the frames the detector ran on (all by default).
    Raises :class:`NoFaceError` when a face was found in fewer than ``min_face_frac`` of those.
    """
    faces = choose_faces(dets)
    n = len(faces)
    found = ~np.isnan(faces[:, 0])
    tried = int(n if attempted is None else np.count_nonzero(attempted))
    if n == 0 or found.sum() < max(1, s.min_face_frac * tried):
        raise NoFaceError(f"a face was found in {int(found.sum())} of {tried} frames searched "
                          f"(need {s.min_face_frac:.0%}); is this a talking-head video?", int(found.sum()), tried)
    # centre x, centre y, size (larger side) of the face
    csz = np.stack([(faces[:, 0] + faces[:, 2]) / 2, (faces[:, 1] + faces[:, 3]) / 2,
                    np.maximum(faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1])], 1)
    smooth = np.empty_like(csz)
    for a, b in segments(faces, s.cut_iou):
        seg = csz[a:b]
        ok = ~np.isnan(seg[:, 0])
        if not ok.any():  # a shot with no face at all: borrow the nearest found face
            nearest = np.flatnonzero(found)[np.argmin(np.abs(np.flatnonzero(found) - a))]
            smooth[a:b] = csz[nearest]
            continue
        idx = np.arange(b - a)
        filled = np.stack([np.interp(idx, idx[ok], seg[ok, j]) for j in range(3)], 1)
        smooth[a:b] = _gauss_smooth(filled, s.smooth_s * fps)
    half = smooth[:, 2:3] / 2
    face_box = np.concatenate([smooth[:, :2] - half, smooth[:, :2] + half], 1)
    half_c = half * s.margin
    crop_box = np.concatenate([smooth[:, :2] - half_c, smooth[:, :2] + half_c], 1)
    return face_box, crop_box


def crop_square(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of ``img`` (H, W, C) in the integer-rounded square ``box``; outside the frame the
    edge pixels are repeated (a black border would cost the encoder bits and teach the model edges)."""
    h, w = img.shape[:2]
    x0, y0 = int(np.floor(box[0] + 0.5)), int(np.floor(box[1] + 0.5))
    side = max(1, int(np.floor(box[2] - box[0] + 0.5)))
    ys = np.clip(np.arange(y0, y0 + side), 0, h - 1)
    xs = np.clip(np.arange(x0, x0 + side), 0, w - 1)
    if ys[0] == y0 and ys[-1] == y0 + side - 1 and xs[0] == x0 and xs[-1] == x0 + side - 1:
        return img[y0:y0 + side, x0:x0 + side]
    return img[ys[:, None], xs[None, :]]


def to_crop_coords(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Source-pixel coordinates -> coordinates in the ``size`` x ``size`` crop of square ``box``
    (pixel centres at integers, as dlib reports them)."""
    x0, y0 = np.floor(box[0] + 0.5), np.floor(box[1] + 0.5)
    side = max(1.0, np.floor(box[2] - box[0] + 0.5))
    k = size / side
    return (points - np.array([x0, y0]) + 0.5) * k - 0.5


def rescale_points(points: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """x, y points (pixel centres at integers) in an ``src`` = (height, width) picture -> the same
    places in that picture resized to ``dst`` = (height, width), per axis."""
    k = np.array([dst[1] / src[1], dst[0] / src[0]], np.float64)
    return ((np.asarray(points, np.float64) + 0.5) * k - 0.5).astype(np.float32)


def rescale_boxes(boxes: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """``x0, y0, x1, y1`` boxes (edges, not centres) in an ``src`` picture -> the resized ``dst`` one."""
    k = np.array([dst[1] / src[1], dst[0] / src[0]] * 2, np.float64)
    return np.asarray(boxes, np.float64)[..., :4] * k


# ---------------------------------------------------------------------- one face through a whole video


@dataclass
class FaceTrack:
    """One face through a whole video (``pycodec restore``'s crop mode, made from a
    :class:`pycodec.tracks.Track`): smoothed boxes per frame and what the detector saw.

    ``boxes`` (N, 4) ``x0, y0, x1, y1`` in frame pixels (square faces of the smoothed size);
    ``attempted``/``detected`` (N,) which frames the detector ran on and found a face in;
    ``face_size`` the median detected face side divided by the frame's larger side.
    """

    boxes: np.ndarray
    attempted: np.ndarray
    detected: np.ndarray
    face_size: float
    size: tuple[int, int] = (0, 0)  # frame (height, width)

    @property
    def found_frac(self) -> float:
        """Fraction of the searched frames with a face."""
        tried = int(self.attempted.sum())
        return float(self.detected.sum()) / tried if tried else 0.0

    def missed(self, t: int) -> bool:
        """Whether the last search at or before frame ``t`` found no face (landmarks there are
        better taken from the last frame that had one)."""
        tried = np.flatnonzero(self.attempted[: t + 1])
        return bool(len(tried)) and not bool(self.detected[tried[-1]])
