"""HEVC export: CU/TU trees and block maps, reference POCs, SAO, deblocking strengths, feature
coverage of every stream, lossless, 10-bit, and field selection.

Independent oracles used here:
* the slice headers (tests/hevc_bitstream.py): reference picture lists from the RPS (8.3.2,
  8.3.4) for ``block/ref_poc_*``, slice SAO flags, deblocking and slice-boundary switches;
* x265's own per-frame CSV log of its CU decisions (AMP, skip, intra 4x4), per picture;
* SAO (8.7.3) re-applied to the exported pre-loop-filter recon of a stream without deblocking
  must give FFmpeg's (PyAV-checked) output: this proves ``hevc/sao`` and ``recon`` together;
* the boundary-strength derivation of 8.7.2.4 from the exported CU/TU/MV data for ``hevc/bs_*``;
* the lossless stream must decode to exactly the pictures that were encoded.
"""

from __future__ import annotations

import hevc_streams as H
import numpy as np
import pytest
from conftest import LOSSLESS, frame_type
from test_hevc_invariants import (
    CU_BYPASS,
    CU_LOG2,
    CU_PART,
    CU_PRED,
    CU_X,
    CU_Y,
    MODE_BYPASS,
    MODE_INTRA,
    MODE_PCM,
    MODE_SKIP,
    TK_BYPASS,
    TK_DCT,
    TK_DST,
    TK_NONE,
    TK_TS,
    TU_CBF_CB,
    TU_CBF_CR,
    TU_CBF_Y,
    TU_DEPTH,
    TU_K_CB,
    TU_K_CR,
    TU_K_Y,
    TU_LOG2,
    TU_X,
    TU_Y,
    coded_canvas,
    cu_rows,
    fmt,
    label,
    paint_cus,
    tu_rows,
    where,
)

NAMES = H.NAMES

# ----------------------------------------------------------------------------------- geometry


def pu_rects(x, y, log2, part):
    """The prediction blocks (x, y, w, h) of a CU (Table 7-10 / 8.4.4 partitioning)."""
    s = 1 << log2
    h, q = s // 2, s // 4
    return {
        0: [(x, y, s, s)],
        1: [(x, y, s, h), (x, y + h, s, h)],
        2: [(x, y, h, s), (x + h, y, h, s)],
        3: [(x, y, h, h), (x + h, y, h, h), (x, y + h, h, h), (x + h, y + h, h, h)],
        4: [(x, y, s, q), (x, y + q, s, s - q)],
        5: [(x, y, s, s - q), (x, y + s - q, s, q)],
        6: [(x, y, q, s), (x + q, y, s - q, s)],
        7: [(x, y, s - q, s), (x + s - q, y, q, s)],
    }[part]


