"""``pycodec compare A B [--reference GT]``: how two versions of a video differ, over the whole
frame and over the faces, so a user can judge a restoration on their own clips.

With a reference (the uncompressed original): Y-PSNR and Y-SSIM of A and of B against it, whole
frame and face regions, and B's gain over A. Without one: how much B changed A (Y-PSNR of B against
A, mean absolute change), whole frame and faces. Faces are found on the reference (or A) by
:class:`pycodec.tracks.FaceTracks`; a face region is the square of 1.8 x the face box (the models'
crop). The videos must have the same frame count and size; any codec PyAV decodes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics as M
from ._optional import require
from .errors import PycodecError


class CompareError(PycodecError):
    """Videos that cannot be compared (one line: which file, what is wrong, what to do)."""


def luma_frames(path: str) -> Any:
    """The Y plane (H, W) uint8 of every frame of ``path``, decoded by PyAV (one thread)."""
    av = require("av", "reading videos")
    if not os.path.isfile(path):
        raise CompareError(f"{path}: no such file; check the path")
    try:
        c = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"{path}: cannot be opened as a video ({exc}); check the file") from None
    try:
        if not c.streams.video:
            raise CompareError(f"{path}: has no video stream; give a video file")
        st = c.streams.video[0]
        st.thread_type = "NONE"
        for f in c.decode(st):
            yield f.to_ndarray(format="yuv420p")[: f.height]
    except av.error.FFmpegError as exc:
        raise CompareError(f"{path}: decoding failed ({exc}); check the file") from None
    finally:
        c.close()


def frame_rate(path: str) -> float:
    """The video stream's average frame rate (25 when unknown)."""
    av = require("av", "reading videos")
    try:
        with av.open(path) as c:
            st = c.streams.video[0] if c.streams.video else None
            rate = st and (st.average_rate or st.guessed_rate)
            return float(rate) if rate else 25.0
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return 25.0


@dataclass
class Side:
    """Accumulated figures of one video against the reference."""

    sse: float = 0.0
    count: int = 0
    face_sse: float = 0.0
    face_count: int = 0
    ssim: list[float] = field(default_factory=list)
    face_ssim: list[float] = field(default_factory=list)
    frame_psnr: list[float] = field(default_factory=list)
    face_psnr: list[float] = field(default_factory=list)
    abs_change: float = 0.0

    def add(self, ref: np.ndarray, y: np.ndarray, regions: list[tuple[slice, slice]]) -> None:
        sse, n = M.squared_error(ref, y)
        self.sse, self.count = self.sse + sse, self.count + n
        self.abs_change += float(np.abs(ref.astype(np.int16) - y).sum())
        self.frame_psnr.append(M.psnr_of(sse, n))
        self.ssim.append(M.ssim(ref, y))
        fs = fn = 0
        for r in regions:
            s, k = M.squared_error(ref[r], y[r])
            fs, fn = fs + s, fn + k
            if min(ref[r].shape) >= 7:
                self.face_ssim.append(M.ssim(ref[r], y[r]))
        self.face_sse, self.face_count = self.face_sse + fs, self.face_count + fn
        self.face_psnr.append(M.psnr_of(fs, fn) if fn else float("nan"))

    def figures(self) -> dict[str, float]:
        return {"y_psnr": M.psnr_of(self.sse, self.count), "y_ssim": float(np.mean(self.ssim)),
                "face_y_psnr": M.psnr_of(self.face_sse, self.face_count),
                "face_y_ssim": float(np.mean(self.face_ssim)) if self.face_ssim else float("nan"),
                "mean_abs_change": self.abs_change / max(self.count, 1)}


