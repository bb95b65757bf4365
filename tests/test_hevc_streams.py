"""The HEVC test streams and the HEVC syntax parser (no pycodec needed).

* the bit reader / Exp-Golomb / emulation prevention round trips, the diagonal scan and the
  default scaling lists against the spec's listing;
* every generated stream builds and really has its feature (``hevc_streams.verify``: parameter
  sets, slice headers, x265's CSV log, PyAV's decode);
* the parser reads the same syntax from Annex B and from the mp4 (hvcC + length-prefixed) muxing
  of the same x265 output, and its POC derivation reproduces the display order PyAV outputs;
* x265 cannot produce PCM or tiles (which is why no stream has them).
"""

from __future__ import annotations

import ctypes
import dataclasses
import glob
import os

import h264_bitstream as rbsp
import hevc_bitstream as hb
import hevc_streams as H
import numpy as np
import pytest

# ----------------------------------------------------------------------------------- parser basics


def test_bit_reader_round_trip():
    w = rbsp.BitWriter()
    vals = [0, 1, 2, 3, 7, 8, 254, 255, 1000, 65535]
    for v in vals:
        w.ue(v).se(-v).se(v).u(5, v % 32)
    w.trailing()
    r = hb.BitReader(w.to_bytes())
    for v in vals:
        assert (r.ue(), r.se(), r.se(), r.u(5)) == (v, -v, v, v % 32)
    assert not r.more_rbsp_data()
    # known codes: ue 0 -> 1, 1 -> 010, 2 -> 011, 3 -> 00100; se 1 -> 010, -1 -> 011
    r = hb.BitReader(bytes([0b10100110, 0b01000100, 0b11000000]))
    assert [r.ue(), r.ue(), r.ue(), r.ue(), r.se(), r.se()] == [0, 1, 2, 3, 1, -1]


def test_emulation_prevention():
    raw = bytes([0, 0, 0, 0, 0, 1, 0, 0, 2, 5, 0, 0, 3, 0, 0])
    esc = rbsp.escape_rbsp(raw)
    assert hb.unescape(esc) == raw
    for pat in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
        assert pat not in esc
    assert hb.unescape(b"\x00\x00\x03\x01\x00\x00\x03") == b"\x00\x00\x01\x00\x00"


def test_nal_framing():
    nal1 = bytes([0x40, 0x01]) + rbsp.escape_rbsp(b"\x0c\x00\x00\x01\xff")   # VPS header + payload
    nal2 = bytes([0x02, 0x01]) + b"\xaa\xbb"                           # TRAIL_R, tid 0
    annexb = b"\x00\x00\x00\x01" + nal1 + b"\x00\x00\x01" + nal2 + b"\x00\x00"
    a = hb.split_annexb(annexb)
    assert [(n.type, n.temporal_id, n.rbsp) for n in a] == [(hb.VPS_NUT, 0, b"\x0c\x00\x00\x01\xff"),
                                                            (hb.TRAIL_R, 0, b"\xaa\xbb")]
    sample = len(nal1).to_bytes(4, "big") + nal1 + len(nal2).to_bytes(4, "big") + nal2
    b = hb.split_length_prefixed(sample, 4)
    assert [(n.type, n.rbsp) for n in b] == [(n.type, n.rbsp) for n in a]
    with pytest.raises(ValueError):
        hb.split_length_prefixed(sample[:-1], 4)


def test_diagonal_scan_and_default_scaling_lists():
    # 6.5.3: up-right diagonal, (x, y) pairs
    assert hb.diag_scan(4)[:6] == [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0)]
    assert sorted(hb.diag_scan(8)) == [(x, y) for x in range(8) for y in range(8)]
    # Table 7-6 lists the default 8x8 values in diagonal-scan order i = 0..63
    intra = [16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 17, 16, 17, 16, 17, 18, 17, 18, 18, 17, 18, 21, 19, 20,
             21, 20, 19, 21, 24, 22, 22, 24, 24, 22, 22, 24, 25, 25, 27, 30, 27, 25, 25, 29, 31, 35, 35, 31,
             29, 36, 41, 44, 41, 36, 47, 54, 54, 47, 65, 70, 65, 88, 88, 115]
    inter = [16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 20, 20, 20,
             20, 20, 20, 20, 24, 24, 24, 24, 24, 24, 24, 24, 25, 25, 25, 25, 25, 25, 25, 28, 28, 28, 28, 28,
             28, 33, 33, 33, 33, 33, 41, 41, 41, 41, 54, 54, 54, 71, 71, 91]
    scan = hb.diag_scan(8)
    assert [int(hb.DEFAULT_SL_INTRA_8x8[y, x]) for x, y in scan] == intra
    assert [int(hb.DEFAULT_SL_INTER_8x8[y, x]) for x, y in scan] == inter
    lists = hb.default_scaling_lists()
    f32 = hb.scaling_factor(lists, 5, 3)
    assert f32.shape == (32, 32) and f32[0, 0] == 16 and f32[31, 31] == 91 and f32[3, 4] == 16
    assert np.array_equal(hb.scaling_factor(lists, 4, 0)[::2, ::2], hb.DEFAULT_SL_INTRA_8x8)


