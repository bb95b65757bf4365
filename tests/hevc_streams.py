"""Deterministic HEVC test streams: x265 (PyAV's libx265) on synthetic moving content.

Each stream is a ``StreamSpec``.  ``build(spec, dest)`` encodes it and then *proves that the
stream has the feature it is meant to cover*, independently of pycodec:

* from the bitstream (``hevc_bitstream``: VPS/SPS/PPS and every slice segment header), e.g.
  ``amp_enabled_flag``, scaling lists (and their values), ``transform_skip_enabled_flag``,
  ``sign_data_hiding_enabled_flag``, ``entropy_coding_sync_enabled_flag`` plus entry points,
  ``transquant_bypass_enabled_flag``, weighted prediction tables with explicit weights, slices
  per picture, deblocking/SAO switches, bit depth, conformance window, TMVP, B/P/I slices;
* from x265's own per-frame CSV statistics (``csv-log-level=2``: the share of AMP, skip, merge,
  intra 4x4 ... CUs the encoder chose), for CU-level decisions the slice headers cannot show;
* from PyAV's decode: the frame count, and every picture within 28 dB luma PSNR of the source
  (x265 4.2 writes undecodable multi-slice pictures when it has no thread pool; this catches such
  encoder breakage before any decoder comparison compares garbage).

Which CU/TU kinds really occur (AMP partitions, DST/transform-skip/bypass TUs, 4x4 and 32x32
TUs, ...) is then also asserted on the decoder's export in test_hevc_features.py.

Not produced, because x265 (4.2, the one PyAV ships) cannot encode them at all: its parameter
parser rejects every such option (see test_hevc_streams.py::test_x265_has_no_pcm_or_tiles):

* **PCM** (``pcm_enabled_flag`` is always 0 in x265 streams: there is no PCM mode decision);
* **tiles** (``tiles_enabled_flag`` is always 0: x265 implements WPP and slices, not tiles).

Unlike the H.264 PCM streams (CAVLC), an HEVC PCM stream cannot be written by hand without a
CABAC encoder, so these two features have no test stream here; nothing pretends otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import hevc_bitstream as hb
import numpy as np
import streams as S

# ----------------------------------------------------------------------------------- content


def render_graphics(width, height, frames, seed):
    """Screen-like content (sharp 1-pixel glyph strokes, checkerboards, flat fills) scrolling by
    whole pixels, over a slowly moving natural background: transform skip wins on the glyphs."""
    rng = np.random.default_rng(seed)
    mh, mw = height + 64, width + 64
    canvas = np.full((mh, mw), 200.0)
    # glyph rows: random 5x7 bitmaps with 1 px spacing
    for gy in range(4, mh - 8, 11):
        for gx in range(4, mw - 6, 7):
            if rng.random() < 0.8:
                canvas[gy:gy + 7, gx:gx + 5] = np.where(rng.random((7, 5)) < 0.45, 20.0, 200.0)
    # checkerboards and flat patches
    for _ in range(6):
        y0, x0 = rng.integers(0, mh - 16), rng.integers(0, mw - 16)
        yy, xx = np.mgrid[0:16, 0:16]
        canvas[y0:y0 + 16, x0:x0 + 16] = np.where((yy + xx) % 2, 235.0, 16.0)
    for _ in range(4):
        y0, x0 = rng.integers(0, mh - 24), rng.integers(0, mw - 24)
        canvas[y0:y0 + 24, x0:x0 + 24] = rng.uniform(40, 220)
    natural = S.render(width, height, frames, seed + 1, noise=0.5)
    for i, (ny, nu, nv) in enumerate(natural):
        dy, dx = (2 * i) % 32, (3 * i) % 32
        y = canvas[dy:dy + height, dx:dx + width].copy()
        # the lower quarter stays natural video (real motion compensation)
        q = (3 * height // 4) & ~7
        y[q:] = ny[q:]
        lower = np.arange(height // 2)[:, None] >= q // 2
        yield [y, np.where(lower, nu, 128.0), np.where(lower, nv, 128.0)]


# ----------------------------------------------------------------------------------- specs


@dataclass
class StreamSpec:
    name: str
    width: int = 128
    height: int = 128
    frames: int = 8
    pix_fmt: str = "yuv420p"
    params: dict = field(default_factory=dict)   # x265-params on top of BASE
    preset: str = "medium"
    container: str = "mp4"                       # "mp4" or "hevc" (raw Annex B)
    content: str = "natural"                     # "natural", "fade", "graphics"
    seed: int = 1
    expect: dict = field(default_factory=dict)   # what verify() must find
    mc_exact: bool = True                        # usable by the MC oracle (no cropping)
    note: str = ""


# threads: one frame thread and no thread pool unless the stream needs one (WPP: x265 turns it off
# without a pool; slices: x265 4.2 writes broken multi-slice pictures without one); fixed GOP, all
# frames in one IDR period unless a spec says otherwise; no weighted prediction unless asked for
BASE = {"log-level": "error", "frame-threads": 1, "pools": "none", "keyint": 64, "min-keyint": 64,
        "scenecut": 0, "weightp": 0, "csv-log-level": 2}

SPECS: dict[str, StreamSpec] = {s.name: s for s in [
    StreamSpec("ipb", 192, 128, 16,
               params={"bframes": 3, "b-pyramid": 1, "ref": 3, "keyint": 8, "min-keyint": 8, "open-gop": 1,
                       "no-wpp": 1, "signhide": 1},
               expect={"b": True, "p": True, "tmvp": True, "wpp": 0, "signhide": 1, "irap_count": 2, "cu_qp_delta": 1,
                       "max_ref_l0_at_least": 2, "csv": {"skip", "merge"}},
               note="I/P/B with b-pyramid, 3 refs, open GOP (an IDR, then a CRA), TMVP, merge/skip, "
                    "sign hiding, WPP off"),
    StreamSpec("amp", 128, 128, 10,
               params={"bframes": 2, "rect": 1, "amp": 1, "rd": 4, "crf": 24},
               expect={"amp": 1, "b": True, "csv": {"amp", "rect"}},
               note="rectangular and asymmetric (AMP) inter partitions"),
    StreamSpec("weightp", 128, 128, 10, content="fade",
               params={"weightp": 1, "weightb": 1, "bframes": 2, "b-adapt": 0},
               expect={"weighted_pred": 1, "weighted_bipred": 1, "explicit_weights": True},
               note="explicit weighted prediction (P and B) on a fade"),
    StreamSpec("wpp", 128, 128, 8,
               params={"pools": 2, "wpp": 1, "ctu": 32, "bframes": 2},
               expect={"wpp": 1, "entry_points": True},
               note="wavefront parallel processing: entropy_coding_sync with entry points, 32x32 CTUs"),
    StreamSpec("slices4", 192, 128, 8,
               params={"slices": 4, "ctu": 32, "bframes": 2, "pools": 2},
               expect={"slices_per_picture": 4},
               note="4 slices per picture (x265 4.2 writes undecodable multi-slice pictures without a thread "
                    "pool, hence pools=2; the PSNR check in verify() catches that)"),
    StreamSpec("scaling", 128, 128, 8,
               params={"scaling-list": "default", "bframes": 2, "crf": 24},
               expect={"scaling_list": "default"},
               note="default scaling lists (scaling_list_enabled_flag, no list data)"),
    StreamSpec("scaling_custom", 128, 128, 8,
               params={"scaling-list": "@custom", "bframes": 2, "crf": 24},
               expect={"scaling_list": "explicit"},
               note="explicit asymmetric scaling lists in the SPS (orientation of qstep)"),
    StreamSpec("tskip", 128, 128, 8, content="graphics",
               params={"tskip": 1, "crf": 16, "bframes": 2, "rd": 4, "tu-intra-depth": 2, "tu-inter-depth": 2},
               expect={"tskip": 1},
               note="transform skip on sharp screen-like content"),
    StreamSpec("tu4", 128, 128, 8,
               params={"tu-intra-depth": 4, "tu-inter-depth": 4, "max-tu-size": 32, "signhide": 0, "bframes": 2,
                       "rd": 4},
               expect={"tu_depth_at_least": 3, "signhide": 0, "max_tb": 32, "min_tb": 4},
               note="deep residual quadtrees (4x4..32x32 TUs), sign hiding off"),
    StreamSpec("noloop", 128, 128, 8, container="hevc",
               params={"no-deblock": 1, "no-sao": 1, "bframes": 2, "aq-mode": 0, "cutree": 0},
               expect={"deblocking_off": True, "sao": 0, "cu_qp_delta": 0},
               note="deblocking and SAO off (recon == decoded), no cu_qp_delta (every CU at the slice QP), "
                    "raw Annex B .hevc"),
    StreamSpec("sao_nodeblock", 128, 128, 8,
               params={"no-deblock": 1, "sao": 1, "bframes": 2, "crf": 32},
               expect={"deblocking_off": True, "sao": 1, "slice_sao": True},
               note="SAO without deblocking: decoded == SAO(recon) (SAO oracle)"),
    StreamSpec("lossless", 96, 64, 6,
               params={"lossless": 1, "bframes": 1},
               expect={"transquant_bypass": 1},
               note="lossless: every CU transquant bypass"),
    StreamSpec("cu_lossless", 128, 128, 8,
               params={"cu-lossless": 1, "bframes": 1, "crf": 12, "rd": 4},
               expect={"transquant_bypass": 1},
               note="per-CU lossless decisions mixed with normal CUs"),
    StreamSpec("main10", 128, 128, 8, pix_fmt="yuv420p10le",
               params={"bframes": 2, "profile": "main10", "tskip": 1},
               expect={"bit_depth": 10, "profile_idc": 2},
               note="Main10 (10-bit)"),
    StreamSpec("crop_100x62", 100, 62, 8, mc_exact=False,
               params={"bframes": 1},
               expect={"coded": (104, 64)},
               note="odd size: conformance window crops 104x64 to 100x62"),
]}

NAMES = list(SPECS)
MC_NAMES = [n for n, s in SPECS.items() if s.mc_exact]

# ----------------------------------------------------------------------------------- encoding

SCALING_NAMES = {0: "4X4", 1: "8X8", 2: "16X16", 3: "32X32"}
SCALING_LISTS = ("INTRA{}_LUMA", "INTRA{}_CHROMAU", "INTRA{}_CHROMAV", "INTER{}_LUMA", "INTER{}_CHROMAU",
                 "INTER{}_CHROMAV")


def write_custom_scaling_file(path: Path) -> Path:
    """An x265/HM scaling list file with asymmetric matrices (growing 3x faster along x than y)
    and non-16 DC values, so that a transposed qstep export cannot pass."""
    lines = []
    for sid, sname in SCALING_NAMES.items():
        n = 4 if sid == 0 else 8
        y, x = np.mgrid[0:n, 0:n]
        for li, pattern in enumerate(SCALING_LISTS):
            name = pattern.format(sname)
            m = 16 + 3 * x + y + li
            header = name
            if sid == 3 and li % 3:   # x265 names the 4:4:4-only 32x32 chroma lists like this
                header = f"{name}_FROM16x16_{pattern.split('_')[1]}"
            lines.append(f"{header} =")
            lines.extend(",".join(str(v) for v in row) + "," for row in m)
            if sid >= 2:
                lines.append(f"{name}_DC =")
                lines.append(f"{20 + li},")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def x265_params(spec: StreamSpec, dest_dir: Path) -> str:
    p = dict(BASE)
    p.update(spec.params)
    p.pop("profile", None)
    p["csv"] = str(csv_path(spec, dest_dir))
    if p.get("scaling-list") == "@custom":
        p["scaling-list"] = str(write_custom_scaling_file(Path(dest_dir) / f"{spec.name}.scaling.txt"))
    return ":".join(f"{k}={v}" for k, v in p.items())


def csv_path(spec: StreamSpec, dest_dir: Path) -> Path:
    return Path(dest_dir) / f"{spec.name}.x265.csv"


def frames_of(spec: StreamSpec):
    if spec.content == "graphics":
        return render_graphics(spec.width, spec.height, spec.frames, spec.seed)
    return S.render(spec.width, spec.height, spec.frames, spec.seed, fade=spec.content == "fade")


def _encode(spec: StreamSpec, path: Path):
    import av

    fmt = {"hevc": "hevc", "mp4": "mp4"}[spec.container]
    csvf = csv_path(spec, path.parent)
    if csvf.exists():
        csvf.unlink()
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream("libx265", rate=25)
        st.width, st.height, st.pix_fmt = spec.width, spec.height, spec.pix_fmt
        opts = {"preset": spec.preset, "x265-params": x265_params(spec, path.parent)}
        if "profile" in spec.params:
            opts["profile"] = spec.params["profile"]
        st.options = opts
        for i, planes in enumerate(frames_of(spec)):
            fr = S.video_frame(planes, spec.width, spec.height, spec.pix_fmt, clip=True)
            fr.pts = i
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def read_x265_csv(path: Path) -> list[dict]:
    """x265's per-frame log (csv-log-level=2) as dicts: 'POC', 'Type' and the CU-decision shares
    (percent, as floats)."""
    rows = []
    with open(path, newline="") as f:
        rd = csv.reader(f)
        header = [h.strip() for h in next(rd)]
        for rec in rd:
            if not rec or not rec[0].strip().isdigit():
                continue
            d = {}
            for k, v in zip(header, rec):
                v = v.strip()
                if v.endswith("%"):
                    d.setdefault(k, float(v[:-1]))
                else:
                    try:
                        d.setdefault(k, float(v))
                    except ValueError:
                        d.setdefault(k, v)
            rows.append(d)
    return rows


_CSV_KINDS = {
    "amp": lambda k: "(Amp)" in k or k.startswith("AMP "),
    "rect": lambda k: "(Rect)" in k,
    "skip": lambda k: k.startswith("Skip "),
    "merge": lambda k: k.startswith("Merge "),
    "intra4x4": lambda k: k == "4x4",
}


def csv_share(row: dict, kind: str) -> float:
    """Total share (percent) of a CU decision kind in one frame of x265's CSV log."""
    match = _CSV_KINDS[kind]
    return sum(v for k, v in row.items() if isinstance(v, float) and match(k))


