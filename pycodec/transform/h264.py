"""H.264 transforms in FFmpeg's stored coefficient domain, the DC Hadamard paths, and the
quantization step of every coefficient (docs/transforms.md; codec-internals 1.3).

``G`` (:func:`h264_inverse`) maps a natural-orientation coefficient block ``C[v][u]`` (row =
vertical frequency) to the residual the decoder's integer IDCT produces, up to its rounding:
``G(C) = B C B^T / 64``.  ``F`` (:func:`h264_forward`) is its exact inverse, ``64 B^-1 R B^-T``.
All functions accept numpy arrays or torch tensors (leading batch axes allowed) and return the
same kind; integers are promoted to float64.
"""

from __future__ import annotations

import numpy as np

from ._backend import Array, as_float, const_like, mat_t

# Inverse-transform bases, rows = sample n, columns = frequency k (the >>1, >>2 taken as exact).
B4 = np.array([[1, 1, 1, 0.5], [1, 0.5, -1, -1], [1, -0.5, -1, 1], [1, -1, 1, -0.5]])
B8 = np.array([
    [1, 3 / 2, 1, 5 / 4, 1, 3 / 4, 1 / 2, 3 / 8],
    [1, 5 / 4, 1 / 2, -3 / 8, -1, -3 / 2, -1, -3 / 4],
    [1, 3 / 4, -1 / 2, -3 / 2, -1, 3 / 8, 1, 5 / 4],
    [1, 3 / 8, -1, -3 / 4, 1, 5 / 4, -1 / 2, -3 / 2],
    [1, -3 / 8, -1, 3 / 4, 1, -5 / 4, -1 / 2, 3 / 2],
    [1, -3 / 4, -1 / 2, 3 / 2, -1, -3 / 8, 1, -5 / 4],
    [1, -5 / 4, 1 / 2, 3 / 8, -1, 3 / 2, -1, 3 / 4],
    [1, -3 / 2, 1, -5 / 4, 1, -3 / 4, 1 / 2, -3 / 8],
])
# The columns are exactly orthogonal: B^-1 = diag(1 / diag(B^T B)) B^T.
B4_INV = np.diag(1.0 / np.diag(B4.T @ B4)) @ B4.T
B8_INV = np.diag(1.0 / np.diag(B8.T @ B8)) @ B8.T
_B = {4: (B4, B4_INV), 8: (B8, B8_INV)}

# DC Hadamard matrices (symmetric; H4 H4 = 4 I, H2 H2 = 2 I).
H4 = np.array([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, -1, 1], [1, -1, 1, -1]], dtype=np.float64)
H2 = np.array([[1, 1], [1, -1]], dtype=np.float64)

# normAdjust4x4 by position class (0: u, v even; 1: mixed; 2: both odd), rows qp % 6.
NORM4 = np.array([[10, 13, 16], [11, 14, 18], [13, 16, 20], [14, 18, 23], [16, 20, 25], [18, 23, 29]])
# normAdjust8x8 v_m0..v_m5, rows qp % 6.
NORM8 = np.array([[20, 18, 32, 19, 25, 24], [22, 19, 35, 21, 28, 26], [26, 23, 42, 24, 33, 31],
                  [28, 25, 45, 26, 35, 33], [32, 28, 51, 30, 40, 38], [36, 32, 58, 34, 46, 43]])
# QPc as a function of qPI (8-bit; Table 8-15).
CHROMA_QP = np.array(list(range(30)) + [29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36, 36, 37, 37, 37,
                                        38, 38, 38, 39, 39, 39, 39])


def _size(x: Array) -> int:
    n = x.shape[-1]
    if n not in _B or x.shape[-2] != n:
        raise ValueError(f"H.264 transform blocks must be 4x4 or 8x8 in the last two axes, got {tuple(x.shape[-2:])}")
    return n


def h264_inverse(coeffs: Array) -> Array:
    """G: coefficient blocks (..., n, n), n in {4, 8} -> float residual ``B C B^T / 64``."""
    c = as_float(coeffs)
    b = const_like(_B[_size(c)][0], c)
    return b @ c @ mat_t(b) / 64


def h264_forward(residual: Array) -> Array:
    """F = G^-1: residual blocks (..., n, n) -> coefficients ``64 B^-1 R B^-T`` (stored domain)."""
    r = as_float(residual)
    bi = const_like(_B[_size(r)][1], r)
    return 64 * (bi @ r @ mat_t(bi))


def luma_dc_to_hadamard(dc: Array) -> Array:
    """Intra 16x16: the 4x4 matrix of the 16 blocks' DCs (spatial block order, ..., 4, 4) -> the
    Hadamard domain the encoder quantized, ``Z = H4 Cdc H4 / 16`` (step = dc_qmul / 256)."""
    d = as_float(dc)
    h = const_like(H4, d)
    return h @ d @ h / 16


def luma_dc_from_hadamard(z: Array) -> Array:
    """Inverse of :func:`luma_dc_to_hadamard`: ``Cdc = H4 Z H4``."""
    z = as_float(z)
    h = const_like(H4, z)
    return h @ z @ h


def chroma_dc_to_hadamard(dc: Array) -> Array:
    """4:2:0 chroma: the 2x2 DC matrix of an MB's chroma blocks -> ``Z = H2 Cdc H2 / 4``
    (step = dc_qmul / 128)."""
    d = as_float(dc)
    h = const_like(H2, d)
    return h @ d @ h / 4


