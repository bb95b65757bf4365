"""HEVC motion-compensated prediction in numpy, written from the spec (ITU-T H.265 8.5.3.3).

* fractional sample interpolation: luma 8-tap filters at 1/4 positions, chroma 4-tap filters at
  1/8 positions (4:2:0), separable, horizontal pass first; 14-bit intermediates: shift1 =
  BitDepth - 8 after the first pass, shift2 = 6 after the second, full-sample positions are
  scaled by shift3 = 14 - BitDepth (8.5.3.3.3.1 / 8.5.3.3.3.2);
* reference sample padding: coordinates clamped to the picture (xInt = Clip3(0, pic_width - 1, ...));
* weighted sample prediction: default uni `(p + o) >> (14 - bd)`, default bi
  `(p0 + p1 + o) >> (15 - bd)` and explicit (8.5.3.3.4.3) with the weights of the slice header.

Blocks are predicted per 4x4 luma block (2x2 chroma in 4:2:0): every output sample depends only
on its own position, the vector and the clamped reference, so this is identical to predicting
the whole prediction block at once.
"""

from __future__ import annotations

import numpy as np

# Table 8-11 (luma, xFrac = 1..3) and Table 8-12 (chroma, xFrac = 1..7); index 0 = full sample
LUMA_FILTERS = np.array([
    [0, 0, 0, 64, 0, 0, 0, 0],
    [-1, 4, -10, 58, 17, -5, 1, 0],
    [-1, 4, -11, 40, 40, -11, 4, -1],
    [0, 1, -5, 17, 58, -10, 4, -1],
], np.int64)
CHROMA_FILTERS = np.array([
    [0, 64, 0, 0],
    [-2, 58, 10, -2],
    [-4, 54, 16, -2],
    [-6, 46, 28, -4],
    [-4, 36, 36, -4],
    [-4, 28, 46, -6],
    [-2, 16, 54, -4],
    [-2, 10, 58, -2],
], np.int64)


def interpolate(ref, x0, y0, mvx, mvy, bw, bh, bit_depth, chroma=False):
    """Fractional-sample interpolation of ``len(x0)`` blocks of bw x bh samples.

    ref: (H, W) reference plane (integers); (x0, y0): top-left of each block in this plane's
    sample grid; (mvx, mvy): the luma motion vector in quarter luma samples, which for 4:2:0
    chroma is the chroma vector in eighth chroma samples.  Returns predSamples (n, bh, bw) int64
    at 14-bit intermediate precision (8.5.3.3.3).
    """
    ref = np.asarray(ref, np.int64)
    x0, y0, mvx, mvy = (np.asarray(a, np.int64) for a in (x0, y0, mvx, mvy))
    h, w = ref.shape
    if chroma:
        fshift, taps, pre, filters = 3, 4, 1, CHROMA_FILTERS
    else:
        fshift, taps, pre, filters = 2, 8, 3, LUMA_FILTERS
    fmask = (1 << fshift) - 1
    xf, yf = mvx & fmask, mvy & fmask
    xi = x0 + (mvx >> fshift)
    yi = y0 + (mvy >> fshift)
    span_y = bh + taps - 1
    span_x = bw + taps - 1
    rows = np.clip(yi[:, None] + np.arange(span_y)[None, :] - pre, 0, h - 1)
    cols = np.clip(xi[:, None] + np.arange(span_x)[None, :] - pre, 0, w - 1)
    patch = ref[rows[:, :, None], cols[:, None, :]]            # (n, span_y, span_x)
    shift1 = min(4, bit_depth - 8)
    shift2 = 6
    shift3 = max(2, 14 - bit_depth)
    fx = filters[xf]                                           # (n, taps)
    fy = filters[yf]
    # horizontal pass on every row of the patch: (n, span_y, bw)
    hwin = np.stack([patch[:, :, j:j + taps] for j in range(bw)], 2)     # (n, span_y, bw, taps)
    hpass = np.einsum("nyxt,nt->nyx", hwin, fx) >> shift1
    # vertical pass on the reference samples of the block columns: (n, bh, bw)
    cols_blk = patch[:, :, pre:pre + bw]
    vwin = np.stack([cols_blk[:, i:i + taps, :] for i in range(bh)], 1)  # (n, bh, taps, bw)
    vpass = np.einsum("nytx,nt->nyx", vwin, fy) >> shift1
    # both fractional: vertical pass over the horizontal intermediates
    h2 = np.stack([hpass[:, i:i + taps, :] for i in range(bh)], 1)       # (n, bh, taps, bw)
    both = np.einsum("nytx,nt->nyx", h2, fy) >> shift2
    full = patch[:, pre:pre + bh, pre:pre + bw] << shift3
    honly = hpass[:, pre:pre + bh, :]
    xfb, yfb = (xf != 0)[:, None, None], (yf != 0)[:, None, None]
    return np.where(xfb & yfb, both, np.where(xfb, honly, np.where(yfb, vpass, full)))


