"""Restoring the faces of a video of any size: windows around each tracked face, samples cut from
the whole frame's codec data, and the restored windows pasted back.

The models were trained on square face crops of ``cfg.frame_size`` (256) pixels whose side is
``MARGIN`` (1.8) x the face's (``make dataset``), with codec data on the codec's own block grid.
Here, for every face track (:mod:`pycodec.tracks`) and frame:

1. a *window* around the face: a rectangle of the display area, aligned to the codec grid in the
   coded plane (16 for H.264, the CTU for HEVC), of one size per track, large enough for the crop
   square at every frame; inside the frame (shifted, never cut);
2. a sample cut from the frame's arrays exactly as :class:`pycodec.nn.CodecWindowDataset` cuts a
   crop from a shard (:func:`pycodec.nn.datasets.crop_field`), with the window's landmarks;
3. the model runs on the window scaled so the face has the size it had in training (a similarity
   transform: scale and shift, no rotation, as the training crops); its change is scaled back;
4. the change is weighted by a feathered mask (1 over the crop square, 0 outside it; OpenCV) and
   added to the decoded window; several faces' changes are averaged where they overlap;
5. back-projection runs on each window with the window's own coefficients and quantization steps
   (the whole frame's codec grid), and pixels outside every mask stay exactly as decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import face as F
from ._optional import require
from .tracks import LandmarkFilter, Track

MARGIN = 1.8       # crop side / face side, as the training crops (pycodec.face.TrackSettings.margin)
FEATHER = 0.12     # width of the mask's soft edge, as a fraction of the crop side


@dataclass(frozen=True)
class Geometry:
    """Where the display area lies: ``height`` x ``width`` at (``top``, ``left``) of the coded
    plane, whose block grid is ``grid`` pixels."""

    height: int
    width: int
    top: int = 0
    left: int = 0
    grid: int = 16

    @property
    def meta(self) -> dict[str, Any]:
        """The ``meta`` :func:`pycodec.nn.datasets.crop_field` takes."""
        return {"top": self.top, "left": self.left}

    def positions(self, axis: int, size: int) -> np.ndarray:
        """Display offsets along ``axis`` (0: y) whose coded position is on the grid and where a
        window of ``size`` fits."""
        off, extent, g = (self.top, self.height, self.grid) if axis == 0 else (self.left, self.width, self.grid)
        ks = np.arange((off + g - 1) // g, (off + extent) // g + 1)
        p = ks * g - off
        return p[(p >= 0) & (p + size <= extent)]


def window_size(track: Track, geo: Geometry, margin: float = MARGIN) -> tuple[int, int]:
    """(height, width) of ``track``'s windows: the largest crop square of the track plus one grid
    step (so a grid-aligned window always holds it), in grid steps; at most the display area."""
    side = float(np.max(track.boxes[:, 2] - track.boxes[:, 0])) * margin
    g = geo.grid
    want = g * math.ceil(side / g) + g
    out = []
    for axis in (0, 1):
        extent = geo.height if axis == 0 else geo.width
        size = min(want, extent - extent % g if extent >= g else extent)
        while size > g and not len(geo.positions(axis, size)):
            size -= g
        out.append(int(size))
    return out[0], out[1]


def window_at(box: np.ndarray, size: tuple[int, int], geo: Geometry) -> tuple[int, int, int, int]:
    """The window (top, left, height, width) in display pixels of ``size`` whose centre is nearest
    the face ``box``'s centre among the grid-aligned positions inside the display area."""
    cy, cx = (box[1] + box[3]) / 2, (box[0] + box[2]) / 2
    out = []
    for axis, c in ((0, cy), (1, cx)):
        pos = geo.positions(axis, size[axis])
        if not len(pos):
            raise ValueError(f"no grid-aligned window of {size[axis]} pixels fits the display area")
        out.append(int(pos[np.argmin(np.abs(pos + size[axis] / 2 - c))]))
    return out[0], out[1], size[0], size[1]


def model_scale(track: Track, model_side: int, margin: float = MARGIN) -> float:
    """The scale that gives the track's (median) face the size faces had in training."""
    return model_side / margin / max(track.face_side, 1.0)


