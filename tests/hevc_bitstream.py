"""A small HEVC (ITU-T H.265) syntax parser for the tests, written from the spec.

* ``BitReader``: u(n), ue(v), se(v), more_rbsp_data; ``unescape`` / ``escape`` (emulation
  prevention, 7.4.2).
* NAL framing: ``split_annexb`` (start codes) and ``split_length_prefixed`` (ISO/IEC 14496-15
  length-prefixed samples, NAL length size from the ``hvcC`` record, ``parse_hvcc``).
* ``parse_vps`` / ``parse_sps`` / ``parse_pps``: the fields the tests rely on (bit depth, chroma
  format, sizes and conformance window, CTB/TB sizes, AMP, SAO, PCM, scaling lists with the
  resulting ScalingFactor matrices, transform skip, sign hiding, WPP, tiles, weighted prediction,
  cu_qp_delta, transquant bypass, deblocking control, short-term RPS).
* ``parse_slice_header``: first_slice_segment_in_pic_flag, slice address, slice type, POC LSB,
  the short-term RPS in use, slice SAO flags, reference list sizes, TMVP, the explicit weighted
  prediction table (7.3.6.3), slice QP and chroma offsets, deblocking override, entry points.
* ``StreamSyntax``: a whole stream, with POC derivation (8.3.1), reference picture lists (8.3.2,
  8.3.4; short-term references, no list modification) and slices grouped per picture.

VUI and the SPS/PPS extensions after it are not parsed (nothing in the tests needs them and the
x265 Main/Main10 streams do not use range extensions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from h264_bitstream import BitReader, sei_messages

# ----------------------------------------------------------------------------------- bits


def unescape(ebsp: bytes) -> bytes:
    """Remove emulation_prevention_three_byte: every 0x03 that follows two zero bytes (7.4.2)."""
    if b"\x00\x00\x03" not in ebsp:
        return bytes(ebsp)
    out = bytearray()
    zeros = 0
    for b in ebsp:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


# ----------------------------------------------------------------------------------- NAL units

# nal_unit_type (Table 7-1)
TRAIL_N, TRAIL_R, TSA_N, TSA_R, STSA_N, STSA_R, RADL_N, RADL_R, RASL_N, RASL_R = range(10)
BLA_W_LP, BLA_W_RADL, BLA_N_LP, IDR_W_RADL, IDR_N_LP, CRA_NUT = 16, 17, 18, 19, 20, 21
VPS_NUT, SPS_NUT, PPS_NUT, AUD_NUT, EOS_NUT, EOB_NUT, FD_NUT, PREFIX_SEI, SUFFIX_SEI = range(32, 41)
SLICE_B, SLICE_P, SLICE_I = 0, 1, 2
SLICE_TYPE_CHAR = {SLICE_B: "B", SLICE_P: "P", SLICE_I: "I"}


@dataclass
class Nal:
    type: int
    layer_id: int
    temporal_id: int
    rbsp: bytes      # payload after the 2-byte header, emulation prevention removed

    @property
    def is_vcl(self) -> bool:
        return self.type < 32

    @property
    def is_irap(self) -> bool:
        return BLA_W_LP <= self.type <= 23

    @property
    def is_idr(self) -> bool:
        return self.type in (IDR_W_RADL, IDR_N_LP)


def parse_nal(raw: bytes) -> Nal:
    if len(raw) < 2:
        raise ValueError("NAL unit shorter than its header")
    h = (raw[0] << 8) | raw[1]
    if h >> 15:
        raise ValueError("forbidden_zero_bit set")
    return Nal((h >> 9) & 63, (h >> 3) & 63, (h & 7) - 1, unescape(raw[2:]))


def split_annexb(data: bytes) -> list[Nal]:
    """NAL units of an Annex B byte stream (start codes 0x000001 / 0x00000001)."""
    data = bytes(data)
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    out = []
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        chunk = data[s:e]
        # trailing_zero_8bits / the leading zero of a 4-byte start code belong to no NAL unit
        chunk = chunk.rstrip(b"\x00")
        if chunk:
            out.append(parse_nal(chunk))
    return out


def split_length_prefixed(sample: bytes, length_size: int) -> list[Nal]:
    """NAL units of one ISO BMFF sample (each NAL preceded by its size, ``length_size`` bytes)."""
    out = []
    i = 0
    sample = bytes(sample)
    while i < len(sample):
        if i + length_size > len(sample):
            raise ValueError("truncated NAL length field")
        n = int.from_bytes(sample[i:i + length_size], "big")
        i += length_size
        if n == 0 or i + n > len(sample):
            raise ValueError(f"bad NAL length {n} at offset {i - length_size}")
        out.append(parse_nal(sample[i:i + n]))
        i += n
    return out


def parse_hvcc(extradata: bytes) -> tuple[int, list[Nal]]:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1): (NAL length size, its NAL units)."""
    d = bytes(extradata)
    if len(d) < 23 or d[0] != 1:
        raise ValueError("not an hvcC record (configurationVersion != 1)")
    length_size = (d[21] & 3) + 1
    num_arrays = d[22]
    i = 23
    nals = []
    for _ in range(num_arrays):
        i += 1  # array_completeness, reserved, NAL_unit_type
        count = int.from_bytes(d[i:i + 2], "big")
        i += 2
        for _ in range(count):
            n = int.from_bytes(d[i:i + 2], "big")
            i += 2
            nals.append(parse_nal(d[i:i + n]))
            i += n
    return length_size, nals