def default_uni(p, bit_depth):
    shift = 14 - bit_depth
    return np.clip((p + (1 << (shift - 1))) >> shift, 0, (1 << bit_depth) - 1)


def default_bi(p0, p1, bit_depth):
    shift = 15 - bit_depth
    return np.clip((p0 + p1 + (1 << (shift - 1))) >> shift, 0, (1 << bit_depth) - 1)


def explicit_uni(p, w, o, log2_denom, bit_depth):
    """8.5.3.3.4.3 with one list: w, o per block (offset already scaled to the bit depth)."""
    log2wd = log2_denom + 14 - bit_depth
    w = np.asarray(w, np.int64)[:, None, None]
    o = np.asarray(o, np.int64)[:, None, None]
    if log2wd >= 1:
        v = ((p * w + (1 << (log2wd - 1))) >> log2wd) + o
    else:
        v = p * w + o
    return np.clip(v, 0, (1 << bit_depth) - 1)


def explicit_bi(p0, p1, w0, o0, w1, o1, log2_denom, bit_depth):
    log2wd = log2_denom + 14 - bit_depth
    w0, o0, w1, o1 = (np.asarray(a, np.int64)[:, None, None] for a in (w0, o0, w1, o1))
    v = (p0 * w0 + p1 * w1 + ((o0 + o1 + 1) << log2wd)) >> (log2wd + 1)
    return np.clip(v, 0, (1 << bit_depth) - 1)


def predict_blocks(refs, blocks, bit_depth, weights=None):
    """Inter prediction of a set of 4x4 luma blocks (and their 2x2 chroma blocks, 4:2:0).

    refs: {POC: (y, u, v) reference planes}.  blocks: dict of per-block arrays: by, bx (4x4 block
    coordinates) and, for L in 0, 1: use{L} (bool), mv{L} (n, 2) quarter-pel (x, y), poc{L}.
    weights (optional, explicit weighted prediction): 'explicit' (bool per block), per list L and
    component c in y/u/v the arrays w{L}_{c} and o{L}_{c} (offsets scaled to the bit depth), and
    'denom_y' / 'denom_c' per block.  Blocks not marked explicit use the default weighting.

    Returns {'y': (n, 4, 4), 'u': (n, 2, 2), 'v': (n, 2, 2)} predicted samples.
    """
    n = len(blocks["by"])
    out = {"y": np.zeros((n, 4, 4), np.int64), "u": np.zeros((n, 2, 2), np.int64),
           "v": np.zeros((n, 2, 2), np.int64)}
    if n == 0:
        return out
    by, bx = np.asarray(blocks["by"]), np.asarray(blocks["bx"])
    inter = {}
    for L in (0, 1):
        use = np.asarray(blocks[f"use{L}"], bool)
        mv = np.asarray(blocks[f"mv{L}"], np.int64)
        poc = np.asarray(blocks[f"poc{L}"])
        res = {c: np.zeros((n, s, s), np.int64) for c, s in (("y", 4), ("u", 2), ("v", 2))}
        for p in np.unique(poc[use]):
            sel = use & (poc == p)
            planes = refs[int(p)]
            for ci, (c, s, chroma) in enumerate((("y", 4, False), ("u", 2, True), ("v", 2, True))):
                res[c][sel] = interpolate(planes[ci], bx[sel] * s, by[sel] * s, mv[sel, 0], mv[sel, 1], s, s,
                                          bit_depth, chroma)
        inter[L] = (use, res)
    u0, r0 = inter[0]
    u1, r1 = inter[1]
    bi = u0 & u1
    only0 = u0 & ~u1
    only1 = u1 & ~u0
    expl = np.zeros(n, bool) if weights is None else np.asarray(weights["explicit"], bool)
    for c in ("y", "u", "v"):
        o = out[c]
        for sel, p in ((only0 & ~expl, r0[c]), (only1 & ~expl, r1[c])):
            o[sel] = default_uni(p[sel], bit_depth)
        o[bi & ~expl] = default_bi(r0[c][bi & ~expl], r1[c][bi & ~expl], bit_depth)
        if expl.any():
            denom = np.asarray(weights["denom_y" if c == "y" else "denom_c"])
            for d in np.unique(denom[expl]):
                e = expl & (denom == d)
                for sel, L, p in ((only0 & e, 0, r0[c]), (only1 & e, 1, r1[c])):
                    if sel.any():
                        o[sel] = explicit_uni(p[sel], weights[f"w{L}_{c}"][sel], weights[f"o{L}_{c}"][sel], int(d),
                                              bit_depth)
                s = bi & e
                if s.any():
                    o[s] = explicit_bi(r0[c][s], r1[c][s], weights[f"w0_{c}"][s], weights[f"o0_{c}"][s],
                                       weights[f"w1_{c}"][s], weights[f"o1_{c}"][s], int(d), bit_depth)
    return out
