"""Picture quality figures shared by ``pycodec compare``, restore reports and
``pipelines.evaluate``: PSNR, SSIM (Wang et al.'s settings), and both over a face region."""

from __future__ import annotations

import numpy as np

from ._optional import require


def psnr(ref: np.ndarray, out: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB from the mean squared error over all samples (inf when identical)."""
    mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def ssim(ref: np.ndarray, out: np.ndarray, channel_axis: int | None = None) -> float:
    """SSIM with an 11-tap Gaussian window, sigma 1.5, peak 255 (Wang et al.'s settings)."""
    metrics = require("skimage.metrics", "SSIM")
    return float(metrics.structural_similarity(ref.astype(np.float64), out.astype(np.float64), data_range=255.0,
                                               gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                               channel_axis=channel_axis))


def region(shape: tuple[int, ...], box: np.ndarray, margin: float = 1.8) -> tuple[slice, slice]:
    """The square of ``margin`` x the face ``box`` (x0, y0, x1, y1), cut to the picture: the face
    region the models restore (the training crops' margin)."""
    h, w = shape[:2]
    side = max(box[2] - box[0], box[3] - box[1]) * margin
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, x1 = max(0, round(cx - side / 2)), min(w, round(cx + side / 2))
    y0, y1 = max(0, round(cy - side / 2)), min(h, round(cy + side / 2))
    return slice(y0, max(y1, y0 + 1)), slice(x0, max(x1, x0 + 1))


def squared_error(ref: np.ndarray, out: np.ndarray) -> tuple[float, int]:
    """(sum of squared differences, samples)."""
    d = ref.astype(np.float64) - out.astype(np.float64)
    return float(np.sum(d * d)), int(d.size)


def psnr_of(sse: float, count: int, peak: float = 255.0) -> float:
    """PSNR from a summed squared error over ``count`` samples."""
    if count == 0:
        return float("nan")
    mse = sse / count
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
