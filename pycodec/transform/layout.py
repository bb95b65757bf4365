"""Per-plane transform layout: which transform covers each 4x4 block of a plane, built from the
block maps of a ``pycodec/1`` frame (docs/transforms.md, "Geometry").

A :class:`PlaneLayout` holds maps over the plane's own 4x4 grid (luma: the schema's block grid;
4:2:0 chroma: one entry per chroma 4x4 = luma 8x8).  Leading batch axes are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ._backend import Array, is_torch

# family codes
FREE, H264, HEVC_DCT, HEVC_DST, HEVC_SKIP = 0, 1, 2, 3, 4
FAMILY_NAMES = {FREE: "free", H264: "h264", HEVC_DCT: "dct", HEVC_DST: "dst", HEVC_SKIP: "skip"}
# dc codes
DC_NONE, DC_LUMA16, DC_CHROMA2 = 0, 1, 2

# block/tkind values of schema pycodec/1
TK_NONE, TK_H264_4x4, TK_H264_8x8, TK_H264_I16, TK_PCM, TK_BYPASS = 0, 1, 2, 3, 4, 5
TK_HEVC_DCT, TK_HEVC_DST, TK_HEVC_SKIP = 6, 7, 8
# block/mode values
MODE_INTRA, MODE_INTER, MODE_SKIP, MODE_PCM, MODE_BYPASS = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class PlaneLayout:
    """Transform layout of one plane over its 4x4 grid (arrays of shape (..., H/4, W/4)).

    family: FREE (no transform, no constraint: PCM, bypass), H264, HEVC_DCT, HEVC_DST, HEVC_SKIP.
    log2:   transform size log2 (2..5) of the block covering this 4x4 (2 for FREE).
    dc:     DC_LUMA16 (H.264 intra 16x16 Hadamard over the 16x16 MB), DC_CHROMA2 (H.264 4:2:0
            chroma 2x2 Hadamard over the chroma 8x8), or DC_NONE.
    coded:  residual was coded for this block (False: a level-0 block, e.g. skip or cbp bit clear).
    intra:  intra-coded block (selects the intra dead-zone of encoder-aware intervals).
    """

    family: Array
    log2: Array
    dc: Array
    coded: Array
    intra: Array
    bit_depth: int = 8

    def map(self, fn: Any) -> PlaneLayout:
        """Apply ``fn`` to every map (e.g. a crop, a flip, ``torch.as_tensor``)."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self) if f.name != "bit_depth"})

    def to_torch(self, device: Any = None) -> PlaneLayout:
        """The same layout as torch tensors on ``device``."""
        import torch

        def conv(a: Array) -> Any:
            if is_torch(a):
                return a.to(device)
            a = np.asarray(a)
            return torch.as_tensor(a.astype(np.int64) if a.dtype == np.uint8 else a, device=device)

        return self.map(conv)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.family.shape)

    def max_log2(self) -> int:
        return int(self.log2.max()) if np.prod(self.shape) else 2


