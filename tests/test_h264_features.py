"""Feature coverage, unsupported structures and block-map sanity of the H.264 export.

* Unsupported structures are refused at open with a one-line InputError (10-bit, 4:2:2 when
  export fields are asked) or flagged per frame (MBAFF / field pictures -> UNSUPPORTED with zeroed
  export arrays, lossless -> LOSSLESS with block/mode 4 where bypassed); never silently wrong.
  Decoded-only reading still equals PyAV's decode where the reader allows it.
* Block maps agree with FFmpeg's own h264/mb_type: mode, tkind/tu_log2, prediction sizes, intra
  modes, reference usage (ref == -1 exactly where a list is unused) and reference POCs.
* Each generated stream really contains the macroblock kinds it is meant to cover.
"""

from __future__ import annotations

import h264_bitstream as hb
import numpy as np
import pytest
import streams as S
from conftest import LOSSLESS, UNSUPPORTED, frame_type, pyav_decode, pycodec_decode
from test_h264_invariants import (
    MB_DIRECT2,
    MB_INTRA_PCM,
    MB_P0L0,
    MB_P1L0,
    MB_SKIP,
    TK_BYPASS,
    TK_I16,
    TK_NONE,
    TK_PCM,
    MB_8x8,
    MB_8x8DCT,
    MB_8x16,
    MB_16x8,
    MB_16x16,
    MB_INTRA4x4,
    MB_INTRA16x16,
    TK_4x4,
    TK_8x8,
    _fmt,
    check_decoded,
    expand,
    to_blocks,
)

EXPORT_GROUPS = ["prediction", "residual", "recon", "coeffs", "levels", "qstep", "block", "h264"]


def _one_line_input_error(pycodec, excinfo, path):
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, pycodec.InputError)
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    assert msg.startswith(f"{path}: "), f"message does not start with the path: {msg!r}"
    assert ";" in msg, f"message does not say what to do: {msg!r}"
    return msg


# ----------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name", ["hi10", "yuv422"])
def test_export_refused_at_open(store, pycodec, name):
    path = str(store.path(name))
    for fields in (None, "all", *EXPORT_GROUPS, "decoded,block"):
        with pytest.raises(pycodec.InputError) as ei:
            pycodec.open(path, fields=fields)
        msg = _one_line_input_error(pycodec, ei, path)
        assert any(w in msg.lower() for w in ("10-bit", "bit", "4:2:2", "422", "format")), msg


@pytest.mark.parametrize("name", ["hi10", "yuv422"])
def test_refused_streams_decoded_only_equal_pyav(store, pycodec, name):
    path = str(store.path(name))
    info = pycodec.info(path)
    sps = store.syntax(name).first_sps
    assert info["bit_depth"] == sps["bit_depth_luma"]
    assert info["chroma_format"] == {1: "420", 2: "422", 3: "444"}[sps["chroma_format_idc"]]
    try:
        info, frames = pycodec_decode(path, "frame,decoded")
    except pycodec.InputError as exc:  # the reader may refuse these entirely: clearly, in one line
        assert "\n" not in str(exc) and str(exc).startswith(path)
        return
    ref = pyav_decode(path, side_data=False)
    assert len(frames) == len(ref)
    problems = []
    for fr, rf in zip(frames, ref):
        assert fr.arrays["decoded/y"].dtype == (np.uint16 if sps["bit_depth_luma"] > 8 else np.uint8)
        problems += check_decoded(fr, rf, f"{name} frame {fr.index}")
    assert not problems, _fmt(problems)


# ----------------------------------------------------------------------------------- flagged


