"""Motion-compensation oracle for the HEVC export.

FFmpeg exports no HEVC motion vectors, so the exported vectors, reference indices and reference
POCs are proven by motion-compensating the reference pictures with them (tests/hevc_mc.py, the
spec's interpolation and weighting written in numpy) and comparing with the exported inter
prediction, bit-exactly, luma and chroma, on every inter and skip block of every P and B picture.

The reference pictures are PyAV's own decode (its FFmpeg, not pycodec's), picked by the exported
reference POC.  Streams are a multiple of 8 in size (no conformance window), so display == coded
and the clamping at the picture border is the spec's.  The explicit weighted prediction case uses
the weights parsed from the slice headers (tests/hevc_bitstream.py).

The first tests check hevc_mc itself against a sample-by-sample transcription of the spec.
"""

from __future__ import annotations

import hevc_bitstream as hb
import hevc_mc as mc
import hevc_streams as H
import numpy as np
import pytest
from test_hevc_invariants import paint_cus

# ----------------------------------------------------------------------------------- self-tests

# the spec's filter tables once more, written out per coefficient as in Tables 8-11 / 8-12
_FL = {1: (-1, 4, -10, 58, 17, -5, 1, 0), 2: (-1, 4, -11, 40, 40, -11, 4, -1), 3: (0, 1, -5, 17, 58, -10, 4, -1)}
_FC = {1: (-2, 58, 10, -2), 2: (-4, 54, 16, -2), 3: (-6, 46, 28, -4), 4: (-4, 36, 36, -4),
       5: (-4, 28, 46, -6), 6: (-2, 16, 54, -4), 7: (-2, 10, 58, -2)}


def _spec_sample(ref, x_int, y_int, xf, yf, bd, chroma):
    """One predicted sample, literally as in 8.5.3.3.3.1 (luma) / 8.5.3.3.3.2 (chroma)."""
    h, w = ref.shape

    def a(x, y):
        return int(ref[min(max(y, 0), h - 1), min(max(x, 0), w - 1)])

    f, pre, taps = (_FC, 1, 4) if chroma else (_FL, 3, 8)
    shift1, shift2, shift3 = min(4, bd - 8), 6, max(2, 14 - bd)
    if xf == 0 and yf == 0:
        return a(x_int, y_int) << shift3
    if yf == 0:
        return sum(f[xf][i] * a(x_int + i - pre, y_int) for i in range(taps)) >> shift1
    if xf == 0:
        return sum(f[yf][i] * a(x_int, y_int + i - pre) for i in range(taps)) >> shift1
    temp = [sum(f[xf][i] * a(x_int + i - pre, y_int + n - pre) for i in range(taps)) >> shift1
            for n in range(taps)]
    return sum(f[yf][n] * temp[n] for n in range(taps)) >> shift2


@pytest.mark.parametrize("bd", [8, 10])
@pytest.mark.parametrize("chroma", [False, True])
def test_interpolation_matches_spec_transcription(bd, chroma):
    rng = np.random.default_rng(11 + bd + chroma)
    ref = rng.integers(0, 1 << bd, (24, 20))
    n = 120
    s = 2 if chroma else 4
    x0 = rng.integers(-2, 6, n) * s
    y0 = rng.integers(-2, 7, n) * s
    mv = rng.integers(-70, 70, (n, 2))
    got = mc.interpolate(ref, x0, y0, mv[:, 0], mv[:, 1], s, s, bd, chroma)
    fs = 3 if chroma else 2
    for k in range(n):
        for yy in range(s):
            for xx in range(s):
                exp = _spec_sample(ref, x0[k] + (mv[k, 0] >> fs) + xx, y0[k] + (mv[k, 1] >> fs) + yy,
                                   mv[k, 0] & ((1 << fs) - 1), mv[k, 1] & ((1 << fs) - 1), bd, chroma)
                assert got[k, yy, xx] == exp, (k, yy, xx, mv[k])


