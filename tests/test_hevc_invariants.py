"""Invariants of the HEVC export on every generated HEVC stream (tests/hevc_streams.py).

Oracles that do not depend on pycodec: PyAV's own FFmpeg (decoded pictures, frame types, keys,
timestamps), the stream syntax parsed by tests/hevc_bitstream.py (sizes, POCs, slice QPs, chroma
QP offsets, scaling lists), and an integer re-implementation of HEVC dequantisation and of
FFmpeg's inverse transforms written from the spec (ITU-T H.265 8.6.2-8.6.4;
shared/design/codec-internals.md section 2.3).

The helpers (transforms, CU/TU maps, chroma QP) are shared with test_hevc_features.py.
"""

from __future__ import annotations

import itertools

import hevc_bitstream as hb
import hevc_streams as H
import numpy as np
import pytest
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
    pycodec_decode,
)

# ----------------------------------------------------------------------------------- enums

MODE_INTRA, MODE_INTER, MODE_SKIP, MODE_PCM, MODE_BYPASS = range(5)
TK_NONE, TK_PCM, TK_BYPASS, TK_DCT, TK_DST, TK_TS = 0, 4, 5, 6, 7, 8
PART_2Nx2N, PART_2NxN, PART_Nx2N, PART_NxN, PART_2NxnU, PART_2NxnD, PART_nLx2N, PART_nRx2N = range(8)
# hevc/cu columns and hevc/tu columns
CU_X, CU_Y, CU_LOG2, CU_PRED, CU_PART, CU_BYPASS, CU_PCM, CU_QP = range(8)
TU_X, TU_Y, TU_LOG2, TU_DEPTH, TU_CBF_Y, TU_CBF_CB, TU_CBF_CR, TU_K_Y, TU_K_CB, TU_K_CR = range(10)

# ----------------------------------------------------------------------------------- HEVC math

LEVEL_SCALE = np.array([40, 45, 51, 57, 64, 72], np.int64)
# Table 8-10: QpC as a function of qPi for ChromaArrayType 1, qPi = 30..43
QPC_30_43 = np.array([29, 30, 31, 32, 33, 33, 34, 34, 35, 35, 36, 36, 37, 37], np.int64)
DST4 = np.array([[29, 55, 74, 84], [74, 74, 0, -74], [84, -29, -74, 55], [55, -84, 74, -29]], np.int64)
# 8.6.4.2: the odd-frequency coefficients of the 32-point transform: c[j] ~ 64*sqrt(2)*cos(j*pi/64)
_COS64 = {0: 64, 16: 64, 8: 83, 24: 36, 4: 89, 12: 75, 20: 50, 28: 18, 2: 90, 6: 87, 10: 80, 14: 70, 18: 57,
          22: 43, 26: 25, 30: 9, 32: 0}
_COS64.update(zip(range(1, 32, 2), (90, 90, 88, 85, 82, 78, 73, 67, 61, 54, 46, 38, 31, 22, 13, 4)))


def _cos64(m):
    """The integer 'cosine' of angle m*pi/64 (sign from the quadrant)."""
    m %= 128
    if m <= 32:
        return _COS64[m]
    if m <= 64:
        return -_COS64[64 - m]
    if m <= 96:
        return -_COS64[m - 64]
    return _COS64[128 - m]


