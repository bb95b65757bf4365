"""HEVC transforms (DCT 4..32, DST 4x4, transform skip) in FFmpeg's coefficient domain and the
quantization step of every coefficient (docs/transforms.md; codec-internals 2.3).

``G(C) = M^T C M / 2^(27 - bd)`` for the DCT (``M`` the N-point integer matrix, rows = basis k),
the same with the DST matrix ``D`` for intra luma 4x4, and ``C / 2^(15 - bd - log2 N)`` for
transform skip.  ``M`` is not exactly orthogonal, so ``F`` uses its true inverse.  numpy or torch
in, the same out; integers are promoted to float64.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ._backend import Array, as_float, const_like, mat_t

# Integer approximations of 64*sqrt(2)*cos(j*pi/64), j = 0..32, as the standard's 32-point matrix
# uses them (j = 0 is the DC row, 64).
_COS = {0: 64, 16: 64, 32: 0, 8: 83, 24: 36, 4: 89, 12: 75, 20: 50, 28: 18}
_COS.update(zip(range(2, 32, 4), (90, 87, 80, 70, 57, 43, 25, 9), strict=True))
_COS.update(zip(range(1, 32, 2), (90, 90, 88, 85, 82, 78, 73, 67, 61, 54, 46, 38, 31, 22, 13, 4), strict=True))

DST4 = np.array([[29, 55, 74, 84], [74, 74, 0, -74], [84, -29, -74, 55], [55, -84, 74, -29]], dtype=np.int64)
LEVEL_SCALE = np.array([40, 45, 51, 57, 64, 72])
KINDS = ("dct", "dst", "skip")


def _cos_entry(m: int) -> int:
    """Signed entry for angle m*pi/64 (m mod 128), from the quarter-wave table."""
    m %= 128
    if m <= 32:
        return _COS[m]
    if m <= 64:
        return -_COS[64 - m]
    if m <= 96:
        return -_COS[m - 64]
    return _COS[128 - m]


@cache
def _dct32() -> np.ndarray:
    t = np.array([[_cos_entry((2 * n + 1) * k) for n in range(32)] for k in range(32)], dtype=np.int64)
    t[0] = 64
    return t


def hevc_dct_matrix(n: int) -> np.ndarray:
    """The N-point integer DCT matrix (int64, rows = basis k): ``transform[k * 32 / N][n]``."""
    if n not in (4, 8, 16, 32):
        raise ValueError(f"HEVC DCT size must be 4, 8, 16 or 32, got {n}")
    return _dct32()[:: 32 // n, :n].copy()


@cache
def _mats(kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    m = (DST4 if kind == "dst" else hevc_dct_matrix(n)).astype(np.float64)
    return m, np.linalg.inv(m)


def _check(kind: str, n: int, bit_depth: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"HEVC transform kind must be one of {KINDS}, got {kind!r}")
    if kind == "dst" and n != 4:
        raise ValueError(f"the HEVC DST is 4x4 only, got {n}x{n}")
    if n not in (4, 8, 16, 32):
        raise ValueError(f"HEVC transform blocks must be 4..32 square, got {n}")
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit depth must be 8..16, got {bit_depth}")


def _shape(x: Array) -> int:
    n = x.shape[-1]
    if x.shape[-2] != n:
        raise ValueError(f"HEVC transform blocks must be square in the last two axes, got {tuple(x.shape[-2:])}")
    return n


def _ts_scale(n: int, bit_depth: int) -> float:
    """Residual per coefficient of a transform-skip block: 2^-(15 - bd - log2 N)."""
    return 2.0 ** -(15 - bit_depth - int(np.log2(n)))


def hevc_inverse(coeffs: Array, kind: str = "dct", bit_depth: int = 8) -> Array:
    """G: coefficient blocks (..., N, N) (natural orientation) -> float residual."""
    c = as_float(coeffs)
    n = _shape(c)
    _check(kind, n, bit_depth)
    if kind == "skip":
        return c * _ts_scale(n, bit_depth)
    m = const_like(_mats(kind, n)[0], c)
    return mat_t(m) @ c @ m / 2.0 ** (27 - bit_depth)


def hevc_forward(residual: Array, kind: str = "dct", bit_depth: int = 8) -> Array:
    """F = G^-1: residual blocks (..., N, N) -> coefficients ``2^(27-bd) M^-T R M^-1``."""
    r = as_float(residual)
    n = _shape(r)
    _check(kind, n, bit_depth)
    if kind == "skip":
        return r / _ts_scale(n, bit_depth)
    mi = const_like(_mats(kind, n)[1], r)
    return 2.0 ** (27 - bit_depth) * (mat_t(mi) @ r @ mi)


def hevc_qstep(qp: int | np.ndarray, n: int, bit_depth: int = 8, scaling: np.ndarray | None = None) -> np.ndarray:
    """Step of each coefficient: ``m * levelScale[qp%6] * 2^(qp/6) / 2^(bd + log2 N - 5)`` so that the
    decoder's ``d = clip16((level * scale * m + add) >> shift) = floor(level * step + 1/2)``.
    ``qp`` includes QpBdOffset; ``scaling``: the N x N ScalingFactor m (natural orientation, its
    DC entry = scaling_list_dc for N >= 16), flat = 16.  Shape qp.shape + (N, N)."""
    if n not in (4, 8, 16, 32):
        raise ValueError(f"HEVC transform size must be 4, 8, 16 or 32, got {n}")
    q = np.asarray(qp, np.int64)
    if np.any(q < 0) or np.any(q > 51 + 6 * (bit_depth - 8)):
        raise ValueError(f"HEVC QP must be in 0..{51 + 6 * (bit_depth - 8)} at bit depth {bit_depth}")
    m = np.full((n, n), 16, np.int64) if scaling is None else np.asarray(scaling, np.int64)
    if m.shape != (n, n):
        raise ValueError(f"scaling factors must be {n}x{n}, got {m.shape}")
    qe = q[..., None, None]
    scale = LEVEL_SCALE[qe % 6] << (qe // 6)
    return scale * m / float(2 ** (bit_depth + int(np.log2(n)) - 5))


def hevc_dequant(levels: np.ndarray, qp: int, n: int, bit_depth: int = 8, scaling: np.ndarray | None = None) -> np.ndarray:
    """The decoder's integer dequantization ``clip16((level * scale * m + add) >> shift)`` (numpy int64)."""
    lv = np.asarray(levels, np.int64)
    m = np.full((n, n), 16, np.int64) if scaling is None else np.asarray(scaling, np.int64)
    shift = bit_depth + int(np.log2(n)) - 5
    scale = int(LEVEL_SCALE[qp % 6]) << (qp // 6)
    return np.clip((lv * scale * m + (1 << (shift - 1))) >> shift, -32768, 32767)