def test_interpolation_basic_properties():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 256, (32, 32))
    # full-sample vectors copy the displaced block (default weighting undoes the 14-bit scale)
    p = mc.default_uni(mc.interpolate(ref, [8], [8], [-12], [20], 4, 4, 8), 8)
    assert np.array_equal(p[0], ref[13:17, 5:9])
    # outside the picture: the border sample repeats
    p = mc.default_uni(mc.interpolate(ref, [0], [0], [-400], [-400], 4, 4, 8), 8)
    assert np.all(p[0] == ref[0, 0])
    # a constant picture stays constant at every fractional position (filters sum to 64)
    c = np.full((16, 16), 77)
    for fx in range(4):
        for fy in range(4):
            assert np.all(mc.default_uni(mc.interpolate(c, [4], [4], [fx], [fy], 4, 4, 8), 8) == 77)
    # the half-sample luma filter is symmetric: a linear ramp is interpolated exactly
    ramp = np.tile(np.arange(0, 64, 2), (16, 1))        # value 2x
    p = mc.default_uni(mc.interpolate(ramp, [8], [4], [2], [0], 4, 4, 8), 8)
    assert np.array_equal(p[0], np.tile(2 * np.arange(8, 12) + 1, (4, 1)))
    # bi-prediction of two identical references equals uni-prediction
    q = mc.interpolate(ref, [4, 12], [4, 8], [3, -5], [1, 6], 4, 4, 8)
    assert np.array_equal(mc.default_bi(q, q, 8), mc.default_uni(q, 8))
    # explicit weights with w = 2^denom, o = 0 are the default weighting
    assert np.array_equal(mc.explicit_uni(q, [8, 8], [0, 0], 3, 8), mc.default_uni(q, 8))
    assert np.array_equal(mc.explicit_bi(q, q, [4, 4], [0, 0], [4, 4], [0, 0], 2, 8), mc.default_bi(q, q, 8))


# ----------------------------------------------------------------------------------- the oracle


def _reference_planes(hevc_store, name, frames):
    """For each frame (by decode index), {POC: (y, u, v)} of the pictures decoded before it in
    its coded video sequence, taken from PyAV's decode."""
    ref = hevc_store.reference(name)
    syn = hevc_store.syntax(name)
    assert len(ref) == len(frames)
    planes = {f.decode_index: [p.astype(np.int64) for p in r.planes] for f, r in zip(frames, ref)}
    out = {}
    avail: dict = {}
    for f in sorted(frames, key=lambda f: f.decode_index):
        if syn.pictures[f.decode_index].nal_type in (hb.IDR_W_RADL, hb.IDR_N_LP):
            avail = {}
        out[f.decode_index] = dict(avail)
        avail[f.poc] = planes[f.decode_index]
    return out


def _weights(pic, sps, pps, ref0, ref1, bmap, sel):
    """Per-block explicit weights of the slices (8.5.3.3.4.3), or None when the PPS has none."""
    st = pic.slice_type
    if not ((pps["weighted_pred"] and st == hb.SLICE_P) or (pps["weighted_bipred"] and st == hb.SLICE_B)):
        return None
    n = int(sel.sum())
    segs = bmap[sel]
    r = (ref0[sel], ref1[sel])
    w = {"explicit": np.zeros(n, bool), "denom_y": np.zeros(n, np.int64), "denom_c": np.zeros(n, np.int64)}
    for L in (0, 1):
        for c in "yuv":
            w[f"w{L}_{c}"] = np.zeros(n, np.int64)
            w[f"o{L}_{c}"] = np.zeros(n, np.int64)
    for si, s in enumerate(pic.slices):
        m = segs == si
        if not m.any() or not s["weights"]:
            continue
        t = s["weights"]
        w["explicit"][m] = True
        w["denom_y"][m] = t["luma_log2_denom"]
        w["denom_c"][m] = t["chroma_log2_denom"]
        for L in (0, 1):
            tab = t["lists"][L]
            for k, (wy, oy, (wcb, ocb), (wcr, ocr)) in enumerate(tab):
                mk = m & (r[L] == k)
                w[f"w{L}_y"][mk], w[f"o{L}_y"][mk] = wy, oy
                w[f"w{L}_u"][mk], w[f"o{L}_u"][mk] = wcb, ocb
                w[f"w{L}_v"][mk], w[f"o{L}_v"][mk] = wcr, ocr
    return w