def test_scaling_list_data_round_trip():
    """scaling_list_data() with explicit, copied (pred_matrix_id_delta) and default entries."""
    rng = np.random.default_rng(3)
    w = rbsp.BitWriter()
    expect = {}
    for size_id in range(4):
        step = 3 if size_id == 3 else 1
        for matrix_id in range(0, 6, step):
            n = 4 if size_id == 0 else 8
            if matrix_id == 2 and size_id == 1:          # copy of matrix 1
                w.u(1, 0).ue(1)
                expect[(size_id, matrix_id)] = expect[(size_id, 1)]
                continue
            if matrix_id == 5 and size_id == 2:          # default (delta 0)
                w.u(1, 0).ue(0)
                expect[(size_id, matrix_id)] = (hb.DEFAULT_SL_INTER_8x8, 16)
                continue
            m = rng.integers(1, 120, (n, n))
            dc = int(rng.integers(1, 120)) if size_id > 1 else None
            w.u(1, 1)
            prev = 8
            if dc is not None:
                w.se(dc - 8)
                prev = dc
            for x, y in hb.diag_scan(n):
                d = int(m[y, x]) - prev
                d = (d + 128) % 256 - 128
                w.se(d)
                prev = int(m[y, x])
            expect[(size_id, matrix_id)] = (m, dc if dc is not None else int(m[0, 0]))
    w.trailing()
    got = hb.parse_scaling_list_data(hb.BitReader(w.to_bytes()))
    for k, (m, dc) in expect.items():
        assert np.array_equal(got[k][0], m), k
        assert got[k][1] == dc, k


# ----------------------------------------------------------------------------------- streams


@pytest.mark.parametrize("name", H.NAMES)
def test_stream_builds_with_its_feature(hevc_store, name):
    """Encoding + hevc_streams.verify (raises StreamFeatureError naming the missing feature)."""
    path = hevc_store.path(name)
    assert path.exists() and os.path.getsize(path) > 0
    syn = hevc_store.syntax(name)
    spec = H.SPECS[name]
    assert len(syn.pictures) == spec.frames
    assert syn.length_size == (None if spec.container == "hevc" else 4)


@pytest.mark.parametrize("name", ["wpp", "slices4"])
def test_threaded_streams_are_deterministic(hevc_store, tmp_path, name):
    """The streams x265 encodes with a thread pool (WPP, slices) come out byte-identical each
    time, like the single-threaded ones."""
    again = H.build(H.SPECS[name], tmp_path)
    assert H.sha256(again) == H.sha256(hevc_store.path(name))


def test_annexb_and_mp4_parse_identically(hevc_store, tmp_path):
    """The same x265 output muxed as raw Annex B and as mp4 (hvcC + length prefixes) parses to
    identical parameter sets and slice headers."""
    spec = H.SPECS["ipb"]
    raw = dataclasses.replace(spec, container="hevc")
    mp4 = dataclasses.replace(spec, container="mp4")
    a = hb.analyze_file(H.build(raw, tmp_path / "a"))
    b = hb.analyze_file(H.build(mp4, tmp_path / "b"))
    assert a.length_size is None and b.length_size == 4

    def strip(d):
        return {k: v for k, v in d.items() if k not in ("scaling_lists",)}

    assert [strip(s) for s in a.sps.values()] == [strip(s) for s in b.sps.values()]
    assert [strip(p) for p in a.pps.values()] == [strip(p) for p in b.pps.values()]
    assert [(p.poc, p.nal_type, p.ref_lists) for p in a.pictures] == [(p.poc, p.nal_type, p.ref_lists)
                                                                       for p in b.pictures]
    assert a.slices() == b.slices()