@pytest.mark.parametrize("name", ["mbaff", "paff_pcm"])
def test_interlaced_flagged_unsupported(store, pycodec, name):
    path = store.path(name)
    syn = store.syntax(name)
    assert syn.first_sps["mbaff"] or any(s["field_pic"] for s in syn.slices)
    _info, frames = store.decode(name)
    ref = pyav_decode(path, side_data=False)
    assert len(frames) == len(ref) == S.SPECS[name].frames
    problems = []
    for fr, rf in zip(frames, ref):
        lab = f"{name} frame {fr.index}"
        if not int(fr.flags) & UNSUPPORTED:
            problems.append(f"{lab}: flags {int(fr.flags):#x} lack UNSUPPORTED")
        for k, a in fr.arrays.items():
            if not k.startswith("decoded/") and np.any(a):
                problems.append(f"{lab}: {k} is not zeroed although the structure is unsupported")
        problems += check_decoded(fr, rf, lab)
    assert not problems, _fmt(problems)
    # decoded-only reading of the same file is still exact
    _, plain = store.decode(name, "frame,decoded")
    problems = []
    for fr, rf in zip(plain, ref):
        problems += check_decoded(fr, rf, f"{name} decoded-only frame {fr.index}")
    assert not problems, _fmt(problems)
    if S.SPECS[name].pcm:
        _, expected = S.pcm_expected(S.SPECS[name])
        for fr, exp in zip(frames, expected):
            for k in "yuv":
                assert np.array_equal(fr.arrays[f"decoded/{k}"], exp[k])


def test_lossless_flagged(store):
    name = "lossless"
    syn = store.syntax(name)
    assert syn.first_sps["transform_bypass"] and syn.first_sps["profile_idc"] == 244
    _info, frames = store.decode(name)
    ref = store.reference(name)
    assert len(frames) == len(ref)
    problems = []
    bypass_blocks = 0
    for fr, rf in zip(frames, ref):
        lab = f"{name} frame {fr.index}"
        problems += check_decoded(fr, rf, lab)
        mbt = fr.arrays["h264/mb_type"].astype(np.int64)
        qp = fr.arrays["block/qp_y"]
        mode = fr.arrays["block/mode"]
        tk = fr.arrays["block/tkind"]
        bypass = expand(((mbt & (MB_SKIP | MB_INTRA_PCM)) == 0), 4) & (qp == 0)
        if bypass.any() and not int(fr.flags) & LOSSLESS:
            problems.append(f"{lab}: flags {int(fr.flags):#x} lack LOSSLESS although transform-bypass MBs are present")
        if np.any(mode[bypass] != 4):
            problems.append(f"{lab}: block/mode {np.unique(mode[bypass]).tolist()} at bypass MBs (expected 4)")
        if np.any(~np.isin(tk[bypass], (TK_NONE, TK_BYPASS))):
            problems.append(f"{lab}: tkind {np.unique(tk[bypass]).tolist()} at bypass MBs")
        bypass_blocks += int(bypass.sum())
    assert not problems, _fmt(problems)
    assert bypass_blocks > 0


# ----------------------------------------------------------------------------------- block maps


def mb_classes(mbt):
    pcm = (mbt & MB_INTRA_PCM) != 0
    i16 = ((mbt & MB_INTRA16x16) != 0) & ~pcm
    i4any = ((mbt & MB_INTRA4x4) != 0) & ~pcm
    i8 = i4any & ((mbt & MB_8x8DCT) != 0)
    i4 = i4any & ~i8
    intra = pcm | i16 | i4any
    skip = ((mbt & MB_SKIP) != 0) & ~intra
    direct = ((mbt & MB_DIRECT2) != 0) & ~intra
    inter = ~intra
    return {"pcm": pcm, "i16": i16, "i4": i4, "i8": i8, "intra": intra, "skip": skip, "direct": direct,
            "inter": inter}


def list_usage(mbt, sub, lst):
    """Per 4x4 block: does the partition covering it use list ``lst`` (FFmpeg's mb_type bits)."""
    c = mb_classes(mbt)
    p0 = expand((mbt & (MB_P0L0 << (2 * lst))) != 0, 4)
    p1 = expand((mbt & (MB_P1L0 << (2 * lst))) != 0, 4)
    h4, w4 = p0.shape
    yy, xx = np.mgrid[0:h4, 0:w4]
    second_h = (yy % 4) >= 2
    second_v = (xx % 4) >= 2
    is88 = expand((mbt & MB_8x8) != 0, 4)
    is168 = expand((mbt & MB_16x8) != 0, 4) & ~is88
    is816 = expand((mbt & MB_8x16) != 0, 4) & ~is88 & ~is168
    use = np.where(is168, np.where(second_h, p1, p0), np.where(is816, np.where(second_v, p1, p0), p0))
    sub_use = expand((sub & ((MB_P0L0 | MB_P1L0) << (2 * lst))) != 0, 2)
    use = np.where(is88, sub_use, use)
    return use & ~expand(c["intra"], 4)


