"""RGB <-> Y'CbCr (BT.601 / BT.709, limited or full range) and 4:2:0 chroma resampling, so that a
model's RGB output can be back-projected in the codec's planes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# (Kr, Kb) of each matrix
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _coeffs(matrix: str) -> tuple[float, float, float]:
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    kr, kb = MATRICES[matrix]
    return kr, 1.0 - kr - kb, kb


def _ranges(full_range: bool, bit_depth: int) -> tuple[float, float, float, float]:
    """(y offset, y scale, c offset, c scale) in code values for normalised Y' in [0,1], C in [-1/2,1/2]."""
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit_depth must be 8..16, got {bit_depth}")
    m = float(1 << (bit_depth - 8))
    mid = float(1 << (bit_depth - 1))
    if full_range:
        top = float((1 << bit_depth) - 1)
        return 0.0, top, mid, top
    return 16.0 * m, 219.0 * m, mid, 224.0 * m


def _check(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must have 3 channels in dim -3 (..., 3, H, W), got shape {tuple(x.shape)}")


def rgb_to_ycbcr(rgb: Tensor, matrix: str = "bt601", full_range: bool = False, bit_depth: int = 8) -> Tensor:
    """R'G'B' in [0, 1] (..., 3, H, W) -> Y'CbCr code values (float, unrounded, e.g. 16..235 for
    8-bit limited-range luma)."""
    _check(rgb, "rgb")
    kr, kg, kb = _coeffs(matrix)
    yo, ys, co, cs = _ranges(full_range, bit_depth)
    r, g, b = rgb.unbind(-3)
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    return torch.stack([yo + ys * y, co + cs * cb, co + cs * cr], -3)


def ycbcr_to_rgb(ycc: Tensor, matrix: str = "bt601", full_range: bool = False, bit_depth: int = 8) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`: code values (..., 3, H, W) -> R'G'B' (not clamped)."""
    _check(ycc, "ycc")
    kr, kg, kb = _coeffs(matrix)
    yo, ys, co, cs = _ranges(full_range, bit_depth)
    y_, cb_, cr_ = ycc.unbind(-3)
    y = (y_ - yo) / ys
    cb = (cb_ - co) / cs
    cr = (cr_ - co) / cs
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return torch.stack([r, g, b], -3)


def chroma_downsample(c: Tensor) -> Tensor:
    """4:4:4 -> 4:2:0 chroma by 2x2 averaging (..., H, W) -> (..., ceil(H/2), ceil(W/2)); odd
    sizes replicate the last row/column."""
    if not isinstance(c, Tensor) or not c.is_floating_point() or c.dim() < 2:
        raise TypeError("c must be a floating-point torch.Tensor of shape (..., H, W)")
    h, w = c.shape[-2:]
    lead = c.shape[:-2]
    x = c.reshape(-1, 1, h, w)
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2).reshape(*lead, (h + 1) // 2, (w + 1) // 2)


def chroma_upsample(c: Tensor, size: tuple[int, int]) -> Tensor:
    """4:2:0 -> full-resolution chroma (..., h, w) -> (..., *size), bilinear (half-sample centred)."""
    if not isinstance(c, Tensor) or not c.is_floating_point() or c.dim() < 2:
        raise TypeError("c must be a floating-point torch.Tensor of shape (..., h, w)")
    h, w = c.shape[-2:]
    lead = c.shape[:-2]
    x = F.interpolate(c.reshape(-1, 1, h, w), size=tuple(size), mode="bilinear", align_corners=False)
    return x.reshape(*lead, *size)