def scaled_size(size: tuple[int, int], k: float) -> tuple[int, int]:
    """A window's size at scale ``k`` (even, at least 16)."""
    return tuple(max(16, 2 * round(v * k / 2)) for v in size)  # type: ignore[return-value]


def feather_mask(win: tuple[int, int, int, int], box: np.ndarray, margin: float = MARGIN,
                 feather: float = FEATHER) -> np.ndarray:
    """(h, w) float32 weights of a window: 1 over the face's crop square (``margin`` x the face
    box), falling smoothly to 0 at its edge (OpenCV Gaussian blur of the inset square)."""
    cv2 = require("cv2", "pasting restored faces back")
    y0, x0, h, w = win
    side = max(box[2] - box[0], box[3] - box[1]) * margin
    cx, cy = (box[0] + box[2]) / 2 - x0, (box[1] + box[3]) / 2 - y0
    f = max(2.0, feather * side)
    half = side / 2 - f / 2  # the blur (3 sigma = f / 2) takes the edge from 1 at side/2 - f to 0 at side/2
    m = np.zeros((h, w), np.float32)
    cv2.rectangle(m, (round(cx - half), round(cy - half)), (round(cx + half), round(cy + half)), 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), f / 6, borderType=cv2.BORDER_CONSTANT)
    m[m < 1e-3] = 0.0
    return m


def chroma_mask(m: np.ndarray) -> np.ndarray:
    """A luma mask at chroma resolution (2x2 means)."""
    h, w = m.shape
    return m[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3)).astype(np.float32)


def window_landmarks(y: np.ndarray, win: tuple[int, int, int, int], box: np.ndarray, k: float,
                     smoother: LandmarkFilter | None = None) -> np.ndarray:
    """68 landmarks (68, 2) in window pixels, found on the window's luma at scale ``k`` (where the
    face has its training size, as the dataset's landmarks are found on its crops)."""
    y0, x0, h, w = win
    size = scaled_size((h, w), k)
    g = F.resize(np.ascontiguousarray(y[y0:y0 + h, x0:x0 + w]), *size)
    b = F.rescale_boxes(np.asarray(box, np.float64)[:4] - [x0, y0, x0, y0], (h, w), size)
    lm = F.rescale_points(F.landmarks(g, b), size, (h, w))
    if smoother is not None:  # smoothed where they are in the frame (windows move in grid steps)
        origin = np.array([x0, y0], np.float32)
        lm = smoother(lm + origin, float(max(box[2] - box[0], box[3] - box[1]))) - origin
    return lm


