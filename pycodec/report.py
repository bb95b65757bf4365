"""``pycodec restore --report report.html|.png``: what the restoration did, to look at rather than
read: for a few frames the input with its face tracks drawn, the face as decoded, as restored and
their difference amplified; under them the change per frame. The HTML page adds the summary line
and one row per face track."""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any

import numpy as np

from . import metrics as M
from ._optional import require

SAMPLES = 3          # frames shown
AMPLIFY = 8          # difference gain in the pictures
REPORT_EXTS = (".html", ".png")


def to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One yuv420p frame (BT.601 limited range) -> RGB uint8 (H, W, 3), by swscale (PyAV)."""
    av = require("av", "restore reports")
    h, w = y.shape
    buf = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(buf, format="yuv420p").to_ndarray(format="rgb24")


class RestoreReport:
    """Collects, while :func:`pycodec.restore.restore` writes frames, the sample frames and the
    change per frame; :meth:`write` draws them."""

    def __init__(self, n: int, boxes: list[Any]) -> None:
        """``n`` frames; ``boxes(t)`` callables per track giving its box at t or None."""
        self.n = n
        self.tracks = boxes
        with_face = [t for t in range(n) if any(b(t) is not None for b in boxes)] or list(range(n))
        idx = np.linspace(0, len(with_face) - 1, SAMPLES + 2)[1:-1] if len(with_face) > SAMPLES else \
            np.arange(len(with_face))
        self.picks = sorted({with_face[round(float(i))] for i in idx})
        self.samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.face_change = np.full(n, np.nan)
        self.frame_change = np.zeros(n)

    def add(self, t: int, decoded: dict[str, np.ndarray], restored: dict[str, np.ndarray]) -> None:
        """Account output frame ``t``."""
        dy = np.abs(restored["y"].astype(np.int16) - decoded["y"])
        self.frame_change[t] = float(dy.mean())
        regions = [M.region(dy.shape, b(t)) for b in self.tracks if b(t) is not None]
        if regions:
            self.face_change[t] = float(np.mean(np.concatenate([dy[r].ravel() for r in regions])))
        if t in self.picks:
            self.samples[t] = (to_rgb(decoded["y"], decoded["u"], decoded["v"]),
                               to_rgb(restored["y"], restored["u"], restored["v"]))

    def figure(self, title: str) -> Any:
        require("matplotlib", "restore reports")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        rows = len(self.samples)
        fig = plt.figure(figsize=(13, 3.1 * rows + 2.6), constrained_layout=True)
        grid = fig.add_gridspec(rows + 1, 4, height_ratios=[3.1] * rows + [2.2])
        for i, t in enumerate(sorted(self.samples)):
            dec, res = self.samples[t]
            ax = fig.add_subplot(grid[i, 0])
            ax.imshow(dec)
            boxes = [b(t) for b in self.tracks if b(t) is not None]
            for k, b in enumerate(boxes):
                ys, xs = M.region(dec.shape, b)
                ax.add_patch(Rectangle((xs.start, ys.start), xs.stop - xs.start, ys.stop - ys.start, fill=False,
                                       ec=f"C{k % 10}", lw=1.5))
            ax.set_title(f"frame {t}: input, {len(boxes)} face(s)", fontsize=9)
            ys, xs = M.region(dec.shape, boxes[0]) if boxes else (slice(None), slice(None))
            diff = np.clip(np.abs(res[ys, xs].astype(np.int16) - dec[ys, xs]).max(-1) * AMPLIFY, 0, 255)
            for j, (img, name) in enumerate(((dec[ys, xs], "decoded"), (res[ys, xs], "restored"),
                                             (diff, f"|difference| x {AMPLIFY}"))):
                a = fig.add_subplot(grid[i, j + 1])
                a.imshow(img, cmap="magma" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
                a.set_title(name + (" (face)" if boxes else ""), fontsize=9)
            for a in fig.axes[-4:]:
                a.set_xticks([])
                a.set_yticks([])
        ax = fig.add_subplot(grid[rows, :])
        t = np.arange(self.n)
        ax.plot(t, self.frame_change, lw=0.9, label="whole frame")
        if np.isfinite(self.face_change).any():
            ax.plot(t, self.face_change, lw=1.4, label="face regions")
        ax.set_xlabel("frame")
        ax.set_ylabel("mean |change| in Y\n(8-bit levels)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=10)
        return fig

    def write(self, path: str, summary: str, track_rows: list[str]) -> str:
        """Write the report (PNG, or HTML with the PNG inside) atomically."""
        from . import store
        from .viz import save_figure

        fig = self.figure(os.path.basename(summary.split(" -> ")[0].split(": ", 1)[-1]))
        if path.lower().endswith(".png"):
            return save_figure(fig, path)
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        rows = "".join(f"<li>{html.escape(r)}</li>" for r in track_rows)
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>pycodec restore report</title></head>"
                f"<body style='font-family:sans-serif'><h2>pycodec restore</h2><p>{html.escape(summary)}</p>"
                f"<ul>{rows}</ul><img alt='input, restored, difference' style='max-width:100%' "
                f"src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'></body></html>\n")
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(page)

        return store.write_atomically(path, write, ".html")