def chroma_dc_from_hadamard(z: Array) -> Array:
    """Inverse of :func:`chroma_dc_to_hadamard`: ``Cdc = H2 Z H2``."""
    z = as_float(z)
    h = const_like(H2, z)
    return h @ z @ h


def luma_dc_dequant(levels: np.ndarray, qmul: int | np.ndarray) -> np.ndarray:
    """The decoder's integer intra-16x16 DC path: ``(H4 L H4 * qmul + 128) >> 8`` (numpy, int64)."""
    lv = np.asarray(levels, np.int64)
    h = H4.astype(np.int64)
    return (h @ lv @ h * np.asarray(qmul, np.int64)[..., None, None] + 128) >> 8


def chroma_dc_dequant(levels: np.ndarray, qmul: int | np.ndarray) -> np.ndarray:
    """The decoder's integer 4:2:0 chroma DC path: ``(H2 L H2 * qmul) >> 7`` (no rounding offset)."""
    lv = np.asarray(levels, np.int64)
    h = H2.astype(np.int64)
    return (h @ lv @ h * np.asarray(qmul, np.int64)[..., None, None]) >> 7


# ----------------------------------------------------------------------------------- steps


def position_class4() -> np.ndarray:
    """normAdjust4x4 column per (v, u): 0 both even, 1 mixed, 2 both odd."""
    v, u = np.mgrid[0:4, 0:4]
    return (u & 1) + (v & 1)


def position_class8() -> np.ndarray:
    """normAdjust8x8 column (v_m0..v_m5) per (v, u) (spec 8.5.9)."""
    v, u = np.mgrid[0:8, 0:8]
    cls = np.full((8, 8), 5)
    cls[((v % 4 == 0) & (u % 2 == 1)) | ((v % 2 == 1) & (u % 4 == 0))] = 3
    cls[((v % 4 == 0) & (u % 4 == 2)) | ((v % 4 == 2) & (u % 4 == 0))] = 4
    cls[(v % 4 == 2) & (u % 4 == 2)] = 2
    cls[(v % 2 == 1) & (u % 2 == 1)] = 1
    cls[(v % 4 == 0) & (u % 4 == 0)] = 0
    return cls


def _weights(n: int, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.full((n, n), 16, np.int64)
    w = np.asarray(weights, np.int64)
    if w.shape[-2:] != (n, n) or np.any(w < 1) or np.any(w > 255):
        raise ValueError(f"scaling matrix must be {n}x{n} with entries 1..255 (natural orientation), got {w.shape}")
    return w


def h264_qmul(qp: int | np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """FFmpeg's dequantization multiplier ``dequant{4,8}_coeff[list][qp]`` per (v, u):
    4x4 ``normAdjust4 * W << (qp/6 + 2)``, 8x8 ``normAdjust8 * W << (qp/6)``; shape qp.shape + (n, n).
    ``weights``: the scaling matrix W in natural orientation (row = vertical frequency), flat = 16."""
    if n not in (4, 8):
        raise ValueError(f"H.264 transform size must be 4 or 8, got {n}")
    q = np.asarray(qp, np.int64)
    if np.any(q < 0) or np.any(q > 51):
        raise ValueError("H.264 QP must be in 0..51 (8-bit)")
    w = _weights(n, weights)
    qe = q[..., None, None]
    if n == 4:
        return (NORM4[qe % 6, position_class4()] * w) << (qe // 6 + 2)
    return (NORM8[qe % 6, position_class8()] * w) << (qe // 6)


def h264_qstep(qp: int | np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Quantization step of each coefficient in the stored domain, ``qmul / 64``, so that the decoder's
    ``c = (level * qmul + 32) >> 6 = floor(level * step + 1/2)``.  Shape qp.shape + (n, n)."""
    return h264_qmul(qp, n, weights) / 64.0


def h264_dc_step(qp: int | np.ndarray, plane: str = "luma", w00: int = 16) -> np.ndarray:
    """Step of the Hadamard-domain DC (``luma_dc_to_hadamard`` / ``chroma_dc_to_hadamard`` units):
    luma (intra 16x16) ``qmul_dc / 256``, 4:2:0 chroma ``qmul_dc / 128``, with
    ``qmul_dc = normAdjust4(qp % 6, 0) * w00 << (qp/6 + 2)`` (chroma: pass the chroma QP)."""
    q = np.asarray(qp, np.int64)
    qmul = (NORM4[q % 6, 0] * int(w00)) << (q // 6 + 2)
    if plane == "luma":
        return qmul / 256.0
    if plane == "chroma":
        return qmul / 128.0
    raise ValueError(f"plane must be 'luma' or 'chroma', got {plane!r}")


def h264_chroma_qp(qp_y: int | np.ndarray, offset: int = 0) -> np.ndarray:
    """QPc from the luma QP and the PPS chroma_qp_index_offset (8-bit)."""
    return CHROMA_QP[np.clip(np.asarray(qp_y, np.int64) + offset, 0, 51)]


def h264_rounding_bound(n: int) -> np.ndarray:
    """Largest change of each stored-domain coefficient caused by rounding every residual sample by
    at most 1/2 (the decoder's integer output): ``32 a[v] a[u]`` with ``a = sum |B^-1|`` per row.
    The Hadamard-domain DC values of the DC paths have the same bound as a block DC (32)."""
    bi = _B[n][1]
    a = np.abs(bi).sum(axis=1)
    return 32.0 * np.outer(a, a)