def dct_matrix(n: int) -> np.ndarray:
    """transMatrix of an n-point HEVC DCT: row k = basis function k (the 32-point matrix's row
    k*32/n, first n columns)."""
    k = np.arange(n)[:, None] * (32 // n)
    x = np.arange(n)[None, :]
    return np.vectorize(_cos64)(k * (2 * x + 1)).astype(np.int64)


def clip16(x):
    return np.clip(x, -32768, 32767)


def inverse_transform(c, log2, kind, bd):
    """FFmpeg's HEVC residual of coefficient blocks c[..., v, u] (natural orientation): column
    pass first, clip16 after each pass (hevcdsp_template.c), DST for intra luma 4x4, transform
    skip as hevcdsp.dequant (no rotation / RDPCM: Main and Main10 have none)."""
    c = np.asarray(c, np.int64)
    if kind == TK_TS:
        s = 15 - bd - log2
        return ((c + (1 << (s - 1))) >> s) if s > 0 else clip16(c << -s)
    m = DST4 if kind == TK_DST else dct_matrix(1 << log2)
    e = clip16((np.swapaxes(m, -1, -2) @ c + 64) >> 7)
    return clip16((e @ m + (1 << (19 - bd))) >> (20 - bd))


def qstep_of(qp, m, log2, bd):
    """Δ = m * levelScale[qP % 6] * 2^(qP / 6) / 2^(bd + log2N - 5)  (8.6.3 scaling process)."""
    qp = np.asarray(qp, np.int64)
    return m * LEVEL_SCALE[qp % 6] * np.exp2(qp // 6) / np.exp2(bd + log2 - 5)


def chroma_qp(qp_y, offset, qp_bd_offset):
    """Qp'C for 4:2:0 (8.6.1): qPi = Clip3(-QpBdOffsetC, 57, QpY + offsets), Table 8-10, + QpBdOffsetC."""
    qpi = np.clip(np.asarray(qp_y, np.int64) + offset, -qp_bd_offset, 57)
    qpc = np.where(qpi < 30, qpi, np.where(qpi > 43, qpi - 6, QPC_30_43[np.clip(qpi - 30, 0, 13)]))
    return qpc + qp_bd_offset


# ----------------------------------------------------------------------------------- export access


def label(name, fr):
    return f"{name} frame {fr.index} ({frame_type(fr.type)}, poc {fr.poc}, decode #{fr.decode_index})"


def fmt(problems, limit=8):
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n  " + "\n  ".join(problems[:limit]) + more


def where(mask, limit=3):
    ys, xs = np.nonzero(mask)
    return ", ".join(f"(y={y}, x={x})" for y, x in zip(ys[:limit], xs[:limit]))


def cu_rows(fr) -> np.ndarray:
    n = int(fr.arrays["hevc/counts"][0])
    return fr.arrays["hevc/cu"][:n].astype(np.int64)


def tu_rows(fr) -> np.ndarray:
    n = int(fr.arrays["hevc/counts"][1])
    return fr.arrays["hevc/tu"][:n].astype(np.int64)


def paint_cus(fr, shape4):
    """Per 4x4 luma block maps from hevc/cu: index of the CU (-1 where none) and its columns."""
    cus = cu_rows(fr)
    idx = np.full(shape4, -1, np.int64)
    overlap = np.zeros(shape4, np.int64)
    for i, r in enumerate(cus):
        s = (1 << r[CU_LOG2]) // 4
        y0, x0 = r[CU_Y] // 4, r[CU_X] // 4
        idx[y0:y0 + s, x0:x0 + s] = i
        overlap[y0:y0 + s, x0:x0 + s] += 1
    maps = {"index": idx, "overlap": overlap}
    for col, key in ((CU_LOG2, "log2"), (CU_PRED, "pred"), (CU_PART, "part"), (CU_BYPASS, "bypass"),
                     (CU_PCM, "pcm"), (CU_QP, "qp"), (CU_X, "x"), (CU_Y, "y")):
        maps[key] = np.where(idx >= 0, cus[np.maximum(idx, 0), col] if len(cus) else 0, -1)
    return cus, maps


def component_tus(tus):
    """Transform blocks per component: list of (plane, x, y, log2, cbf, kind) in that plane's
    sample grid, kind forced to TK_NONE where the cbf is 0 (the export names the kind the TU would
    have had).  4:2:0 chroma of a luma TU of size N > 4 is N/2 at half the position; the four
    4x4 luma TUs of an 8x8 share one 4x4 chroma block at the parent's position (its cbf/kind are
    recorded on one of the four rows, blkIdx 3; the rows must not disagree).  Rows with
    trafo_depth -1 (CUs without a transform tree) carry no residual and are left out."""
    out = []
    groups: dict = {}
    for r in tus:
        if r[TU_DEPTH] < 0:
            continue
        x, y, lg = int(r[TU_X]), int(r[TU_Y]), int(r[TU_LOG2])
        out.append(("y", x, y, lg, int(r[TU_CBF_Y]), int(r[TU_K_Y]) if r[TU_CBF_Y] else TK_NONE))
        if lg > 2:
            for plane, cb, k in (("u", TU_CBF_CB, TU_K_CB), ("v", TU_CBF_CR, TU_K_CR)):
                out.append((plane, x // 2, y // 2, lg - 1, int(r[cb]), int(r[k]) if r[cb] else TK_NONE))
        else:
            groups.setdefault((x & ~7, y & ~7), []).append(r)
    conflicts = []
    for (px, py), rows in groups.items():
        for plane, cb, k in (("u", TU_CBF_CB, TU_K_CB), ("v", TU_CBF_CR, TU_K_CR)):
            coded = [r for r in rows if r[cb]]
            kinds = {int(r[k]) for r in coded}
            if len(kinds) > 1 or len(coded) > 1:
                conflicts.append(f"4x4 luma TUs at ({px}, {py}) record the {plane} TU {len(coded)} times "
                                 f"(kinds {sorted(kinds)})")
            out.append((plane, px // 2, py // 2, 2, int(bool(coded)), int(coded[0][k]) if coded else TK_NONE))
    return out, conflicts


def plane_shape(info, plane):
    ch, cw = info["coded_height"], info["coded_width"]
    return (ch, cw) if plane == "y" else (ch // 2, cw // 2)


def coded_canvas(info, fr, group, plane):
    """A display-size plane of ``group`` placed into its coded-size canvas, with the valid mask."""
    top, _bottom, left, _right = info["crop"]
    sub = 1 if plane == "y" else 2
    shape = plane_shape(info, plane)
    a = fr.arrays[f"{group}/{plane}"]
    canvas = np.zeros(shape, np.int64)
    mask = np.zeros(shape, bool)
    t, lft = top // sub, left // sub
    canvas[t:t + a.shape[0], lft:lft + a.shape[1]] = a
    mask[t:t + a.shape[0], lft:lft + a.shape[1]] = True
    return canvas, mask


def gather(a, xs, ys, n):
    """Blocks a[y:y+n, x:x+n] for arrays of top-left corners -> (len, n, n)."""
    xs, ys = np.asarray(xs), np.asarray(ys)
    r = ys[:, None, None] + np.arange(n)[None, :, None]
    c = xs[:, None, None] + np.arange(n)[None, None, :]
    return a[r, c]


def expand(a, n):
    return np.repeat(np.repeat(a, n, 0), n, 1)


def bit_depth(info):
    return int(info["bit_depth"])


# ----------------------------------------------------------------------------------- checks


def check_decoded(fr, ref, lab):
    out = []
    for k, rp in zip("yuv", ref.planes):
        got = fr.arrays[f"decoded/{k}"]
        if got.shape != rp.shape or got.dtype != rp.dtype:
            out.append(f"{lab} decoded/{k}: {got.dtype}{got.shape} != PyAV {rp.dtype}{rp.shape}")
        elif not np.array_equal(got, rp):
            d = got != rp
            out.append(f"{lab} decoded/{k}: {int(d.sum())} samples differ from PyAV, first at {where(d)}")
    return out


def check_recon(fr, bd, lab):
    out = []
    for k in "yuv":
        pred = fr.arrays[f"prediction/{k}"].astype(np.int64)
        res = fr.arrays[f"residual/{k}"].astype(np.int64)
        rec = fr.arrays[f"recon/{k}"].astype(np.int64)
        bad = np.clip(pred + res, 0, (1 << bd) - 1) != rec
        if bad.any():
            out.append(f"{lab} plane {k}: recon != clip(pred + res) at {int(bad.sum())} samples, first {where(bad)}: "
                       f"pred={pred[bad][:3]} res={res[bad][:3]} recon={rec[bad][:3]}")
    return out


def check_transforms(fr, info, lab, stats):
    """residual == inverse transform of coeffs in every coded TU of every plane; residual, coeffs
    and levels are 0 outside coded TUs; bypass TUs: residual == levels == coeffs."""
    bd = bit_depth(info)
    out = []
    comps, conflicts = component_tus(tu_rows(fr))
    out += [f"{lab}: {c}" for c in conflicts]
    mode = fr.arrays["block/mode"]
    for plane in "yuv":
        coef = fr.arrays[f"coeffs/{plane}"].astype(np.int64)
        lev = fr.arrays[f"levels/{plane}"].astype(np.int64)
        shape = plane_shape(info, plane)
        if coef.shape != shape or lev.shape != shape:
            out.append(f"{lab} coeffs/levels {plane}: {coef.shape}/{lev.shape}, coded plane {shape}")
            continue
        res, valid = coded_canvas(info, fr, "residual", plane)
        covered = np.zeros(shape, bool)
        groups: dict = {}
        for p, x, y, lg, cbf, kind in comps:
            if p != plane:
                continue
            if cbf and kind == TK_NONE:
                out.append(f"{lab} plane {plane}: coded TU ({x}, {y}) 2^{lg} without a transform kind")
            if kind == TK_NONE:
                continue
            n = 1 << lg
            if y + n > shape[0] or x + n > shape[1]:
                out.append(f"{lab} plane {plane}: TU ({x}, {y}) 2^{lg} outside the coded plane")
                continue
            if covered[y:y + n, x:x + n].any():
                out.append(f"{lab} plane {plane}: coded TUs overlap at ({x}, {y})")
            covered[y:y + n, x:x + n] = True
            groups.setdefault((kind, lg), []).append((x, y))
        for (kind, lg), xy in groups.items():
            xs, ys = np.array(xy).T
            n = 1 << lg
            c = gather(coef, xs, ys, n)
            got = gather(res, xs, ys, n)
            ok = gather(valid, xs, ys, n)
            if kind == TK_BYPASS:
                exp = gather(lev, xs, ys, n)
                if np.any(c != exp):
                    out.append(f"{lab} plane {plane}: bypass TUs whose coeffs != levels")
            elif kind in (TK_DCT, TK_DST, TK_TS):
                exp = inverse_transform(c, lg, kind, bd)
            else:
                out.append(f"{lab} plane {plane}: TU kind {kind} not expected in a TU row")
                continue
            if kind == TK_DST and (plane != "y" or lg != 2):
                out.append(f"{lab} plane {plane}: DST on a 2^{lg} TU")
            if kind == TK_TS and lg > 2:
                out.append(f"{lab} plane {plane}: transform skip on a 2^{lg} TU (log2_max_transform_skip_block_size 2)")
            bad = ok & (exp != got)
            if bad.any():
                i = np.flatnonzero(bad.any((1, 2)))
                k = i[0]
                out.append(f"{lab} plane {plane}: residual != {_KIND_NAMES[kind]}(coeffs) in {len(i)} of {len(xs)} "
                           f"2^{lg} TUs, first at (x={xs[k]}, y={ys[k]}): coeffs {c[k].tolist()} residual "
                           f"{got[k].tolist()} expected {exp[k].tolist()}")
            key = f"{plane}:{_KIND_NAMES[kind]}{n}"
            stats[key] = stats.get(key, 0) + len(xs)
        for what, arr in (("residual", res), ("coeffs", coef), ("levels", lev)):
            stray = ~covered & (arr != 0)
            if what == "residual":
                stray &= valid
            if stray.any():
                out.append(f"{lab} plane {plane}: {what} != 0 outside coded TUs at {int(stray.sum())} samples, "
                           f"first {where(stray)}")
    # DST only in intra CUs
    for p, x, y, lg, _cbf, kind in comps:
        if kind == TK_DST and mode[y // 4, x // 4] != MODE_INTRA:
            out.append(f"{lab}: DST TU at ({x}, {y}) in a block of mode {mode[y // 4, x // 4]}")
            break
    return out


_KIND_NAMES = {TK_DCT: "DCT", TK_DST: "DST", TK_TS: "TS", TK_BYPASS: "BYPASS"}


def check_dequantisation(fr, info, sps, pps, lab, stats):
    """coeffs == clip16(floor(levels * qstep + 1/2)) wherever qstep > 0; in every coded TU qstep
    equals m * levelScale[qP % 6] * 2^(qP/6) / 2^(bd + log2N - 5) with qP the exported block QP
    and m the ScalingFactor of the TU (16 without scaling lists); bypass TUs have qstep 0."""
    bd = bit_depth(info)
    out = []
    lists = hb.active_scaling_lists(sps, pps)
    comps, _ = component_tus(tu_rows(fr))
    mode = fr.arrays["block/mode"]
    qpmap = {"y": fr.arrays["block/qp_y"].astype(np.int64), "u": fr.arrays["block/qp_cb"].astype(np.int64),
             "v": fr.arrays["block/qp_cr"].astype(np.int64)}
    for ci, plane in enumerate("yuv"):
        coef = fr.arrays[f"coeffs/{plane}"].astype(np.int64)
        lev = fr.arrays[f"levels/{plane}"].astype(np.int64)
        qs = fr.arrays[f"qstep/{plane}"]
        if qs.dtype != np.float32:
            out.append(f"{lab} qstep/{plane}: dtype {qs.dtype}, expected float32")
        qs = qs.astype(np.float64)
        if np.any(qs < 0):
            out.append(f"{lab} qstep/{plane}: negative steps")
        pos = qs > 0
        exp = clip16(np.floor(lev * qs + 0.5)).astype(np.int64)
        bad = pos & (exp != coef)
        if bad.any():
            out.append(f"{lab} plane {plane}: coeffs != clip16(floor(levels*qstep + 1/2)) at {int(bad.sum())} "
                       f"positions, first {where(bad)}: level {lev[bad][:3]} qstep {qs[bad][:3]} coeff {coef[bad][:3]}")
        zero_lev = (lev == 0) & (coef != 0)
        if zero_lev.any():
            out.append(f"{lab} plane {plane}: nonzero coefficients with level 0 at {where(zero_lev)}")
        nz = lev != 0
        stats[f"levels_{plane}"] = stats.get(f"levels_{plane}", 0) + int((nz & pos).sum())
        sub = 1 if plane == "y" else 2
        for p, x, y, lg, _cbf, kind in comps:
            if p != plane or kind == TK_NONE:
                continue
            n = 1 << lg
            q = qs[y:y + n, x:x + n]
            by, bx = (y * sub) // 4, (x * sub) // 4
            if kind == TK_BYPASS:
                if np.any(q != 0):
                    out.append(f"{lab} plane {plane}: qstep != 0 in the bypass TU at ({x}, {y})")
                continue
            qp = int(qpmap[plane][by, bx])
            inter = mode[by, bx] != MODE_INTRA
            m = 16 if lists is None or (kind == TK_TS and lg > 2) else hb.scaling_factor(lists, lg, 3 * inter + ci)
            want = np.float32(qstep_of(qp, m, lg, bd)) * np.ones((n, n), np.float32)
            if not np.array_equal(q.astype(np.float32), want):
                i = np.argwhere(q.astype(np.float32) != want)[0]
                out.append(f"{lab} plane {plane}: qstep of the 2^{lg} {_KIND_NAMES.get(kind, kind)} TU at ({x}, {y}) "
                           f"(qP {qp}, {'inter' if inter else 'intra'}) is {q[i[0], i[1]]} at (v={i[0]}, u={i[1]}), "
                           f"expected {want[i[0], i[1]]}{' (scaling list)' if lists is not None else ''}")
                if len(out) > 20:
                    return out
            stats["tus_checked"] = stats.get("tus_checked", 0) + 1
    return out


def check_qp(fr, sps, pps, pic, lab):
    """block/qp_y == QpY of the CU (hevc/cu) + QpBdOffset; qp_cb / qp_cr == Qp'Cb / Qp'Cr from QpY
    and the PPS + slice chroma offsets (8.6.1); without cu_qp_delta every CU has the slice QP."""
    out = []
    a = fr.arrays
    qy = a["block/qp_y"].astype(np.int64)
    cus, maps = paint_cus(fr, qy.shape)
    off = sps["qp_bd_offset"]
    # (PCM and transquant-bypass CUs dequantise nothing: their block QPs are not compared)
    has = (maps["index"] >= 0) & (maps["pcm"] != 1) & (maps["bypass"] != 1)
    bad = has & (qy != maps["qp"] + off)
    if bad.any():
        out.append(f"{lab}: block/qp_y != hevc/cu qp_y + {off} at {int(bad.sum())} blocks, first {where(bad)}: "
                   f"{qy[bad][:3]} vs cu {maps['qp'][bad][:3]}")
    if len(cus) and (cus[:, CU_QP].min() < -off or cus[:, CU_QP].max() > 51):
        out.append(f"{lab}: CU QpY out of [-{off}, 51]: {cus[:, CU_QP].min()}..{cus[:, CU_QP].max()}")
    seg = pic.block_slice_map(sps, *qy.shape)
    for k, pk, sk in (("cb", "cb_qp_offset", "slice_cb_qp_offset"), ("cr", "cr_qp_offset", "slice_cr_qp_offset")):
        offs = np.array([pps[pk] + s[sk] for s in pic.slices])[seg]
        exp = chroma_qp(maps["qp"], offs, off)
        got = a[f"block/qp_{k}"].astype(np.int64)
        badc = has & (got != exp)
        if badc.any():
            out.append(f"{lab}: block/qp_{k} != Qp'C(QpY + offsets) at {int(badc.sum())} blocks, first {where(badc)}: "
                       f"{got[badc][:3]} expected {exp[badc][:3]} (QpY {maps['qp'][badc][:3]})")
    if not pps["cu_qp_delta_enabled"]:
        sqp = np.array([s["slice_qp"] for s in pic.slices])[seg]
        bads = has & (maps["qp"] != sqp)
        if bads.any():
            out.append(f"{lab}: CU QpY != slice_qp (no cu_qp_delta) at {int(bads.sum())} blocks: "
                       f"{maps['qp'][bads][:3]} vs slice {sqp[bads][:3]}")
    return out


def allowed_flags(name):
    return LOSSLESS if name in ("lossless", "cu_lossless") else 0


def check_flags(fr, lab, allowed=0):
    bad = int(fr.flags) & ~allowed & (CORRUPT | INCOMPLETE | UNSUPPORTED | LOSSLESS | PCM | NO_EXPORT)
    return [f"{lab}: unexpected frame flags {int(fr.flags):#x}"] if bad else []


# ----------------------------------------------------------------------------------- self-tests


def test_dct_matrix_is_the_hevc_matrix():
    m32 = dct_matrix(32)
    assert m32[1, :16].tolist() == [90, 90, 88, 85, 82, 78, 73, 67, 61, 54, 46, 38, 31, 22, 13, 4]
    assert m32[2, :8].tolist() == [90, 87, 80, 70, 57, 43, 25, 9]
    assert dct_matrix(4).tolist() == [[64, 64, 64, 64], [83, 36, -36, -83], [64, -64, -64, 64], [36, -83, 83, -36]]
    assert dct_matrix(8)[1].tolist() == [89, 75, 50, 18, -18, -50, -75, -89]
    for n in (4, 8, 16, 32):
        m = dct_matrix(n)
        g = m @ m.T
        # nearly orthogonal with norm 64^2 * n (codec-internals 2.3: |E| <= 0.3 %)
        assert np.all(np.abs(np.diag(g) - 4096 * n) <= 0.003 * 4096 * n)
        assert np.abs(g - np.diag(np.diag(g))).max() <= 0.003 * 4096 * n
        # even rows repeat the half-size transform
        if n > 4:
            assert np.array_equal(m[::2, :n // 2], dct_matrix(n // 2))


@pytest.mark.parametrize("bd", [8, 10])
def test_inverse_transform_properties(bd):
    rng = np.random.default_rng(4 + bd)
    for lg in (2, 3, 4, 5):
        n = 1 << lg
        # DC only: FFmpeg's idct_dc shortcut ((c + 1) >> 1 + 2^(13-bd)) >> (14-bd) is the same
        dc = np.zeros((40, n, n), np.int64)
        dc[:, 0, 0] = rng.integers(-6000, 6000, 40)
        r = inverse_transform(dc, lg, TK_DCT, bd)
        want = (((dc[:, 0, 0] + 1) >> 1) + (1 << (13 - bd))) >> (14 - bd)
        assert np.array_equal(r, np.broadcast_to(want[:, None, None], r.shape))
        # close to the exact float transform G(C) = M^T C M / 2^(27-bd)
        c = rng.integers(-300, 300, (50, n, n)) * (rng.random((50, n, n)) < 0.3)
        m = dct_matrix(n).astype(float)
        g = np.swapaxes(m, 0, 1) @ c @ m / 2.0 ** (27 - bd)
        assert np.abs(inverse_transform(c, lg, TK_DCT, bd) - g).max() < 1.0
    # orientation: a single horizontal frequency varies along x only
    c = np.zeros((4, 4), np.int64)
    c[0, 1] = 640
    r = inverse_transform(c, 2, TK_DCT, 8)
    assert np.all(r == r[0:1, :]) and not np.all(r == r[:, 0:1])
    # DST: the float model D^T C D / 2^(27-bd)
    c = rng.integers(-300, 300, (50, 4, 4))
    g = DST4.T.astype(float) @ c @ DST4 / 2.0 ** (27 - bd)
    assert np.abs(inverse_transform(c, 2, TK_DST, bd) - g).max() < 1.0
    # transform skip: rounding shift by 15 - bd - log2N
    s = 15 - bd - 2
    assert np.array_equal(inverse_transform(np.array([[[-33, 32, 31, 0]] * 4]), 2, TK_TS, bd)[0, 0],
                          (np.array([-33, 32, 31, 0]) + (1 << (s - 1))) >> s)


def test_chroma_qp_table():
    assert chroma_qp(29, 0, 0) == 29 and chroma_qp(30, 0, 0) == 29 and chroma_qp(35, 0, 0) == 33
    assert chroma_qp(43, 0, 0) == 37 and chroma_qp(44, 0, 0) == 38 and chroma_qp(51, 0, 0) == 45
    assert chroma_qp(51, 10, 0) == 51 and chroma_qp(-20, 0, 12) == 0 and chroma_qp(30, 0, 12) == 41


def test_qstep_formula():
    # flat m = 16, qP 4 (levelScale 64), 4x4 at 8-bit: 16 * 64 / 2^(8 + 2 - 5) = 32
    assert qstep_of(4, 16, 2, 8) == 32.0
    # qP 27 (27 % 6 = 3 -> 57, 2^4) 32x32 at 10-bit: 16*57*16 / 2^10
    assert qstep_of(27, 16, 5, 10) == 16 * 57 * 16 / 1024


# ----------------------------------------------------------------------------------- invariants

NAMES = H.NAMES


@pytest.mark.parametrize("name", NAMES)
def test_decoded_equals_pyav(hevc_store, name):
    info, frames = hevc_store.decode(name)
    ref = hevc_store.reference(name)
    assert info["codec"] == "hevc"
    assert len(frames) == len(ref) == H.SPECS[name].frames, f"pycodec {len(frames)} frames, PyAV {len(ref)}"
    problems = []
    for fr, rf in zip(frames, ref):
        lab = label(name, fr)
        problems += check_decoded(fr, rf, lab)
        problems += check_flags(fr, lab, allowed_flags(name))
        if frame_type(fr.type) != rf.pict_type:
            problems.append(f"{lab}: type {fr.type!r} != PyAV pict_type {rf.pict_type!r}")
        if bool(fr.key) != rf.key:
            problems.append(f"{lab}: key {fr.key} != PyAV {rf.key}")
    assert [f.index for f in frames] == list(range(len(frames)))
    assert not problems, fmt(problems)


@pytest.mark.parametrize("name", [n for n in NAMES if H.SPECS[n].container == "mp4"])
def test_pts_equal_pyav(hevc_store, name):
    _, frames = hevc_store.decode(name, "frame")
    assert [f.pts for f in frames] == [r.pts for r in hevc_store.reference(name)]


@pytest.mark.parametrize("name", NAMES)
def test_metadata_matches_bitstream(hevc_store, name):
    """info matches the SPS; each frame's POC and type are those of its slice headers (POC per
    8.3.1); frames come in display (POC) order within each coded video sequence."""
    info, frames = hevc_store.decode(name, "frame")
    syn = hevc_store.syntax(name)
    sps = syn.first_sps
    bd = sps["bit_depth"]
    assert info["codec"] == "hevc"
    assert (info["width"], info["height"]) == (sps["width"], sps["height"])
    assert (info["coded_width"], info["coded_height"]) == (sps["pic_width"], sps["pic_height"])
    left, right, top, bottom = sps["crop_lrtb"]
    assert tuple(info["crop"]) == (top, bottom, left, right)
    assert info["bit_depth"] == bd and info["chroma_format"] == "420"
    assert info.get("pix_fmt") == ("yuv420p" if bd == 8 else "yuv420p10le")
    pics = syn.pictures
    assert sorted(f.decode_index for f in frames) == list(range(len(pics)))
    problems = []
    for fr in frames:
        pic = pics[fr.decode_index]
        if frame_type(fr.type) != pic.type_char:
            problems.append(f"{label(name, fr)}: type {fr.type!r}, first slice says {pic.type_char}")
        if fr.poc != pic.poc:
            problems.append(f"{label(name, fr)}: poc {fr.poc}, slice headers give {pic.poc}")
        if fr.pkt_bytes <= 0:
            problems.append(f"{label(name, fr)}: pkt_bytes {fr.pkt_bytes}")
    for a, b in itertools.pairwise(frames):
        if b.poc <= a.poc and pics[b.decode_index].nal_type not in (hb.IDR_W_RADL, hb.IDR_N_LP):
            problems.append(f"{label(name, b)}: poc {b.poc} after poc {a.poc} in display order")
    assert not problems, fmt(problems)


@pytest.mark.parametrize("name", NAMES)
def test_recon_is_clipped_prediction_plus_residual(hevc_store, name):
    info, frames = hevc_store.decode(name)
    bd = bit_depth(info)
    pix = np.uint8 if bd == 8 else np.uint16
    problems = []
    for fr in frames:
        for k in "yuv":
            d = fr.arrays[f"decoded/{k}"]
            for g, dt in (("decoded", pix), ("prediction", pix), ("recon", pix), ("residual", np.int16)):
                a = fr.arrays[f"{g}/{k}"]
                if a.shape != d.shape or a.dtype != dt:
                    problems.append(f"{label(name, fr)} {g}/{k}: {a.dtype}{a.shape}, expected {np.dtype(dt)}{d.shape}")
        if not problems:
            problems += check_recon(fr, bd, label(name, fr))
    assert not problems, fmt(problems)
    assert any(np.any(f.arrays["residual/y"] != 0) for f in frames)
    assert all(np.any(f.arrays["prediction/y"] != 0) for f in frames)


def test_recon_equals_decoded_without_loop_filter(hevc_store):
    name = "noloop"
    syn = hevc_store.syntax(name)
    assert all(s["deblocking_disabled"] for s in syn.slices()) and not syn.first_sps["sao_enabled"]
    _info, frames = hevc_store.decode(name)
    problems = []
    for fr in frames:
        for k in "yuv":
            a, b = fr.arrays[f"recon/{k}"], fr.arrays[f"decoded/{k}"]
            if not np.array_equal(a, b):
                problems.append(f"{label(name, fr)} plane {k}: recon != decoded at {int((a != b).sum())} samples, "
                                f"first {where(a != b)}")
    assert not problems, fmt(problems)


@pytest.mark.parametrize("name", ["ipb", "sao_nodeblock", "main10"])
def test_recon_differs_from_decoded_with_loop_filter(hevc_store, name):
    """With deblocking or SAO active the pre-filter recon really is pre-filter somewhere."""
    _info, frames = hevc_store.decode(name)
    assert any(not np.array_equal(f.arrays["recon/y"], f.arrays["decoded/y"]) for f in frames)


@pytest.mark.parametrize("name", NAMES)
def test_output_identical_with_export_on_and_off(hevc_store, name):
    _, full = hevc_store.decode(name)
    _, plain = hevc_store.decode(name, "decoded")
    assert_export_keeps_output(full, plain)


@pytest.mark.parametrize("name", ["ipb", "wpp", "slices4", "main10"])
def test_two_runs_identical(hevc_store, name):
    _, a = hevc_store.decode(name)
    _, b = pycodec_decode(hevc_store.path(name), None)  # a second, independent run
    assert_runs_identical(a, b, name)


@pytest.mark.parametrize("name", NAMES)
def test_residual_is_inverse_transform_of_coefficients(hevc_store, name):
    info, frames = hevc_store.decode(name)
    problems = []
    stats: dict = {}
    for fr in frames:
        problems += check_transforms(fr, info, label(name, fr), stats)
    assert not problems, f"{stats}" + fmt(problems)
    if name != "lossless":
        assert stats.get("y:DCT4", 0) + stats.get("y:DCT8", 0) > 0 and any(k.startswith("u:") for k in stats), stats


@pytest.mark.parametrize("name", NAMES)
def test_levels_qstep_dequantisation(hevc_store, name):
    info, frames = hevc_store.decode(name)
    syn = hevc_store.syntax(name)
    problems = []
    stats: dict = {}
    for fr in frames:
        problems += check_dequantisation(fr, info, syn.first_sps, syn.first_pps, label(name, fr), stats)
    assert not problems, fmt(problems)
    if name != "lossless":
        assert stats.get("levels_y", 0) > 0 and stats.get("levels_u", 0) > 0, stats
        assert stats.get("tus_checked", 0) > 0, stats


@pytest.mark.parametrize("name", NAMES)
def test_qp_consistent_with_cu_tree_and_slices(hevc_store, name):
    _info, frames = hevc_store.decode(name)
    syn = hevc_store.syntax(name)
    problems = []
    for fr in frames:
        problems += check_qp(fr, syn.first_sps, syn.first_pps, syn.pictures[fr.decode_index], label(name, fr))
    assert not problems, fmt(problems)
