"""Following every face through a video: one track per face, a box per frame, smoothed.

Frames come one at a time (:meth:`FaceTracks.add`). Every ``scan_every`` frames, and at every
search while no face is followed, the whole frame is searched (:func:`pycodec.facedet.search_frame`:
new faces start tracks); every ``every`` frames each
live track is searched for around its last box (:func:`pycodec.facedet.search_near`, cheap at any
frame size), with the CNN detector as a fallback when HOG misses. A track ends after ``max_missed``
searches in a row without its face. :meth:`FaceTracks.finish` fills the frames between detections
and smooths each track's centre and size over ``smooth_s`` seconds, like :func:`pycodec.face.track`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import facedet as D
from .face import _gauss_smooth, iou


@dataclass(frozen=True)
class TrackerSettings:
    """How faces are followed (docs/faces.md)."""

    every: int = 5            # frames between searches around the live faces
    scan_every: int = 25      # frames between full-frame searches (new faces)
    max_missed: int = 3       # searches in a row without its face end a track
    match_iou: float = 0.2    # a detection continues a track when it overlaps its last box this much
    min_detections: int = 2   # tracks found fewer times in as many searches are dropped (false positives)
    smooth_s: float = 0.25    # Gaussian sigma of each track's centre and size, seconds

    def __post_init__(self) -> None:
        if self.every < 1 or self.scan_every < 1 or self.max_missed < 0 or self.min_detections < 1:
            raise ValueError(f"{self}: every, scan_every and min_detections must be >= 1, max_missed >= 0")


@dataclass
class Track:
    """One face: ``boxes`` (n, 4) ``x0, y0, x1, y1`` for frames ``start .. start + n - 1`` (square,
    smoothed); ``detected`` (n,) where the detector found it; ``scores`` (n,) its detection score
    there (NaN elsewhere)."""

    id: int
    start: int
    boxes: np.ndarray
    detected: np.ndarray
    scores: np.ndarray

    @property
    def end(self) -> int:
        """One past the last frame of the track."""
        return self.start + len(self.boxes)

    def covers(self, t: int) -> bool:
        return self.start <= t < self.end

    def box(self, t: int) -> np.ndarray:
        """The box at frame ``t`` (which the track must cover)."""
        return self.boxes[t - self.start]

    @property
    def face_side(self) -> float:
        """Median side of the face over the track (pixels)."""
        return float(np.median(self.boxes[:, 2] - self.boxes[:, 0]))


@dataclass
class _Live:
    id: int
    last: np.ndarray                                   # last detected box (4,)
    missed: int = 0
    searches: int = 1                                  # searches since it started (hits and misses)
    hits: dict[int, np.ndarray] = field(default_factory=dict)   # frame -> (5,) detection


def _match(tracks: list[_Live], dets: np.ndarray, min_iou: float) -> tuple[dict[int, int], list[int]]:
    """Greedy one-to-one assignment of detections to tracks by overlap (largest first), a detection
    whose centre lies inside a track's last box also counts (a face that moved fast); returns
    {track index: detection index} and the unassigned detection indices."""
    pairs = []
    for i, tr in enumerate(tracks):
        for j, d in enumerate(dets):
            o = iou(tr.last, d[:4])
            cx, cy = (d[0] + d[2]) / 2, (d[1] + d[3]) / 2
            inside = tr.last[0] <= cx <= tr.last[2] and tr.last[1] <= cy <= tr.last[3]
            if o >= min_iou or inside:
                pairs.append((o, i, j))
    pairs.sort(key=lambda p: -p[0])
    got: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in pairs:
        if i not in got and j not in used:
            got[i] = j
            used.add(j)
    return got, [j for j in range(len(dets)) if j not in used]


class FaceTracks:
    """Builds :class:`Track` s from frames given one at a time (module docstring)."""

    def __init__(self, detect: D.DetectSettings | None = None, settings: TrackerSettings | None = None) -> None:
        self.detect = detect or D.DetectSettings()
        self.settings = settings or TrackerSettings()
        self.n = 0
        self.size: tuple[int, int] = (0, 0)
        self.live: list[_Live] = []
        self.done: list[_Live] = []
        self.searched: list[bool] = []
        self.next_id = 0
        self.cnn_calls = 0

    def _near(self, gray: np.ndarray, tr: _Live) -> np.ndarray:
        d = D.search_near(gray, tr.last, self.detect)
        got, _ = _match([tr], d, self.settings.match_iou)
        if not got and self.detect.cnn_fallback:
            self.cnn_calls += 1
            d = D.search_near(gray, tr.last, self.detect, use_cnn=True)
            got, _ = _match([tr], d, self.settings.match_iou)
        return d[[got[0]]] if got else d[:0]

    def add(self, gray: np.ndarray) -> np.ndarray:
        """Account the next frame (its luma plane); returns the detections made on it (K, 5),
        empty when none or when the frame was not searched."""
        t, s = self.n, self.settings
        self.n += 1
        self.size = gray.shape[:2]
        # the whole frame every scan_every frames, and at every search while no face is followed
        scan = t % s.scan_every == 0 or (not self.live and t % s.every == 0)
        if not scan and t % s.every:
            self.searched.append(False)
            return np.zeros((0, 5))
        self.searched.append(True)
        found: list[np.ndarray] = []
        if scan:
            dets = D.search_frame(gray, self.detect)
            got, fresh = _match(self.live, dets, s.match_iou)
            for i, tr in enumerate(self.live):
                d = dets[[got[i]]] if i in got else self._near(gray, tr)
                self._update(tr, t, d, found)
            for j in fresh:
                tr = _Live(self.next_id, dets[j, :4].copy())
                self.next_id += 1
                tr.hits[t] = dets[j].copy()
                self.live.append(tr)
                found.append(dets[j])
        else:
            for tr in self.live:
                self._update(tr, t, self._near(gray, tr), found)
        ended = [tr for tr in self.live if tr.missed > s.max_missed]
        self.done += ended
        self.live = [tr for tr in self.live if tr.missed <= s.max_missed]
        return np.array(found, np.float64).reshape(-1, 5)

    @staticmethod
    def _update(tr: _Live, t: int, d: np.ndarray, found: list[np.ndarray]) -> None:
        tr.searches += 1
        if len(d):
            tr.last, tr.missed = d[0, :4].copy(), 0
            tr.hits[t] = d[0].copy()
            found.append(d[0])
        else:
            tr.missed += 1

    def finish(self, fps: float) -> list[Track]:
        """The tracks, longest first; each spans its first detection to its last one plus the frames
        up to the next search (which no longer found it), boxes filled between detections and smoothed."""
        out = []
        searched = np.flatnonzero(self.searched)
        for tr in self.done + self.live:
            # too few hits in as many searches: a false detection (a face found near the end of the
            # video, with no search left to confirm it, is kept)
            if len(tr.hits) < self.settings.min_detections <= tr.searches:
                continue
            ts = np.array(sorted(tr.hits))
            after = searched[searched > ts[-1]]
            end = int(after[0]) if len(after) else self.n
            idx = np.arange(ts[0], end)
            hit = np.array([tr.hits[t] for t in ts])
            csz = np.stack([(hit[:, 0] + hit[:, 2]) / 2, (hit[:, 1] + hit[:, 3]) / 2,
                            np.maximum(hit[:, 2] - hit[:, 0], hit[:, 3] - hit[:, 1])], 1)
            filled = np.stack([np.interp(idx, ts, csz[:, j]) for j in range(3)], 1)
            sm = _gauss_smooth(filled, self.settings.smooth_s * fps)
            half = sm[:, 2:3] / 2
            boxes = np.concatenate([sm[:, :2] - half, sm[:, :2] + half], 1)
            detected = np.isin(idx, ts)
            scores = np.full(len(idx), np.nan)
            scores[ts - ts[0]] = hit[:, 4]
            out.append(Track(tr.id, int(ts[0]), boxes, detected, scores))
        out.sort(key=lambda k: (-len(k.boxes), k.id))
        return out


class LandmarkFilter:
    """Streaming smoothing of one face's landmarks (the One Euro filter of Casiez et al., 2012):
    a low-pass whose cut-off rises with the points' speed, so a still face stops jittering while a
    talking mouth or a turning head is followed without lag. Speeds are measured in face sides per
    second, so the same settings suit every face size.

    ``min_cutoff`` (Hz) smooths still points; ``beta`` raises the cut-off by that many Hz per face
    side per second of speed; ``d_cutoff`` (Hz) smooths the speed estimate itself. The defaults
    were chosen on a moving face with known landmarks (docs/faces.md): jitter down by 30 % at the
    raw landmarks' accuracy.
    """

    def __init__(self, fps: float, min_cutoff: float = 3.0, beta: float = 16.0, d_cutoff: float = 1.0) -> None:
        if fps <= 0 or min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
            raise ValueError("fps, min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.dt, self.min_cutoff, self.beta, self.d_cutoff = 1.0 / fps, min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def reset(self) -> None:
        """Forget the past (a new shot, or a face lost and found again)."""
        self.x = self.dx = None

    def __call__(self, points: np.ndarray, face_side: float) -> np.ndarray:
        """The smoothed ``points`` (..., 2) of the next frame; ``face_side`` in the same pixels."""
        p = np.asarray(points, np.float64)
        if self.x is None or self.x.shape != p.shape:
            self.x, self.dx = p.copy(), np.zeros_like(p)
            return p.astype(np.float32)
        side = max(float(face_side), 1.0)
        dx = (p - self.x) / self.dt / side
        self.dx = self.dx + self._alpha(self.d_cutoff) * (dx - self.dx)
        speed = np.linalg.norm(self.dx, axis=-1, keepdims=True)
        a = self._alpha(self.min_cutoff + self.beta * speed)
        self.x = self.x + a * (p - self.x)
        return self.x.astype(np.float32)