def _nondefault(w, sel_blocks, denom_key="denom_y"):
    """Blocks whose explicit luma weight/offset differs from (1 << denom, 0) in a used list."""
    if w is None:
        return np.zeros(len(sel_blocks["by"]), bool)
    nd = np.zeros(len(sel_blocks["by"]), bool)
    for L in (0, 1):
        use = sel_blocks[f"use{L}"]
        nd |= use & ((w[f"w{L}_y"] != (1 << w[denom_key])) | (w[f"o{L}_y"] != 0))
    return nd & w["explicit"]


def run_mc_oracle(hevc_store, name):
    info, frames = hevc_store.decode(name)
    syn = hevc_store.syntax(name)
    sps, pps = syn.first_sps, syn.first_pps
    bd = info["bit_depth"]
    assert tuple(info["crop"]) == (0, 0, 0, 0), "the MC oracle needs display == coded size"
    refs = _reference_planes(hevc_store, name, frames)
    stats = dict.fromkeys(("blocks", "skip", "inter", "integer", "fractional", "chroma_fractional", "uni", "bi",
                           "l1_only", "explicit_weighted", "explicit_bi", "frames"), 0)
    problems = []
    for fr in frames:
        pic = syn.pictures[fr.decode_index]
        if pic.slice_type == hb.SLICE_I:
            continue
        a = fr.arrays
        # inter and skip CUs from hevc/cu (block/mode says 4 for transquant-bypass CUs of either kind)
        _cus, maps = paint_cus(fr, a["block/mode"].shape)
        mode = np.where(maps["pred"] == 2, 2, np.where(maps["pred"] == 1, 1, 0))
        sel = mode != 0
        r0, r1 = a["block/ref_l0"].astype(np.int64), a["block/ref_l1"].astype(np.int64)
        lab = f"{name} frame {fr.index} ({pic.type_char}, poc {fr.poc})"
        nolist = sel & (r0 < 0) & (r1 < 0)
        if nolist.any():
            problems.append(f"{lab}: {int(nolist.sum())} inter/skip blocks use no reference list")
            sel &= ~nolist
        by, bx = np.nonzero(sel)
        blocks = {"by": by, "bx": bx}
        avail = refs[fr.decode_index]
        for L, r in ((0, r0), (1, r1)):
            use = r[sel] >= 0
            poc = a[f"block/ref_poc_l{L}"][sel].astype(np.int64)
            missing = use & ~np.isin(poc, list(avail))
            if missing.any():
                problems.append(f"{lab}: list {L} references POCs {sorted(set(poc[missing].tolist()))} that were "
                                f"not decoded before (available {sorted(avail)})")
                use &= ~missing
            blocks[f"use{L}"] = use
            blocks[f"mv{L}"] = a[f"block/mv_l{L}"][sel].astype(np.int64)
            blocks[f"poc{L}"] = poc
        bmap = pic.block_slice_map(sps, *mode.shape)
        w = _weights(pic, sps, pps, r0, r1, bmap, sel)
        pred = mc.predict_blocks(avail, blocks, bd, w)
        # exported prediction of the same blocks
        got = {}
        for c, s in (("y", 4), ("u", 2), ("v", 2)):
            p = a[f"prediction/{c}"].astype(np.int64)
            yy = by[:, None, None] * s + np.arange(s)[None, :, None]
            xx = bx[:, None, None] * s + np.arange(s)[None, None, :]
            got[c] = p[yy, xx]
        u0, u1 = blocks["use0"], blocks["use1"]
        frac_blk = (u0 & np.any(blocks["mv0"] & 3, 1)) | (u1 & np.any(blocks["mv1"] & 3, 1))
        cfrac_blk = (u0 & np.any(blocks["mv0"] & 7, 1)) | (u1 & np.any(blocks["mv1"] & 7, 1))
        stats["frames"] += 1
        stats["blocks"] += len(by)
        stats["skip"] += int((mode[sel] == 2).sum())
        stats["inter"] += int((mode[sel] == 1).sum())
        stats["fractional"] += int(frac_blk.sum())
        stats["integer"] += int((~frac_blk).sum())
        stats["chroma_fractional"] += int(cfrac_blk.sum())
        stats["uni"] += int((u0 ^ u1).sum())
        stats["bi"] += int((u0 & u1).sum())
        stats["l1_only"] += int((u1 & ~u0).sum())
        nd = _nondefault(w, blocks)
        stats["explicit_weighted"] += int(nd.sum())
        stats["explicit_bi"] += int((nd & u0 & u1).sum())
        for c in "yuv":
            bad = np.any(got[c] != pred[c], axis=(1, 2))
            if bad.any():
                i = np.flatnonzero(bad)
                k = i[0]
                desc = "; ".join(
                    f"L{L} ref {int(r[by[k], bx[k]])} poc {int(blocks[f'poc{L}'][k])} mv {blocks[f'mv{L}'][k].tolist()}"
                    for L, r in ((0, r0), (1, r1)) if blocks[f"use{L}"][k])
                problems.append(
                    f"{lab} plane {c}: prediction != motion compensation in {len(i)} of {len(by)} blocks "
                    f"({int(frac_blk[i].sum())} fractional, {int((u0 & u1)[i].sum())} bi, "
                    f"{int((mode[sel][i] == 2).sum())} skip); first block (y={by[k]}, x={bx[k]}) mode {mode[by[k], bx[k]]} "
                    f"{desc}: exported {got[c][k].tolist()} expected {pred[c][k].tolist()}")
    return stats, problems