# ----------------------------------------------------------------------------------- parameter sets


def _profile_tier_level(r: BitReader, profile_present: bool, max_sub_layers_minus1: int) -> dict:
    p: dict = {}
    if profile_present:
        p["profile_space"] = r.u(2)
        p["tier"] = r.u(1)
        p["profile_idc"] = r.u(5)
        p["compat_flags"] = r.u(32)
        r.skip(4 + 43 + 1)   # progressive/interlaced/non_packed/frame_only + 43 bits + 1 bit
    p["level_idc"] = r.u(8)
    sub_profile, sub_level = [], []
    for _ in range(max_sub_layers_minus1):
        sub_profile.append(r.u(1))
        sub_level.append(r.u(1))
    if max_sub_layers_minus1 > 0:
        for _ in range(max_sub_layers_minus1, 8):
            r.skip(2)
    for i in range(max_sub_layers_minus1):
        if sub_profile[i]:
            r.skip(88)
        if sub_level[i]:
            r.skip(8)
    return p


def parse_vps(rbsp: bytes) -> dict:
    r = BitReader(rbsp)
    v = {"vps_id": r.u(4), "base_layer_internal": r.u(1), "base_layer_available": r.u(1),
         "max_layers_minus1": r.u(6), "max_sub_layers_minus1": r.u(3), "temporal_id_nesting": r.u(1)}
    r.skip(16)  # vps_reserved_0xffff_16bits
    v["ptl"] = _profile_tier_level(r, True, v["max_sub_layers_minus1"])
    return v


# Default scaling lists (Table 7-6, shown here in raster order; the 8x8 matrices are symmetric)
DEFAULT_SL_INTRA_8x8 = np.array([
    16, 16, 16, 16, 17, 18, 21, 24, 16, 16, 16, 16, 17, 19, 22, 25, 16, 16, 17, 18, 20, 22, 25, 29,
    16, 16, 18, 21, 24, 27, 31, 36, 17, 17, 20, 24, 30, 35, 41, 47, 18, 19, 22, 27, 35, 44, 54, 65,
    21, 22, 25, 31, 41, 54, 70, 88, 24, 25, 29, 36, 47, 65, 88, 115]).reshape(8, 8)
DEFAULT_SL_INTER_8x8 = np.array([
    16, 16, 16, 16, 17, 18, 20, 24, 16, 16, 16, 17, 18, 20, 24, 25, 16, 16, 17, 18, 20, 24, 25, 28,
    16, 17, 18, 20, 24, 25, 28, 33, 17, 18, 20, 24, 25, 28, 33, 41, 18, 20, 24, 25, 28, 33, 41, 54,
    20, 24, 25, 28, 33, 41, 54, 71, 24, 25, 28, 33, 41, 54, 71, 91]).reshape(8, 8)


def diag_scan(n: int) -> list[tuple[int, int]]:
    """Up-right diagonal scan of an n x n block (6.5.3): list of (x, y) in scan order."""
    out = []
    x = y = 0
    stop = False
    while not stop:
        while y >= 0:
            if x < n and y < n:
                out.append((x, y))
            y -= 1
            x += 1
        y = x
        x = 0
        stop = len(out) >= n * n
    return out


def _default_list(size_id: int, matrix_id: int) -> np.ndarray:
    """Default ScalingList as a raster matrix [y][x] (4x4 for sizeId 0, 8x8 otherwise)."""
    if size_id == 0:
        return np.full((4, 4), 16, np.int64)
    return (DEFAULT_SL_INTRA_8x8 if matrix_id < 3 else DEFAULT_SL_INTER_8x8).astype(np.int64)


def default_scaling_lists() -> dict:
    """{(sizeId, matrixId): (raster list matrix, dc)} with the default lists."""
    out = {}
    for size_id in range(4):
        for matrix_id in range(6):
            out[(size_id, matrix_id)] = (_default_list(size_id, matrix_id), 16)
    return out


