"""Whole-plane transforms: a residual plane and a :class:`PlaneLayout` -> the coefficient image
(every transform block's coefficients in its own footprint, natural orientation, as in
``coeffs/*``) and back.  numpy or torch (batched, differentiable), same results.

With ``dc_domain=True`` the DC positions of H.264 DC-path blocks (intra 16x16 luma, 4:2:0
chroma) hold the Hadamard-domain values that the encoder quantized (``Z = H Cdc H / 16`` or
``/ 4``, the entry of Hadamard frequency (a, b) at the DC position of block (a, b) of the group)
instead of the per-block DCs: that is the domain in which their quantization intervals live.
"""

from __future__ import annotations

from ._backend import Array, as_float, copy, from_blocks, pad2d, repeat2d, to_blocks, to_like, unique, where
from .h264 import (
    chroma_dc_from_hadamard,
    chroma_dc_to_hadamard,
    h264_forward,
    h264_inverse,
    luma_dc_from_hadamard,
    luma_dc_to_hadamard,
)
from .hevc import hevc_forward, hevc_inverse
from .layout import DC_CHROMA2, DC_LUMA16, FREE, H264, HEVC_DCT, HEVC_DST, HEVC_SKIP, PlaneLayout

_HEVC_KIND = {HEVC_DCT: "dct", HEVC_DST: "dst", HEVC_SKIP: "skip"}


def _check(x: Array, layout: PlaneLayout) -> tuple[int, int]:
    h, w = x.shape[-2:]
    lh, lw = layout.shape[-2:]
    if (lh, lw) != ((h + 3) // 4, (w + 3) // 4):
        raise ValueError(f"plane of {h}x{w} samples needs a layout of {(h + 3) // 4}x{(w + 3) // 4} 4x4 blocks, "
                         f"got {lh}x{lw} (is the plane at coded size?)")
    return h, w


def _apply(x: Array, layout: PlaneLayout, inverse: bool) -> Array:
    x = as_float(x)
    h, w = _check(x, layout)
    fam = to_like(layout.family, x)
    lg = to_like(layout.log2, x)
    codes = unique(fam * 8 + lg)
    nmax = 1 << max([c % 8 for c in codes if c // 8 != FREE] + [2])
    ph, pw = (-h) % nmax, (-w) % nmax
    xp = pad2d(x, ph, pw)
    famp = pad2d(fam, ph // 4, pw // 4)
    lgp = pad2d(lg, ph // 4, pw // 4)
    out = xp
    for code in codes:
        f, k = divmod(code, 8)
        if f == FREE:
            continue  # identity: no transform, no constraint
        n = 1 << k
        b = to_blocks(xp, n)
        if f == H264:
            y = h264_inverse(b) if inverse else h264_forward(b)
        else:
            kind = _HEVC_KIND[f]
            y = hevc_inverse(b, kind, layout.bit_depth) if inverse else hevc_forward(b, kind, layout.bit_depth)
        mask = repeat2d((famp == f) & (lgp == k), 4)
        out = where(mask, from_blocks(y), out)
    return out[..., :h, :w]


def _dc_map(coef: Array, layout: PlaneLayout, to_hadamard: bool) -> Array:
    """Replace the DCs of DC-path groups by their Hadamard-domain values (or back)."""
    _check(coef, layout)
    dcm = to_like(layout.dc, coef)
    present = unique(dcm)
    if present == [0]:
        return coef
    h, w = coef.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    cp = pad2d(coef, ph, pw)
    dcs = cp[..., ::4, ::4]
    dmp = pad2d(dcm, ph // 4, pw // 4)
    new = dcs
    for code, g, fwd, inv in ((DC_LUMA16, 4, luma_dc_to_hadamard, luma_dc_from_hadamard),
                              (DC_CHROMA2, 2, chroma_dc_to_hadamard, chroma_dc_from_hadamard)):
        if code in present:
            y = from_blocks((fwd if to_hadamard else inv)(to_blocks(dcs, g)))
            new = where(dmp == code, y, new)
    out = copy(cp)
    out[..., ::4, ::4] = new
    return out[..., :h, :w]


def to_dc_domain(coeffs: Array, layout: PlaneLayout) -> Array:
    """Coefficient image (as exported) -> the same with DC-path DCs in the Hadamard domain."""
    return _dc_map(as_float(coeffs), layout, True)


def from_dc_domain(coeffs: Array, layout: PlaneLayout) -> Array:
    """Inverse of :func:`to_dc_domain`."""
    return _dc_map(as_float(coeffs), layout, False)


def plane_forward(residual: Array, layout: PlaneLayout, dc_domain: bool = True) -> Array:
    """F over a plane: residual (..., H, W) -> coefficient image (..., H, W).  FREE blocks pass
    through unchanged.  H, W: the plane's coded size (blocks must lie inside it)."""
    c = _apply(residual, layout, inverse=False)
    return to_dc_domain(c, layout) if dc_domain else c


def plane_inverse(coeffs: Array, layout: PlaneLayout, dc_domain: bool = True) -> Array:
    """G over a plane: coefficient image -> float residual; ``dc_domain`` says whether the DC-path
    positions of ``coeffs`` hold Hadamard-domain values (as :func:`plane_forward` returns them)."""
    c = from_dc_domain(coeffs, layout) if dc_domain else as_float(coeffs)
    return _apply(c, layout, inverse=True)