# ----------------------------------------------------------------------------------- checks


class StreamFeatureError(AssertionError):
    pass


def _require(cond, spec, what):
    if not cond:
        raise StreamFeatureError(f"generated HEVC stream {spec.name!r} does not have the intended feature: {what}")


def verify(spec: StreamSpec, path: Path) -> hb.StreamSyntax:
    """Assert from the bitstream syntax, x265's CSV log and PyAV that the stream has its features."""
    syn = hb.analyze_file(path)
    sps, pps = syn.first_sps, syn.first_pps
    slices = syn.slices()
    e = spec.expect
    types = {s["slice_type"] for s in slices}
    _require(len(syn.sps) == 1 and len(syn.pps) == 1, spec, "one SPS and one PPS")
    _require(sps["chroma_format_idc"] == 1, spec, "4:2:0")
    _require(not sps["pcm_enabled"] and not pps["tiles_enabled"], spec, "no PCM, no tiles (x265)")
    _require((sps["width"], sps["height"]) == (spec.width, spec.height), spec,
             f"display size {spec.width}x{spec.height} (SPS says {sps['width']}x{sps['height']})")
    _require(sps["bit_depth"] == e.get("bit_depth", 8), spec, f"bit depth {e.get('bit_depth', 8)}")
    _require(syn.x265_info().startswith("x265"), spec, "x265's info SEI")
    _require(len(syn.pictures) == spec.frames, spec, f"{spec.frames} coded pictures ({len(syn.pictures)})")
    if e.get("b"):
        _require(hb.SLICE_B in types, spec, "B slices")
    if e.get("p"):
        _require(hb.SLICE_P in types, spec, "P slices")
    if e.get("tmvp"):
        _require(sps["temporal_mvp_enabled"] and all(s["slice_temporal_mvp"] for s in slices
                                                     if s["slice_type"] != hb.SLICE_I),
                 spec, "TMVP enabled in the SPS and every inter slice")
    if "wpp" in e:
        _require(pps["entropy_coding_sync_enabled"] == e["wpp"], spec, f"entropy_coding_sync_enabled_flag == {e['wpp']}")
    if e.get("entry_points"):
        rows = sps["ctb_rows"]
        _require(all(s["num_entry_points"] == rows - 1 for s in slices), spec,
                 f"one entry point per CTB row ({rows - 1} per slice)")
    if "signhide" in e:
        _require(pps["sign_data_hiding_enabled"] == e["signhide"], spec, f"sign_data_hiding_enabled_flag == {e['signhide']}")
    if "irap_count" in e:
        n = sum(1 for p in syn.pictures if hb.BLA_W_LP <= p.nal_type <= 23)
        _require(n >= e["irap_count"], spec, f"at least {e['irap_count']} IRAP pictures ({n})")
        _require(any(p.nal_type == hb.CRA_NUT for p in syn.pictures), spec, "a CRA picture (open GOP)")
    if "max_ref_l0_at_least" in e:
        _require(max(s["num_ref_idx_l0"] for s in slices) >= e["max_ref_l0_at_least"], spec, "several references")
    if "amp" in e:
        _require(sps["amp_enabled"] == e["amp"], spec, f"amp_enabled_flag == {e['amp']}")
    if "weighted_pred" in e:
        _require(pps["weighted_pred"] == e["weighted_pred"], spec, "weighted_pred_flag")
    if "weighted_bipred" in e:
        _require(pps["weighted_bipred"] == e["weighted_bipred"], spec, "weighted_bipred_flag")
    if e.get("explicit_weights"):
        _require(any(s["weights"] and any(lf for lf, _ in s["weights"]["explicit"][0]) for s in slices
                     if s["slice_type"] == hb.SLICE_P), spec, "a P slice with an explicit luma weight")
    if "slices_per_picture" in e:
        counts = {len(p.slices) for p in syn.pictures}
        _require(counts == {e["slices_per_picture"]}, spec, f"{e['slices_per_picture']} slices per picture ({counts})")
    if "scaling_list" in e:
        _require(sps["scaling_list_enabled"] == 1, spec, "scaling_list_enabled_flag")
        present = sps["sps_scaling_list_data_present"] or pps["pps_scaling_list_data_present"]
        if e["scaling_list"] == "default":
            _require(not present, spec, "default scaling lists (no list data)")
        else:
            lists = hb.active_scaling_lists(sps, pps)
            m8 = lists[(1, 0)][0]
            _require(present and not np.array_equal(m8, m8.T), spec, "explicit asymmetric scaling lists")
            _require(lists[(2, 0)][1] != 16, spec, "a 16x16 DC value other than 16")
    if "tskip" in e:
        _require(pps["transform_skip_enabled"] == e["tskip"], spec, "transform_skip_enabled_flag")
    if "tu_depth_at_least" in e:
        d = e["tu_depth_at_least"]
        _require(sps["max_transform_hierarchy_depth_intra"] >= d and sps["max_transform_hierarchy_depth_inter"] >= d,
                 spec, f"max_transform_hierarchy_depth_intra/inter >= {d}")
    if "max_tb" in e:
        _require(1 << sps["log2_max_tb"] == e["max_tb"] and 1 << sps["log2_min_tb"] == e["min_tb"], spec,
                 f"transform sizes {e['min_tb']}..{e['max_tb']}")
    if e.get("deblocking_off"):
        _require(all(s["deblocking_disabled"] for s in slices), spec, "slice_deblocking_filter_disabled_flag in every slice")
    if "sao" in e:
        _require(sps["sao_enabled"] == e["sao"], spec, f"sample_adaptive_offset_enabled_flag == {e['sao']}")
    if e.get("slice_sao"):
        _require(any(s["slice_sao_luma"] for s in slices) and any(s["slice_sao_chroma"] for s in slices), spec,
                 "slices with SAO on for luma and chroma")
    if "cu_qp_delta" in e:
        _require(pps["cu_qp_delta_enabled"] == e["cu_qp_delta"], spec, f"cu_qp_delta_enabled_flag == {e['cu_qp_delta']}")
    if "transquant_bypass" in e:
        _require(pps["transquant_bypass_enabled"] == e["transquant_bypass"], spec, "transquant_bypass_enabled_flag")
    if "profile_idc" in e:
        _require(sps["profile_idc"] == e["profile_idc"], spec, f"general_profile_idc {e['profile_idc']}")
    if "coded" in e:
        _require((sps["pic_width"], sps["pic_height"]) == e["coded"], spec, f"coded size {e['coded']}")
        _require(sps["conformance_window"] == 1, spec, "a conformance window")
    if spec.mc_exact:
        _require(sps["conformance_window"] == 0, spec, "no conformance window (MC oracle needs coded == display)")
    if "csv" in e:
        rows = read_x265_csv(csv_path(spec, Path(path).parent))
        _require(len(rows) == spec.frames, spec, f"x265 CSV log with {spec.frames} frames")
        for kind in e["csv"]:
            _require(any(csv_share(r, kind) > 0 for r in rows), spec, f"x265 chose {kind} CUs in some frame")
    # the stream decodes (PyAV) to pictures close to what was encoded: a broken encoder output
    # would otherwise make every decoder comparison compare garbage
    from conftest import pyav_decode

    dec = [r.planes[0].astype(np.float64) for r in pyav_decode(path, side_data=False)]
    _require(len(dec) == spec.frames, spec, f"{spec.frames} decodable frames (PyAV decoded {len(dec)})")
    scale = 4.0 if "10" in spec.pix_fmt else 1.0
    for i, (d, planes) in enumerate(zip(dec, frames_of(spec))):
        mse = np.mean((d / scale - np.rint(np.clip(planes[0], 0, 255) * scale) / scale) ** 2)
        psnr = 10 * np.log10(255 ** 2 / mse) if mse else np.inf
        _require(psnr >= 28, spec, f"a sane decode (frame {i}: luma PSNR {psnr:.1f} dB against the source)")
    return syn


