"""A tiny H.264 bitstream toolkit for the tests (written from the spec, ITU-T H.264).

* ``BitWriter`` / ``BitReader``: u(n), ue(v), se(v) and RBSP trailing bits.
* ``nal_unit`` / ``split_annexb``: Annex B framing with emulation prevention.
* ``parse_sps`` / ``parse_pps`` / ``parse_slice_header``: enough of the syntax to check that a
  stream really has the structure a test relies on (entropy coder, 8x8 transform, weighted
  prediction, slices, frame/field coding, deblocking, scaling matrices, ...).
* ``x264_options``: the encoder settings x264 writes into its user-data SEI.
* ``pcm_stream``: writes a valid Baseline stream whose pictures are made of I_PCM macroblocks
  and P_Skip runs (x264 never emits I_PCM), optionally as field pictures (PAFF), and returns the
  exact frames a conforming decoder must output.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

# ----------------------------------------------------------------------------------- bit I/O


class BitWriter:
    def __init__(self):
        self.bits: list[int] = []

    def u(self, n: int, v: int) -> BitWriter:
        if v < 0 or v >= (1 << n):
            raise ValueError(f"value {v} does not fit in {n} bits")
        self.bits.extend((v >> (n - 1 - i)) & 1 for i in range(n))
        return self

    def ue(self, v: int) -> BitWriter:
        if v < 0:
            raise ValueError("ue(v) of a negative value")
        x = v + 1
        n = x.bit_length()
        if n > 1:
            self.u(n - 1, 0)
        return self.u(n, x)

    def se(self, v: int) -> BitWriter:
        return self.ue(2 * v - 1 if v > 0 else -2 * v)

    def byte_aligned(self) -> bool:
        return len(self.bits) % 8 == 0

    def align_zero(self) -> BitWriter:
        while not self.byte_aligned():
            self.bits.append(0)
        return self

    def bytes_(self, data: bytes) -> BitWriter:
        if not self.byte_aligned():
            raise ValueError("raw bytes must start byte aligned")
        for b in data:
            self.u(8, b)
        return self

    def trailing(self) -> BitWriter:
        self.bits.append(1)
        return self.align_zero()

    def to_bytes(self) -> bytes:
        if not self.byte_aligned():
            raise ValueError("RBSP is not byte aligned")
        return np.packbits(np.array(self.bits, dtype=np.uint8)).tobytes()


class BitReader:
    """MSB-first bit reader over an RBSP (emulation prevention already removed); H.264 and HEVC."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.nbits = 8 * len(self.data)
        self.value = int.from_bytes(self.data, "big") if self.data else 0
        self.pos = 0
        # position of the rbsp_stop_one_bit: the last 1 bit
        tz = (self.value & -self.value).bit_length() - 1 if self.value else self.nbits - 1
        self.stop_bit = max(self.nbits - 1 - tz, 0)

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        if self.pos + n > self.nbits:
            raise ValueError(f"read of {n} bits past the end of the RBSP ({self.nbits} bits)")
        v = (self.value >> (self.nbits - self.pos - n)) & ((1 << n) - 1)
        self.pos += n
        return v

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 32:
                raise ValueError("invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def skip(self, n: int) -> None:
        if self.pos + n > self.nbits:
            raise ValueError("skip past the end of the RBSP")
        self.pos += n

    def byte_aligned(self) -> bool:
        return self.pos % 8 == 0

    def more_rbsp_data(self) -> bool:
        return self.pos < self.stop_bit


# ----------------------------------------------------------------------------------- NAL units

NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9


def escape_rbsp(rbsp: bytes) -> bytes:
    """Insert emulation_prevention_three_byte where needed (7.4.1)."""
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def unescape_ebsp(ebsp: bytes) -> bytes:
    return re.sub(b"\x00\x00\x03(?=[\x00-\x03])", b"\x00\x00", ebsp) if b"\x00\x00\x03" in ebsp else ebsp


def nal_unit(ref_idc: int, nal_type: int, rbsp: bytes) -> bytes:
    return b"\x00\x00\x00\x01" + bytes([(ref_idc << 5) | nal_type]) + escape_rbsp(rbsp)


@dataclass
class Nal:
    ref_idc: int
    type: int
    rbsp: bytes


def split_annexb(data: bytes) -> list[Nal]:
    """Split an Annex B byte stream into NAL units (payload unescaped)."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    nals = []
    for i, s in enumerate(starts):
        e = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        chunk = data[s:e].rstrip(b"\x00")
        if not chunk:
            continue
        hdr = chunk[0]
        nals.append(Nal((hdr >> 5) & 3, hdr & 31, unescape_ebsp(chunk[1:])))
    return nals


# ----------------------------------------------------------------------------------- parsing

HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def _scaling_list(r: BitReader, size: int) -> bool:
    """Parse scaling_list(); return True when it is not flat (all 16)."""
    last, nxt = 8, 8
    values = []
    use_default = False
    for j in range(size):
        if nxt != 0:
            delta = r.se()
            nxt = (last + delta + 256) % 256
            if j == 0 and nxt == 0:
                use_default = True
        values.append(last if nxt == 0 else nxt)
        last = values[-1]
    if use_default:
        return True  # the default (non-flat) Table 7-3/7-4 matrices
    return any(v != 16 for v in values)


def parse_sps(rbsp: bytes) -> dict:
    r = BitReader(rbsp)
    s: dict = {"profile_idc": r.u(8), "constraint_flags": r.u(8), "level_idc": r.u(8), "sps_id": r.ue()}
    s.update(chroma_format_idc=1, separate_colour_plane=0, bit_depth_luma=8, bit_depth_chroma=8,
             transform_bypass=0, seq_scaling_matrix_present=0, seq_scaling_nonflat=False)
    if s["profile_idc"] in HIGH_PROFILES:
        s["chroma_format_idc"] = r.ue()
        if s["chroma_format_idc"] == 3:
            s["separate_colour_plane"] = r.u(1)
        s["bit_depth_luma"] = 8 + r.ue()
        s["bit_depth_chroma"] = 8 + r.ue()
        s["transform_bypass"] = r.u(1)
        s["seq_scaling_matrix_present"] = r.u(1)
        if s["seq_scaling_matrix_present"]:
            for i in range(8 if s["chroma_format_idc"] != 3 else 12):
                if r.u(1):
                    s["seq_scaling_nonflat"] |= _scaling_list(r, 16 if i < 6 else 64)
                else:
                    s["seq_scaling_nonflat"] = True  # fall-back rule A: default matrices
    s["log2_max_frame_num"] = r.ue() + 4
    s["poc_type"] = r.ue()
    if s["poc_type"] == 0:
        s["log2_max_poc_lsb"] = r.ue() + 4
    elif s["poc_type"] == 1:
        s["delta_pic_order_always_zero"] = r.u(1)
        r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    s["max_num_ref_frames"] = r.ue()
    s["gaps_allowed"] = r.u(1)
    s["width_mbs"] = r.ue() + 1
    s["height_map_units"] = r.ue() + 1
    s["frame_mbs_only"] = r.u(1)
    s["mbaff"] = 0 if s["frame_mbs_only"] else r.u(1)
    s["direct_8x8_inference"] = r.u(1)
    s["height_mbs"] = s["height_map_units"] * (2 - s["frame_mbs_only"])
    crop = (0, 0, 0, 0)
    if r.u(1):
        crop = tuple(r.ue() for _ in range(4))  # left, right, top, bottom in crop units
    cfi = s["chroma_format_idc"] if not s["separate_colour_plane"] else 0
    cux = 1 if cfi in (0, 3) else 2
    cuy = (1 if cfi in (0, 2, 3) else 2) * (2 - s["frame_mbs_only"])
    s["crop_lrtb"] = (crop[0] * cux, crop[1] * cux, crop[2] * cuy, crop[3] * cuy)
    s["coded_width"] = s["width_mbs"] * 16
    s["coded_height"] = s["height_mbs"] * 16
    s["width"] = s["coded_width"] - s["crop_lrtb"][0] - s["crop_lrtb"][1]
    s["height"] = s["coded_height"] - s["crop_lrtb"][2] - s["crop_lrtb"][3]
    s["chroma_array_type"] = cfi
    return s


def parse_pps(rbsp: bytes, sps_by_id: dict) -> dict:
    r = BitReader(rbsp)
    p: dict = {"pps_id": r.ue(), "sps_id": r.ue()}
    sps = sps_by_id[p["sps_id"]]
    p["cabac"] = r.u(1)
    p["bottom_field_pic_order_in_frame_present"] = r.u(1)
    p["num_slice_groups"] = r.ue() + 1
    if p["num_slice_groups"] != 1:
        raise NotImplementedError("slice groups (FMO) are not parsed")
    p["num_ref_idx_l0_default"] = r.ue() + 1
    p["num_ref_idx_l1_default"] = r.ue() + 1
    p["weighted_pred"] = r.u(1)
    p["weighted_bipred_idc"] = r.u(2)
    p["pic_init_qp"] = 26 + r.se()
    p["pic_init_qs"] = 26 + r.se()
    p["chroma_qp_index_offset"] = r.se()
    p["deblocking_filter_control_present"] = r.u(1)
    p["constrained_intra_pred"] = r.u(1)
    p["redundant_pic_cnt_present"] = r.u(1)
    p["transform_8x8_mode"] = 0
    p["pic_scaling_matrix_present"] = 0
    p["pic_scaling_nonflat"] = False
    p["second_chroma_qp_index_offset"] = p["chroma_qp_index_offset"]
    if r.more_rbsp_data():
        p["transform_8x8_mode"] = r.u(1)
        p["pic_scaling_matrix_present"] = r.u(1)
        if p["pic_scaling_matrix_present"]:
            n = 6 + ((2 if sps["chroma_format_idc"] != 3 else 6) * p["transform_8x8_mode"])
            for i in range(n):
                if r.u(1):
                    p["pic_scaling_nonflat"] |= _scaling_list(r, 16 if i < 6 else 64)
                else:
                    p["pic_scaling_nonflat"] = True
        p["second_chroma_qp_index_offset"] = r.se()
    return p


SLICE_P, SLICE_B, SLICE_I, SLICE_SP, SLICE_SI = 0, 1, 2, 3, 4


def parse_slice_header(nal: Nal, sps_by_id: dict, pps_by_id: dict) -> dict:
    """Parse slice_header() (7.3.3) up to the deblocking syntax."""
    r = BitReader(nal.rbsp)
    h: dict = {"first_mb": r.ue(), "slice_type": r.ue() % 5, "pps_id": r.ue(), "nal_type": nal.type,
               "ref_idc": nal.ref_idc}
    pps = pps_by_id[h["pps_id"]]
    sps = sps_by_id[pps["sps_id"]]
    st = h["slice_type"]
    if sps["separate_colour_plane"]:
        h["colour_plane_id"] = r.u(2)
    h["frame_num"] = r.u(sps["log2_max_frame_num"])
    h["field_pic"] = h["bottom_field"] = 0
    if not sps["frame_mbs_only"]:
        h["field_pic"] = r.u(1)
        if h["field_pic"]:
            h["bottom_field"] = r.u(1)
    if nal.type == NAL_IDR:
        h["idr_pic_id"] = r.ue()
    if sps["poc_type"] == 0:
        h["poc_lsb"] = r.u(sps["log2_max_poc_lsb"])
        if pps["bottom_field_pic_order_in_frame_present"] and not h["field_pic"]:
            r.se()
    if sps["poc_type"] == 1 and not sps["delta_pic_order_always_zero"]:
        r.se()
        if pps["bottom_field_pic_order_in_frame_present"] and not h["field_pic"]:
            r.se()
    if pps["redundant_pic_cnt_present"]:
        r.ue()
    if st == SLICE_B:
        h["direct_spatial"] = r.u(1)
    n0, n1 = pps["num_ref_idx_l0_default"], pps["num_ref_idx_l1_default"]
    if st in (SLICE_P, SLICE_SP, SLICE_B) and r.u(1):  # num_ref_idx_active_override_flag
        n0 = r.ue() + 1
        if st == SLICE_B:
            n1 = r.ue() + 1
    h["num_ref_idx_l0"] = n0 if st != SLICE_I and st != SLICE_SI else 0
    h["num_ref_idx_l1"] = n1 if st == SLICE_B else 0
    h["ref_list_modification"] = False
    for lst in ((0, 1) if st == SLICE_B else (0,) if st not in (SLICE_I, SLICE_SI) else ()):
        if r.u(1):
            h["ref_list_modification"] = True
            while True:
                idc = r.ue()
                if idc == 3:
                    break
                r.ue()
    h["luma_weights"] = 0
    h["luma_weight_flags"] = ([], [])   # per list, per ref idx: explicit luma weight present
    h["luma_wo"] = ([], [])             # per list, per ref idx: (weight, offset) or None
    h["luma_log2_denom"] = 0
    if (pps["weighted_pred"] and st in (SLICE_P, SLICE_SP)) or (pps["weighted_bipred_idc"] == 1 and st == SLICE_B):
        h["luma_log2_denom"] = r.ue()
        if sps["chroma_array_type"] != 0:
            r.ue()
        for lst, n in enumerate((h["num_ref_idx_l0"], h["num_ref_idx_l1"])):
            for _ in range(n):
                flag = r.u(1)
                h["luma_weight_flags"][lst].append(bool(flag))
                if flag:
                    h["luma_weights"] += 1
                    h["luma_wo"][lst].append((r.se(), r.se()))
                else:
                    h["luma_wo"][lst].append(None)
                if sps["chroma_array_type"] != 0 and r.u(1):
                    for _ in range(4):
                        r.se()
    if nal.ref_idc:
        if nal.type == NAL_IDR:
            r.u(1), r.u(1)
        elif r.u(1):
            while True:
                op = r.ue()
                if op == 0:
                    break
                if op in (1, 3):
                    r.ue()
                if op == 2:
                    r.ue()
                if op in (3, 6):
                    r.ue()
                if op == 4:
                    r.ue()
    if pps["cabac"] and st not in (SLICE_I, SLICE_SI):
        r.ue()
    h["slice_qp"] = pps["pic_init_qp"] + r.se()
    if st in (SLICE_SP, SLICE_SI):
        if st == SLICE_SP:
            r.u(1)
        r.se()
    h["disable_deblocking"] = 0
    if pps["deblocking_filter_control_present"]:
        h["disable_deblocking"] = r.ue()
        if h["disable_deblocking"] != 1:
            r.se(), r.se()
    return h


@dataclass
class StreamSyntax:
    """What the parameter sets and slice headers of a whole stream say."""

    sps: dict = field(default_factory=dict)        # by id
    pps: dict = field(default_factory=dict)        # by id
    slices: list = field(default_factory=list)     # parsed slice headers, decode order
    sei_text: list = field(default_factory=list)   # user data unregistered payloads (text part)
    nal_types: set = field(default_factory=set)

    @property
    def first_sps(self) -> dict:
        return next(iter(self.sps.values()))

    @property
    def first_pps(self) -> dict:
        return next(iter(self.pps.values()))

    def pictures(self) -> list[list[dict]]:
        """Slices grouped per coded picture (a new picture starts at first_mb == 0)."""
        pics: list[list[dict]] = []
        for s in self.slices:
            if s["first_mb"] == 0 or not pics:
                pics.append([])
            pics[-1].append(s)
        return pics

    def x264_options(self) -> dict:
        return x264_options_from_text(" ".join(self.sei_text))


def sei_messages(rbsp: bytes) -> list[tuple[int, bytes]]:
    """(payload type, payload) of each SEI message in an SEI RBSP (same syntax in H.264 and HEVC)."""
    out = []
    i = 0
    while i < len(rbsp) and rbsp[i:] != b"\x80":
        ptype = 0
        while rbsp[i] == 0xFF:
            ptype += 255
            i += 1
        ptype += rbsp[i]
        i += 1
        size = 0
        while rbsp[i] == 0xFF:
            size += 255
            i += 1
        size += rbsp[i]
        i += 1
        out.append((ptype, rbsp[i:i + size]))
        i += size
    return out


def _sei_user_data(rbsp: bytes) -> list[str]:
    """Text of the user_data_unregistered SEI messages (x264 writes its options there)."""
    return [p[16:].decode("latin-1", "replace").rstrip("\x00")
            for t, p in sei_messages(rbsp) if t == 5 and len(p) > 16]


def analyze_annexb(data: bytes) -> StreamSyntax:
    st = StreamSyntax()
    for nal in split_annexb(data):
        st.nal_types.add(nal.type)
        if nal.type == NAL_SPS:
            s = parse_sps(nal.rbsp)
            st.sps[s["sps_id"]] = s
        elif nal.type == NAL_PPS:
            p = parse_pps(nal.rbsp, st.sps)
            st.pps[p["pps_id"]] = p
        elif nal.type in (NAL_SLICE, NAL_IDR):
            st.slices.append(parse_slice_header(nal, st.sps, st.pps))
        elif nal.type == NAL_SEI:
            try:
                st.sei_text.extend(_sei_user_data(nal.rbsp))
            except IndexError:
                pass
    return st


def annexb_of_file(path: str, max_packets: int | None = None) -> bytes:
    """The video stream of a container file as Annex B bytes (PyAV demuxer + bitstream filter)."""
    import av
    from av.bitstream import BitStreamFilterContext

    out = bytearray()
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        raw = c.format.name in ("h264",)
        bsf = None if raw else BitStreamFilterContext("h264_mp4toannexb", vs)
        n = 0
        for pkt in c.demux(vs):
            if pkt.size == 0:
                continue
            pkts = [pkt] if bsf is None else bsf.filter(pkt)
            for p in pkts:
                out += bytes(p)
            n += 1
            if max_packets and n >= max_packets:
                break
        if bsf is not None:
            for p in bsf.filter(None):
                out += bytes(p)
    return bytes(out)


def analyze_file(path: str, max_packets: int | None = None) -> StreamSyntax:
    return analyze_annexb(annexb_of_file(path, max_packets))


def x264_options_from_text(text: str) -> dict:
    m = re.search(r"options: (.*)", text)
    if not m:
        return {}
    opts = {}
    for tok in m.group(1).split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            opts[k] = v
    return opts


# ----------------------------------------------------------------------------------- PCM streams


@dataclass(frozen=True)
class PcmSlice:
    """A slice of a P frame picture of a PCM test stream, from MB row ``first_row`` to the next slice.

    ref_back: the frame its P_Skip MBs copy (1: the previous one, the default list; 2: the one
    before, moved to ref idx 0 by ref_pic_list_modification); qp_delta: slice_qp_delta.
    """

    first_row: int
    ref_back: int = 1
    qp_delta: int = 0


@dataclass
class PcmPicture:
    """One coded picture of a PCM test stream.

    kind: "I" (all I_PCM), "P" (P slice: I_PCM where ``pcm_mask`` is True, P_Skip elsewhere).
    For field pictures (``field`` = "top"/"bottom"), the sample arrays are field sized.
    slices: P frame pictures only; one slice of defaults when empty.
    """

    kind: str
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    pcm_mask: np.ndarray | None = None
    field: str | None = None
    slices: tuple[PcmSlice, ...] = ()


def _sps_rbsp(width_mbs, height_map_units, frame_mbs_only, crop_lrtb):
    w = BitWriter()
    if frame_mbs_only:
        w.u(8, 66)        # profile_idc: Baseline
        w.u(8, 0b11000000)  # constraint_set0/1
    else:
        w.u(8, 77)        # profile_idc: Main (Baseline has no field coding)
        w.u(8, 0b01000000)  # constraint_set1
    w.u(8, 30)            # level 3.0
    w.ue(0)               # seq_parameter_set_id
    w.ue(0)               # log2_max_frame_num_minus4 -> 16 frame numbers
    w.ue(2)               # pic_order_cnt_type 2: POC follows decode order
    w.ue(2)               # max_num_ref_frames (2: a field keeps the previous frame's field)
    w.u(1, 0)             # gaps_in_frame_num_value_allowed_flag
    w.ue(width_mbs - 1)
    w.ue(height_map_units - 1)
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 0)         # mb_adaptive_frame_field_flag: PAFF, not MBAFF
    w.u(1, 1)             # direct_8x8_inference_flag
    if any(crop_lrtb):
        w.u(1, 1)
        cuy = 2 * (2 - frame_mbs_only)
        left, right, top, bottom = crop_lrtb
        if left % 2 or right % 2 or top % cuy or bottom % cuy:
            raise ValueError("crop must be a multiple of the crop unit")
        w.ue(left // 2).ue(right // 2).ue(top // cuy).ue(bottom // cuy)
    else:
        w.u(1, 0)
    w.u(1, 0)             # vui_parameters_present_flag
    return w.trailing().to_bytes()


def _pps_rbsp():
    w = BitWriter()
    w.ue(0).ue(0)         # pps id, sps id
    w.u(1, 0)             # entropy_coding_mode_flag: CAVLC
    w.u(1, 0)             # bottom_field_pic_order_in_frame_present_flag
    w.ue(0)               # num_slice_groups_minus1
    w.ue(0).ue(0)         # num_ref_idx_l0/l1_default_active_minus1
    w.u(1, 0).u(2, 0)     # weighted_pred_flag, weighted_bipred_idc
    w.se(0).se(0).se(0)   # pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset
    w.u(1, 1)             # deblocking_filter_control_present_flag
    w.u(1, 0).u(1, 0)     # constrained_intra_pred_flag, redundant_pic_cnt_present_flag
    return w.trailing().to_bytes()


def _pcm_mb(w: BitWriter, y, u, v, mbx, mby):
    w.align_zero()        # pcm_alignment_zero_bit
    w.bytes_(y[mby * 16:(mby + 1) * 16, mbx * 16:(mbx + 1) * 16].tobytes())
    w.bytes_(u[mby * 8:(mby + 1) * 8, mbx * 8:(mbx + 1) * 8].tobytes())
    w.bytes_(v[mby * 8:(mby + 1) * 8, mbx * 8:(mbx + 1) * 8].tobytes())


def _slice_rbsp(pic: PcmPicture, frame_num: int, idr: bool, frame_mbs_only: int, ref: bool,
                sl: PcmSlice = PcmSlice(0), end_row: int | None = None):
    mbh, mbw = pic.y.shape[0] // 16, pic.y.shape[1] // 16
    end_row = mbh if end_row is None else end_row
    w = BitWriter()
    w.ue(sl.first_row * mbw)                  # first_mb_in_slice
    w.ue(7 if pic.kind == "I" else 5)         # slice_type (all slices of the picture same type)
    w.ue(0)                                   # pic_parameter_set_id
    w.u(4, frame_num % 16)                    # frame_num
    if not frame_mbs_only:
        w.u(1, 1 if pic.field else 0)         # field_pic_flag
        if pic.field:
            w.u(1, 1 if pic.field == "bottom" else 0)
    if idr:
        w.ue(0)                               # idr_pic_id
    if pic.kind == "P":
        w.u(1, 0)                             # num_ref_idx_active_override_flag
        if sl.ref_back == 1:
            w.u(1, 0)                         # ref_pic_list_modification_flag_l0
        else:                                 # picNum CurrPicNum - ref_back to ref idx 0
            w.u(1, 1).ue(0).ue(sl.ref_back - 1).ue(3)
    if ref:
        if idr:
            w.u(1, 0).u(1, 0)                 # no_output_of_prior_pics, long_term_reference
        else:
            w.u(1, 0)                         # adaptive_ref_pic_marking_mode_flag
    w.se(sl.qp_delta)                         # slice_qp_delta
    w.ue(1)                                   # disable_deblocking_filter_idc
    if pic.kind == "I":
        for mby in range(mbh):
            for mbx in range(mbw):
                w.ue(25)                      # mb_type I_PCM
                _pcm_mb(w, pic.y, pic.u, pic.v, mbx, mby)
    else:
        mask = pic.pcm_mask if pic.pcm_mask is not None else np.zeros((mbh, mbw), bool)
        run = 0
        for i, is_pcm in enumerate(mask.ravel()):
            if not sl.first_row * mbw <= i < end_row * mbw:
                continue
            if not is_pcm:
                run += 1
                continue
            w.ue(run)                         # mb_skip_run
            run = 0
            w.ue(5 + 25)                      # mb_type I_PCM inside a P slice
            _pcm_mb(w, pic.y, pic.u, pic.v, i % mbw, i // mbw)
        if run:
            w.ue(run)
    return w.trailing().to_bytes()


def pcm_stream(pictures: list[PcmPicture], crop_lrtb=(0, 0, 0, 0)) -> tuple[bytes, list[dict]]:
    """Write an Annex B stream of PCM/skip pictures.

    Returns (bytes, frames) where frames are the expected decoded (cropped) output frames as
    dicts y/u/v of uint8 arrays, in output order (= decode order: POC type 2).
    Frame pictures and field pairs can't be mixed; field pictures come in (top, bottom) pairs.
    """
    fields = pictures[0].field is not None
    frame_mbs_only = 0 if fields else 1
    ysz = pictures[0].y.shape
    fh, fw = (ysz[0] * 2, ysz[1]) if fields else ysz
    if fh % (32 if fields else 16) or fw % 16:
        raise ValueError("picture size must be whole macroblocks")
    out = bytearray()
    out += nal_unit(3, NAL_SPS, _sps_rbsp(fw // 16, (fh // 16) // (2 - frame_mbs_only), frame_mbs_only, crop_lrtb))
    out += nal_unit(3, NAL_PPS, _pps_rbsp())
    frames: list[dict] = []
    cur = None
    frame_num = 0
    for i, pic in enumerate(pictures):
        first_of_frame = not fields or i % 2 == 0
        idr = i == 0  # the second field of an IDR frame is a non-IDR reference field
        if pic.kind == "I" and not (i == 0 or (fields and i == 1)):
            raise ValueError("only the first picture (or field pair) may be intra")
        if fields and pic.field != ("top" if i % 2 == 0 else "bottom"):
            raise ValueError("field pictures must come as top, bottom pairs")
        if first_of_frame and i > 0:
            frame_num += 1
        slices = pic.slices or (PcmSlice(0),)
        if pic.slices and (fields or pic.kind != "P" or slices[0].first_row != 0 or
                           any(a.first_row >= b.first_row for a, b in itertools.pairwise(slices)) or
                           any(s.ref_back not in (1, 2) or s.ref_back > frame_num for s in slices)):
            raise ValueError("slices: P frame pictures only, rising rows from 0, ref_back 1 or 2 (if decoded)")
        ends = [s.first_row for s in slices[1:]] + [None]
        for sl, end in zip(slices, ends):
            out += nal_unit(3, NAL_IDR if idr else NAL_SLICE,
                            _slice_rbsp(pic, frame_num, idr, frame_mbs_only, True, sl, end))
        # expected output
        if first_of_frame:
            prev = frames[-1] if frames else None
            cur = {k: (prev[k].copy() if prev is not None else np.zeros((fh >> (k != "y"), fw >> (k != "y")), np.uint8))
                   for k in ("y", "u", "v")}
            for sl, end in zip(slices, ends):
                if sl.ref_back == 2:  # its skipped MBs copy the frame before the previous one
                    for k in ("y", "u", "v"):
                        s = 16 if k == "y" else 8
                        rows = slice(sl.first_row * s, None if end is None else end * s)
                        cur[k][rows] = frames[-2][k][rows]
            frames.append(cur)
        mbh, mbw = pic.y.shape[0] // 16, pic.y.shape[1] // 16
        mask = np.ones((mbh, mbw), bool) if pic.kind == "I" else (
            pic.pcm_mask if pic.pcm_mask is not None else np.zeros((mbh, mbw), bool))
        for k, src in (("y", pic.y), ("u", pic.u), ("v", pic.v)):
            s = 16 if k == "y" else 8
            m = np.kron(mask, np.ones((s, s), bool))
            if fields:
                par = 0 if pic.field == "top" else 1
                # P field pictures reference the previous frame's same-parity field (mv 0)
                view = cur[k][par::2]
                view[m] = src[m]
            else:
                cur[k][m] = src[m]
    left, right, top, bottom = crop_lrtb
    cropped = []
    for f in frames:
        d = {}
        for k in ("y", "u", "v"):
            s = 1 if k == "y" else 2
            a = f[k]
            d[k] = a[top // s:a.shape[0] - bottom // s, left // s:a.shape[1] - right // s].copy()
        cropped.append(d)
    return bytes(out), cropped


def picture_pocs(syn: StreamSyntax) -> list[int] | None:
    """POC (TopFieldOrderCnt for frames, min of the pair for fields) of each coded frame in decode
    order (8.2.1.1 for pic_order_cnt_type 0, 8.2.1.3 for type 2; None for type 1 or MMCO 5).
    Field pairs count as one frame."""
    sps = syn.first_sps
    ptype = sps["poc_type"]
    if ptype == 1:
        return None
    out: list[int] = []
    prev_msb = prev_lsb = 0
    prev_fn_offset = prev_fn = 0
    max_lsb = 1 << sps.get("log2_max_poc_lsb", 4)
    max_fn = 1 << sps["log2_max_frame_num"]
    last_frame_key = None
    for pic in syn.pictures():
        s = pic[0]
        idr = s["nal_type"] == NAL_IDR
        if ptype == 0:
            lsb = s["poc_lsb"]
            if idr:
                prev_msb = prev_lsb = 0
            if lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
                msb = prev_msb + max_lsb
            elif lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
                msb = prev_msb - max_lsb
            else:
                msb = prev_msb
            poc = msb + lsb
            if s["ref_idc"]:
                prev_msb, prev_lsb = msb, lsb
        else:
            if idr:
                fn_offset = 0
            elif prev_fn > s["frame_num"]:
                fn_offset = prev_fn_offset + max_fn
            else:
                fn_offset = prev_fn_offset
            poc = 0 if idr else 2 * (fn_offset + s["frame_num"]) - (0 if s["ref_idc"] else 1)
            prev_fn_offset, prev_fn = fn_offset, s["frame_num"]
        # the second field of a pair belongs to the same frame
        key = (s["frame_num"], s["field_pic"])
        if s["field_pic"] and s["bottom_field"] and last_frame_key == key and out:
            out[-1] = min(out[-1], poc)
            last_frame_key = None
            continue
        last_frame_key = key if s["field_pic"] and not s["bottom_field"] else None
        out.append(poc)
    return out