def _mb_any(a: np.ndarray, k: int = 4) -> np.ndarray:
    """Per k x k group of the last two axes: any(); broadcast back to the grid."""
    *lead, h, w = a.shape
    g = a.reshape(*lead, h // k, k, w // k, k).any(axis=(-3, -1))
    return np.repeat(np.repeat(g, k, axis=-2), k, axis=-1)


def h264_layouts(tkind: np.ndarray, mode: np.ndarray, pu_w: np.ndarray,
                 cbp: np.ndarray | None = None) -> tuple[PlaneLayout, PlaneLayout]:
    """Luma and 4:2:0 chroma layouts of H.264 frames from ``block/tkind``, ``block/mode`` and
    ``block/pu_w`` (shape (..., H4, W4)); ``cbp``: optional ``h264/cbp`` (..., MBH, MBW) for the
    chroma ``coded`` flag (default: chroma counts as coded).

    The luma transform size follows FFmpeg's ``IS_8x8DCT``: 8x8 in a macroblock that has an 8x8
    transform block or is intra 8x8 (also for its quadrants without coded residual, whose exported
    qstep is laid out 8x8), else 4x4.  PCM and lossless macroblocks are FREE.
    """
    tk = np.asarray(tkind)
    md = np.asarray(mode)
    pw = np.asarray(pu_w)
    if tk.shape != md.shape or tk.shape != pw.shape or tk.ndim < 2:
        raise ValueError(f"tkind, mode and pu_w must be block maps of one shape, got {tk.shape}, {md.shape}, {pw.shape}")
    if tk.shape[-1] % 4 or tk.shape[-2] % 4:
        raise ValueError(f"H.264 block maps cover whole macroblocks (multiple of 4 entries), got {tk.shape[-2:]}")
    free = (md == MODE_PCM) | (md == MODE_BYPASS) | (tk == TK_PCM) | (tk == TK_BYPASS)
    t8 = _mb_any((tk == TK_H264_8x8) | ((md == MODE_INTRA) & (pw == 8) & (tk != TK_H264_I16)))
    fam = np.where(free, FREE, H264).astype(np.int8)
    luma = PlaneLayout(
        family=fam,
        log2=np.where(t8 & ~free, 3, 2).astype(np.int8),
        dc=np.where((tk == TK_H264_I16) & ~free, DC_LUMA16, DC_NONE).astype(np.int8),
        coded=(tk != TK_NONE) & ~free,
        intra=md == MODE_INTRA,
    )
    cfree = free[..., ::2, ::2]
    if cbp is None:
        ccoded = ~cfree
    else:
        c = np.asarray(cbp)
        ccoded = np.repeat(np.repeat((c >> 4) != 0, 2, axis=-2), 2, axis=-1) & ~cfree
    chroma = PlaneLayout(
        family=np.where(cfree, FREE, H264).astype(np.int8),
        log2=np.full(cfree.shape, 2, np.int8),
        dc=np.where(cfree, DC_NONE, DC_CHROMA2).astype(np.int8),
        coded=ccoded,
        intra=md[..., ::2, ::2] == MODE_INTRA,
    )
    return luma, chroma


def hevc_layouts(tkind: np.ndarray, tu_log2: np.ndarray, mode: np.ndarray,
                 bit_depth: int = 8) -> tuple[PlaneLayout, PlaneLayout]:
    """Luma and 4:2:0 chroma layouts of HEVC frames from ``block/tkind``, ``block/tu_log2`` and
    ``block/mode`` (shape (..., H4, W4)).

    Assumptions (docs/transforms.md): TUs are aligned to their size; a block without residual
    (tkind NONE) keeps a level-0 DCT interval of its ``tu_log2`` size when that is known (> 0), and
    is FREE otherwise (e.g. skipped CUs); chroma TUs are half the luma TU, except that luma 4x4 TUs
    have one chroma 4x4 TU at their parent 8x8; chroma uses the DCT (the DST is luma-only;
    chroma transform skip is not in the block maps).
    """
    tk = np.asarray(tkind)
    lg = np.asarray(tu_log2).astype(np.int8)
    md = np.asarray(mode)
    if tk.shape != lg.shape or tk.shape != md.shape or tk.shape[-1] % 2 or tk.shape[-2] % 2:
        raise ValueError(f"tkind, tu_log2 and mode must be block maps of one even-sized shape, got "
                         f"{tk.shape}, {lg.shape}, {md.shape}")
    if np.any((lg != 0) & ((lg < 2) | (lg > 5))):
        raise ValueError("HEVC tu_log2 must be 0 (no residual) or 2..5")
    free = (md == MODE_PCM) | (md == MODE_BYPASS) | (tk == TK_PCM) | (tk == TK_BYPASS) | \
        ((tk == TK_NONE) & (lg == 0))
    fam = np.select([free, tk == TK_HEVC_DST, tk == TK_HEVC_SKIP], [FREE, HEVC_DST, HEVC_SKIP], HEVC_DCT)
    luma = PlaneLayout(
        family=fam.astype(np.int8),
        log2=np.where(free, 2, np.maximum(lg, 2)).astype(np.int8),
        dc=np.zeros(tk.shape, np.int8),
        coded=(tk != TK_NONE) & ~free,
        intra=md == MODE_INTRA,
        bit_depth=bit_depth,
    )
    cfree = free[..., ::2, ::2]
    clog = np.maximum(lg[..., ::2, ::2] - 1, 2)
    chroma = PlaneLayout(
        family=np.where(cfree, FREE, HEVC_DCT).astype(np.int8),
        log2=np.where(cfree, 2, clog).astype(np.int8),
        dc=np.zeros(cfree.shape, np.int8),
        coded=luma.coded[..., ::2, ::2],
        intra=md[..., ::2, ::2] == MODE_INTRA,
        bit_depth=bit_depth,
    )
    return luma, chroma


_TK_FAMILY = {TK_HEVC_DCT: HEVC_DCT, TK_HEVC_DST: HEVC_DST, TK_HEVC_SKIP: HEVC_SKIP}


def _paint(shape: tuple[int, int], x4: np.ndarray, y4: np.ndarray, m: np.ndarray,
           values: dict[str, np.ndarray], fill: dict[str, Any]) -> dict[str, np.ndarray]:
    """Cell maps of ``shape`` with each square (y4, x4, side m cells) set to its values."""
    out = {k: np.full(shape, fill[k], dtype=np.asarray(fill[k]).dtype) for k in fill}
    for side in np.unique(m):
        sel = m == side
        r = y4[sel][:, None, None] + np.arange(side)[None, :, None]
        c = x4[sel][:, None, None] + np.arange(side)[None, None, :]
        r, c = np.broadcast_arrays(r, c)
        ok = (r < shape[0]) & (c < shape[1])
        for k, v in values.items():
            out[k][r[ok], c[ok]] = np.broadcast_to(v[sel][:, None, None], r.shape)[ok]
    return out


def hevc_tu_layouts(tu: np.ndarray, count: np.ndarray | int, mode: np.ndarray,
                    bit_depth: int = 8) -> tuple[PlaneLayout, PlaneLayout, PlaneLayout]:
    """Exact luma, Cb and Cr layouts of HEVC 4:2:0 frames from their transform trees: ``hevc/tu``
    rows (..., MAXTU, 10), ``hevc/counts[..., 1]`` and ``block/mode`` (..., H4, W4).

    Unlike :func:`hevc_layouts` (block maps only) this knows every TU, also those without coded
    residual (cbf 0, implied TUs of skipped CUs: level-0 intervals, ``coded`` False), and the
    per-component chroma kind (chroma transform skip).  Transquant-bypass and PCM TUs, and cells no
    TU covers, are FREE.
    """
    tu = np.asarray(tu)
    md = np.asarray(mode)
    cnt = np.asarray(count)
    if tu.ndim < 2 or tu.shape[-1] != 10 or md.ndim < 2 or md.shape[-1] % 2 or md.shape[-2] % 2:
        raise ValueError(f"hevc/tu must be (..., MAXTU, 10) and block/mode (..., H4, W4) with even H4, W4; got "
                         f"{tu.shape}, {md.shape}")
    lead = md.shape[:-2]
    if tu.shape[:-2] != lead or cnt.shape != lead:
        raise ValueError(f"hevc/tu {tu.shape}, counts {cnt.shape} and block/mode {md.shape} disagree on frames")
    if lead:
        per = [hevc_tu_layouts(tu[i], cnt[i], md[i], bit_depth) for i in np.ndindex(*lead)]
        return tuple(PlaneLayout(**{f.name: np.stack([getattr(p[k], f.name) for p in per]).reshape(
            *lead, *getattr(per[0][k], f.name).shape) for f in fields(PlaneLayout) if f.name != "bit_depth"},
            bit_depth=bit_depth) for k in range(3))  # type: ignore[return-value]
    rows = tu[: int(cnt)].astype(np.int64)
    x, y, lg = rows[:, 0], rows[:, 1], rows[:, 2]
    if np.any((lg < 2) | (lg > 5)) or np.any((x % 4) | (y % 4)):
        raise ValueError("hevc/tu rows must have log2 sizes 2..5 at positions on the 4x4 grid")

    def family(kind: np.ndarray) -> np.ndarray:
        return np.select([kind == k for k in _TK_FAMILY], list(_TK_FAMILY.values()), FREE).astype(np.int8)

    free_cells = (md == MODE_PCM) | (md == MODE_BYPASS)
    fill = {"family": np.int8(FREE), "log2": np.int8(2), "coded": np.False_}
    luma = _paint(md.shape, x // 4, y // 4, 1 << (lg - 2),
                  {"family": family(rows[:, 7]), "log2": lg.astype(np.int8), "coded": rows[:, 4] != 0}, fill)
    # chroma: half-size TUs; luma 4x4 TUs share one chroma 4x4 at their parent 8x8 (the row with chroma)
    has_c = (lg > 2) | ((rows[:, 8] != 0) | (rows[:, 9] != 0))
    cx, cy = (x & ~7) // 8, (y & ~7) // 8
    cm = np.where(lg > 2, 1 << np.maximum(lg - 3, 0), 1)
    clog = np.maximum(lg - 1, 2).astype(np.int8)
    cshape = (md.shape[0] // 2, md.shape[1] // 2)
    out = [PlaneLayout(family=np.where(free_cells, FREE, luma["family"]).astype(np.int8), log2=luma["log2"],
                       dc=np.zeros(md.shape, np.int8), coded=luma["coded"] & ~free_cells, intra=md == MODE_INTRA,
                       bit_depth=bit_depth)]
    cfree = free_cells[::2, ::2]
    for kcol, ccol in ((8, 5), (9, 6)):
        sel = has_c
        ch = _paint(cshape, cx[sel], cy[sel], cm[sel],
                    {"family": family(rows[sel, kcol]), "log2": clog[sel], "coded": rows[sel, ccol] != 0}, fill)
        out.append(PlaneLayout(family=np.where(cfree, FREE, ch["family"]).astype(np.int8), log2=ch["log2"],
                               dc=np.zeros(cshape, np.int8), coded=ch["coded"] & ~cfree,
                               intra=md[::2, ::2] == MODE_INTRA, bit_depth=bit_depth))
    return out[0], out[1], out[2]