def check_block_maps(fr, label):
    a = fr.arrays
    mbt = a["h264/mb_type"].astype(np.int64)
    sub = a["h264/sub_mb_type"].astype(np.int64)
    c = mb_classes(mbt)
    e = {k: expand(v, 4) for k, v in c.items()}
    mode, tk, tu = (a[k].astype(np.int64) for k in ("block/mode", "block/tkind", "block/tu_log2"))
    pw, ph, im = (a[k].astype(np.int64) for k in ("block/pu_w", "block/pu_h", "block/intra_mode"))
    out = []

    def bad(cond, what):
        if np.any(cond):
            ys, xs = np.nonzero(cond)
            out.append(f"{label}: {what} at {int(cond.sum())} blocks, first (y={ys[0]}, x={xs[0]}) "
                       f"mb_type {int(mbt[ys[0] // 4, xs[0] // 4]):#x}")

    # mode
    exp_mode = np.select([e["pcm"], e["intra"], e["skip"]], [3, 0, 2], 1)
    bad(mode != exp_mode, "block/mode disagrees with mb_type")
    bad(a["block/cu_log2"] != 4, "cu_log2 != 4")
    # transforms
    t8 = expand((mbt & MB_8x8DCT) != 0, 4)
    bad(e["pcm"] & (tk != TK_PCM), "tkind != PCM in PCM MBs")
    bad(e["i16"] & (tk != TK_I16), "tkind != I16 in intra 16x16 MBs")
    other = ~e["pcm"] & ~e["i16"]
    bad(other & t8 & ~np.isin(tk, (TK_NONE, TK_8x8)), "tkind not in {none, 8x8} in an 8x8-transform MB")
    bad(other & ~t8 & ~np.isin(tk, (TK_NONE, TK_4x4)), "tkind not in {none, 4x4} in a 4x4-transform MB")
    bad(e["skip"] & (tk != TK_NONE), "tkind != none in skipped MBs")
    exp_tu = np.select([tk == TK_4x4, tk == TK_8x8, tk == TK_I16, tk == TK_NONE], [2, 3, 2, 0], tu)
    bad(~e["pcm"] & (tu != exp_tu), "tu_log2 disagrees with tkind")
    cbp = a["h264/cbp"].astype(np.int64)
    qbit = np.zeros((cbp.shape[0] * 2, cbp.shape[1] * 2), bool)
    for q in range(4):
        qbit[q // 2::2, q % 2::2] = (cbp >> q) & 1
    qbit4 = expand(qbit, 2)
    bad(expand(c["skip"] & (cbp != 0), 4), "h264/cbp != 0 in skipped MBs")
    bad(other & ~qbit4 & (tk != TK_NONE), "tkind set where coded_block_pattern says no luma residual")
    bad(other & qbit4 & (tk == TK_NONE) & ~e["skip"], "tkind none where coded_block_pattern has luma residual")
    if "levels/y" in a:  # the coded_block_pattern bounds where levels may be nonzero
        nzq = expand(to_blocks(a["levels/y"] != 0, 4).any((2, 3)), 1)
        bad(other & ~qbit4 & nzq, "luma levels where coded_block_pattern has no luma residual")
        for k in "uv":
            cl = a[f"levels/{k}"] != 0
            ac = cl.copy()
            ac[::4, ::4] = False
            nz_mb = to_blocks(cl, 8).any((2, 3))            # (mb_h, mb_w): any chroma level
            ac_mb = to_blocks(ac, 8).any((2, 3))            # any chroma AC level
            bad(expand(~c["pcm"] & ((cbp >> 4) == 0) & nz_mb, 4), f"chroma {k} levels where chroma cbp is 0")
            bad(expand(~c["pcm"] & ((cbp >> 4) == 1) & ac_mb, 4), f"chroma {k} AC levels where chroma cbp is 1")
    # prediction sizes
    pu_exp_w = np.full(mode.shape, -1)
    pu_exp_h = np.full(mode.shape, -1)
    for cls, (w, h) in (("pcm", (16, 16)), ("i16", (16, 16)), ("i4", (4, 4)), ("i8", (8, 8))):
        pu_exp_w[e[cls]], pu_exp_h[e[cls]] = w, h
    inter_nd = e["inter"] & ~e["direct"]
    is88 = expand((mbt & MB_8x8) != 0, 4)
    is168 = expand((mbt & MB_16x8) != 0, 4) & ~is88
    is816 = expand((mbt & MB_8x16) != 0, 4) & ~is88 & ~is168
    is16 = expand((mbt & MB_16x16) != 0, 4) & ~is88 & ~is168 & ~is816
    for sel, (w, h) in ((is16, (16, 16)), (is168, (16, 8)), (is816, (8, 16))):
        pu_exp_w[inter_nd & sel], pu_exp_h[inter_nd & sel] = w, h
    s4 = expand(sub, 2)
    sub_direct = (s4 & MB_DIRECT2) != 0
    for bit, (w, h) in ((MB_16x16, (8, 8)), (MB_16x8, (8, 4)), (MB_8x16, (4, 8)), (MB_8x8, (4, 4))):
        sel = inter_nd & is88 & ~sub_direct & ((s4 & bit) != 0)
        pu_exp_w[sel], pu_exp_h[sel] = w, h
    known = pu_exp_w >= 0
    bad(known & ((pw != pu_exp_w) | (ph != pu_exp_h)), "pu_w/pu_h disagree with mb_type/sub_mb_type")
    bad(~known & (~np.isin(pw, (4, 8, 16)) | ~np.isin(ph, (4, 8, 16))), "direct pu sizes not 4/8/16")
    bad(~known & ~(e["direct"] | (is88 & sub_direct)), "blocks of unknown partition")
    # intra modes
    bad(e["inter"] & (im != 255), "intra_mode != 255 in inter MBs")
    bad((e["i4"] | e["i8"]) & (im > 8), "intra 4x4/8x8 mode > 8")
    bad(e["i16"] & (im > 3), "intra 16x16 mode > 3")
    cpm = a["h264/chroma_pred_mode"].astype(np.int64)
    bad(expand(c["intra"] & ~c["pcm"] & (cpm > 3), 4), "chroma_pred_mode > 3 in intra MBs")
    bad(expand(c["inter"] & (cpm != 255), 4), "chroma_pred_mode != 255 in inter MBs")
    # reference usage: ref == -1 exactly where the list is unused
    for lst in (0, 1):
        use = list_usage(mbt, sub, lst)
        ref = a[f"block/ref_l{lst}"]
        bad(use & (ref < 0), f"ref_l{lst} == -1 where mb_type says list {lst} is used")
        bad(~use & (ref != -1), f"ref_l{lst} != -1 where list {lst} is unused")
    bad(e["inter"] & (a["block/ref_l0"] < 0) & (a["block/ref_l1"] < 0), "inter block using no list")
    if frame_type(fr.type) == "P":
        bad(a["block/ref_l1"] != -1, "list 1 used in a P picture")
    return out


@pytest.mark.parametrize("name", S.SUPPORTED)
def test_block_maps_consistent_with_mb_type(store, name):
    _info, frames = store.decode(name)
    problems = []
    for fr in frames:
        problems += check_block_maps(fr, f"{name} frame {fr.index} ({frame_type(fr.type)})")
    assert not problems, _fmt(problems)


@pytest.mark.parametrize("name", S.SUPPORTED)
def test_reference_pocs(store, name):
    """ref_poc_lX is the POC of a picture decoded earlier in the same IDR period; within a slice
    one reference index always names the same POC (slices may order their lists differently);
    P pictures only look back in display order."""
    _info, frames = store.decode(name)
    syn = store.syntax(name)
    pics = syn.pictures()
    order = sorted(frames, key=lambda f: f.decode_index)
    problems = []
    period: list = []
    for fr in order:
        if pics[fr.decode_index][0]["nal_type"] == hb.NAL_IDR:
            period = []
        allowed = {f.poc for f in period}
        lab = f"{name} frame {fr.index} ({frame_type(fr.type)}, poc {fr.poc})"
        for lst in (0, 1):
            ref = fr.arrays[f"block/ref_l{lst}"]
            rp = fr.arrays[f"block/ref_poc_l{lst}"]
            used = ref >= 0
            got = set(np.unique(rp[used]).tolist())
            if got - allowed:
                problems.append(f"{lab}: list {lst} references POCs {sorted(got - allowed)} not decoded before "
                                f"(available {sorted(allowed)})")
            firsts = np.array(sorted(sl["first_mb"] for sl in pics[fr.decode_index]))
            mbs = np.arange(ref.size // 16).reshape(ref.shape[0] // 4, ref.shape[1] // 4)
            slice_of = np.repeat(np.repeat(np.searchsorted(firsts, mbs, side="right") - 1, 4, 0), 4, 1)
            for si in range(len(firsts)):
                for k in np.unique(ref[used & (slice_of == si)]):
                    ps = np.unique(rp[used & (slice_of == si) & (ref == k)])
                    if len(ps) != 1:
                        problems.append(f"{lab} slice {si}: ref_l{lst} {k} maps to several POCs {ps.tolist()}")
            nslices = len(pics[fr.decode_index])
            n_active = max(s[f"num_ref_idx_l{lst}"] for s in pics[fr.decode_index])
            if used.any() and ref[used].max() >= n_active:
                problems.append(f"{lab}: ref_l{lst} {ref[used].max()} >= num_ref_idx_active {n_active} "
                                f"({nslices} slices)")
            if frame_type(fr.type) == "P" and lst == 0 and used.any() and rp[used].max() >= fr.poc:
                problems.append(f"{lab}: a P picture references a later POC {rp[used].max()}")
        period.append(fr)
    assert not problems, _fmt(problems)


# ----------------------------------------------------------------------------------- coverage

COVERAGE = {
    "baseline": {"i4", "i16", "p_skip", "p16x8", "p8x16", "p8x8", "sub8x4", "sub4x8", "sub4x4"},
    "main_b": {"i4", "i16", "p_skip", "b_skip", "b_direct16", "b_sub_direct", "bi", "l1_only", "b16x8", "b8x16"},
    "high_temporal": {"i8", "i16", "inter_t8", "b_skip", "b_sub_direct", "bi"},
    "cavlc_8x8": {"i4", "i8", "inter_t8", "inter_t4", "b_skip", "bi", "sub8x4"},
    "weightp": {"p_skip", "i16"},
    "slices4": {"p_skip", "b_skip"},
    "ref4": {"ref_idx_2plus"},
    "pcm": {"pcm", "p_skip"},
    "pcm_slices": {"pcm", "p_skip"},
}


def mb_kinds(frames):
    kinds: dict[str, int] = {}

    def add(k, v):
        kinds[k] = kinds.get(k, 0) + int(np.sum(v))

    for fr in frames:
        a = fr.arrays
        m = a["h264/mb_type"].astype(np.int64)
        sub = a["h264/sub_mb_type"].astype(np.int64)
        c = mb_classes(m)
        t = frame_type(fr.type)
        for k in ("pcm", "i16", "i4", "i8"):
            add(k, c[k])
        add("p_skip", c["skip"] & (t == "P"))
        add("b_skip", c["skip"] & (t == "B"))
        add("b_direct16", c["direct"] & ~c["skip"] & (t == "B"))
        inter = c["inter"] & ~c["direct"]
        add("p16x8" if t == "P" else "b16x8", inter & ((m & MB_16x8) != 0))
        add("p8x16" if t == "P" else "b8x16", inter & ((m & MB_8x16) != 0))
        add("p8x8" if t == "P" else "b8x8", inter & ((m & MB_8x8) != 0))
        real8 = np.repeat(np.repeat(inter & ((m & MB_8x8) != 0), 2, 0), 2, 1)
        add("sub8x4", real8 & ((sub & MB_16x8) != 0) & ((sub & MB_DIRECT2) == 0))
        add("sub4x8", real8 & ((sub & MB_8x16) != 0) & ((sub & MB_DIRECT2) == 0))
        add("sub4x4", real8 & ((sub & MB_8x8) != 0) & ((sub & MB_DIRECT2) == 0))
        add("b_sub_direct", real8 & ((sub & MB_DIRECT2) != 0))
        tk = a["block/tkind"]
        ie = expand(c["inter"], 4)
        add("inter_t8", ie & (tk == TK_8x8))
        add("inter_t4", ie & (tk == TK_4x4))
        r0, r1 = a["block/ref_l0"], a["block/ref_l1"]
        add("bi", (r0 >= 0) & (r1 >= 0))
        add("l1_only", (r0 < 0) & (r1 >= 0))
        add("ref_idx_2plus", r0 >= 2)
    return kinds


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_streams_cover_their_features(store, name):
    _info, frames = store.decode(name)
    kinds = mb_kinds(frames)
    missing = sorted(k for k in COVERAGE[name] if not kinds.get(k))
    assert not missing, f"{name} lacks {missing}; has {{{', '.join(f'{k}: {v}' for k, v in kinds.items() if v)}}}"


# ----------------------------------------------------------------------------------- API


@pytest.mark.parametrize("name", ["main_b", "crop_70x46"])
def test_frames_argument_selects_display_indices(store, pycodec, name):
    _, full = store.decode(name)
    for frames_arg, want in ((slice(2, 7), range(2, 7)), ((3, 5), range(3, 5)),
                             (slice(1, None, 4), range(1, len(full), 4)), (slice(0, 1), range(1))):
        _, sub = pycodec_decode(store.path(name), None, frames_arg)
        assert [f.index for f in sub] == list(want), frames_arg
        for f in sub:
            g = full[f.index]
            assert (f.poc, f.decode_index, frame_type(f.type)) == (g.poc, g.decode_index, frame_type(g.type))
            for k in ("decoded/y", "prediction/u", "residual/v", "block/mv_l0", "coeffs/y", "h264/mb_type"):
                assert np.array_equal(f.arrays[k], g.arrays[k]), (frames_arg, f.index, k)


def test_field_selection(store, pycodec):
    path = store.path("main_b")
    _, frames = pycodec_decode(path, "block")
    assert frames and all(set(f.arrays) == {f"block/{k}" for k in (
        "mv_l0", "mv_l1", "ref_l0", "ref_l1", "ref_poc_l0", "ref_poc_l1", "qp_y", "qp_cb", "qp_cr", "mode",
        "cu_log2", "pu_w", "pu_h", "tu_log2", "tkind", "intra_mode")} for f in frames)
    _, frames = pycodec_decode(path, ["prediction", "h264"])
    assert all({k.split("/")[0] for k in f.arrays} == {"prediction", "h264"} for f in frames)
    _, frames = pycodec_decode(path, "frame")
    assert all(not f.arrays for f in frames)
    with pytest.raises((ValueError, pycodec.PycodecError)):
        pycodec.open(str(path), fields="nonsense")


@pytest.mark.parametrize("name", S.SUPPORTED + S.UNSUPPORTED)
def test_info_matches_sps(store, pycodec, name):
    info = pycodec.info(str(store.path(name)))
    sps = store.syntax(name).first_sps
    left, right, top, bottom = sps["crop_lrtb"]
    assert info["codec"] == "h264"
    assert (info["width"], info["height"]) == (sps["width"], sps["height"])
    assert (info["coded_width"], info["coded_height"]) == (sps["coded_width"], sps["coded_height"])
    assert tuple(info["crop"]) == (top, bottom, left, right)
    assert info["bit_depth"] == sps["bit_depth_luma"]
    assert info["chroma_format"] == {0: "400", 1: "420", 2: "422", 3: "444"}[sps["chroma_format_idc"]]
    assert info["source"] == str(store.path(name))


def test_bad_inputs_raise_one_line_input_errors(tmp_path, pycodec):
    import av

    missing = tmp_path / "missing.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    mpeg4 = tmp_path / "mpeg4.avi"
    with av.open(str(mpeg4), "w") as out:  # a real video in a codec pycodec does not export
        st = out.add_stream("mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            fr = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            for p in st.encode(fr):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    for p in (missing, empty, junk, mpeg4, tmp_path):
        with pytest.raises(pycodec.InputError) as ei, pycodec.open(str(p)) as r:
            list(r)
        _one_line_input_error(pycodec, ei, str(p))
        with pytest.raises(pycodec.InputError):
            pycodec.info(str(p))
