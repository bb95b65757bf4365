"""Tiny numpy/torch dispatch: the transform code is written once against ops both libraries share.

torch is never imported here; a tensor is recognised by its type's module, so numpy callers never
pay for (or need) torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (checked without importing torch)."""
    return type(x).__module__.split(".", 1)[0] == "torch"


def as_float(x: Array) -> Array:
    """Floating-point view of ``x``: float arrays/tensors unchanged, integers (and lists) to float64."""
    if is_torch(x):
        import torch

        return x if x.is_floating_point() else x.to(torch.float64)
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def const_like(a: np.ndarray, x: Array) -> Array:
    """The numpy constant ``a`` as the same kind of array as ``x`` (dtype and device of ``x``)."""
    if is_torch(x):
        import torch

        return torch.as_tensor(a, dtype=x.dtype if x.is_floating_point() else torch.float64, device=x.device)
    return a.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


def mat_t(a: Array) -> Array:
    """Transpose of the last two axes."""
    return a.swapaxes(-1, -2)


def repeat2d(a: Array, n: int) -> Array:
    """Repeat each element of the last two axes ``n`` times along both (nearest upsampling)."""
    if n == 1:
        return a
    if is_torch(a):
        return a.repeat_interleave(n, dim=-1).repeat_interleave(n, dim=-2)
    return np.repeat(np.repeat(a, n, axis=-1), n, axis=-2)


def to_blocks(x: Array, n: int) -> Array:
    """(..., H, W) -> (..., H/n, W/n, n, n) view of the n x n blocks."""
    *lead, h, w = x.shape
    return x.reshape(*lead, h // n, n, w // n, n).swapaxes(-3, -2)


def from_blocks(b: Array) -> Array:
    """Inverse of :func:`to_blocks`."""
    *lead, bh, bw, n, m = b.shape
    return b.swapaxes(-3, -2).reshape(*lead, bh * n, bw * m)


def where(mask: Array, a: Array, b: Array) -> Array:
    if is_torch(a) or is_torch(b) or is_torch(mask):
        import torch

        return torch.where(mask, a, b)
    return np.where(mask, a, b)


def pad2d(x: Array, ph: int, pw: int) -> Array:
    """Zero-pad the last two axes by ``ph`` rows and ``pw`` columns at the bottom/right."""
    if not ph and not pw:
        return x
    if is_torch(x):
        import torch.nn.functional as F

        return F.pad(x, (0, pw, 0, ph))
    widths = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, widths)


def copy(x: Array) -> Array:
    return x.clone() if is_torch(x) else x.copy()


def unique(x: Array) -> list[int]:
    """Sorted distinct integer values (a host list; one device sync for tensors)."""
    if is_torch(x):
        return [int(v) for v in x.unique().tolist()]
    return [int(v) for v in np.unique(x)]


def to_like(a: Array, x: Array) -> Array:
    """Convert array ``a`` (numpy or torch) to the library/device of ``x`` keeping its dtype kind."""
    if is_torch(x):
        import torch

        if is_torch(a):
            return a.to(x.device)
        return torch.as_tensor(np.ascontiguousarray(a), device=x.device)
    if is_torch(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)