class Composite:
    """Accumulates the masked changes of every face of one frame and makes the output planes.

    :meth:`add` one face's change (window planes, float, in [0, 1] units) with its luma mask;
    :meth:`finish` gives uint8 planes: decoded + weighted mean change, back-projected per window
    by ``project`` (a callable on the window's planes), decoded exactly where no mask reaches.
    """

    def __init__(self, decoded: dict[str, np.ndarray]) -> None:
        self.decoded = decoded
        self.change = {k: np.zeros(v.shape, np.float32) for k, v in decoded.items()}
        self.weight = {k: np.zeros(v.shape, np.float32) for k, v in decoded.items()}
        self.windows: list[tuple[tuple[int, int, int, int], Any]] = []

    def add(self, win: tuple[int, int, int, int], change: dict[str, np.ndarray], mask: np.ndarray,
            project: Any = None) -> None:
        y0, x0, h, w = win
        for k, c in change.items():
            s = 1 if k == "y" else 2
            m = mask if s == 1 else chroma_mask(mask)
            sl = (slice(y0 // s, y0 // s + h // s), slice(x0 // s, x0 // s + w // s))
            self.change[k][sl] += m * c
            self.weight[k][sl] += m
        self.windows.append((win, project))

    def finish(self) -> dict[str, np.ndarray]:
        peak = 255.0
        out = {}
        planes = {}
        for k, dec in self.decoded.items():
            wgt = self.weight[k]
            mean = np.divide(self.change[k], np.maximum(wgt, 1.0), where=wgt > 0, out=np.zeros_like(wgt))
            planes[k] = dec.astype(np.float32) / peak + mean
        result = {k: v.copy() for k, v in planes.items()}
        for (y0, x0, h, w), project in self.windows:
            if project is None:
                continue
            sub = {k: planes[k][y0 // s:y0 // s + h // s, x0 // s:x0 // s + w // s]
                   for k, s in (("y", 1), ("u", 2), ("v", 2))}
            done = project(sub)
            for k, s in (("y", 1), ("u", 2), ("v", 2)):
                result[k][y0 // s:y0 // s + h // s, x0 // s:x0 // s + w // s] = done[k]
        for k, dec in self.decoded.items():
            v = np.clip(np.round(result[k] * peak), 0, 255).astype(np.uint8)
            out[k] = np.where(self.weight[k] > 0, v, dec)
        return out


@dataclass
class FaceSample:
    """One face of one frame: its track's index, window, mask box and model sample."""

    track: int
    window: tuple[int, int, int, int]
    box: np.ndarray
    sample: dict[str, Any]


class SceneSamples:
    """Turns decoded frames (display order, whole frames) into the per-face samples of every
    frame: :meth:`push` takes frame t and yields ``(t, [FaceSample, ...], decoded planes)`` for
    the frames whose window became complete (frames without a face yield an empty list)."""

    def __init__(self, src: str, codec: str, n_frames: int, mfcc: np.ndarray, tracks: list[Track],
                 geo: Geometry, model_side: int, fps: float, window_fields: dict[str, int],
                 center_fields: tuple[str, ...], n_window: int) -> None:
        self.src, self.codec, self.n, self.mfcc = src, codec, n_frames, mfcc
        self.tracks, self.geo, self.fps = tracks, geo, fps
        self.window_fields, self.center_fields, self.n_window = window_fields, center_fields, n_window
        self.sizes = [window_size(t, geo) for t in tracks]
        self.scales = [model_scale(t, model_side) for t in tracks]
        self.smoothers = [LandmarkFilter(fps) for _ in tracks]
        self.frames: dict[int, Any] = {}
        self.next_t = 0

    def push(self, frame: Any) -> Any:
        self.frames[frame.index] = frame
        yield from self._ready(frame.index)

    def finish(self) -> Any:
        yield from self._ready(self.n - 1 + self.n_window)

    def _ready(self, have: int) -> Any:
        while self.next_t < self.n and min(self.next_t + self.n_window, self.n - 1) <= have:
            t = self.next_t
            fr = self.frames[t]
            decoded = {k: fr.arrays[f"decoded/{k}"] for k in "yuv"}
            faces = [self._face(i, t) for i, tr in enumerate(self.tracks) if tr.covers(t)]
            yield t, faces, decoded
            self.next_t += 1
            for i in [i for i in self.frames if i < self.next_t - self.n_window]:
                del self.frames[i]

    def _face(self, i: int, t: int) -> FaceSample:
        from .nn.datasets import crop_field, crop_rows

        box = self.tracks[i].box(t)
        win = window_at(box, self.sizes[i], self.geo)
        meta = self.geo.meta
        y0, x0 = win[0], win[1]
        out: dict[str, Any] = {"file": self.src, "frame": t, "hflip": False, "vflip": False,
                               "offset": np.array([y0 + self.geo.top, x0 + self.geo.left], np.int64)}
        last = self.n - 1
        for name, k in self.window_fields.items():
            idx = [min(max(t + j, 0), last) for j in range(-k, k + 1)]
            if name == "audio/mfcc":
                out[name] = self.mfcc[idx]
            elif name == "frame/poc":
                out[name] = np.array([self.frames[j].poc for j in idx], np.int32)
            else:
                out[name] = np.stack([crop_field(name, self.frames[j].arrays[name][None], win, meta)[0] for j in idx])
        fr = self.frames[t]
        rows = [n for n in self.center_fields if n.startswith("hevc/")]
        if rows:
            cut = crop_rows({n: fr.arrays[n][None] for n in rows}, win, meta)
            out.update({n: np.ascontiguousarray(cut[n][0]) for n in rows})
        for name in self.center_fields:
            if name == "landmarks/decoded":
                lm = window_landmarks(fr.arrays["decoded/y"], win, box, self.scales[i], self.smoothers[i])
                out[name] = lm.astype(np.float32)
            elif name not in rows:
                out[name] = np.ascontiguousarray(crop_field(name, fr.arrays[name][None], win, meta)[0])
        return FaceSample(i, win, box, out)