def parse_scaling_list_data(r: BitReader) -> dict:
    """scaling_list_data() (7.3.4): {(sizeId, matrixId): (raster matrix [y][x], dc value)}."""
    lists: dict = {}
    for size_id in range(4):
        step = 3 if size_id == 3 else 1
        for matrix_id in range(0, 6, step):
            pred_mode = r.u(1)
            if not pred_mode:
                delta = r.ue()
                if delta == 0:
                    lists[(size_id, matrix_id)] = (_default_list(size_id, matrix_id), 16)
                else:
                    ref = matrix_id - delta * step
                    m, dc = lists[(size_id, ref)]
                    lists[(size_id, matrix_id)] = (m.copy(), dc)
            else:
                nxt = 8
                n = min(64, 1 << (4 + (size_id << 1)))
                dc = 16
                if size_id > 1:
                    dc = r.se() + 8
                    nxt = dc
                side = 4 if size_id == 0 else 8
                m = np.zeros((side, side), np.int64)
                for (x, y) in diag_scan(side)[:n]:
                    delta = r.se()
                    nxt = (nxt + delta + 256) % 256
                    m[y, x] = nxt
                lists[(size_id, matrix_id)] = (m, dc if size_id > 1 else int(m[0, 0]))
    # 32x32 chroma lists (only used with 4:4:4) are inferred from the 16x16 ones (7.3.4, v3+)
    for matrix_id in (1, 2, 4, 5):
        lists.setdefault((3, matrix_id), lists[(2, matrix_id)])
    return lists


def scaling_factor(lists: dict, log2_size: int, matrix_id: int) -> np.ndarray:
    """ScalingFactor m[y][x] of an N x N transform block (7.4.5): the list upsampled, DC replaced."""
    size_id = log2_size - 2
    m, dc = lists[(size_id, matrix_id)]
    n = 1 << log2_size
    rep = n // m.shape[0]
    f = np.repeat(np.repeat(m, rep, 0), rep, 1).astype(np.int64)
    if size_id >= 2:
        f[0, 0] = dc
    return f


def parse_st_ref_pic_set(r: BitReader, idx: int, num_sets: int, sets: list) -> dict:
    """st_ref_pic_set(stRpsIdx) (7.3.7) with the derivation of 7.4.8: negative (S0) and positive
    (S1) delta POCs and their used_by_curr_pic flags, S0 in decreasing POC order."""
    inter = r.u(1) if idx != 0 else 0
    if inter:
        delta_idx = r.ue() + 1 if idx == num_sets else 1
        sign = r.u(1)
        abs_delta = r.ue() + 1
        delta_rps = (1 - 2 * sign) * abs_delta
        ref = sets[idx - delta_idx]
        n_ref = len(ref["s0"]) + len(ref["s1"])
        used, use_delta = [], []
        for _ in range(n_ref + 1):
            u = r.u(1)
            used.append(u)
            use_delta.append(r.u(1) if not u else 1)
        n_neg = len(ref["s0"])
        s0, s1 = [], []
        for j in range(len(ref["s1"]) - 1, -1, -1):
            d = ref["s1"][j][0] + delta_rps
            if d < 0 and use_delta[n_neg + j]:
                s0.append((d, used[n_neg + j]))
        if delta_rps < 0 and use_delta[n_ref]:
            s0.append((delta_rps, used[n_ref]))
        for j in range(n_neg):
            d = ref["s0"][j][0] + delta_rps
            if d < 0 and use_delta[j]:
                s0.append((d, used[j]))
        for j in range(n_neg - 1, -1, -1):
            d = ref["s0"][j][0] + delta_rps
            if d > 0 and use_delta[j]:
                s1.append((d, used[j]))
        if delta_rps > 0 and use_delta[n_ref]:
            s1.append((delta_rps, used[n_ref]))
        for j in range(len(ref["s1"])):
            d = ref["s1"][j][0] + delta_rps
            if d > 0 and use_delta[n_neg + j]:
                s1.append((d, used[n_neg + j]))
        return {"s0": s0, "s1": s1, "inter_pred": True}
    n_neg, n_pos = r.ue(), r.ue()
    s0, s1 = [], []
    poc = 0
    for _ in range(n_neg):
        poc -= r.ue() + 1
        s0.append((poc, r.u(1)))
    poc = 0
    for _ in range(n_pos):
        poc += r.ue() + 1
        s1.append((poc, r.u(1)))
    return {"s0": s0, "s1": s1, "inter_pred": False}


