"""Invariants of the H.264 export on every supported generated stream.

Oracles that do not depend on pycodec: PyAV's own FFmpeg (decoded frames, FFmpeg's exported
motion vectors and venc_params QP map), the stream syntax parsed by tests/h264_bitstream.py, and
a reference implementation of the H.264 inverse transforms and dequantisation written from the
spec (ITU-T H.264 8.5.6-8.5.13; docs in shared/design/codec-internals.md section 1.3).

The ``check_*`` helpers are shared with test_realworld.py.
"""

from __future__ import annotations

import itertools

import h264_bitstream as hb
import numpy as np
import pytest
import streams as S
from conftest import (
    CORRUPT,
    INCOMPLETE,
    LOSSLESS,
    NO_EXPORT,
    PCM,
    UNSUPPORTED,
    assert_export_keeps_output,
    assert_runs_identical,
    frame_type,
    pyav_decode,
    pycodec_decode,
)

# ----------------------------------------------------------------------------------- H.264 math

# normAdjust4x4 (Table 8-15 ordering by position class: 0 both even, 1 mixed, 2 both odd)
NORM4 = np.array([[10, 13, 16], [11, 14, 18], [13, 16, 20], [14, 18, 23], [16, 20, 25], [18, 23, 29]])
# normAdjust8x8 v_m0..v_m5
NORM8 = np.array([[20, 18, 32, 19, 25, 24], [22, 19, 35, 21, 28, 26], [26, 23, 42, 24, 33, 31],
                  [28, 25, 45, 26, 35, 33], [32, 28, 51, 30, 40, 38], [36, 32, 58, 34, 46, 43]])
# chroma QP from qPI (Table 8-15 of the 2003 numbering; 8-bit)
QPC = np.array(list(range(30)) + [29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36, 36, 37, 37, 37, 38, 38,
                                  38, 39, 39, 39, 39])
H4 = np.array([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, -1, 1], [1, -1, 1, -1]], np.int64)
H2 = np.array([[1, 1], [1, -1]], np.int64)

# FFmpeg mb_type bits (libavcodec/mpegutils.h, h264_parse.h)
MB_INTRA4x4, MB_INTRA16x16, MB_INTRA_PCM = 1 << 0, 1 << 1, 1 << 2
MB_16x16, MB_16x8, MB_8x16, MB_8x8 = 1 << 3, 1 << 4, 1 << 5, 1 << 6
MB_INTERLACED, MB_DIRECT2, MB_SKIP = 1 << 7, 1 << 8, 1 << 11
MB_P0L0, MB_P1L0, MB_P0L1, MB_P1L1 = 1 << 12, 1 << 13, 1 << 14, 1 << 15
MB_8x8DCT = 0x01000000
TK_NONE, TK_4x4, TK_8x8, TK_I16, TK_PCM, TK_BYPASS = range(6)


def pos_class4():
    v, u = np.mgrid[0:4, 0:4]
    return (u & 1) + (v & 1)


def pos_class8():
    """Index into NORM8 columns for each (v, u) of an 8x8 block (spec 8.5.9)."""
    v, u = np.mgrid[0:8, 0:8]
    cls = np.full((8, 8), 5)
    cls[((v % 4 == 0) & (u % 2 == 1)) | ((v % 2 == 1) & (u % 4 == 0))] = 3
    cls[((v % 4 == 0) & (u % 4 == 2)) | ((v % 4 == 2) & (u % 4 == 0))] = 4
    cls[(v % 4 == 2) & (u % 4 == 2)] = 2
    cls[(v % 2 == 1) & (u % 2 == 1)] = 1
    cls[(v % 4 == 0) & (u % 4 == 0)] = 0
    return cls