@pytest.mark.parametrize("name", ["ipb", "slices4", "amp"])
def test_poc_derivation_matches_display_order(hevc_store, name):
    """Pictures sorted by the POC the parser derives (8.3.1) are in the order PyAV outputs them
    (mp4 packet pts give each coded picture's display time)."""
    import av

    syn = hevc_store.syntax(name)
    with av.open(str(hevc_store.path(name))) as c:
        pts = [p.pts for p in c.demux(video=0) if p.size]
    assert len(pts) == len(syn.pictures)
    by_pts = [p.decode_index for _, p in sorted(zip(pts, syn.pictures), key=lambda t: t[0])]
    by_poc = [p.decode_index for p in sorted(syn.pictures, key=lambda p: p.poc)]
    assert by_pts == by_poc
    # every reference of every slice is a picture decoded earlier
    seen = set()
    for p in syn.pictures:
        for s in p.slices:
            for lst in s["ref_pocs"]:
                assert set(lst) <= seen, (p.decode_index, lst, seen)
        seen.add(p.poc)


def test_ipb_has_references_in_both_directions(hevc_store):
    syn = hevc_store.syntax("ipb")
    bs = [p for p in syn.pictures if p.slice_type == hb.SLICE_B]
    assert any(min(p.ref_lists[0]) < p.poc < max(p.ref_lists[1]) for p in bs)
    assert max(len(p.ref_lists[0]) for p in syn.pictures) >= 2


def test_weightp_tables(hevc_store):
    """The fade stream carries explicit weights that differ from the default (1 << denom, 0)."""
    syn = hevc_store.syntax("weightp")
    found = 0
    for s in syn.slices():
        wt = s["weights"]
        if not wt:
            continue
        for lst in (0, 1):
            for (wy, oy, _cb, _cr), (lf, _cf) in zip(wt["lists"][lst], wt["explicit"][lst]):
                if lf and (wy != 1 << wt["luma_log2_denom"] or oy != 0):
                    found += 1
    assert found > 0


def test_x265_csv_log_is_per_frame(hevc_store):
    rows = hevc_store.csv("amp")
    syn = hevc_store.syntax("amp")
    assert sorted(int(r["POC"]) for r in rows) == sorted(p.poc for p in syn.pictures)
    assert any(H.csv_share(r, "amp") > 0 for r in rows)


# ----------------------------------------------------------------------------------- not producible


def _libx265():
    import av

    libs = glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libx265*.so*"))
    if not libs:
        pytest.fail("PyAV's bundled libx265 was not found next to the av package (av.libs/)")
    lib = ctypes.CDLL(libs[0])
    lib.x265_param_alloc.restype = ctypes.c_void_p
    lib.x265_param_default.argtypes = [ctypes.c_void_p]
    lib.x265_param_parse.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.x265_param_free.argtypes = [ctypes.c_void_p]
    return lib


def test_x265_has_no_pcm_or_tiles(tmp_path):
    """x265 (the encoder PyAV ships) has no PCM and no tiles: its parameter parser rejects every
    such option (X265_PARAM_BAD_NAME = -1) while it accepts the options our streams use, and an
    encode that asks for them anyway has pcm_enabled_flag = tiles_enabled_flag = 0.  When this
    test fails, x265 gained the feature: add a stream for it."""
    lib = _libx265()
    p = lib.x265_param_alloc()
    try:
        lib.x265_param_default(p)
        for k in ("amp", "tskip", "wpp", "signhide", "lossless", "cu-lossless"):
            assert lib.x265_param_parse(p, k.encode(), b"1") == 0, k
        for k, v in (("pcm", "1"), ("pcm-loop-filter", "1"), ("tiles", "2x2"), ("tiles", "2"),
                     ("num-tile-cols", "2"), ("tile-columns", "2"), ("tile-rows", "2")):
            assert lib.x265_param_parse(p, k.encode(), v.encode()) == -1, (k, v)
    finally:
        lib.x265_param_free(p)
    spec = H.StreamSpec("pcm_tiles_request", 64, 64, 2, container="hevc", params={"pcm": 1, "tiles": "2x2"})
    path = tmp_path / "req.hevc"
    H._encode(spec, path)
    syn = hb.analyze_file(path)
    assert syn.first_sps["pcm_enabled"] == 0 and syn.first_pps["tiles_enabled"] == 0