def parse_sps(rbsp: bytes) -> dict:
    r = BitReader(rbsp)
    s: dict = {"vps_id": r.u(4), "max_sub_layers_minus1": r.u(3), "temporal_id_nesting": r.u(1)}
    s["ptl"] = _profile_tier_level(r, True, s["max_sub_layers_minus1"])
    s["profile_idc"] = s["ptl"]["profile_idc"]
    s["sps_id"] = r.ue()
    s["chroma_format_idc"] = r.ue()
    s["separate_colour_plane"] = r.u(1) if s["chroma_format_idc"] == 3 else 0
    s["pic_width"] = r.ue()
    s["pic_height"] = r.ue()
    s["conformance_window"] = r.u(1)
    sub_w = 2 if s["chroma_format_idc"] in (1, 2) else 1
    sub_h = 2 if s["chroma_format_idc"] == 1 else 1
    s["sub_wh"] = (sub_w, sub_h)
    if s["conformance_window"]:
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        s["crop_lrtb"] = (left * sub_w, right * sub_w, top * sub_h, bottom * sub_h)
    else:
        s["crop_lrtb"] = (0, 0, 0, 0)
    left, right, top, bottom = s["crop_lrtb"]
    s["width"] = s["pic_width"] - left - right
    s["height"] = s["pic_height"] - top - bottom
    s["bit_depth"] = r.ue() + 8
    s["bit_depth_chroma"] = r.ue() + 8
    s["log2_max_poc_lsb"] = r.ue() + 4
    sub_info = r.u(1)
    s["max_dec_pic_buffering"] = []
    for _ in range(0 if sub_info else s["max_sub_layers_minus1"], s["max_sub_layers_minus1"] + 1):
        s["max_dec_pic_buffering"].append(r.ue() + 1)
        r.ue()  # sps_max_num_reorder_pics
        r.ue()  # sps_max_latency_increase_plus1
    s["log2_min_cb"] = r.ue() + 3
    s["log2_ctb"] = s["log2_min_cb"] + r.ue()
    s["log2_min_tb"] = r.ue() + 2
    s["log2_max_tb"] = s["log2_min_tb"] + r.ue()
    s["max_transform_hierarchy_depth_inter"] = r.ue()
    s["max_transform_hierarchy_depth_intra"] = r.ue()
    s["scaling_list_enabled"] = r.u(1)
    s["sps_scaling_list_data_present"] = 0
    s["scaling_lists"] = None
    if s["scaling_list_enabled"]:
        s["sps_scaling_list_data_present"] = r.u(1)
        s["scaling_lists"] = parse_scaling_list_data(r) if s["sps_scaling_list_data_present"] \
            else default_scaling_lists()
    s["amp_enabled"] = r.u(1)
    s["sao_enabled"] = r.u(1)
    s["pcm_enabled"] = r.u(1)
    if s["pcm_enabled"]:
        s["pcm_bit_depth"] = r.u(4) + 1
        s["pcm_bit_depth_chroma"] = r.u(4) + 1
        s["log2_min_pcm_cb"] = r.ue() + 3
        s["log2_max_pcm_cb"] = s["log2_min_pcm_cb"] + r.ue()
        s["pcm_loop_filter_disabled"] = r.u(1)
    s["num_short_term_ref_pic_sets"] = r.ue()
    s["st_rps"] = []
    for i in range(s["num_short_term_ref_pic_sets"]):
        s["st_rps"].append(parse_st_ref_pic_set(r, i, s["num_short_term_ref_pic_sets"], s["st_rps"]))
    s["long_term_ref_pics_present"] = r.u(1)
    s["lt_ref_pics"] = []
    if s["long_term_ref_pics_present"]:
        for _ in range(r.ue()):
            s["lt_ref_pics"].append((r.u(s["log2_max_poc_lsb"]), r.u(1)))
    s["temporal_mvp_enabled"] = r.u(1)
    s["strong_intra_smoothing"] = r.u(1)
    s["vui_present"] = r.u(1)
    # derived
    s["ctb_size"] = 1 << s["log2_ctb"]
    s["ctb_cols"] = -(-s["pic_width"] // s["ctb_size"])
    s["ctb_rows"] = -(-s["pic_height"] // s["ctb_size"])
    s["pic_size_in_ctbs"] = s["ctb_cols"] * s["ctb_rows"]
    s["qp_bd_offset"] = 6 * (s["bit_depth"] - 8)
    return s


def parse_pps(rbsp: bytes, spss: dict) -> dict:
    r = BitReader(rbsp)
    p: dict = {"pps_id": r.ue(), "sps_id": r.ue()}
    if p["sps_id"] not in spss:
        raise ValueError(f"PPS {p['pps_id']} refers to SPS {p['sps_id']}, which has not been seen")
    p["dependent_slice_segments_enabled"] = r.u(1)
    p["output_flag_present"] = r.u(1)
    p["num_extra_slice_header_bits"] = r.u(3)
    p["sign_data_hiding_enabled"] = r.u(1)
    p["cabac_init_present"] = r.u(1)
    p["num_ref_idx_l0_default"] = r.ue() + 1
    p["num_ref_idx_l1_default"] = r.ue() + 1
    p["init_qp"] = 26 + r.se()
    p["constrained_intra_pred"] = r.u(1)
    p["transform_skip_enabled"] = r.u(1)
    p["cu_qp_delta_enabled"] = r.u(1)
    p["diff_cu_qp_delta_depth"] = r.ue() if p["cu_qp_delta_enabled"] else 0
    p["cb_qp_offset"] = r.se()
    p["cr_qp_offset"] = r.se()
    p["slice_chroma_qp_offsets_present"] = r.u(1)
    p["weighted_pred"] = r.u(1)
    p["weighted_bipred"] = r.u(1)
    p["transquant_bypass_enabled"] = r.u(1)
    p["tiles_enabled"] = r.u(1)
    p["entropy_coding_sync_enabled"] = r.u(1)
    p["num_tile_columns"] = p["num_tile_rows"] = 1
    if p["tiles_enabled"]:
        p["num_tile_columns"] = r.ue() + 1
        p["num_tile_rows"] = r.ue() + 1
        p["uniform_spacing"] = r.u(1)
        if not p["uniform_spacing"]:
            p["column_widths"] = [r.ue() + 1 for _ in range(p["num_tile_columns"] - 1)]
            p["row_heights"] = [r.ue() + 1 for _ in range(p["num_tile_rows"] - 1)]
        p["loop_filter_across_tiles"] = r.u(1)
    p["loop_filter_across_slices"] = r.u(1)
    p["deblocking_filter_control_present"] = r.u(1)
    p["deblocking_filter_override_enabled"] = 0
    p["pps_deblocking_filter_disabled"] = 0
    p["beta_offset_div2"] = p["tc_offset_div2"] = 0
    if p["deblocking_filter_control_present"]:
        p["deblocking_filter_override_enabled"] = r.u(1)
        p["pps_deblocking_filter_disabled"] = r.u(1)
        if not p["pps_deblocking_filter_disabled"]:
            p["beta_offset_div2"] = r.se()
            p["tc_offset_div2"] = r.se()
    p["pps_scaling_list_data_present"] = r.u(1)
    p["scaling_lists"] = parse_scaling_list_data(r) if p["pps_scaling_list_data_present"] else None
    p["lists_modification_present"] = r.u(1)
    p["log2_parallel_merge_level"] = r.ue() + 2
    p["slice_segment_header_extension_present"] = r.u(1)
    p["pps_extension_present"] = r.u(1)
    if p["pps_extension_present"]:
        p["pps_range_extension"] = r.u(1)
        r.u(1), r.u(1), r.u(1)   # multilayer, 3d, scc
        r.u(4)
        if p["pps_range_extension"]:
            if p["transform_skip_enabled"]:
                p["log2_max_transform_skip_block_size"] = r.ue() + 2
            p["cross_component_prediction_enabled"] = r.u(1)
            p["chroma_qp_offset_list_enabled"] = r.u(1)
            if p["chroma_qp_offset_list_enabled"]:
                raise ValueError("chroma_qp_offset_list (range extension) is not supported by this parser")
    p.setdefault("log2_max_transform_skip_block_size", 2)
    p.setdefault("chroma_qp_offset_list_enabled", 0)
    return p


def active_scaling_lists(sps: dict, pps: dict) -> dict | None:
    """The scaling lists in force (PPS lists override SPS lists, 7.4.3.3), None when disabled."""
    if not sps["scaling_list_enabled"]:
        return None
    return pps["scaling_lists"] if pps["scaling_lists"] is not None else sps["scaling_lists"]


# ----------------------------------------------------------------------------------- slice header


def _ceil_log2(n: int) -> int:
    return max(0, (n - 1).bit_length())


def _pred_weight_table(r: BitReader, h: dict, sps: dict, slice_type: int) -> dict:
    """pred_weight_table() (7.3.6.3) with the derived weights/offsets of 7.4.7.3 (no
    high_precision_offsets): per list, per ref idx: (w_y, o_y, (w_cb, o_cb), (w_cr, o_cr)) with
    offsets already scaled to the bit depth; plus the log2 denominators."""
    chroma = sps["chroma_format_idc"] != 0
    luma_denom = r.ue()
    chroma_denom = luma_denom + r.se() if chroma else 0
    bd, bdc = sps["bit_depth"], sps["bit_depth_chroma"]
    out = {"luma_log2_denom": luma_denom, "chroma_log2_denom": chroma_denom, "lists": [[], []],
           "explicit": [[], []]}
    lists = (0, 1) if slice_type == SLICE_B else (0,)
    half = 1 << 7
    for lst in lists:
        n = h[f"num_ref_idx_l{lst}"]
        # (the flags are present for every entry: no entry refers to the current picture)
        lflags = [r.u(1) for _ in range(n)]
        cflags = [r.u(1) for _ in range(n)] if chroma else [0] * n
        for i in range(n):
            wy, oy = 1 << luma_denom, 0
            if lflags[i]:
                wy += r.se()
                oy = r.se()
            wc = [1 << chroma_denom, 1 << chroma_denom]
            oc = [0, 0]
            if cflags[i]:
                for j in range(2):
                    wc[j] += r.se()
                    d = r.se()
                    oc[j] = max(-half, min(half - 1, (half - ((half * wc[j]) >> chroma_denom) + d)))
            out["lists"][lst].append((wy, oy << (bd - 8), (wc[0], oc[0] << (bdc - 8)),
                                      (wc[1], oc[1] << (bdc - 8))))
            out["explicit"][lst].append((bool(lflags[i]), bool(cflags[i])))
    return out


def parse_slice_header(nal: Nal, spss: dict, ppss: dict) -> dict:
    r = BitReader(nal.rbsp)
    h: dict = {"nal_type": nal.type, "temporal_id": nal.temporal_id}
    h["first_slice_segment_in_pic"] = r.u(1)
    if BLA_W_LP <= nal.type <= 23:
        h["no_output_of_prior_pics"] = r.u(1)
    h["pps_id"] = r.ue()
    pps = ppss[h["pps_id"]]
    sps = spss[pps["sps_id"]]
    h["dependent"] = 0
    h["address"] = 0
    if not h["first_slice_segment_in_pic"]:
        if pps["dependent_slice_segments_enabled"]:
            h["dependent"] = r.u(1)
        h["address"] = r.u(_ceil_log2(sps["pic_size_in_ctbs"]))
    if h["dependent"]:
        h["slice_type"] = None  # inherited from the preceding independent segment
        return h
    r.skip(pps["num_extra_slice_header_bits"])
    h["slice_type"] = r.ue()
    if pps["output_flag_present"]:
        h["pic_output"] = r.u(1)
    if sps["separate_colour_plane"]:
        r.u(2)
    h["poc_lsb"] = 0
    h["rps"] = {"s0": [], "s1": []}
    h["lt"] = []
    h["slice_temporal_mvp"] = 0
    if nal.type not in (IDR_W_RADL, IDR_N_LP):
        h["poc_lsb"] = r.u(sps["log2_max_poc_lsb"])
        h["short_term_ref_pic_set_sps"] = r.u(1)
        if not h["short_term_ref_pic_set_sps"]:
            h["rps"] = parse_st_ref_pic_set(r, sps["num_short_term_ref_pic_sets"],
                                            sps["num_short_term_ref_pic_sets"], sps["st_rps"])
        else:
            idx = r.u(_ceil_log2(sps["num_short_term_ref_pic_sets"])) \
                if sps["num_short_term_ref_pic_sets"] > 1 else 0
            h["rps"] = sps["st_rps"][idx]
        if sps["long_term_ref_pics_present"]:
            n_sps = r.ue() if sps["lt_ref_pics"] else 0
            n_pics = r.ue()
            for i in range(n_sps + n_pics):
                if i < n_sps:
                    k = r.u(_ceil_log2(len(sps["lt_ref_pics"]))) if len(sps["lt_ref_pics"]) > 1 else 0
                    lsb, used = sps["lt_ref_pics"][k]
                else:
                    lsb, used = r.u(sps["log2_max_poc_lsb"]), r.u(1)
                msb_present = r.u(1)
                h["lt"].append((lsb, used, r.ue() if msb_present else None))
        if sps["temporal_mvp_enabled"]:
            h["slice_temporal_mvp"] = r.u(1)
    h["slice_sao_luma"] = h["slice_sao_chroma"] = 0
    if sps["sao_enabled"]:
        h["slice_sao_luma"] = r.u(1)
        if sps["chroma_format_idc"] != 0:
            h["slice_sao_chroma"] = r.u(1)
    st = h["slice_type"]
    h["num_ref_idx_l0"] = h["num_ref_idx_l1"] = 0
    h["weights"] = None
    h["num_pic_total_curr"] = (sum(u for _, u in h["rps"]["s0"]) + sum(u for _, u in h["rps"]["s1"])
                               + sum(u for _, u, _ in h["lt"]))
    h["collocated_from_l0"] = 1
    h["collocated_ref_idx"] = 0
    h["max_num_merge_cand"] = 0
    if st in (SLICE_P, SLICE_B):
        h["num_ref_idx_l0"] = pps["num_ref_idx_l0_default"]
        if st == SLICE_B:
            h["num_ref_idx_l1"] = pps["num_ref_idx_l1_default"]
        if r.u(1):  # num_ref_idx_active_override_flag
            h["num_ref_idx_l0"] = r.ue() + 1
            if st == SLICE_B:
                h["num_ref_idx_l1"] = r.ue() + 1
        h["list_entry"] = [None, None]
        if pps["lists_modification_present"] and h["num_pic_total_curr"] > 1:
            bits = _ceil_log2(h["num_pic_total_curr"])
            if r.u(1):
                h["list_entry"][0] = [r.u(bits) for _ in range(h["num_ref_idx_l0"])]
            if st == SLICE_B and r.u(1):
                h["list_entry"][1] = [r.u(bits) for _ in range(h["num_ref_idx_l1"])]
        if st == SLICE_B:
            h["mvd_l1_zero"] = r.u(1)
        if pps["cabac_init_present"]:
            h["cabac_init"] = r.u(1)
        if h["slice_temporal_mvp"]:
            if st == SLICE_B:
                h["collocated_from_l0"] = r.u(1)
            n = h["num_ref_idx_l0"] if h["collocated_from_l0"] else h["num_ref_idx_l1"]
            if n > 1:
                h["collocated_ref_idx"] = r.ue()
        if (pps["weighted_pred"] and st == SLICE_P) or (pps["weighted_bipred"] and st == SLICE_B):
            h["weights"] = _pred_weight_table(r, h, sps, st)
        h["max_num_merge_cand"] = 5 - r.ue()
    h["slice_qp"] = pps["init_qp"] + r.se()
    h["slice_cb_qp_offset"] = h["slice_cr_qp_offset"] = 0
    if pps["slice_chroma_qp_offsets_present"]:
        h["slice_cb_qp_offset"] = r.se()
        h["slice_cr_qp_offset"] = r.se()
    h["deblocking_override"] = 0
    if pps["deblocking_filter_override_enabled"]:
        h["deblocking_override"] = r.u(1)
    h["deblocking_disabled"] = pps["pps_deblocking_filter_disabled"]
    if h["deblocking_override"]:
        h["deblocking_disabled"] = r.u(1)
        if not h["deblocking_disabled"]:
            r.se(), r.se()
    h["loop_filter_across_slices"] = pps["loop_filter_across_slices"]
    if pps["loop_filter_across_slices"] and (h["slice_sao_luma"] or h["slice_sao_chroma"]
                                             or not h["deblocking_disabled"]):
        h["loop_filter_across_slices"] = r.u(1)
    h["num_entry_points"] = 0
    if pps["tiles_enabled"] or pps["entropy_coding_sync_enabled"]:
        h["num_entry_points"] = r.ue()
        if h["num_entry_points"]:
            bits = r.ue() + 1
            h["entry_point_offsets"] = [r.u(bits) + 1 for _ in range(h["num_entry_points"])]
    if pps["slice_segment_header_extension_present"]:
        r.skip(8 * r.ue())
    # byte_alignment(): one 1 bit, then zeros up to the byte boundary
    if r.u(1) != 1:
        raise ValueError("slice header does not end with byte_alignment()")
    while not r.byte_aligned():
        if r.u(1):
            raise ValueError("non-zero alignment bit after the slice header")
    h["header_bytes"] = r.pos // 8
    return h


# ----------------------------------------------------------------------------------- a stream


@dataclass
class Picture:
    """One coded picture: its slice segment headers (decode order) and derived POC / lists."""

    decode_index: int
    nal_type: int
    slices: list
    poc: int = 0
    ref_lists: tuple = ((), ())     # POCs per list of the first slice

    @property
    def slice_type(self) -> int:
        return self.slices[0]["slice_type"]

    @property
    def type_char(self) -> str:
        return SLICE_TYPE_CHAR[self.slice_type]

    @property
    def independent_slices(self) -> list:
        return [s for s in self.slices if not s["dependent"]]

    def slice_map(self, sps: dict) -> np.ndarray:
        """(ctb_rows, ctb_cols) index into ``slices`` of the slice segment holding each CTB
        (raster CTB addresses: no tiles)."""
        n = sps["pic_size_in_ctbs"]
        addr = [s["address"] for s in self.slices] + [n]
        m = np.full(n, -1, np.int64)
        for i in range(len(self.slices)):
            m[addr[i]:addr[i + 1]] = i
        return m.reshape(sps["ctb_rows"], sps["ctb_cols"])

    def block_slice_map(self, sps: dict, h4: int, w4: int) -> np.ndarray:
        """The slice segment index of every 4x4 luma block of an (h4, w4) block map."""
        ctb4 = sps["ctb_size"] // 4
        m = self.slice_map(sps)
        return m[np.arange(h4)[:, None] // ctb4, np.arange(w4)[None, :] // ctb4]


@dataclass
class StreamSyntax:
    vps: dict = field(default_factory=dict)
    sps: dict = field(default_factory=dict)
    pps: dict = field(default_factory=dict)
    pictures: list = field(default_factory=list)
    nal_types: list = field(default_factory=list)
    sei: list = field(default_factory=list)       # (payloadType, payload bytes)
    length_size: int | None = None                 # NAL length size for mp4 (hvcC), None for Annex B

    @property
    def first_sps(self) -> dict:
        return next(iter(self.sps.values()))

    @property
    def first_pps(self) -> dict:
        return next(iter(self.pps.values()))

    def slices(self) -> list:
        return [s for p in self.pictures for s in p.slices]

    def x265_info(self) -> str:
        """The text of x265's user-data-unregistered SEI (its version and options)."""
        for ptype, payload in self.sei:
            if ptype == 5 and b"x265" in payload:
                return payload[16:].decode("latin-1", "replace").rstrip("\x00")
        return ""


def analyze_nals(nals, syn: StreamSyntax | None = None) -> StreamSyntax:
    """Parse parameter sets and slice headers; group slices into pictures; derive POCs (8.3.1) and
    reference picture lists (8.3.2 / 8.3.4) of every picture."""
    syn = syn or StreamSyntax()
    for nal in nals:
        syn.nal_types.append(nal.type)
        if nal.type == VPS_NUT:
            v = parse_vps(nal.rbsp)
            syn.vps[v["vps_id"]] = v
        elif nal.type == SPS_NUT:
            s = parse_sps(nal.rbsp)
            syn.sps[s["sps_id"]] = s
        elif nal.type == PPS_NUT:
            p = parse_pps(nal.rbsp, syn.sps)
            syn.pps[p["pps_id"]] = p
        elif nal.type in (PREFIX_SEI, SUFFIX_SEI):
            try:
                syn.sei.extend(sei_messages(nal.rbsp))
            except IndexError:
                pass
        elif nal.is_vcl and nal.type <= CRA_NUT:
            h = parse_slice_header(nal, syn.sps, syn.pps)
            if h["first_slice_segment_in_pic"] or not syn.pictures:
                syn.pictures.append(Picture(len(syn.pictures), nal.type, []))
            pic = syn.pictures[-1]
            if h["dependent"]:
                prev = pic.slices[-1]
                h.update({k: v for k, v in prev.items() if k not in ("address", "dependent", "first_slice_segment_in_pic",
                                                                     "num_entry_points", "entry_point_offsets",
                                                                     "header_bytes")})
            pic.slices.append(h)
    _derive_pocs_and_lists(syn)
    return syn


def _derive_pocs_and_lists(syn: StreamSyntax) -> None:
    prev_tid0_poc = 0
    for pic in syn.pictures:
        s0 = pic.slices[0]
        sps = syn.sps[syn.pps[s0["pps_id"]]["sps_id"]]
        max_lsb = 1 << sps["log2_max_poc_lsb"]
        lsb = s0["poc_lsb"]
        if pic.nal_type in (IDR_W_RADL, IDR_N_LP):
            msb = 0
        elif pic.nal_type in (BLA_W_LP, BLA_W_RADL, BLA_N_LP) or (pic.decode_index == 0 and pic.nal_type == CRA_NUT):
            msb = 0  # NoRaslOutputFlag = 1
        else:
            prev_lsb = prev_tid0_poc & (max_lsb - 1)
            prev_msb = prev_tid0_poc - prev_lsb
            if lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
                msb = prev_msb + max_lsb
            elif lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
                msb = prev_msb - max_lsb
            else:
                msb = prev_msb
        pic.poc = msb + lsb
        sub_layer_non_ref = pic.nal_type <= 14 and pic.nal_type % 2 == 0
        if s0["temporal_id"] == 0 and pic.nal_type not in (RADL_N, RADL_R, RASL_N, RASL_R) \
                and not sub_layer_non_ref:
            prev_tid0_poc = pic.poc
        lists = []
        for s in pic.slices:
            lists.append(_ref_lists(s, pic.poc, max_lsb))
            s["ref_pocs"] = lists[-1]
        pic.ref_lists = lists[0]


def _ref_lists(h: dict, poc: int, max_lsb: int) -> tuple:
    """RefPicList0/1 as POCs (8.3.4): StCurrBefore, StCurrAfter, LtCurr, cycled."""
    if h["slice_type"] == SLICE_I:
        return ((), ())
    before = [poc + d for d, used in h["rps"]["s0"] if used]
    after = [poc + d for d, used in h["rps"]["s1"] if used]
    lt = []
    for lsb, used, msb_cycle in h["lt"]:
        if used:
            if msb_cycle is None:
                raise ValueError("long-term reference without its MSB: not handled by this parser")
            lt.append(poc - msb_cycle * max_lsb - (poc & (max_lsb - 1)) + lsb)
    out = []
    for lst, first, second in ((0, before, after), (1, after, before)):
        if lst == 1 and h["slice_type"] != SLICE_B:
            out.append(())
            continue
        n = h[f"num_ref_idx_l{lst}"]
        total = first + second + lt
        if not total:
            raise ValueError("inter slice without current references")
        temp = []
        while len(temp) < max(n, len(total)):
            temp.extend(total)
        entries = h.get("list_entry", [None, None])[lst]
        out.append(tuple(temp[entries[i]] if entries else temp[i] for i in range(n)))
    return tuple(out)


def analyze_annexb(data: bytes) -> StreamSyntax:
    return analyze_nals(split_annexb(data))


def analyze_file(path) -> StreamSyntax:
    """Parse a raw .hevc/.h265 (Annex B) file, or any container PyAV demuxes: the hvcC record of
    the stream's extradata and the length-prefixed NAL units of its packets are parsed directly."""
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        if vs.codec_context.name != "hevc":
            raise ValueError(f"{path}: not an HEVC stream ({vs.codec_context.name})")
        extradata = bytes(vs.codec_context.extradata or b"")
        packets = [bytes(p) for p in c.demux(vs) if p.size]
    if extradata[:1] == b"\x01":
        length_size, nals = parse_hvcc(extradata)
        for p in packets:
            nals.extend(split_length_prefixed(p, length_size))
        syn = analyze_nals(nals)
        syn.length_size = length_size
        return syn
    data = extradata + b"".join(packets)
    return analyze_annexb(data)