@dataclass
class Comparison:
    """What :func:`compare` measured: ``sides`` maps 'A' and 'B' (with a reference) or 'B' (B against
    A) to its :class:`Side`; ``faces`` the face tracks; ``frames`` the frame count."""

    a: str
    b: str
    reference: str | None
    frames: int
    faces: int
    face_frames: int
    sides: dict[str, Side]

    def lines(self) -> list[str]:
        """The report ``pycodec compare`` prints."""
        out = [(f"pycodec compare: {self.frames} frames, {self.faces} face track(s) in {self.face_frames} frames "
               f"(face region: 1.8 x the face box)")]
        if self.reference:
            fa, fb = self.sides["A"].figures(), self.sides["B"].figures()
            out.append(f"against the reference {self.reference}:")
            out.append(f"  {'':<8} {'Y-PSNR':>8} {'Y-SSIM':>8} {'face Y-PSNR':>12} {'face Y-SSIM':>12}")
            for name, f, path in (("A", fa, self.a), ("B", fb, self.b)):
                out.append(f"  {name:<8} {f['y_psnr']:8.3f} {f['y_ssim']:8.4f} {f['face_y_psnr']:12.3f} "
                           f"{f['face_y_ssim']:12.4f}  {path}")
            out.append(f"  {'B - A':<8} {fb['y_psnr'] - fa['y_psnr']:+8.3f} {fb['y_ssim'] - fa['y_ssim']:+8.4f} "
                       f"{fb['face_y_psnr'] - fa['face_y_psnr']:+12.3f} {fb['face_y_ssim'] - fa['face_y_ssim']:+12.4f}")
        else:
            f = self.sides["B"].figures()
            out.append(f"B ({self.b}) against A ({self.a}): Y-PSNR {f['y_psnr']:.3f} dB, Y-SSIM {f['y_ssim']:.4f}, "
                       f"mean |change| {f['mean_abs_change']:.3f}; faces: Y-PSNR {f['face_y_psnr']:.3f} dB, "
                       f"Y-SSIM {f['face_y_ssim']:.4f}")
        return out

    def plot(self, path: str) -> str:
        """Per-frame face-region Y-PSNR (against the reference, or B against A) as a PNG."""
        require("matplotlib", "the comparison plot")
        import matplotlib.pyplot as plt

        from .viz import save_figure

        fig, ax = plt.subplots(figsize=(9, 3.6), constrained_layout=True)
        names = ("A", "B") if self.reference else ("B",)
        for name in names:
            s = self.sides[name]
            t = np.arange(len(s.face_psnr))
            ax.plot(t, s.face_psnr, label=f"{name}: faces", lw=1.4)
            ax.plot(t, s.frame_psnr, label=f"{name}: whole frame", lw=0.8, ls="--")
        ax.set_xlabel("frame")
        ax.set_ylabel("Y-PSNR (dB)" + ("" if self.reference else ", B against A"))
        ax.set_title(os.path.basename(self.b) + (f" vs {os.path.basename(self.a)}" if not self.reference
                                                 else f" and {os.path.basename(self.a)} against the reference"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return save_figure(fig, path)


def compare(a: str, b: str, reference: str | None = None, progress: bool = True) -> Comparison:
    """Compare videos ``a`` and ``b`` (module docstring)."""
    from tqdm import tqdm

    from .tracks import FaceTracks

    ref_path = reference or a
    tracker = FaceTracks()
    n = 0
    shape = None
    for y in tqdm(luma_frames(ref_path), desc="faces", unit="frame", leave=False, disable=None if progress else True):
        shape = shape or y.shape
        tracker.add(y)
        n += 1
    if n == 0:
        raise CompareError(f"{ref_path}: no frame could be decoded; check the file")
    tracks = tracker.finish(frame_rate(ref_path))
    sides = {"A": Side(), "B": Side()} if reference else {"B": Side()}
    streams = {"R": luma_frames(ref_path), "A": luma_frames(a), "B": luma_frames(b)} if reference else \
        {"R": luma_frames(a), "B": luma_frames(b)}
    paths = {"R": ref_path, "A": a, "B": b}
    face_frames = 0
    bar = tqdm(total=n, desc="compare", unit="frame", leave=False, disable=None if progress else True)
    for t in range(n + 1):
        got = {k: next(s, None) for k, s in streams.items()}
        if t == n:
            extra = [k for k, v in got.items() if v is not None]
            if extra:
                raise CompareError(f"{paths[extra[0]]}: has more frames than {ref_path} ({n}); compare videos of the "
                                   "same frame count")
            break
        missing = [k for k, v in got.items() if v is None]
        if missing:
            raise CompareError(f"{paths[missing[0]]}: has {t} frames, {ref_path} has {n}; compare videos of the same "
                               "frame count")
        for k, v in got.items():
            if v.shape != shape:
                raise CompareError(f"{paths[k]}: frames are {v.shape[1]}x{v.shape[0]}, {ref_path}'s "
                                   f"{shape[1]}x{shape[0]}; compare videos of the same size")
        regions = [M.region(shape, tr.box(t)) for tr in tracks if tr.covers(t)]
        face_frames += bool(regions)
        for k, side in sides.items():
            side.add(got["R"], got[k], regions)
        bar.update(1)
    bar.close()
    return Comparison(a, b, reference, n, len(tracks), face_frames, sides)