def pu_maps(cus, shape4):
    """Per 4x4 block: PU id, PU width, PU height (from hevc/cu part modes)."""
    pid = np.full(shape4, -1, np.int64)
    pw = np.zeros(shape4, np.int64)
    ph = np.zeros(shape4, np.int64)
    k = 0
    for r in cus:
        for (x, y, w, h) in pu_rects(r[CU_X], r[CU_Y], r[CU_LOG2], r[CU_PART]):
            sl = (slice(y // 4, (y + h) // 4), slice(x // 4, (x + w) // 4))
            pid[sl], pw[sl], ph[sl] = k, w, h
            k += 1
    return pid, pw, ph


def luma_tu_maps(tus, cu_index, shape4):
    """Per 4x4 block: luma TU id (CUs without a transform tree count as one TU), log2, cbf_y and
    the luma kind where cbf_y is set (TK_NONE elsewhere)."""
    tid = np.full(shape4, -1, np.int64)
    tl = np.zeros(shape4, np.int64)
    cbf = np.zeros(shape4, np.int64)
    kind = np.zeros(shape4, np.int64)
    for i, r in enumerate(tus):
        if r[TU_DEPTH] < 0:
            continue
        s = (1 << r[TU_LOG2]) // 4
        sl = (slice(r[TU_Y] // 4, r[TU_Y] // 4 + s), slice(r[TU_X] // 4, r[TU_X] // 4 + s))
        tid[sl], tl[sl], cbf[sl], kind[sl] = i, r[TU_LOG2], r[TU_CBF_Y], r[TU_K_Y] if r[TU_CBF_Y] else TK_NONE
    none = tid < 0
    tid[none] = 1_000_000 + cu_index[none]
    return tid, tl, cbf, kind


# ----------------------------------------------------------------------------------- CU/TU trees


def check_trees(fr, sps, pps, lab):
    out = []
    a = fr.arrays
    counts = a["hevc/counts"]
    cu_all, tu_all = a["hevc/cu"], a["hevc/tu"]
    if counts.shape != (2,) or cu_all.ndim != 2 or cu_all.shape[1] != 8 or tu_all.ndim != 2 or tu_all.shape[1] != 10:
        return [f"{lab}: hevc/counts {counts.shape}, hevc/cu {cu_all.shape}, hevc/tu {tu_all.shape}"]
    if counts[0] > len(cu_all) or counts[1] > len(tu_all):
        return [f"{lab}: hevc/counts {counts.tolist()} exceed the tables {len(cu_all)}/{len(tu_all)}"]
    if np.any(cu_all[counts[0]:]) or np.any(tu_all[counts[1]:]):
        out.append(f"{lab}: hevc/cu or hevc/tu rows past hevc/counts are not zero")
    shape4 = a["block/mode"].shape
    cus, maps = paint_cus(fr, shape4)
    if np.any(maps["overlap"] != 1):
        out.append(f"{lab}: CUs do not tile the coded picture exactly once ({int((maps['overlap'] == 0).sum())} "
                   f"blocks uncovered, {int((maps['overlap'] > 1).sum())} covered twice), first {where(maps['overlap'] != 1)}")
    lo, hi = sps["log2_min_cb"], sps["log2_ctb"]
    for r in cus:
        x, y, lg, pred, part, byp, pcm, _qp = r
        what = None
        if not lo <= lg <= hi or x % (1 << lg) or y % (1 << lg):
            what = f"size 2^{lg} (SPS {lo}..{hi}) or misaligned"
        elif pred not in (0, 1, 2) or part not in range(8):
            what = f"pred_mode {pred} part_mode {part}"
        elif pred == 2 and part != 0:
            what = "skip CU not 2Nx2N"
        elif pred == 0 and part not in (0, 3):
            what = f"intra part_mode {part}"
        elif pred == 0 and part == 3 and lg != lo:
            what = "intra NxN above the minimum CU size"
        elif part >= 4 and (not sps["amp_enabled"] or lg == lo):
            what = "AMP part mode without AMP (or at the minimum CU size)"
        elif pred == 1 and part == 3 and lg == 3:
            what = "inter NxN 8x8"
        elif byp and not pps["transquant_bypass_enabled"]:
            what = "transquant bypass without transquant_bypass_enabled_flag"
        elif pcm:
            what = "PCM although the SPS disables it"
        if what:
            out.append(f"{lab}: CU ({x}, {y}) 2^{lg}: {what}")
    tus = tu_rows(fr)
    tcov = np.zeros(shape4, np.int64)      # transform tree leaves
    pcov = np.zeros(shape4, np.int64)      # rows with trafo_depth -1: CUs without a transform tree
    for r in tus:
        x, y, lg, depth = r[TU_X], r[TU_Y], r[TU_LOG2], r[TU_DEPTH]
        s = (1 << lg) // 4
        if not sps["log2_min_tb"] <= lg <= sps["log2_max_tb"] or x % (1 << lg) or y % (1 << lg):
            out.append(f"{lab}: TU ({x}, {y}) 2^{lg} outside {sps['log2_min_tb']}..{sps['log2_max_tb']} or misaligned")
            continue
        cu = cus[maps["index"][y // 4, x // 4]]
        inside = (cu[CU_X] <= x and x + (1 << lg) <= cu[CU_X] + (1 << cu[CU_LOG2])
                  and cu[CU_Y] <= y and y + (1 << lg) <= cu[CU_Y] + (1 << cu[CU_LOG2]))
        cbfs = (r[TU_CBF_Y], r[TU_CBF_CB], r[TU_CBF_CR])
        if depth < 0:
            if any(cbfs) or cu[CU_PRED] == MODE_INTRA or lg != min(cu[CU_LOG2], sps["log2_max_tb"]) or not inside:
                out.append(f"{lab}: transform-tree-less row ({x}, {y}) 2^{lg} cbf {cbfs} in CU {cu.tolist()}")
            pcov[y // 4:y // 4 + s, x // 4:x // 4 + s] += 1
            continue
        if cu[CU_PRED] == MODE_SKIP:
            out.append(f"{lab}: transform tree leaf ({x}, {y}) inside a skip CU")
        if cu[CU_LOG2] - depth != lg or not inside:
            out.append(f"{lab}: TU ({x}, {y}) 2^{lg} depth {depth} does not fit CU ({cu[CU_X]}, {cu[CU_Y]}) 2^{cu[CU_LOG2]}")
        tcov[y // 4:y // 4 + s, x // 4:x // 4 + s] += 1
        coded = [k for k, c in zip((r[TU_K_Y], r[TU_K_CB], r[TU_K_CR]), cbfs) if c]
        if r[TU_CBF_Y] and r[TU_K_Y] == TK_DST and not (lg == 2 and cu[CU_PRED] == MODE_INTRA):
            out.append(f"{lab}: DST luma TU at ({x}, {y}) 2^{lg} in CU pred_mode {cu[CU_PRED]}")
        if TK_DST in coded[1:] or (not r[TU_CBF_Y] and TK_DST in coded):
            out.append(f"{lab}: DST chroma TU at ({x}, {y})")
        if cu[CU_BYPASS] and set(coded) - {TK_BYPASS}:
            out.append(f"{lab}: TU ({x}, {y}) kinds {sorted(coded)} in a bypass CU")
        if not cu[CU_BYPASS] and TK_BYPASS in coded:
            out.append(f"{lab}: bypass TU ({x}, {y}) in a normal CU")
        if TK_TS in coded and (not pps["transform_skip_enabled"] or lg > 2 + (not (r[TU_CBF_Y] and r[TU_K_Y] == TK_TS))):
            out.append(f"{lab}: transform skip TU ({x}, {y}) 2^{lg} (enabled {pps['transform_skip_enabled']})")
    if np.any(tcov + pcov > 1):
        out.append(f"{lab}: TU rows overlap at {where(tcov + pcov > 1)}")
    # every CU is covered exactly once: by its transform tree leaves, or (skip CUs and inter CUs
    # with rqt_root_cbf 0) by max-TB-size rows of trafo_depth -1
    for r in cus:
        s = (1 << r[CU_LOG2]) // 4
        sl = (slice(r[CU_Y] // 4, r[CU_Y] // 4 + s), slice(r[CU_X] // 4, r[CU_X] // 4 + s))
        t, p = tcov[sl], pcov[sl]
        if not (np.all(t + p == 1) and (not t.any() or not p.any())):
            out.append(f"{lab}: CU ({r[CU_X]}, {r[CU_Y]}) 2^{r[CU_LOG2]} pred {r[CU_PRED]} not tiled by its TU rows "
                       f"({int(t.sum())} leaf blocks, {int(p.sum())} tree-less blocks of {s * s})")
        elif r[CU_PRED] == MODE_SKIP and t.any():
            out.append(f"{lab}: skip CU ({r[CU_X]}, {r[CU_Y]}) has a transform tree")
        if len(out) > 30:
            break
    return out


@pytest.mark.parametrize("name", NAMES)
def test_cu_and_tu_trees(hevc_store, name):
    _info, frames = hevc_store.decode(name)
    syn = hevc_store.syntax(name)
    problems = []
    for fr in frames:
        problems += check_trees(fr, syn.first_sps, syn.first_pps, label(name, fr))
    assert not problems, fmt(problems)


def check_block_maps(fr, info, lab):
    out = []
    a = fr.arrays
    mode = a["block/mode"].astype(np.int64)
    cus, maps = paint_cus(fr, mode.shape)
    _tid, tl, _cbf, kind = luma_tu_maps(tu_rows(fr), maps["index"], mode.shape)
    pid, pw, ph = pu_maps(cus, mode.shape)

    def bad(cond, what):
        if np.any(cond):
            ys, xs = np.nonzero(cond)
            ci = maps["index"][ys[0], xs[0]]
            out.append(f"{lab}: {what} at {int(cond.sum())} blocks, first (y={ys[0]}, x={xs[0]}) in CU "
                       f"{cus[ci].tolist() if ci >= 0 else None}")

    exp_mode = np.select([maps["pcm"] == 1, maps["bypass"] == 1, maps["pred"] == 2, maps["pred"] == 1],
                         [MODE_PCM, MODE_BYPASS, MODE_SKIP, 1], MODE_INTRA)
    bad(mode != exp_mode, "block/mode disagrees with hevc/cu")
    bad(a["block/cu_log2"] != maps["log2"], "block/cu_log2 != hevc/cu log2_size")
    bad((a["block/pu_w"] != pw) | (a["block/pu_h"] != ph), "block/pu_w, pu_h disagree with the CU part_mode")
    tk = a["block/tkind"].astype(np.int64)
    tu = a["block/tu_log2"].astype(np.int64)
    bad(tk != kind, "block/tkind != the luma kind of the covering TU")
    bad((kind != TK_NONE) & (tu != tl), "block/tu_log2 != the size of the coded luma TU")
    bad((tu != 0) & (tu != tl), "block/tu_log2 names a size no TU has")
    bad((mode == MODE_SKIP) & (tk != TK_NONE), "skip blocks with a transform kind")
    bad((mode == MODE_BYPASS) & ~np.isin(tk, (TK_NONE, TK_BYPASS)), "bypass blocks with a real transform")
    im = a["block/intra_mode"].astype(np.int64)
    intra = maps["pred"] == 0
    bad(intra & (im > 34), "intra_mode > 34 in intra blocks")
    bad(~intra & (im != 255), "intra_mode != 255 in inter/skip blocks")
    # motion: intra blocks use no list; inter blocks at least one; P pictures no list 1
    r0, r1 = a["block/ref_l0"].astype(np.int64), a["block/ref_l1"].astype(np.int64)
    bad(intra & ((r0 != -1) | (r1 != -1)), "reference index in intra blocks")
    bad(~intra & (r0 < 0) & (r1 < 0), "inter block using no list")
    if frame_type(fr.type) == "P":
        bad(r1 != -1, "list 1 used in a P picture")
    if frame_type(fr.type) == "I":
        bad(~intra, "inter block in an I picture")
    # motion is uniform inside each prediction block
    for L, r in ((0, r0), (1, r1)):
        mv = a[f"block/mv_l{L}"].astype(np.int64)
        rp = a[f"block/ref_poc_l{L}"].astype(np.int64)
        for k in np.unique(pid[~intra]):
            sel = pid == k
            if len(np.unique(r[sel])) > 1 or (r[sel][0] >= 0 and (len(np.unique(mv[sel], axis=0)) > 1
                                                                  or len(np.unique(rp[sel])) > 1)):
                bad(sel, f"list {L} motion not uniform inside a prediction block")
                break
    # skip CUs: no residual, prediction is the reconstruction
    skip4 = mode == MODE_SKIP
    if skip4.any():
        for plane, sub in (("y", 4), ("u", 2), ("v", 2)):
            m = np.repeat(np.repeat(skip4, sub, 0), sub, 1)
            res, valid = coded_canvas(info, fr, "residual", plane)
            pred, _ = coded_canvas(info, fr, "prediction", plane)
            rec, _ = coded_canvas(info, fr, "recon", plane)
            m &= valid
            bad(np.any((res != 0) & m), f"residual in skip CUs (plane {plane})")
            if np.any((pred != rec) & m):
                out.append(f"{lab}: plane {plane}: prediction != recon inside skip CUs at {where((pred != rec) & m)}")
    return out


@pytest.mark.parametrize("name", NAMES)
def test_block_maps_consistent_with_cu_tree(hevc_store, name):
    info, frames = hevc_store.decode(name)
    problems = []
    for fr in frames:
        problems += check_block_maps(fr, info, label(name, fr))
    assert not problems, fmt(problems)


# ----------------------------------------------------------------------------------- references


@pytest.mark.parametrize("name", NAMES)
def test_reference_pocs_follow_the_slice_rps(hevc_store, name):
    """ref_poc_lX of every block == RefPicListX[ref_idx_lX] of its slice, with the lists built
    from the slice header's short-term RPS (8.3.2, 8.3.4); ref_idx < num_ref_idx_active."""
    _info, frames = hevc_store.decode(name, "frame,block")
    syn = hevc_store.syntax(name)
    sps = syn.first_sps
    problems = []
    used_total = 0
    for fr in frames:
        pic = syn.pictures[fr.decode_index]
        a = fr.arrays
        seg = pic.block_slice_map(sps, *a["block/mode"].shape)
        for L in (0, 1):
            ref = a[f"block/ref_l{L}"].astype(np.int64)
            rp = a[f"block/ref_poc_l{L}"].astype(np.int64)
            used = ref >= 0
            used_total += int(used.sum())
            for si, s in enumerate(pic.slices):
                lst = s["ref_pocs"][L]
                m = used & (seg == si)
                if not m.any():
                    continue
                if ref[m].max() >= len(lst):
                    problems.append(f"{label(name, fr)} slice {si}: ref_l{L} {ref[m].max()} >= num_ref_idx_l{L}_active "
                                    f"{len(lst)}")
                    continue
                exp = np.array(lst, np.int64)[ref[m]]
                bad = rp[m] != exp
                if bad.any():
                    problems.append(f"{label(name, fr)} slice {si} list {L}: ref_poc != RefPicList{L}[ref_idx] at "
                                    f"{int(bad.sum())} blocks: ours {rp[m][bad][:3]} for ref_idx {ref[m][bad][:3]}, "
                                    f"list {list(lst)}")
    assert not problems, fmt(problems)
    assert used_total > 0


# ----------------------------------------------------------------------------------- coverage


def export_kinds(frames):
    k: dict[str, int] = {}

    def add(key, v):
        k[key] = k.get(key, 0) + int(np.sum(v))

    for fr in frames:
        a = fr.arrays
        mode = a["block/mode"]
        cus = cu_rows(fr)
        tus = tu_rows(fr)
        inter = cus[:, CU_PRED] == 1
        add("skip", mode == MODE_SKIP)
        add("inter", mode == 1)
        add("intra", mode == MODE_INTRA)
        add("intra_in_inter_picture", (mode == MODE_INTRA) & (frame_type(fr.type) != "I"))
        add("bypass", mode == MODE_BYPASS)
        add("non_bypass", mode != MODE_BYPASS)
        add("bi", (a["block/ref_l0"] >= 0) & (a["block/ref_l1"] >= 0))
        add("l1_only", (a["block/ref_l0"] < 0) & (a["block/ref_l1"] >= 0))
        add("ref_idx_1plus", (a["block/ref_l0"] >= 1) | (a["block/ref_l1"] >= 1))
        add("rect", inter & np.isin(cus[:, CU_PART], (1, 2)))
        add("amp", inter & (cus[:, CU_PART] >= 4))
        add("intra_nxn", (cus[:, CU_PRED] == 0) & (cus[:, CU_PART] == 3))
        add("cu64", cus[:, CU_LOG2] == 6)
        add("cu8", cus[:, CU_LOG2] == 3)
        im = a["block/intra_mode"]
        add("planar", im == 0)
        add("dc", im == 1)
        add("angular", (im >= 2) & (im <= 34))
        tk = a["block/tkind"]
        add("dct", tk == TK_DCT)
        add("dst", tk == TK_DST)
        add("ts_luma", tk == TK_TS)
        add("ts_chroma", np.isin(tus[:, TU_K_CB], [TK_TS]) | np.isin(tus[:, TU_K_CR], [TK_TS]))
        add("bypass_tu", tk == TK_BYPASS)
        for lg in (2, 3, 4, 5):
            add(f"tu{1 << lg}", (tus[:, TU_LOG2] == lg) & (tus[:, TU_CBF_Y] == 1))
        pw, ph = a["block/pu_w"].astype(np.int64), a["block/pu_h"].astype(np.int64)
        add("amp_pu", (mode == 1) & ((pw * 4 == ph) | (ph * 4 == pw) | (pw * 4 == 3 * ph) | (ph * 4 == 3 * pw)))
    return k


COVERAGE = {
    "ipb": {"skip", "inter", "intra_in_inter_picture", "bi", "l1_only", "ref_idx_1plus", "planar", "dc", "angular",
            "dct", "dst", "cu64", "cu8"},
    "amp": {"amp", "rect", "amp_pu", "bi"},
    "weightp": {"inter", "bi"},
    "wpp": {"skip", "inter"},
    "slices4": {"skip", "inter", "bi"},
    "tskip": {"ts_luma", "ts_chroma", "dst", "dct"},
    "tu4": {"tu4", "tu8", "tu16", "tu32", "dst", "intra_nxn"},
    "lossless": {"bypass", "bypass_tu"},
    "cu_lossless": {"bypass", "non_bypass", "bypass_tu", "dct"},
    "main10": {"inter", "bi", "dct", "dst", "ts_luma", "ts_chroma"},
    "crop_100x62": {"inter", "skip"},
}


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_streams_cover_their_features(hevc_store, name):
    _info, frames = hevc_store.decode(name)
    kinds = export_kinds(frames)
    missing = sorted(k for k in COVERAGE[name] if not kinds.get(k))
    assert not missing, f"{name} lacks {missing}; has {{{', '.join(f'{k}: {v}' for k, v in kinds.items() if v)}}}"


@pytest.mark.parametrize("name,kind,pred,both_ways", [
    ("amp", "amp", lambda cus: (cus[:, CU_PRED] == 1) & (cus[:, CU_PART] >= 4), True),
    ("tu4", "intra4x4", lambda cus: (cus[:, CU_PRED] == 0) & (cus[:, CU_PART] == 3), True),
    # x265 logs merge CUs whose residual quantised to nothing under "Merge" although it then codes
    # them with cu_skip_flag: only "x265 chose skip => skip CUs in the picture" holds
    ("ipb", "skip", lambda cus: cus[:, CU_PRED] == 2, False),
])
def test_cu_decisions_match_x265_log(hevc_store, name, kind, pred, both_ways):
    """Picture by picture, the CU kinds in the export are those x265 reports having chosen."""
    _info, frames = hevc_store.decode(name)
    log = {int(r["POC"]): H.csv_share(r, kind) > 0 for r in hevc_store.csv(name)}
    ours = {fr.poc: bool(pred(cu_rows(fr)).any()) for fr in frames}
    assert set(log) == set(ours)
    diff = {p: (ours[p], log[p]) for p in ours if ours[p] != log[p] and (both_ways or log[p])}
    assert not diff, f"{name}: pictures (poc: (export has {kind}, x265 chose {kind})) disagree: {diff}"
    assert any(log.values())


def test_amp_partitions_have_quarter_sizes(hevc_store):
    _info, frames = hevc_store.decode("amp")
    sizes = set()
    for fr in frames:
        cus = cu_rows(fr)
        amp = cus[(cus[:, CU_PRED] == 1) & (cus[:, CU_PART] >= 4)]
        mode = fr.arrays["block/mode"]
        for r in amp:
            y4, x4 = r[CU_Y] // 4, r[CU_X] // 4
            if mode[y4, x4] == 1:
                sizes.add((int(fr.arrays["block/pu_w"][y4, x4]), int(fr.arrays["block/pu_h"][y4, x4])))
    assert any(w != h and (w * 4 == h or h * 4 == w or 4 * w == 3 * h or 4 * h == 3 * w) for w, h in sizes), sizes


def test_lossless_decodes_to_the_source(hevc_store):
    """lossless=1: every CU is transquant bypass (mode 4, tkind bypass/none, qstep 0, residual ==
    levels), frames are flagged LOSSLESS, and the decoded pictures are exactly the encoded input."""
    name = "lossless"
    spec = H.SPECS[name]
    _info, frames = hevc_store.decode(name)
    src = list(H.frames_of(spec))
    assert len(frames) == len(src)
    for fr, planes in zip(frames, src):
        lab = label(name, fr)
        for k, p in zip("yuv", planes):
            want = np.rint(np.clip(p, 0, 255)).astype(np.uint8)
            assert np.array_equal(fr.arrays[f"decoded/{k}"], want), f"{lab}: decoded/{k} != source"
            assert not fr.arrays[f"qstep/{k}"].any(), f"{lab}: qstep/{k} != 0 in a lossless picture"
        assert np.all(fr.arrays["block/mode"] == MODE_BYPASS), f"{lab}: modes {np.unique(fr.arrays['block/mode'])}"
        assert np.all(np.isin(fr.arrays["block/tkind"], (TK_NONE, TK_BYPASS)))
        assert np.all(cu_rows(fr)[:, CU_BYPASS] == 1)
        assert int(fr.flags) & LOSSLESS, f"{lab}: flags {int(fr.flags):#x} lack LOSSLESS"


def test_cu_lossless_flags_only_pictures_with_bypass(hevc_store):
    _info, frames = hevc_store.decode("cu_lossless")
    n = 0
    for fr in frames:
        has = bool(np.any(fr.arrays["block/mode"] == MODE_BYPASS))
        assert bool(int(fr.flags) & LOSSLESS) == has, f"{label('cu_lossless', fr)}: flags {int(fr.flags):#x}"
        n += has
    assert n > 0


def test_main10_qp_and_dtypes(hevc_store):
    """10-bit: pictures are uint16, block QPs are Qp'Y = QpY + 12 (QpBdOffset) of the CU."""
    info, frames = hevc_store.decode("main10")
    assert info["bit_depth"] == 10 and info["pix_fmt"] == "yuv420p10le"
    for fr in frames:
        for g in ("decoded", "prediction", "recon"):
            assert fr.arrays[f"{g}/y"].dtype == np.uint16
        assert int(fr.arrays["decoded/y"].max()) > 255
        _cus, maps = paint_cus(fr, fr.arrays["block/mode"].shape)
        d = fr.arrays["block/qp_y"].astype(np.int64) - maps["qp"]
        assert np.all(d == 12), f"{label('main10', fr)}: qp_y - cu qp in {np.unique(d)}"


def test_scaling_lists_shape_qstep(hevc_store):
    """With scaling lists, qstep varies inside 8x8+ TUs (m != 16); the custom lists are
    asymmetric, so qstep is not symmetric either: checked against the parsed lists in
    test_hevc_invariants::test_levels_qstep_dequantisation, here only that it is exercised."""
    for name, want_asym in (("scaling", False), ("scaling_custom", True)):
        _info, frames = hevc_store.decode(name)
        nonflat = asym = 0
        for fr in frames:
            qs = fr.arrays["qstep/y"]
            for r in tu_rows(fr):
                if r[TU_K_Y] != TK_DCT or r[TU_LOG2] < 3:
                    continue
                n = 1 << r[TU_LOG2]
                b = qs[r[TU_Y]:r[TU_Y] + n, r[TU_X]:r[TU_X] + n]
                nonflat += len(np.unique(b)) > 1
                asym += not np.array_equal(b, b.T)
        assert nonflat > 0, name
        assert (asym > 0) == want_asym, (name, asym)


# ----------------------------------------------------------------------------------- SAO

EO_OFFSETS = {0: ((0, -1), (0, 1)), 1: ((-1, 0), (1, 0)), 2: ((-1, -1), (1, 1)), 3: ((-1, 1), (1, -1))}


def apply_sao(rec, params, ctb, bd):
    """SAO (8.7.3) of one plane: rec (H, W) deblocked samples, params (ctb_rows, ctb_cols, 7) rows
    [type, band_position, eo_class, off1..off4] (SaoOffsetVal); single slice, no tiles, no
    bypass/PCM samples.  Edge offsets use unmodified neighbours; samples whose neighbour lies
    outside the picture are left unchanged."""
    h, w = rec.shape
    out = rec.copy()
    big = np.full((h + 2, w + 2), -1, np.int64)
    big[1:-1, 1:-1] = rec
    inside = np.zeros((h + 2, w + 2), bool)
    inside[1:-1, 1:-1] = True
    for ry in range(params.shape[0]):
        for rx in range(params.shape[1]):
            t, band, eo, *offs = (int(v) for v in params[ry, rx])
            if t == 0:
                continue
            y0, x0 = ry * ctb, rx * ctb
            y1, x1 = min(h, y0 + ctb), min(w, x0 + ctb)
            if y0 >= h or x0 >= w:
                continue
            x = rec[y0:y1, x0:x1]
            val = np.array([0] + offs, np.int64)
            if t == 1:
                table = np.zeros(32, np.int64)
                for k in range(4):
                    table[(k + band) & 31] = k + 1
                out[y0:y1, x0:x1] = x + val[table[x >> (bd - 5)]]
            else:
                (dya, dxa), (dyb, dxb) = EO_OFFSETS[eo]
                sa = (slice(1 + y0 + dya, 1 + y1 + dya), slice(1 + x0 + dxa, 1 + x1 + dxa))
                sb = (slice(1 + y0 + dyb, 1 + y1 + dyb), slice(1 + x0 + dxb, 1 + x1 + dxb))
                e = 2 + np.sign(x - big[sa]) + np.sign(x - big[sb])
                e = np.where(e == 2, 0, np.where(e < 2, e + 1, e))
                ok = inside[sa] & inside[sb]
                out[y0:y1, x0:x1] = np.where(ok, x + val[e], x)
    return np.clip(out, 0, (1 << bd) - 1)


def test_sao_reapplied_to_recon_gives_the_output(hevc_store):
    """No deblocking, SAO on: decoded == SAO(recon, hevc/sao) on every sample of every plane."""
    name = "sao_nodeblock"
    info, frames = hevc_store.decode(name)
    syn = hevc_store.syntax(name)
    sps, pps = syn.first_sps, syn.first_pps
    assert all(s["deblocking_disabled"] for s in syn.slices()) and sps["sao_enabled"]
    assert not pps["transquant_bypass_enabled"] and not sps["pcm_enabled"]
    assert tuple(info["crop"]) == (0, 0, 0, 0)
    bd = info["bit_depth"]
    problems = []
    applied = {1: 0, 2: 0}
    for fr in frames:
        sao = fr.arrays["hevc/sao"].astype(np.int64)
        if sao.shape != (sps["ctb_rows"], sps["ctb_cols"], 3, 7):
            problems.append(f"{label(name, fr)}: hevc/sao shape {sao.shape}")
            continue
        if np.any(~np.isin(sao[..., 0], (0, 1, 2))):
            problems.append(f"{label(name, fr)}: hevc/sao types {np.unique(sao[..., 0]).tolist()} (expected 0, 1, 2; "
                            f"see test_sao_parameters_well_formed)")
        for c, plane in enumerate("yuv"):
            ctb = sps["ctb_size"] >> (c > 0)
            rec = fr.arrays[f"recon/{plane}"].astype(np.int64)
            exp = apply_sao(rec, sao[:, :, c], ctb, bd)
            got = fr.arrays[f"decoded/{plane}"].astype(np.int64)
            bad = exp != got
            if bad.any():
                problems.append(f"{label(name, fr)} plane {plane}: SAO(recon) != decoded at {int(bad.sum())} samples, "
                                f"first {where(bad)}")
            for t in (1, 2):
                applied[t] += int((sao[:, :, c, 0] == t).sum())
    assert not problems, fmt(problems)
    # x265 picks edge offsets on this content (band offsets are checked wherever a CTB uses them)
    assert applied[2] > 0, f"band/edge CTBs checked: {applied}"


@pytest.mark.parametrize("name", NAMES)
def test_sao_parameters_well_formed(hevc_store, name):
    """hevc/sao follows the SPS/slice switches and the syntax ranges (band position 0..31,
    EO class 0..3, EO offsets signed +, +, -, -, Cr shares Cb's type and class)."""
    _info, frames = hevc_store.decode(name, "frame,hevc")
    syn = hevc_store.syntax(name)
    sps = syn.first_sps
    problems = []
    for fr in frames:
        sao = fr.arrays["hevc/sao"].astype(np.int64)
        lab = label(name, fr)
        if sao.shape != (sps["ctb_rows"], sps["ctb_cols"], 3, 7):
            problems.append(f"{lab}: hevc/sao shape {sao.shape}")
            continue
        pic = syn.pictures[fr.decode_index]
        seg = pic.slice_map(sps)
        luma_on = np.array([s["slice_sao_luma"] for s in pic.slices])[seg].astype(bool)
        chroma_on = np.array([s["slice_sao_chroma"] for s in pic.slices])[seg].astype(bool)
        t = sao[..., 0]
        if not sps["sao_enabled"] and sao.any():
            problems.append(f"{lab}: SAO parameters although the SPS disables SAO")
        if np.any(t[~luma_on, 0] != 0) or np.any(t[~chroma_on, 1:] != 0):
            problems.append(f"{lab}: SAO type set in CTBs of slices with slice_sao_* = 0")
        if np.any(~np.isin(t, (0, 1, 2))):
            hint = (" (3 is FFmpeg's SAO_APPLIED, which sao_filter_CTB writes over type_idx once a CTB is "
                    "filtered: the parameters must be captured before)") if np.any(t == 3) else ""
            problems.append(f"{lab}: SAO types {sorted(set(t.ravel().tolist()) - {0, 1, 2})} outside 0..2{hint}")
        if np.any(sao[..., 1] < 0) or np.any(sao[..., 1] > 31) or np.any(sao[..., 2] < 0) or np.any(sao[..., 2] > 3):
            problems.append(f"{lab}: band position / EO class out of range")
        eo = t == 2
        o = sao[..., 3:]
        if np.any(eo & ((o[..., 0] < 0) | (o[..., 1] < 0) | (o[..., 2] > 0) | (o[..., 3] > 0))):
            problems.append(f"{lab}: edge offsets not signed (+, +, -, -)")
        if np.any(t[..., 2] != t[..., 1]) or np.any(eo[..., 1] & (sao[..., 1, 2] != sao[..., 2, 2])):
            problems.append(f"{lab}: Cr SAO type/class differ from Cb")
        if np.any((t == 0)[..., None] & (o != 0)):
            problems.append(f"{lab}: offsets in CTBs without SAO")
    assert not problems, fmt(problems)
    if name == "sao_nodeblock":
        assert any(np.any(f.arrays["hevc/sao"][..., 0] != 0) for f in frames)


# ----------------------------------------------------------------------------------- deblocking


def _motion_bs(p, q):
    """bS 1/0 from motion (8.7.2.4) for arrays of p/q blocks: dicts with use0/use1, poc0/poc1,
    mv0/mv1 (n, 2)."""
    def far(a, b):
        return np.any(np.abs(a - b) >= 4, -1)

    cp = p["use0"].astype(int) + p["use1"]
    cq = q["use0"].astype(int) + q["use1"]
    bs = cp != cq
    one = (cp == 1) & (cq == 1)
    pp = np.where(p["use0"], p["poc0"], p["poc1"])
    qp = np.where(q["use0"], q["poc0"], q["poc1"])
    pm = np.where(p["use0"][:, None], p["mv0"], p["mv1"])
    qm = np.where(q["use0"][:, None], q["mv0"], q["mv1"])
    bs |= one & ((pp != qp) | far(pm, qm))
    two = (cp == 2) & (cq == 2)
    same_set = ((p["poc0"] == q["poc0"]) & (p["poc1"] == q["poc1"])) | \
               ((p["poc0"] == q["poc1"]) & (p["poc1"] == q["poc0"]))
    straight = far(p["mv0"], q["mv0"]) | far(p["mv1"], q["mv1"])
    cross = far(p["mv0"], q["mv1"]) | far(p["mv1"], q["mv0"])
    distinct = p["poc0"] != p["poc1"]
    bs |= two & ~same_set
    bs |= two & same_set & distinct & np.where(p["poc0"] == q["poc0"], straight, cross)
    bs |= two & same_set & ~distinct & straight & cross
    return bs.astype(np.int64)


def expected_bs(fr, pic, sps):
    """(bs_v, bs_h) per 4x4 block from the exported CU/TU trees and motion (8.7.2.3 / 8.7.2.4):
    edges on the 8x8 grid that are transform or prediction block edges; 2 when a side is intra,
    1 at transform edges with coded luma on a side, else the motion test; 0 at the picture edge,
    at slice edges whose slice disables loop filtering across slices, and in slices with
    deblocking disabled."""
    a = fr.arrays
    shape4 = a["block/mode"].shape
    cus, maps = paint_cus(fr, shape4)
    tid, _tl, cbf, _k = luma_tu_maps(tu_rows(fr), maps["index"], shape4)
    pid, _pw, _ph = pu_maps(cus, shape4)
    intra = maps["pred"] == 0
    mot = {f"use{L}": a[f"block/ref_l{L}"] >= 0 for L in (0, 1)}
    mot.update({f"poc{L}": a[f"block/ref_poc_l{L}"].astype(np.int64) for L in (0, 1)})
    mot.update({f"mv{L}": a[f"block/mv_l{L}"].astype(np.int64) for L in (0, 1)})
    seg = pic.block_slice_map(sps, *shape4)
    indep = np.array([max(j for j in range(i + 1) if not pic.slices[j]["dependent"]) for i in range(len(pic.slices))])
    sid = indep[seg]
    across = np.array([s["loop_filter_across_slices"] for s in pic.slices])[seg]
    disabled = np.array([s["deblocking_disabled"] for s in pic.slices])[seg]
    out = []
    for axis in (1, 0):   # vertical edges (left neighbour), then horizontal (top neighbour)
        bs = np.zeros(shape4, np.int64)
        yy, xx = np.mgrid[0:shape4[0], 0:shape4[1]]
        pos = xx if axis == 1 else yy
        q = (pos > 0) & (pos % 2 == 0)
        qy, qx = np.nonzero(q)
        py, px = (qy, qx - 1) if axis == 1 else (qy - 1, qx)
        tu_edge = tid[qy, qx] != tid[py, px]
        pu_edge = pid[qy, qx] != pid[py, px]
        pm = {k: v[py, px] for k, v in mot.items()}
        qm = {k: v[qy, qx] for k, v in mot.items()}
        val = np.where(intra[qy, qx] | intra[py, px], 2,
                       np.where(tu_edge & ((cbf[qy, qx] != 0) | (cbf[py, px] != 0)), 1, _motion_bs(pm, qm)))
        val = np.where(tu_edge | pu_edge, val, 0)
        cut = (sid[qy, qx] != sid[py, px]) & (across[qy, qx] == 0)
        val = np.where(cut | (disabled[qy, qx] != 0), 0, val)
        bs[qy, qx] = val
        out.append(bs)
    return out


@pytest.mark.parametrize("name", ["ipb", "amp", "slices4", "tu4", "main10", "noloop", "cu_lossless"])
def test_deblocking_boundary_strengths(hevc_store, name):
    _info, frames = hevc_store.decode(name)
    syn = hevc_store.syntax(name)
    sps = syn.first_sps
    problems = []
    seen = {0: 0, 1: 0, 2: 0}
    for fr in frames:
        pic = syn.pictures[fr.decode_index]
        ev, eh = expected_bs(fr, pic, sps)
        for key, exp in (("hevc/bs_v", ev), ("hevc/bs_h", eh)):
            got = fr.arrays[key].astype(np.int64)
            if got.shape != exp.shape:
                problems.append(f"{label(name, fr)}: {key} shape {got.shape}, block map {exp.shape}")
                continue
            bad = got != exp
            if bad.any():
                ys, xs = np.nonzero(bad)
                problems.append(f"{label(name, fr)}: {key} differs from the derivation at {int(bad.sum())} edges, "
                                f"first (y={ys[0]}, x={xs[0]}): {got[ys[0], xs[0]]} expected {exp[ys[0], xs[0]]} "
                                f"(mode here {fr.arrays['block/mode'][ys[0], xs[0]]})")
            for v in seen:
                seen[v] += int((got == v).sum())
    assert not problems, fmt(problems)
    if name == "noloop":
        assert seen[1] == seen[2] == 0
    else:
        assert seen[1] > 0 and seen[2] > 0, seen


# ----------------------------------------------------------------------------------- API


def test_field_selection(hevc_store, pycodec):
    path = str(hevc_store.path("ipb"))
    with pycodec.open(path, fields="hevc") as r:
        frames = list(r)
    assert frames and all(set(f.arrays) == {f"hevc/{k}" for k in ("cu", "tu", "counts", "sao", "bs_v", "bs_h")}
                          for f in frames)
    with pycodec.open(path, fields="block,decoded") as r:
        f = next(iter(r))
        assert {k.split("/")[0] for k in f.arrays} == {"block", "decoded"}
    with pytest.raises(pycodec.InputError), pycodec.open(path, fields="h264") as r:
        list(r)
    # "all" on an HEVC stream gives the HEVC extras and no H.264 ones
    with pycodec.open(path, fields=None) as r:
        f = next(iter(r))
        assert any(k.startswith("hevc/") for k in f.arrays) and not any(k.startswith("h264/") for k in f.arrays)


@pytest.mark.parametrize("name", ["ipb", "crop_100x62"])
def test_frames_argument_selects_display_indices(hevc_store, name):
    from conftest import pycodec_decode

    _, full = hevc_store.decode(name)
    for frames_arg, want in ((slice(2, 6), range(2, 6)), (slice(1, None, 3), range(1, len(full), 3))):
        _, sub = pycodec_decode(hevc_store.path(name), None, frames_arg)
        assert [f.index for f in sub] == list(want), frames_arg
        for f in sub:
            g = full[f.index]
            assert (f.poc, f.decode_index) == (g.poc, g.decode_index)
            for k in ("decoded/y", "prediction/u", "residual/v", "block/mv_l0", "coeffs/y", "hevc/cu", "hevc/sao"):
                assert np.array_equal(f.arrays[k], g.arrays[k]), (frames_arg, f.index, k)


def test_pu_geometry_helper():
    """pu_rects partitions a CU exactly for every part mode (the geometry the tests above use)."""
    for part in range(8):
        for lg in (3, 4, 5, 6):
            if part >= 4 and lg == 3:
                continue
            m = np.zeros((1 << lg, 1 << lg), int)
            for x, y, w, h in pu_rects(0, 0, lg, part):
                m[y:y + h, x:x + w] += 1
            assert np.all(m == 1), (part, lg)
    assert [r[2:] for r in pu_rects(0, 0, 4, 4)] == [(16, 4), (16, 12)]
    assert [r[2:] for r in pu_rects(0, 0, 5, 7)] == [(24, 32), (8, 32)]