def qstep4(qp, cls):
    qp = np.asarray(qp, np.int64)
    return NORM4[qp % 6, cls] * np.exp2(qp // 6)


def qstep8(qp, cls):
    qp = np.asarray(qp, np.int64)
    return NORM8[qp % 6, cls] * np.exp2(qp // 6) / 4


def _t4(d):
    d0, d1, d2, d3 = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    e0, e1 = d0 + d2, d0 - d2
    e2, e3 = (d1 >> 1) - d3, d1 + (d3 >> 1)
    return np.stack([e0 + e3, e1 + e2, e1 - e2, e0 - e3], -1)


def _t8(d):
    d0, d1, d2, d3, d4, d5, d6, d7 = (d[..., i] for i in range(8))
    g0 = d0 + d4
    g1 = -d3 + d5 - d7 - (d7 >> 1)
    g2 = d0 - d4
    g3 = d1 + d7 - d3 - (d3 >> 1)
    g4 = (d2 >> 1) - d6
    g5 = -d1 + d7 + d5 + (d5 >> 1)
    g6 = d2 + (d6 >> 1)
    g7 = d3 + d5 + d1 + (d1 >> 1)
    h0, h1 = g0 + g6, g1 + (g7 >> 2)
    h2, h3 = g2 + g4, g3 + (g5 >> 2)
    h4, h5 = g2 - g4, (g3 >> 2) - g5
    h6, h7 = g0 - g6, g7 - (g1 >> 2)
    return np.stack([h0 + h7, h2 + h5, h4 + h3, h6 + h1, h6 - h1, h4 - h3, h2 - h5, h0 - h7], -1)


def idct4(c):
    """Integer 4x4 inverse transform (8.5.12) of C[..., v, u] (natural orientation): residual."""
    c = np.asarray(c, np.int64)
    f = _t4(c)                                           # each row (fixed v) over u
    h = np.swapaxes(_t4(np.swapaxes(f, -1, -2)), -1, -2)  # then each column
    return (h + 32) >> 6


def idct8(c):
    """Integer 8x8 inverse transform (8.5.13) of C[..., v, u]."""
    c = np.asarray(c, np.int64)
    f = _t8(c)
    h = np.swapaxes(_t8(np.swapaxes(f, -1, -2)), -1, -2)
    return (h + 32) >> 6


def to_blocks(a, n):
    h, w = a.shape[:2]
    return a.reshape(h // n, n, w // n, n).swapaxes(1, 2)


def from_blocks(b):
    nh, nw, n, _ = b.shape
    return b.swapaxes(1, 2).reshape(nh * n, nw * n)


def expand(a, n):
    """Repeat a per-block map n times along both axes."""
    return np.repeat(np.repeat(a, n, 0), n, 1)


def coded_canvas(display, coded_shape, crop, sub):
    """Place a display-size plane into a coded-size canvas; returns (canvas, valid mask)."""
    top, _bottom, left, _right = crop
    canvas = np.zeros(coded_shape, np.int64)
    mask = np.zeros(coded_shape, bool)
    t, lft = top // sub, left // sub
    h, w = display.shape
    canvas[t:t + h, lft:lft + w] = display
    mask[t:t + h, lft:lft + w] = True
    return canvas, mask


def plane_shapes(info):
    ch, cw = info["coded_height"], info["coded_width"]
    return {"y": ((ch, cw), 1), "u": ((ch // 2, cw // 2), 2), "v": ((ch // 2, cw // 2), 2)}


def chroma_qp(qp_y, offset):
    return QPC[np.clip(np.asarray(qp_y, np.int64) + offset, 0, 51)]


def _fmt(problems, limit=8):
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n  " + "\n  ".join(problems[:limit]) + more


def _where(mask, limit=3):
    ys, xs = np.nonzero(mask)
    return ", ".join(f"(y={y}, x={x})" for y, x in zip(ys[:limit], xs[:limit]))


# ----------------------------------------------------------------------------------- checks


def check_decoded(fr, ref, label):
    """Decoded planes equal PyAV's bit-exactly; returns a list of problems."""
    out = []
    for k, rp in zip("yuv", ref.planes):
        got = fr.arrays[f"decoded/{k}"]
        if got.shape != rp.shape:
            out.append(f"{label} decoded/{k}: shape {got.shape} != PyAV {rp.shape}")
        elif not np.array_equal(got, rp):
            d = got.astype(np.int64) != rp
            out.append(f"{label} decoded/{k}: {d.sum()} samples differ from PyAV, first at {_where(d)}")
    return out


def check_recon(fr, label, lossless_ok=False):
    """recon == clip(prediction + residual) on every sample of every plane."""
    out = []
    for k in "yuv":
        pred = fr.arrays[f"prediction/{k}"].astype(np.int64)
        res = fr.arrays[f"residual/{k}"].astype(np.int64)
        rec = fr.arrays[f"recon/{k}"].astype(np.int64)
        exp = np.clip(pred + res, 0, 255)
        bad = exp != rec
        if bad.any():
            out.append(f"{label} plane {k}: recon != clip(pred + res) at {bad.sum()} samples, first {_where(bad)}: "
                       f"pred={pred[bad][:3]} res={res[bad][:3]} recon={rec[bad][:3]}")
    return out


def ffmpeg_partitions(mb_type):
    """The (list, x0, y0, w, h) partitions FFmpeg's export_mvs emits for these mb_types."""
    mbh, mbw = mb_type.shape
    my, mx = np.mgrid[0:mbh, 0:mbw]
    rows = []
    for lst in (0, 1):
        used = (mb_type & ((MB_P0L0 | MB_P1L0) << (2 * lst))) != 0
        is88 = used & ((mb_type & MB_8x8) != 0)
        is168 = used & ~is88 & ((mb_type & MB_16x8) != 0)
        is816 = used & ~is88 & ~is168 & ((mb_type & MB_8x16) != 0)
        is16 = used & ~is88 & ~is168 & ~is816
        for sel, parts in ((is16, [(0, 0, 16, 16)]),
                           (is168, [(0, 0, 16, 8), (0, 8, 16, 8)]),
                           (is816, [(0, 0, 8, 16), (8, 0, 8, 16)]),
                           (is88, [(0, 0, 8, 8), (8, 0, 8, 8), (0, 8, 8, 8), (8, 8, 8, 8)])):
            for dx, dy, w, h in parts:
                n = int(sel.sum())
                if n:
                    rows.append(np.stack([np.full(n, lst), mx[sel] * 16 + dx, my[sel] * 16 + dy,
                                          np.full(n, w), np.full(n, h)], 1))
    return np.concatenate(rows) if rows else np.zeros((0, 5), np.int64)


def check_mvs(fr, ref, label):
    """Block for block: every AVMotionVector FFmpeg exports equals our MV at the partition's
    top-left 4x4 block, and the set of partitions equals what our mb_type implies."""
    out = []
    mbt = fr.arrays["h264/mb_type"].astype(np.int64)
    mvs = ref.mvs
    ours = ffmpeg_partitions(mbt)
    if len(mvs):
        lst = (mvs["source"] > 0).astype(np.int64)
        w, h = mvs["w"].astype(np.int64), mvs["h"].astype(np.int64)
        x0 = mvs["dst_x"].astype(np.int64) - w // 2
        y0 = mvs["dst_y"].astype(np.int64) - h // 2
        theirs = np.stack([lst, x0, y0, w, h], 1)
    else:
        theirs = np.zeros((0, 5), np.int64)
    if len(theirs) != len(ours):
        out.append(f"{label}: FFmpeg exports {len(theirs)} motion vectors, our mb_type implies {len(ours)}")
    a = {tuple(r) for r in ours.tolist()}
    b = {tuple(r) for r in theirs.tolist()}
    if a != b:
        out.append(f"{label}: partitions differ: only ours {sorted(a - b)[:4]}, only FFmpeg's {sorted(b - a)[:4]}")
        return out
    if not len(mvs):
        return out
    scale = mvs["motion_scale"].astype(np.int64)
    for L in (0, 1):
        sel = theirs[:, 0] == L
        if not sel.any():
            continue
        mv = fr.arrays[f"block/mv_l{L}"].astype(np.int64)
        by, bx = theirs[sel, 2] // 4, theirs[sel, 1] // 4
        got = mv[by, bx] * scale[sel, None]
        exp = np.stack([mvs["motion_x"][sel], mvs["motion_y"][sel]], 1).astype(np.int64) * 4
        bad = np.any(got != exp, 1)
        if bad.any():
            i = np.flatnonzero(bad)[:3]
            out.append(f"{label} list {L}: {bad.sum()} of {sel.sum()} vectors differ, e.g. at blocks "
                       f"{list(zip(by[i].tolist(), bx[i].tolist()))}: ours {mv[by[i], bx[i]].tolist()} "
                       f"FFmpeg {(exp[i] // scale[sel][i, None]).tolist()}")
    return out


def check_mv_uniform_in_pu(fr, label):
    """Within each prediction block (block/pu_w x pu_h, aligned), every 4x4 block carries the same
    reference index and MV as the block's top-left one (FFmpeg exports only that one)."""
    out = []
    pw = fr.arrays["block/pu_w"].astype(np.int64) // 4
    ph = fr.arrays["block/pu_h"].astype(np.int64) // 4
    h4, w4 = pw.shape
    by, bx = np.mgrid[0:h4, 0:w4]
    valid = (pw > 0) & (ph > 0)
    ty = np.where(valid, by - by % np.maximum(ph, 1), by)
    tx = np.where(valid, bx - bx % np.maximum(pw, 1), bx)
    for L in (0, 1):
        ref = fr.arrays[f"block/ref_l{L}"]
        mv = fr.arrays[f"block/mv_l{L}"]
        used = ref >= 0
        bad = used & ((ref != ref[ty, tx]) | np.any(mv != mv[ty, tx], -1))
        if bad.any():
            ys, xs = np.nonzero(bad)
            out.append(f"{label} list {L}: {bad.sum()} 4x4 blocks differ from their prediction block's top-left "
                       f"(pu {pw[ys[0], xs[0]] * 4}x{ph[ys[0], xs[0]] * 4}), first (y={ys[0]}, x={xs[0]}): "
                       f"{mv[ys[0], xs[0]].tolist()} vs {mv[ty[ys[0], xs[0]], tx[ys[0], xs[0]]].tolist()}")
    return out


def check_qp(fr, ref, label):
    if ref.qp_map is None:
        return [f"{label}: PyAV attached no VIDEO_ENC_PARAMS"]
    qp = fr.arrays["block/qp_y"].astype(np.int64)
    exp = expand(ref.qp_map, 4)
    if exp.shape != qp.shape:
        return [f"{label}: block/qp_y shape {qp.shape} != venc_params map {exp.shape}"]
    bad = qp != exp
    if bad.any():
        return [(f"{label}: block/qp_y differs from venc_params at {bad.sum()} blocks, first {_where(bad)}: "
                 f"ours {qp[bad][:3]} FFmpeg {exp[bad][:3]}")]
    return []


def _mb_mode_map(fr):
    """Per 4x4 luma block: True where the block is PCM or bypass (no transform)."""
    tk = fr.arrays["block/tkind"]
    mode = fr.arrays["block/mode"]
    return (tk == TK_PCM) | (tk == TK_BYPASS) | (mode == 3) | (mode == 4)


def check_idct(fr, info, label, stats=None):
    """residual == integer IDCT of the exported coefficients, every transform block, all planes."""
    out = []
    shapes = plane_shapes(info)
    crop = info["crop"]
    tk = fr.arrays["block/tkind"]
    notx = _mb_mode_map(fr)
    for k in "yuv":
        shape, sub = shapes[k]
        coef = fr.arrays[f"coeffs/{k}"].astype(np.int64)
        if coef.shape != shape:
            out.append(f"{label} coeffs/{k}: shape {coef.shape} != coded {shape}")
            continue
        res, valid = coded_canvas(fr.arrays[f"residual/{k}"], shape, crop, sub)
        exp = from_blocks(idct4(to_blocks(coef, 4)))
        if k == "y":
            r8 = from_blocks(idct8(to_blocks(coef, 8)))
            is8 = expand(tk == TK_8x8, 4)
            exp = np.where(is8, r8, exp)
            skip = expand(notx, 4)
            # 8x8 transform blocks are aligned 2x2 groups of 4x4 blocks
            t8 = (tk == TK_8x8).astype(np.int64)
            q = t8.reshape(t8.shape[0] // 2, 2, t8.shape[1] // 2, 2).sum((1, 3))
            if np.any((q != 0) & (q != 4)):
                out.append(f"{label}: tkind 8x8 not aligned to 8x8 blocks")
            none = expand(tk == TK_NONE, 4)
            if np.any(coef[none] != 0):
                out.append(f"{label}: luma coefficients where tkind says no residual")
        else:
            skip = expand(notx[::2, ::2], 4)  # a chroma 4x4 block covers a luma 8x8
        chk = valid & ~skip
        bad = chk & (exp != res)
        if bad.any():
            out.append(f"{label} plane {k}: residual != IDCT(coeffs) at {bad.sum()} samples, first {_where(bad)}")
        if stats is not None:
            nz = to_blocks(np.where(skip, 0, coef), 4).any((2, 3)).sum()
            stats[f"blocks_{k}"] = stats.get(f"blocks_{k}", 0) + int(nz)
    return out


def check_levels_qstep(fr, info, pps, label, flat=True, stats=None):
    """levels -> coefficients with the exported qstep (c = floor(level*qstep + 1/2)); with flat
    matrices qstep follows normAdjust * 2^(qp/6) (4x4) and normAdjust8 * 2^(qp/6) / 4 (8x8), and
    every AC coefficient is an exact multiple of it (integer steps)."""
    out = []
    shapes = plane_shapes(info)
    tk = fr.arrays["block/tkind"]
    notx = _mb_mode_map(fr)
    cbp = fr.arrays["h264/cbp"].astype(np.int64)
    c4 = np.tile(pos_class4(), (shapes["y"][0][0] // 4, shapes["y"][0][1] // 4))
    c8 = np.tile(pos_class8(), (shapes["y"][0][0] // 8, shapes["y"][0][1] // 8))
    for k in "yuv":
        shape, _ = shapes[k]
        coef = fr.arrays[f"coeffs/{k}"].astype(np.int64)
        lev = fr.arrays[f"levels/{k}"].astype(np.int64)
        qs = fr.arrays[f"qstep/{k}"].astype(np.float64)
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        dc4 = (yy % 4 == 0) & (xx % 4 == 0)
        if k == "y":
            tkp = expand(tk, 4)
            qp = expand(fr.arrays["block/qp_y"].astype(np.int64), 4)
            skip = expand(notx, 4)
            hadamard_dc = dc4 & (tkp == TK_I16)
            coded = np.isin(tkp, (TK_4x4, TK_8x8, TK_I16)) & ~hadamard_dc
            formula = np.where(tkp == TK_8x8, qstep8(qp, c8), qstep4(qp, c4))
        else:
            qpc = fr.arrays["block/qp_cb" if k == "u" else "block/qp_cr"].astype(np.int64)
            qp = expand(qpc[::2, ::2], 4)
            skip = expand(notx[::2, ::2], 4)
            hadamard_dc = dc4
            coded = expand(expand((cbp >> 4) == 2, 2), 4) & ~hadamard_dc
            formula = qstep4(qp, c4[:shape[0], :shape[1]])
        chk = ~skip & ~hadamard_dc
        nz = chk & (lev != 0)
        if np.any(chk & (lev == 0) & (coef != 0)):
            out.append(f"{label} plane {k}: nonzero coefficient with level 0 at {_where(chk & (lev == 0) & (coef != 0))}")
        if np.any(nz & (qs <= 0)):
            out.append(f"{label} plane {k}: no qstep where a level is coded, at {_where(nz & (qs <= 0))}")
        exp = np.floor(lev * qs + 0.5).astype(np.int64)
        bad = nz & (exp != coef)
        if bad.any():
            out.append(f"{label} plane {k}: coeffs != floor(levels*qstep + 1/2) at {bad.sum()} positions, first "
                       f"{_where(bad)}: level {lev[bad][:3]} qstep {qs[bad][:3]} coeff {coef[bad][:3]}")
        if flat:
            badq = (coded | nz) & ~skip & (qs != formula)
            if badq.any():
                out.append(f"{label} plane {k}: qstep != flat-matrix formula at {badq.sum()} positions, first "
                           f"{_where(badq)}: qstep {qs[badq][:3]} formula {formula[badq][:3]} qp {qp[badq][:3]}")
            integer = nz & (formula == np.floor(formula))
            notmult = integer & (np.mod(coef, np.where(integer, formula, 1)) != 0)
            if notmult.any():
                out.append(f"{label} plane {k}: {notmult.sum()} coefficients are not multiples of their step")
        if stats is not None:
            stats[f"levels_{k}"] = stats.get(f"levels_{k}", 0) + int(nz.sum())
    return out


def check_qp_chroma(fr, pps, label):
    qp = fr.arrays["block/qp_y"].astype(np.int64)
    out = []
    for k, off in (("cb", pps["chroma_qp_index_offset"]), ("cr", pps["second_chroma_qp_index_offset"])):
        got = fr.arrays[f"block/qp_{k}"].astype(np.int64)
        exp = chroma_qp(qp, off)
        bad = got != exp
        if bad.any():
            out.append(f"{label}: block/qp_{k} != QPc(qp_y + {off}) at {bad.sum()} blocks, first {_where(bad)}: "
                       f"ours {got[bad][:3]} expected {exp[bad][:3]} (qp_y {qp[bad][:3]})")
    return out


def check_intra16_dc(fr, label, flat=True, stats=None):
    """i16x16 DC: coeff DC of block (i, j) == floor(H4 . Fdc . H4 * dc_qmul / 256 + 1/2)[i, j], with
    Fdc[i, j] the level exported at the (0, 0) position of 4x4 block (i, j) of the macroblock."""
    out = []
    mbt = fr.arrays["h264/mb_type"].astype(np.int64)
    sel = ((mbt & MB_INTRA16x16) != 0) & ((mbt & MB_INTRA_PCM) == 0)
    mode = fr.arrays["block/mode"][::4, ::4]
    sel &= mode != 4
    if not sel.any():
        return out
    my, mx = np.nonzero(sel)
    lev = fr.arrays["levels/y"].astype(np.int64)
    coef = fr.arrays["coeffs/y"].astype(np.int64)
    qmul = fr.arrays["h264/dc_qmul"][my, mx, 0].astype(np.int64)
    off = np.arange(4) * 4
    rows = (my[:, None] * 16 + off[None, :])
    cols = (mx[:, None] * 16 + off[None, :])
    F = lev[rows[:, :, None], cols[:, None, :]]          # (n, 4, 4): [block row, block col]
    D = coef[rows[:, :, None], cols[:, None, :]]
    x = H4 @ F @ H4
    nat = (x * qmul[:, None, None] + 128) >> 8
    xt = H4 @ np.swapaxes(F, 1, 2) @ H4
    tr = (xt * qmul[:, None, None] + 128) >> 8
    ok_nat = np.all(nat == D, axis=(1, 2))
    ok_tr = np.all(tr == D, axis=(1, 2))
    if not ok_nat.all():
        i = np.flatnonzero(~ok_nat)[:2]
        hint = " (the transposed DC level matrix matches: levels are exported transposed)" if ok_tr[~ok_nat].all() else ""
        out.append(f"{label}: i16x16 DC mismatch in {int((~ok_nat).sum())} of {len(ok_nat)} MBs{hint}, e.g. MB "
                   f"(y={my[i[0]]}, x={mx[i[0]]}): levels {F[i[0]].tolist()} qmul {qmul[i[0]]} "
                   f"coeffs {D[i[0]].tolist()} expected {nat[i[0]].tolist()}")
    if flat:
        qp = fr.arrays["block/qp_y"][my * 4, mx * 4].astype(np.int64)
        expq = NORM4[qp % 6, 0] << (qp // 6 + 6)
        bad = (qmul != expq) & np.any(F != 0, (1, 2))
        if bad.any():
            out.append(f"{label}: luma DC dc_qmul {qmul[bad][:3]} != 16*normAdjust<<(qp/6+2) {expq[bad][:3]}")
    if stats is not None:
        stats["i16_mbs"] = stats.get("i16_mbs", 0) + int(sel.sum())
        stats["i16_nonsym"] = stats.get("i16_nonsym", 0) + int(np.any(F != np.swapaxes(F, 1, 2), (1, 2)).sum())
    return out


def check_chroma_dc(fr, label, flat=True, stats=None):
    """Chroma DC 4:2:0: coeff DC of chroma block (i, j) == (H2 . Fdc . H2 * qmul) >> 7."""
    out = []
    mode = fr.arrays["block/mode"][::4, ::4]
    sel = (mode != 3) & (mode != 4)
    my, mx = np.nonzero(sel)
    for c, k in ((1, "u"), (2, "v")):
        lev = fr.arrays[f"levels/{k}"].astype(np.int64)
        coef = fr.arrays[f"coeffs/{k}"].astype(np.int64)
        qmul = fr.arrays["h264/dc_qmul"][my, mx, c].astype(np.int64)
        rows = my[:, None] * 8 + np.array([0, 4])[None, :]
        cols = mx[:, None] * 8 + np.array([0, 4])[None, :]
        F = lev[rows[:, :, None], cols[:, None, :]]
        D = coef[rows[:, :, None], cols[:, None, :]]
        nat = ((H2 @ F @ H2) * qmul[:, None, None]) >> 7
        tr = ((H2 @ np.swapaxes(F, 1, 2) @ H2) * qmul[:, None, None]) >> 7
        ok = np.all(nat == D, axis=(1, 2))
        if not ok.all():
            i = np.flatnonzero(~ok)[0]
            hint = " (transposed levels match)" if np.all(tr[~ok] == D[~ok]) else ""
            out.append(f"{label} plane {k}: chroma DC mismatch in {int((~ok).sum())} MBs{hint}, e.g. MB "
                       f"(y={my[i]}, x={mx[i]}): levels {F[i].tolist()} qmul {qmul[i]} coeffs {D[i].tolist()} "
                       f"expected {nat[i].tolist()}")
        if flat:
            qpc = fr.arrays["block/qp_cb" if k == "u" else "block/qp_cr"][my * 4, mx * 4].astype(np.int64)
            expq = (16 * NORM4[qpc % 6, 0]) << (qpc // 6 + 2)
            bad = (qmul != expq) & np.any(F != 0, (1, 2))
            if bad.any():
                out.append(f"{label} plane {k}: chroma dc_qmul {qmul[bad][:3]} != flat formula {expq[bad][:3]}")
        if stats is not None:
            stats["chroma_dc_mbs"] = stats.get("chroma_dc_mbs", 0) + int(np.any(F != 0, (1, 2)).sum())
    return out


def check_flags_clean(fr, label, allowed=0):
    bad = int(fr.flags) & ~allowed & (CORRUPT | INCOMPLETE | UNSUPPORTED | LOSSLESS | PCM | NO_EXPORT)
    return [f"{label}: unexpected frame flags {int(fr.flags):#x}"] if bad else []


def is_flat(syn):
    sps, pps = syn.first_sps, syn.first_pps
    return not (sps["seq_scaling_nonflat"] or pps["pic_scaling_nonflat"])


# ----------------------------------------------------------------------------------- self-tests of
# the reference math (no pycodec needed)


def test_reference_idct_matches_exact_float_basis():
    """The integer IDCTs stay within rounding of G(C) = B C B^T / 64 (codec-internals 1.3) and
    reproduce DC-only blocks exactly ((c0 + 32) >> 6)."""
    B4 = np.array([[1, 1, 1, .5], [1, .5, -1, -1], [1, -.5, -1, 1], [1, -1, 1, -.5]])
    B8 = np.array([[1, 3/2, 1, 5/4, 1, 3/4, 1/2, 3/8], [1, 5/4, 1/2, -3/8, -1, -3/2, -1, -3/4],
                   [1, 3/4, -1/2, -3/2, -1, 3/8, 1, 5/4], [1, 3/8, -1, -3/4, 1, 5/4, -1/2, -3/2],
                   [1, -3/8, -1, 3/4, 1, -5/4, -1/2, 3/2], [1, -3/4, -1/2, 3/2, -1, -3/8, 1, -5/4],
                   [1, -5/4, 1/2, 3/8, -1, 3/2, -1, 3/4], [1, -3/2, 1, -5/4, 1, -3/4, 1/2, -3/8]])
    rng = np.random.default_rng(5)
    for n, idct, B in ((4, idct4, B4), (8, idct8, B8)):
        C = rng.integers(-600, 600, (2000, n, n)) * (rng.random((2000, n, n)) < 0.4)
        r = idct(C)
        g = B @ C @ B.T / 64
        assert np.abs(g - r).max() < 0.75
        assert np.mean(np.rint(g) != r) < 0.02
        dc = np.zeros((50, n, n), np.int64)
        dc[:, 0, 0] = np.arange(-25, 25) * 37
        assert np.array_equal(idct(dc), np.broadcast_to(((dc[:, 0, 0] + 32) >> 6)[:, None, None], dc.shape))
    # a single horizontal-frequency coefficient varies along x only (orientation: row = v)
    c = np.zeros((4, 4), np.int64)
    c[0, 1] = 640
    r = idct4(c)
    assert np.all(r == r[0:1, :]) and not np.all(r == r[:, 0:1])


def test_reference_qstep_tables():
    # Δ4 at qp 28 (qp%6 = 4, qp/6 = 4): 16, 20, 25 times 16
    cls = pos_class4()
    assert qstep4(np.full((4, 4), 28), cls)[0, 0] == 256
    assert qstep4(np.full((4, 4), 28), cls)[1, 1] == 400
    assert qstep4(np.full((4, 4), 28), cls)[0, 1] == 320
    c8 = pos_class8()
    assert c8[0, 0] == 0 and c8[1, 1] == 1 and c8[2, 2] == 2 and c8[0, 1] == 3 and c8[0, 2] == 4 and c8[1, 2] == 5
    assert qstep8(np.full((8, 8), 24), c8)[0, 0] == 20 * 16 / 4
    assert QPC[29] == 29 and QPC[30] == 29 and QPC[51] == 39 and len(QPC) == 52


def test_bitstream_writer_reader_roundtrip():
    w = hb.BitWriter()
    vals = [0, 1, 2, 3, 7, 8, 254, 255, 1000]
    for v in vals:
        w.ue(v).se(-v).se(v).u(3, v % 8)
    w.trailing()
    r = hb.BitReader(w.to_bytes())
    for v in vals:
        assert (r.ue(), r.se(), r.se(), r.u(3)) == (v, -v, v, v % 8)
    assert not r.more_rbsp_data()
    raw = bytes([0, 0, 0, 0, 0, 1, 0, 0, 2, 5, 0, 0, 3])
    assert hb.unescape_ebsp(hb.escape_rbsp(raw)) == raw
    assert b"\x00\x00\x00" not in hb.escape_rbsp(raw) and b"\x00\x00\x01" not in hb.escape_rbsp(raw)


@pytest.mark.parametrize("name", ["pcm", "pcm_slices", "paff_pcm"])
def test_pcm_streams_decode_to_written_samples_in_pyav(store, name):
    """The hand-written PCM streams are valid: PyAV's FFmpeg decodes them to exactly the samples."""
    _, expected = S.pcm_expected(S.SPECS[name])
    ref = pyav_decode(store.path(name), side_data=False)
    assert len(ref) == len(expected)
    for i, (r, e) in enumerate(zip(ref, expected)):
        for k, p in zip("yuv", r.planes):
            assert np.array_equal(p, e[k]), f"frame {i} plane {k}"


# ----------------------------------------------------------------------------------- invariants

SUPPORTED = S.SUPPORTED
X264_SUPPORTED = [n for n in SUPPORTED if S.SPECS[n].pcm is None]


def _label(name, fr):
    return f"{name} frame {fr.index} ({frame_type(fr.type)}, decode #{fr.decode_index})"


@pytest.mark.parametrize("name", SUPPORTED)
def test_decoded_equals_pyav(store, name):
    _info, frames = store.decode(name)
    ref = store.reference(name)
    assert len(frames) == len(ref), f"{name}: pycodec gave {len(frames)} frames, PyAV {len(ref)}"
    problems = []
    allowed = PCM if S.SPECS[name].pcm else 0
    for fr, rf in zip(frames, ref):
        lab = _label(name, fr)
        problems += check_decoded(fr, rf, lab)
        problems += check_flags_clean(fr, lab, allowed)
        if frame_type(fr.type) != rf.pict_type:
            problems.append(f"{lab}: type {fr.type!r} != PyAV pict_type {rf.pict_type!r}")
        if bool(fr.key) != rf.key:
            problems.append(f"{lab}: key {fr.key} != PyAV {rf.key}")
    assert [f.index for f in frames] == list(range(len(frames)))
    assert not problems, _fmt(problems)


@pytest.mark.parametrize("name", [n for n in SUPPORTED if S.SPECS[n].container != "avi"])
def test_pts_equal_pyav(store, name):
    """Timestamps equal PyAV's (AVI is left out: FFmpeg 5.1 and PyAV's newer FFmpeg derive AVI
    frame timestamps differently)."""
    _, frames = store.decode(name, "frame")
    assert [f.pts for f in frames] == [r.pts for r in store.reference(name)]


@pytest.mark.parametrize("name", SUPPORTED)
def test_metadata_matches_bitstream(store, name):
    """info matches the SPS; frame type/POC follow the slice headers (POC computed per 8.2.1)."""
    info, frames = store.decode(name, "frame")
    syn = store.syntax(name)
    sps = syn.first_sps
    assert info["codec"] == "h264"
    assert (info["coded_width"], info["coded_height"]) == (sps["coded_width"], sps["coded_height"])
    assert (info["width"], info["height"]) == (sps["width"], sps["height"])
    left, right, top, bottom = sps["crop_lrtb"]
    assert tuple(info["crop"]) == (top, bottom, left, right)
    assert info["bit_depth"] == 8 and info["chroma_format"] == "420"
    pics = syn.pictures()
    pocs = hb.picture_pocs(syn)
    assert sorted(f.decode_index for f in frames) == list(range(len(pics)))
    problems = []
    for fr in frames:
        first = pics[fr.decode_index][0]
        t = "PBI"[first["slice_type"]] if first["slice_type"] < 3 else "?"
        if frame_type(fr.type) != t:
            problems.append(f"{_label(name, fr)}: type {fr.type!r}, first slice says {t}")
        if pocs is not None and fr.poc != pocs[fr.decode_index]:
            hint = " (FFmpeg's internal 1<<16 POC offset leaks)" if fr.poc - pocs[fr.decode_index] == 1 << 16 else ""
            problems.append(f"{_label(name, fr)}: poc {fr.poc}, slice header POC {pocs[fr.decode_index]}{hint}")
        if fr.pkt_bytes <= 0:
            problems.append(f"{_label(name, fr)}: pkt_bytes {fr.pkt_bytes}")
    # display order = POC order within each IDR period
    for a, b in itertools.pairwise(frames):
        if b.poc <= a.poc and pics[b.decode_index][0]["nal_type"] != hb.NAL_IDR:
            problems.append(f"{_label(name, b)}: poc {b.poc} after poc {a.poc} in display order")
    assert not problems, _fmt(problems)


@pytest.mark.parametrize("name", SUPPORTED)
def test_recon_is_clipped_prediction_plus_residual(store, name):
    _info, frames = store.decode(name)
    problems = []
    for fr in frames:
        for k in "yuv":
            d = fr.arrays[f"decoded/{k}"]
            for g, dt in (("prediction", np.uint8), ("recon", np.uint8), ("residual", np.int16)):
                a = fr.arrays[f"{g}/{k}"]
                if a.shape != d.shape or a.dtype != dt:
                    problems.append(f"{_label(name, fr)} {g}/{k}: {a.dtype}{a.shape}, expected {np.dtype(dt)}{d.shape}")
        if not problems:
            problems += check_recon(fr, _label(name, fr))
    assert not problems, _fmt(problems)
    # the export is not trivially empty
    assert any(np.any(f.arrays["residual/y"] != 0) for f in frames) or S.SPECS[name].pcm
    assert all(np.any(f.arrays["recon/y"] != 0) for f in frames)


@pytest.mark.parametrize("name", ["nodeblock", "pcm", "pcm_slices"])
def test_recon_equals_decoded_without_loop_filter(store, name):
    syn = store.syntax(name)
    assert all(s["disable_deblocking"] == 1 for s in syn.slices)
    _info, frames = store.decode(name)
    problems = []
    for fr in frames:
        for k in "yuv":
            a, b = fr.arrays[f"recon/{k}"], fr.arrays[f"decoded/{k}"]
            if not np.array_equal(a, b):
                problems.append(f"{_label(name, fr)} plane {k}: recon != decoded at {(a != b).sum()} samples")
    assert not problems, _fmt(problems)


@pytest.mark.parametrize("name", SUPPORTED)
def test_motion_vectors_equal_ffmpeg_export(store, name):
    _info, frames = store.decode(name)
    ref = store.reference(name)
    assert len(frames) == len(ref)
    problems = []
    total = 0
    for fr, rf in zip(frames, ref):
        problems += check_mvs(fr, rf, _label(name, fr))
        problems += check_mv_uniform_in_pu(fr, _label(name, fr))
        total += len(rf.mvs)
    assert not problems, _fmt(problems)
    if not S.SPECS[name].pcm:
        assert total > 0, "FFmpeg exported no motion vectors at all: the comparison proved nothing"


@pytest.mark.parametrize("name", SUPPORTED)
def test_qp_equals_venc_params(store, name):
    _info, frames = store.decode(name)
    ref = store.reference(name)
    pps = store.syntax(name).first_pps
    problems = []
    for fr, rf in zip(frames, ref):
        problems += check_qp(fr, rf, _label(name, fr))
        problems += check_qp_chroma(fr, pps, _label(name, fr))
    assert not problems, _fmt(problems)


@pytest.mark.parametrize("name", SUPPORTED)
def test_output_identical_with_export_on_and_off(store, name):
    _, full = store.decode(name)
    _, plain = store.decode(name, "frame,decoded")
    assert_export_keeps_output(full, plain)


@pytest.mark.parametrize("name", ["main_b", "cavlc_8x8", "slices4", "pcm"])
def test_two_runs_identical(store, name):
    _, a = store.decode(name)
    _, b = pycodec_decode(store.path(name), None)  # a second, independent run
    assert_runs_identical(a, b, name)


@pytest.mark.parametrize("name", SUPPORTED)
def test_residual_is_idct_of_coefficients(store, name):
    info, frames = store.decode(name)
    problems = []
    stats: dict = {}
    for fr in frames:
        problems += check_idct(fr, info, _label(name, fr), stats)
    assert not problems, _fmt(problems)
    if not S.SPECS[name].pcm:  # PCM and P_Skip only: no coded blocks
        assert stats["blocks_y"] > 0 and stats["blocks_u"] > 0, f"no coded blocks checked: {stats}"


@pytest.mark.parametrize("name", SUPPORTED)
def test_levels_qstep_and_flat_dequantisation(store, name):
    info, frames = store.decode(name)
    syn = store.syntax(name)
    flat = is_flat(syn)
    assert flat, f"{name}: x264 streams are expected to use flat matrices"
    problems = []
    stats: dict = {}
    for fr in frames:
        problems += check_levels_qstep(fr, info, syn.first_pps, _label(name, fr), flat, stats)
    assert not problems, _fmt(problems)
    if not S.SPECS[name].pcm:
        assert stats["levels_y"] > 0, stats


@pytest.mark.parametrize("name", SUPPORTED)
def test_intra16x16_dc_hadamard(store, name):
    _info, frames = store.decode(name)
    problems = []
    for fr in frames:
        problems += check_intra16_dc(fr, _label(name, fr), True)
    assert not problems, _fmt(problems)


def test_intra16x16_dc_orientation_is_determined(store):
    """Enough i16x16 MBs with non-symmetric DC level matrices exist across the streams for the
    orientation assertion of test_intra16x16_dc_hadamard to mean something."""
    stats: dict = {}
    for name in X264_SUPPORTED:
        for fr in store.decode(name)[1]:
            check_intra16_dc(fr, name, True, stats)
    assert stats.get("i16_mbs", 0) > 0, f"no intra 16x16 macroblocks in any stream: {stats}"
    assert stats.get("i16_nonsym", 0) > 0, f"no i16x16 MB with a non-symmetric DC matrix: {stats}"


@pytest.mark.parametrize("name", SUPPORTED)
def test_chroma_dc_hadamard(store, name):
    _info, frames = store.decode(name)
    problems = []
    stats: dict = {}
    for fr in frames:
        problems += check_chroma_dc(fr, _label(name, fr), True, stats)
    assert not problems, _fmt(problems)
    if not S.SPECS[name].pcm:
        assert stats.get("chroma_dc_mbs", 0) > 0, "no chroma DC levels checked"


def _luma_weights(syn, decode_index, lst):
    """{ref idx: (w, o, log2_denom)} of explicit luma weights for list ``lst`` of a picture; None
    when its slices disagree (then the picture is not checked)."""
    tables = []
    for s in syn.pictures()[decode_index]:
        tables.append({i: (wo[0], wo[1], s["luma_log2_denom"])
                       for i, wo in enumerate(s["luma_wo"][lst]) if wo is not None})
    return tables[0] if all(t == tables[0] for t in tables) else None


def weighted(sample, w, o, log_wd):
    """Explicit weighted sample prediction, one list (8.4.2.3.2), 8-bit."""
    s = sample.astype(np.int64) * w
    if log_wd >= 1:
        s = (s + (1 << (log_wd - 1))) >> log_wd
    return np.clip(s + o, 0, 255)


@pytest.mark.parametrize("name", X264_SUPPORTED)
def test_inter_prediction_integer_mv(store, name):
    """Motion-compensated prediction sanity: single-list blocks with full-sample MVs predict exactly
    the reference picture's (decoded) samples at the displaced position, weighted with the slice's
    explicit luma weight where it has one (implicit weights only apply to bi-prediction)."""
    info, frames = store.decode(name)
    syn = store.syntax(name)
    pps = syn.first_pps
    by_poc = {}
    for f in frames:
        by_poc.setdefault(f.poc, []).append(f)
    crop = info["crop"]
    H, W = info["height"], info["width"]
    cropped = any(crop)
    checked = weighted_checked = 0
    problems = []
    for fr in frames:
        t = frame_type(fr.type)
        if t == "I":
            continue
        if t == "B" and pps["weighted_bipred_idc"] == 1:
            continue
        mode = fr.arrays["block/mode"]
        pred = fr.arrays["prediction/y"]
        for L in (0, 1):
            ref = fr.arrays[f"block/ref_l{L}"]
            other = fr.arrays[f"block/ref_l{1 - L}"]
            mv = fr.arrays[f"block/mv_l{L}"].astype(np.int64)
            rpoc = fr.arrays[f"block/ref_poc_l{L}"]
            sel = (ref >= 0) & (other < 0) & np.isin(mode, (1, 2)) & np.all(mv % 4 == 0, -1)
            wts = _luma_weights(syn, fr.decode_index, L)
            if wts is None:
                continue
            for by, bx in zip(*np.nonzero(sel)):
                y0, x0 = by * 4, bx * 4
                if y0 + 4 > H or x0 + 4 > W:
                    continue
                cands = by_poc.get(int(rpoc[by, bx]), [])
                if len(cands) != 1:
                    continue
                dec = cands[0].arrays["decoded/y"]
                dy, dx = mv[by, bx, 1] // 4, mv[by, bx, 0] // 4
                ys = np.arange(y0, y0 + 4) + dy
                xs = np.arange(x0, x0 + 4) + dx
                if cropped and (ys.min() < 0 or xs.min() < 0 or ys.max() >= H or xs.max() >= W):
                    continue
                blk = dec[np.clip(ys, 0, H - 1)[:, None], np.clip(xs, 0, W - 1)[None, :]]
                if int(ref[by, bx]) in wts:
                    blk = weighted(blk, *wts[int(ref[by, bx])])
                    weighted_checked += 1
                checked += 1
                if not np.array_equal(blk, pred[y0:y0 + 4, x0:x0 + 4]):
                    problems.append(f"{_label(name, fr)} block (y={by}, x={bx}) list {L} mv {mv[by, bx].tolist()} "
                                    f"ref poc {rpoc[by, bx]}: prediction differs from the displaced reference")
    assert not problems, _fmt(problems)
    assert checked > 0, "no integer-MV single-list block to check"
    if name == "weightp":
        assert weighted_checked > 0, "no explicitly weighted block checked"


def test_pcm_stream_exports(store):
    """I_PCM: prediction == recon == decoded == the written samples, residual 0, mode 3, QP 0;
    P_Skip around them: a copy of the previous frame (mv 0, ref 0), mode 2, slice QP."""
    name = "pcm"
    spec = S.SPECS[name]
    pics, _crop = S.pcm_pictures(spec)
    _, expected = S.pcm_expected(spec)
    _info, frames = store.decode(name)
    assert len(frames) == len(expected)
    mbw = spec.width // 16
    mbh = spec.height // 16
    for i, (fr, exp) in enumerate(zip(frames, expected)):
        lab = _label(name, fr)
        pcm_mbs = np.ones((mbh, mbw), bool) if pics[i].kind == "I" else pics[i].pcm_mask
        pcm4 = expand(pcm_mbs, 4)
        for k in "yuv":
            assert np.array_equal(fr.arrays[f"decoded/{k}"], exp[k]), f"{lab} decoded/{k}"
            assert np.array_equal(fr.arrays[f"recon/{k}"], exp[k]), f"{lab} recon/{k}"
            assert not fr.arrays[f"residual/{k}"].any(), f"{lab} residual/{k} not 0"
            assert not fr.arrays[f"coeffs/{k}"].any() and not fr.arrays[f"levels/{k}"].any()
            # PCM blocks predict themselves; skipped blocks predict the previous frame
            want = exp[k] if i == 0 else np.where(
                expand(pcm_mbs, 16 if k == "y" else 8)[:exp[k].shape[0], :exp[k].shape[1]], exp[k],
                expected[i - 1][k])
            assert np.array_equal(fr.arrays[f"prediction/{k}"], want), f"{lab} prediction/{k}"
        mode = fr.arrays["block/mode"]
        assert np.all(mode[pcm4] == 3), f"{lab}: mode {np.unique(mode[pcm4])} at PCM blocks"
        assert np.all(mode[~pcm4] == 2), f"{lab}: mode {np.unique(mode[~pcm4])} at skipped blocks"
        assert np.all(fr.arrays["block/tkind"][pcm4] == TK_PCM)
        assert np.all(fr.arrays["block/qp_y"][pcm4] == 0), f"{lab}: PCM QP"
        assert np.all(fr.arrays["block/qp_cb"][pcm4] == 0) and np.all(fr.arrays["block/qp_cr"][pcm4] == 0)
        assert np.all(fr.arrays["block/qp_y"][~pcm4] == 26), f"{lab}: skip QP (slice QP 26)"
        assert np.all(fr.arrays["block/ref_l0"][pcm4] == -1) and np.all(fr.arrays["block/ref_l1"] == -1)
        assert np.all(fr.arrays["block/ref_l0"][~pcm4] == 0)
        assert not fr.arrays["block/mv_l0"][~pcm4].any()
        if i:
            assert np.all(fr.arrays["block/ref_poc_l0"][~pcm4] == frames[i - 1].poc)
        assert bool(int(fr.flags) & PCM) == bool(pcm_mbs.any()), f"{lab}: PCM flag {int(fr.flags):#x}"
        assert not int(fr.flags) & (CORRUPT | INCOMPLETE | UNSUPPORTED | LOSSLESS | NO_EXPORT)
        assert np.all(fr.arrays["h264/mb_type"][pcm_mbs] & MB_INTRA_PCM)


def test_slices_with_their_own_reference_lists(store):
    """Slices of one picture with their own reference lists (ref_pic_list_modification) and QPs:
    the P_Skip MBs of each slice copy (mv 0, ref idx 0) the frame its list puts first, and carry
    that frame's POC and the slice's QP; the decoded frames are the written samples."""
    name = "pcm_slices"
    spec = S.SPECS[name]
    pics, _crop = S.pcm_pictures(spec)
    _, expected = S.pcm_expected(spec)
    _info, frames = store.decode(name)
    assert len(frames) == len(expected) == spec.frames
    mbh = spec.height // 16
    seen = set()
    for i, (fr, exp, pic) in enumerate(zip(frames, expected, pics)):
        lab = _label(name, fr)
        for k in "yuv":
            assert np.array_equal(fr.arrays[f"decoded/{k}"], exp[k]), f"{lab} decoded/{k}"
        if pic.kind == "I":
            continue
        ends = [s.first_row for s in pic.slices[1:]] + [mbh]
        for sl, end in zip(pic.slices, ends):
            rows = slice(4 * sl.first_row, 4 * end)
            skip = ~expand(pic.pcm_mask, 4)[rows]
            a = {k: fr.arrays[f"block/{k}"][rows][skip] for k in ("ref_poc_l0", "ref_l0", "mv_l0", "qp_y", "qp_cb")}
            want_poc = frames[i - sl.ref_back].poc
            assert np.all(a["ref_poc_l0"] == want_poc), f"{lab} slice at row {sl.first_row}: ref_poc " \
                f"{np.unique(a['ref_poc_l0']).tolist()} != {want_poc} (ref_back {sl.ref_back})"
            assert np.all(a["ref_l0"] == 0) and not a["mv_l0"].any(), f"{lab} slice at row {sl.first_row}"
            qp = 26 + sl.qp_delta
            assert np.all(a["qp_y"] == qp) and np.all(a["qp_cb"] == chroma_qp(qp, 0)), \
                f"{lab} slice at row {sl.first_row}: QP {np.unique(a['qp_y']).tolist()} != {qp}"
            seen.add((sl.ref_back, sl.qp_delta != 0))
    assert seen == {(1, False), (1, True), (2, False), (2, True)}, seen
