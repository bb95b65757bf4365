"""Mirroring coefficient images (``coeffs``, ``levels``, ``qstep``) together with the residual they
describe, so that ``G(flip_coefficients(C)) == flip(G(C))``: what data augmentation by flips needs
(docs/transforms.md, "Flips").

The rule is exact for transforms whose basis functions have parity, ``B[n-1-x, k] = (-1)^k B[x, k]``:
the H.264 4x4/8x8 integer transforms, the HEVC DCTs, and the Hadamard DC paths.  Mirroring a block
horizontally moves it to the mirrored position and multiplies its coefficient ``C[v][u]`` by
``(-1)^u`` (vertically: ``(-1)^v``); qstep moves with the block, levels get the same sign.  Per kind:

* H.264 blocks, HEVC DCT: the parity rule.  The DCs of H.264 DC-path blocks are per-block values in
  ``coeffs`` (they move with their block) but Hadamard-domain levels in ``levels``: there the level of
  Hadamard frequency (a, b) stays at block (a, b) of the group and gets the sign ``(-1)^b``
  (``(-1)^a`` vertically), since ``H J = diag(1, -1, 1, -1) H``.
* HEVC transform skip and FREE blocks (PCM, transquant bypass: coefficients are samples): the
  samples are mirrored.
* HEVC DST 4x4 has no such rule: the block becomes unconstrained (``qstep`` and ``levels`` 0) and its
  ``coeffs`` are the DST coefficients of the mirrored residual rounded to integers (``G`` of them is
  within 0.06 of the mirrored residual at 8 bits, 0.22 at 10 bits: close, not exact).

Blocks must lie inside the image (crop windows aligned to the largest block).  numpy only.
"""

from __future__ import annotations

import numpy as np

from .hevc import hevc_forward, hevc_inverse
from .layout import DC_CHROMA2, DC_LUMA16, FREE, H264, HEVC_DCT, HEVC_DST, PlaneLayout

FIELDS = ("coeffs", "levels", "qstep")
_DC_GROUP = {DC_LUMA16: 16, DC_CHROMA2: 8}


def _flip_last(a: np.ndarray, fam: np.ndarray, lg: np.ndarray, dc: np.ndarray, field: str, bit_depth: int) -> np.ndarray:
    """Horizontal mirror (last axis) of a coefficient image; maps are the *unflipped* cell maps."""
    h, w = a.shape[-2:]
    # the flipped layout at sample resolution
    up = lambda m: np.repeat(np.repeat(m[..., ::-1], 4, -2), 4, -1)
    f, n = up(fam), 1 << up(lg).astype(np.int64)
    x = np.arange(w)
    origin = x - x % n
    u = x - origin
    exact = (f == H264) | (f == HEVC_DCT)
    src = np.where(exact, w - origin - n + u, w - 1 - x)
    if np.any(src < 0) or np.any(src >= w):
        raise ValueError("a transform block crosses the image edge: flip windows must be aligned to the largest block")
    out = np.take_along_axis(a, np.broadcast_to(src, a.shape), axis=-1)
    if field != "qstep":
        out = np.where(exact & (u % 2 == 1), -out, out)
    if field == "levels" and np.any(dc):
        # Hadamard-domain DC levels: stay at their block of the (moved) group, sign (-1)^b
        d = up(dc)
        g = np.where(d == DC_LUMA16, 16, 8)
        go = x - x % g
        b = (x % g) // 4
        y = np.arange(h)[:, None]
        pos = (d > 0) & (y % 4 == 0) & (x % 4 == 0)
        sdc = np.take_along_axis(a, np.broadcast_to(np.where(pos, w - go - g + 4 * b, 0), a.shape), axis=-1)
        out = np.where(pos, np.where(b % 2 == 1, -sdc, sdc), out)
    dst = f == HEVC_DST
    if np.any(dst):
        if field == "coeffs":
            # each DST block of the output: its source block (the plain mirror holds it with its
            # columns reversed), G, mirror, F, rounded
            lead = a.shape[:-2]
            mirrored = a[..., ::-1].reshape(*lead, h // 4, 4, w // 4, 4).swapaxes(-3, -2)
            r = hevc_inverse(mirrored[..., ::-1].astype(np.float64), "dst", bit_depth)[..., ::-1]
            c = np.rint(hevc_forward(r, "dst", bit_depth)).swapaxes(-3, -2).reshape(*lead, h, w)
            out = np.where(dst, c, out)
        else:
            out = np.where(dst, 0, out)
    return out.astype(a.dtype, copy=False)

def flip_coefficients(image: np.ndarray, layout: PlaneLayout, axis: int, field: str) -> np.ndarray:
    """Mirror a coefficient image (..., H, W) of a plane whose (unflipped) layout is ``layout``
    (maps (..., H/4, W/4), leading axes matching or absent) along ``axis`` (-1 horizontal, -2
    vertical), for ``field`` in ``coeffs``, ``levels``, ``qstep`` (see the module docstring)."""
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")
    if axis not in (-1, -2):
        raise ValueError(f"axis must be -1 (horizontal) or -2 (vertical), got {axis}")
    a = np.asarray(image)
    h, w = a.shape[-2:]
    fam, lg, dc = (np.asarray(m) for m in (layout.family, layout.log2, layout.dc))
    if fam.shape[-2:] != (h // 4, w // 4) or h % 4 or w % 4:
        raise ValueError(f"a {h}x{w} coefficient image needs a layout of {h // 4}x{w // 4} cells, got {fam.shape[-2:]}")
    if np.any(fam == FREE):
        lg = np.where(fam == FREE, 2, lg)
    if axis == -1:
        return _flip_last(a, fam, lg, dc, field, layout.bit_depth)
    t = lambda m: np.swapaxes(m, -1, -2)
    return t(_flip_last(t(a), t(fam), t(lg), t(dc), field, layout.bit_depth))