def build(spec: StreamSpec, dest_dir: Path) -> Path:
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{spec.name}.{spec.container}"
    _encode(spec, path)
    verify(spec, path)
    return path


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------- session cache


class HevcStore:
    """Builds the HEVC streams on first use and caches their syntax, PyAV decode and pycodec's
    all-fields decode for the session (the ``hevc_store`` fixture)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._paths: dict = {}
        self._syntax: dict = {}
        self._ref: dict = {}
        self._dec: dict = {}

    def spec(self, name) -> StreamSpec:
        return SPECS[name]

    def path(self, name) -> Path:
        if name not in self._paths:
            self._paths[name] = build(SPECS[name], self.root)
        return self._paths[name]

    def syntax(self, name) -> hb.StreamSyntax:
        if name not in self._syntax:
            self._syntax[name] = hb.analyze_file(self.path(name))
        return self._syntax[name]

    def csv(self, name) -> list[dict]:
        self.path(name)
        return read_x265_csv(csv_path(SPECS[name], self.root))

    def reference(self, name) -> list:
        from conftest import pyav_decode

        if name not in self._ref:
            self._ref[name] = pyav_decode(self.path(name), side_data=False)
        return self._ref[name]

    def decode(self, name, fields=None):
        """pycodec decode -> (info, frames); the all-fields decode is cached."""
        from conftest import pycodec_decode

        if fields is not None:
            return pycodec_decode(self.path(name), fields)
        if name not in self._dec:
            self._dec[name] = pycodec_decode(self.path(name), None)
        return self._dec[name]


if __name__ == "__main__":  # python tests/hevc_streams.py DIR: write every stream for inspection
    import sys

    d = Path(sys.argv[1] if len(sys.argv) > 1 else "build/test-streams-hevc")
    for s in SPECS.values():
        p = build(s, d)
        print(f"{p}  {os.path.getsize(p)} bytes  {s.note}")
