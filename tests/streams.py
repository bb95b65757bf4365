"""Deterministic H.264 test streams: x264 (through PyAV) on synthetic moving content, plus
hand-written PCM streams (tests/h264_bitstream.py).

Each stream is described by a ``StreamSpec``.  ``build(spec, dest)`` encodes it and then
*checks that the stream really has the feature it is meant to cover* by parsing its parameter
sets and slice headers (``h264_bitstream.analyze_file``) and PyAV's view of it.  Macroblock-level
features (intra 4x4/8x8/16x16, skip, direct, PCM) need the decoder's export and are asserted in
``test_h264_features.py``.

Content: a textured plane (smooth noise, stripes, hard-edged blocks) seen through a camera that
translates by sub-pixel amounts and slowly zooms, a textured disc moving the other way, a static
flat area (intra 16x16 / skip), and a little seeded noise so there are real residuals.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import h264_bitstream as hb
import numpy as np

# ----------------------------------------------------------------------------------- content


def _smooth(rng, h, w, cell):
    gh, gw = h // cell + 3, w // cell + 3
    g = rng.standard_normal((gh, gw))
    ys = np.arange(h) / cell
    xs = np.arange(w) / cell
    return _bilinear(g, ys[:, None] + 0 * xs[None, :], xs[None, :] + 0 * ys[:, None])


def _bilinear(img, ys, xs):
    h, w = img.shape
    ys = np.clip(ys, 0, h - 1.001)
    xs = np.clip(xs, 0, w - 1.001)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = ys - y0
    fx = xs - x0
    a = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    b = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return a * (1 - fy) + b * fy


def render(width, height, frames, seed, fade=False, chroma="420", noise=1.5):
    """Yield (y, u, v) float planes in [0, 255] (chroma subsampled per ``chroma``)."""
    rng = np.random.default_rng(seed)
    mh, mw = 2 * height + 64, 2 * width + 64
    yy, xx = np.mgrid[0:mh, 0:mw]
    tex_y = 128 + 45 * _smooth(rng, mh, mw, 12) + 22 * _smooth(rng, mh, mw, 3)
    tex_y += 18 * np.sin(xx / 4.3 + yy / 7.1)
    for _ in range(10):  # hard-edged blocks
        y0, x0 = rng.integers(0, mh - 20), rng.integers(0, mw - 20)
        hh, ww = rng.integers(6, 20, 2)
        tex_y[y0:y0 + hh, x0:x0 + ww] = rng.uniform(20, 235)
    tex_u = 128 + 30 * _smooth(rng, mh, mw, 16) + 8 * np.sin(yy / 6.0)
    tex_v = 128 + 30 * _smooth(rng, mh, mw, 16) + 8 * np.cos(xx / 5.0)
    obj = 128 + 60 * _smooth(rng, 40, 40, 4)
    oy, ox = np.mgrid[0:40, 0:40]
    obj_mask = (oy - 19.5) ** 2 + (ox - 19.5) ** 2 < 16 ** 2
    fy, fx = np.mgrid[0:height, 0:width].astype(np.float64)
    blocky = np.kron(rng.integers(0, 6, (8, 8)) * 12 + 70, np.ones((4, 4)))
    for i in range(frames):
        z = 1.0 - 0.006 * i
        ty = 20 + 0.55 * i + 1.5 * np.sin(i / 3.0)
        tx = 20 + 1.25 * i + 0.75 * np.cos(i / 4.0)
        sy = (fy - height / 2) * z + height / 2 + ty
        sx = (fx - width / 2) * z + width / 2 + tx
        planes = [_bilinear(t, sy, sx) for t in (tex_y, tex_u, tex_v)]
        # a disc moving against the camera motion
        py = round(height * 0.45 - 0.9 * i) % max(1, height - 40)
        px = round(width * 0.6 - 2.25 * i) % max(1, width - 40)
        reg = (slice(py, py + 40), slice(px, px + 40))
        if planes[0][reg].shape == obj.shape:
            planes[0][reg][obj_mask] = obj[obj_mask]
            planes[1][reg][obj_mask] = 90
            planes[2][reg][obj_mask] = 170
        planes[0] = planes[0] + rng.normal(0, noise, planes[0].shape)
        # static, noise-free areas: a flat one (intra 16x16 DC/plane in I pictures, P_Skip with a
        # zero MV elsewhere) and one of 4x4-constant blocks (intra 16x16 with non-symmetric DC
        # Hadamard levels)
        fh, fw = min(32, height // 2) & ~15, min(32, width // 2) & ~15
        planes[0][:fh, :fw] = 60
        planes[1][:fh, :fw] = 110
        planes[2][:fh, :fw] = 140
        if 2 * fw <= width:
            planes[0][:fh, fw:2 * fw] = blocky[:fh, :fw]
            planes[1][:fh, fw:2 * fw] = 120
            planes[2][:fh, fw:2 * fw] = 130
        if fade:
            f = 1.0 - 0.6 * i / max(1, frames - 1)
            planes[0] = 16 + (planes[0] - 16) * f
            planes[1] = 128 + (planes[1] - 128) * f
            planes[2] = 128 + (planes[2] - 128) * f
        out = [planes[0]]
        for c in planes[1:]:
            if chroma == "420":
                c = 0.25 * (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2])
            elif chroma == "422":
                c = 0.5 * (c[:, 0::2] + c[:, 1::2])
            out.append(c)
        yield [np.clip(p, 0, 255) for p in out]


# ----------------------------------------------------------------------------------- specs


@dataclass
class StreamSpec:
    name: str
    width: int = 128
    height: int = 96
    frames: int = 16
    pix_fmt: str = "yuv420p"
    profile: str | None = None            # x264 --profile
    params: dict = field(default_factory=dict)  # x264-params
    preset: str = "medium"
    container: str = "mp4"
    fade: bool = False
    seed: int = 1
    supported: bool = True                # export expected to work (invariants apply)
    expect: dict = field(default_factory=dict)
    pcm: str | None = None                # "frame" / "field": written by h264_bitstream
    note: str = ""


BASE = {"threads": 1, "keyint": 12, "min-keyint": 12, "scenecut": 0}

SPECS: dict[str, StreamSpec] = {s.name: s for s in [
    StreamSpec("baseline", 96, 64, 12, profile="baseline", container="264",
               params={"ref": 2, "partitions": "all"},
               expect={"profile_idc": 66, "cabac": 0, "no_b": True, "t8x8": 0},
               note="Baseline: CAVLC, no B"),
    StreamSpec("main_b", 128, 96, 20, profile="main",
               params={"bframes": 3, "b-pyramid": "normal", "direct": "spatial", "weightb": 1, "ref": 3},
               expect={"profile_idc": 77, "cabac": 1, "b": True, "direct_spatial": 1, "t8x8": 0},
               note="Main: CABAC, B-frames with b-pyramid, spatial direct"),
    StreamSpec("high_temporal", 128, 96, 20, profile="high", container="mkv",
               params={"bframes": 2, "b-pyramid": "none", "direct": "temporal", "weightb": 0, "8x8dct": 1},
               expect={"profile_idc": 100, "cabac": 1, "b": True, "direct_spatial": 0, "t8x8": 1,
                       "weighted_bipred_idc": 0},
               note="High: 8x8 transform, temporal direct"),
    StreamSpec("cavlc_8x8", 112, 80, 16, profile="high",
               params={"cabac": 0, "8x8dct": 1, "bframes": 2, "direct": "spatial", "partitions": "all"},
               expect={"profile_idc": 100, "cabac": 0, "b": True, "t8x8": 1},
               note="High with CAVLC and the 8x8 transform"),
    StreamSpec("weightp", 96, 64, 16, profile="high", fade=True,
               params={"weightp": 2, "bframes": 0},
               expect={"weighted_pred": 1, "luma_weights": True},
               note="explicit weighted prediction on a fade"),
    StreamSpec("slices4", 128, 96, 12, profile="high", container="ts",
               params={"slices": 4, "bframes": 1},
               expect={"slices_per_picture": 4},
               note="4 slices per picture, MPEG-TS"),
    StreamSpec("ref4", 96, 96, 16, profile="high", container="avi",
               params={"ref": 4, "bframes": 0},
               expect={"max_num_ref_frames": 4, "ref_idx_l0_max_at_least": 3},
               note="4 reference frames, AVI"),
    StreamSpec("nodeblock", 96, 64, 12, profile="high",
               params={"no-deblock": 1, "bframes": 2},
               expect={"deblocking_off": True},
               note="loop filter off: recon == decoded"),
    StreamSpec("crop_70x46", 70, 46, 12, profile="high", params={"bframes": 2},
               expect={"coded": (80, 48)}, note="odd size needing cropping"),
    StreamSpec("crop_100x62", 100, 62, 12, profile="main", container="mkv", params={"bframes": 1},
               expect={"coded": (112, 64)}, note="odd size needing cropping"),
    StreamSpec("fake_interlaced", 64, 64, 10, profile="high", params={"fake-interlaced": 1, "bframes": 1},
               expect={"frame_mbs_only": 0, "mbaff": 0, "field_pics": 0},
               note="frame_mbs_only=0 but every picture is a progressive frame: fully supported"),
    StreamSpec("pcm", 48, 32, 4, container="264", pcm="frame",
               expect={"coded": (48, 32)}, note="I_PCM macroblocks and P_Skip runs, cropped to 44x30"),
    StreamSpec("pcm_slices", 64, 48, 5, container="264", pcm="frame_slices",
               expect={"coded": (64, 48)},
               note="slices of one picture with different reference lists (ref_pic_list_modification) "
                    "and slice QPs"),
    # ------------------------------------------------------------ unsupported structures
    StreamSpec("mbaff", 64, 64, 8, profile="high", supported=False, params={"interlaced": 1, "bframes": 1},
               expect={"mbaff": 1}, note="MBAFF (x264 --interlaced): flagged UNSUPPORTED"),
    StreamSpec("paff_pcm", 48, 64, 2, container="264", pcm="field", supported=False,
               expect={"field_pics": 1}, note="field pictures (PAFF), PCM: flagged UNSUPPORTED"),
    StreamSpec("lossless", 64, 48, 8, supported=False, params={"qp": 0, "bframes": 0},
               expect={"profile_idc": 244, "transform_bypass": 1},
               note="x264 qp=0: High 4:4:4 Predictive with transform bypass: flagged LOSSLESS"),
    StreamSpec("hi10", 64, 64, 6, pix_fmt="yuv420p10le", profile="high10", supported=False,
               params={"bframes": 0}, expect={"bit_depth": 10}, note="10-bit: refused for export"),
    StreamSpec("yuv422", 64, 64, 6, pix_fmt="yuv422p", profile="high422", supported=False,
               params={"bframes": 0}, expect={"chroma_format_idc": 2}, note="4:2:2: refused for export"),
]}

SUPPORTED = [n for n, s in SPECS.items() if s.supported]
UNSUPPORTED = [n for n, s in SPECS.items() if not s.supported]

# ----------------------------------------------------------------------------------- encoding


def _x264_params(spec: StreamSpec) -> str:
    p = dict(BASE)
    p.update(spec.params)
    return ":".join(f"{k}={v}" for k, v in p.items())


def video_frame(planes, width: int, height: int, pix_fmt: str, clip: bool = False):
    """A PyAV frame of ``pix_fmt`` from float planes in 8-bit units (scaled by 4 for 10-bit formats),
    copied row by row into PyAV's padded planes; ``clip`` clamps to [0, 255] first."""
    import av

    fr = av.VideoFrame(width, height, pix_fmt)
    high = "10" in pix_fmt
    for pl, arr in zip(fr.planes, planes):
        if clip:
            arr = np.clip(arr, 0, 255)
        a = np.rint(arr * 4).astype("<u2") if high else np.rint(arr).astype(np.uint8)
        buf = np.zeros((pl.height, pl.line_size // a.itemsize), a.dtype)
        buf[:a.shape[0], :a.shape[1]] = a
        pl.update(buf.tobytes())
    return fr


def _encode_x264(spec: StreamSpec, path: Path):
    import av

    fmt = {"264": "h264", "mkv": "matroska", "ts": "mpegts"}.get(spec.container, spec.container)
    chroma = "422" if "422" in spec.pix_fmt else "420"
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = spec.width, spec.height, spec.pix_fmt
        opts = {"preset": spec.preset, "x264-params": _x264_params(spec)}
        if spec.profile:
            opts["profile"] = spec.profile
        st.options = opts
        for i, planes in enumerate(render(spec.width, spec.height, spec.frames, spec.seed,
                                          fade=spec.fade, chroma=chroma)):
            fr = video_frame(planes, spec.width, spec.height, spec.pix_fmt)
            fr.pts = i
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def pcm_pictures(spec: StreamSpec, seed: int = 7):
    """The PcmPicture list of a PCM spec (also used by the tests to know the samples)."""
    rng = np.random.default_rng(seed)
    w, h = spec.width, spec.height

    def planes(hh, ww):
        return (rng.integers(0, 256, (hh, ww), dtype=np.uint8),
                rng.integers(0, 256, (hh // 2, ww // 2), dtype=np.uint8),
                rng.integers(0, 256, (hh // 2, ww // 2), dtype=np.uint8))

    mbw, mbh = w // 16, h // 16
    if spec.pcm == "frame_slices":  # 4x3 MBs; P pictures of several slices, one PCM MB in some
        sl = hb.PcmSlice
        layout = [
            ((0, 1), (sl(0), sl(1))),                                    # two slices set up alike
            ((2, 3), (sl(0), sl(1, ref_back=2), sl(2, qp_delta=3))),
            (None, (sl(0, ref_back=2, qp_delta=2), sl(2, qp_delta=-4))),
            ((1, 0), (sl(0, qp_delta=-1), sl(1, ref_back=2), sl(2, ref_back=2, qp_delta=5))),
        ]
        pics = [hb.PcmPicture("I", *planes(h, w))]
        for pcm_at, slices in layout[:spec.frames - 1]:
            m = np.zeros((mbh, mbw), bool)
            if pcm_at:
                m[pcm_at] = True
            pics.append(hb.PcmPicture("P", *planes(h, w), pcm_mask=m, slices=slices))
        return pics, (0, 0, 0, 0)
    if spec.pcm == "frame":
        pics = [hb.PcmPicture("I", *planes(h, w))]
        masks = [np.zeros((mbh, mbw), bool) for _ in range(spec.frames - 1)]
        if spec.frames > 1:
            masks[0][0, 1] = masks[0][1, 2] = True
        if spec.frames > 2:
            masks[1][:] = ~masks[0]
        for m in masks:  # the last one: all P_Skip
            pics.append(hb.PcmPicture("P", *planes(h, w), pcm_mask=m))
        return pics, (0, 4, 0, 2)
    # field pictures: frames * (top, bottom); the first pair intra, later pairs mixed
    fh = h // 2
    fmbh = fh // 16
    pics = [hb.PcmPicture("I", *planes(fh, w), field="top"), hb.PcmPicture("I", *planes(fh, w), field="bottom")]
    for k in range(spec.frames - 1):
        m = np.zeros((fmbh, mbw), bool)
        m.ravel()[k % m.size] = True
        pics.append(hb.PcmPicture("P", *planes(fh, w), pcm_mask=m, field="top"))
        pics.append(hb.PcmPicture("P", *planes(fh, w), pcm_mask=~m, field="bottom"))
    return pics, (0, 0, 0, 0)


def pcm_expected(spec: StreamSpec):
    pics, crop = pcm_pictures(spec)
    return hb.pcm_stream(pics, crop)


# ----------------------------------------------------------------------------------- checks


class StreamFeatureError(AssertionError):
    pass


def _require(cond, spec, what):
    if not cond:
        raise StreamFeatureError(f"generated stream {spec.name!r} does not have the intended feature: {what}")


def verify(spec: StreamSpec, path: Path) -> hb.StreamSyntax:
    """Assert from the bitstream syntax (and PyAV) that the stream has the intended structure."""
    import av

    syn = hb.analyze_file(str(path))
    sps, pps = syn.first_sps, syn.first_pps
    e = spec.expect
    types = [s["slice_type"] for s in syn.slices]
    if "profile_idc" in e:
        _require(sps["profile_idc"] == e["profile_idc"], spec, f"profile_idc {sps['profile_idc']} != {e['profile_idc']}")
    if "cabac" in e:
        _require(pps["cabac"] == e["cabac"], spec, f"entropy_coding_mode_flag == {e['cabac']}")
    if e.get("no_b"):
        _require(hb.SLICE_B not in types, spec, "no B slices")
    if e.get("b"):
        _require(hb.SLICE_B in types, spec, "B slices present")
    if "direct_spatial" in e:
        ds = {s["direct_spatial"] for s in syn.slices if s["slice_type"] == hb.SLICE_B}
        _require(ds == {e["direct_spatial"]}, spec, f"direct_spatial_mv_pred_flag == {e['direct_spatial']} ({ds})")
    if "t8x8" in e:
        _require(pps["transform_8x8_mode"] == e["t8x8"], spec, f"transform_8x8_mode_flag == {e['t8x8']}")
    if "weighted_bipred_idc" in e:
        _require(pps["weighted_bipred_idc"] == e["weighted_bipred_idc"], spec, "weighted_bipred_idc")
    if "weighted_pred" in e:
        _require(pps["weighted_pred"] == e["weighted_pred"], spec, "weighted_pred_flag")
    if e.get("luma_weights"):
        _require(any(s["luma_weights"] for s in syn.slices), spec, "a P slice with explicit luma weights")
    if "slices_per_picture" in e:
        counts = {len(p) for p in syn.pictures()}
        _require(counts == {e["slices_per_picture"]}, spec, f"{e['slices_per_picture']} slices per picture ({counts})")
    if "max_num_ref_frames" in e:
        _require(sps["max_num_ref_frames"] >= e["max_num_ref_frames"], spec, "max_num_ref_frames")
    if "ref_idx_l0_max_at_least" in e:
        _require(max(s["num_ref_idx_l0"] for s in syn.slices) >= e["ref_idx_l0_max_at_least"], spec,
                 "slices with several active references")
    if e.get("deblocking_off"):
        _require(all(s["disable_deblocking"] == 1 for s in syn.slices), spec, "disable_deblocking_filter_idc == 1")
    if "coded" in e:
        _require((sps["coded_width"], sps["coded_height"]) == e["coded"], spec, f"coded size {e['coded']}")
        _require((sps["width"], sps["height"]) != e["coded"] or spec.pcm, spec, "a cropping window")
    if "frame_mbs_only" in e:
        _require(sps["frame_mbs_only"] == e["frame_mbs_only"], spec, "frame_mbs_only_flag")
    if "mbaff" in e:
        _require(sps["mbaff"] == e["mbaff"], spec, "mb_adaptive_frame_field_flag")
    if "field_pics" in e:
        fp = {s["field_pic"] for s in syn.slices}
        _require(fp == {e["field_pics"]}, spec, f"field_pic_flag == {e['field_pics']}")
    if "transform_bypass" in e:
        _require(sps["transform_bypass"] == e["transform_bypass"], spec, "qpprime_y_zero_transform_bypass_flag")
    if "bit_depth" in e:
        _require(sps["bit_depth_luma"] == e["bit_depth"], spec, "bit depth")
    if "chroma_format_idc" in e:
        _require(sps["chroma_format_idc"] == e["chroma_format_idc"], spec, "chroma_format_idc")
    if spec.pcm is None:
        _require((sps["width"], sps["height"]) == (spec.width, spec.height), spec, "display size")
        opts = syn.x264_options()
        _require(bool(opts), spec, "x264's options SEI")
        _require(opts.get("threads") == "1" or opts.get("lookahead_threads") is not None, spec, "threads=1")
    # the pictures PyAV decodes
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    _require(n == spec.frames, spec, f"{spec.frames} decodable frames (PyAV decoded {n})")
    return syn


def build(spec: StreamSpec, dest_dir: Path) -> Path:
    ext = {"264": "264"}.get(spec.container, spec.container)
    path = Path(dest_dir) / f"{spec.name}.{ext}"
    if spec.pcm:
        data, _ = pcm_expected(spec)
        path.write_bytes(data)
    else:
        _encode_x264(spec, path)
    verify(spec, path)
    return path


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":  # python tests/streams.py DIR: write every stream (for manual inspection)
    import sys

    d = Path(sys.argv[1] if len(sys.argv) > 1 else "build/test-streams")
    d.mkdir(parents=True, exist_ok=True)
    for s in SPECS.values():
        p = build(s, d)
        print(f"{p}  {os.path.getsize(p)} bytes  {s.note}")