def _fmt(problems, limit=8):
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n  " + "\n  ".join(problems[:limit]) + more


UNWEIGHTED = [n for n in H.MC_NAMES if n != "weightp"]


@pytest.mark.parametrize("name", UNWEIGHTED)
def test_inter_prediction_is_motion_compensation(hevc_store, name):
    """Every inter/skip block's exported prediction (Y, Cb, Cr) equals the motion compensation
    of the reference picture with the exported POC by the exported vector(s)."""
    syn = hevc_store.syntax(name)
    assert not syn.first_pps["weighted_pred"] and not syn.first_pps["weighted_bipred"], \
        f"{name}: expected without weighted prediction"
    stats, problems = run_mc_oracle(hevc_store, name)
    assert not problems, f"{stats}" + _fmt(problems)
    # the comparison covered every kind of block (it cannot pass vacuously)
    need = ["frames", "blocks", "skip", "inter", "integer", "fractional", "chroma_fractional", "uni"]
    if any(p.slice_type == hb.SLICE_B for p in syn.pictures):
        need += ["bi"]
    empty = [k for k in need if stats[k] == 0]
    assert not empty, f"{name}: no {empty} blocks were checked: {stats}"


def test_inter_prediction_categories_across_streams(hevc_store):
    """Across the streams the oracle covers uni-prediction from list 1 alone as well (B blocks
    that use only the future reference)."""
    total = 0
    for name in UNWEIGHTED:
        stats, problems = run_mc_oracle(hevc_store, name)
        assert not problems, _fmt(problems)
        total += stats["l1_only"]
    assert total > 0


def test_explicit_weighted_prediction(hevc_store):
    """The fade stream: P and B blocks predicted with the explicit weights and offsets of their
    slice header (weighted_pred_flag / weighted_bipred_flag) equal the exported prediction."""
    name = "weightp"
    stats, problems = run_mc_oracle(hevc_store, name)
    assert not problems, f"{stats}" + _fmt(problems)
    assert stats["explicit_weighted"] > 0, f"no block used a non-default explicit weight: {stats}"
    assert stats["explicit_bi"] > 0, f"no bi-predicted block with explicit weights (weighted_bipred): {stats}"
    assert stats["fractional"] > 0 and stats["uni"] > 0, stats
