"""Measure how well the codec's coefficient domain and quantization intervals hold, and write
docs/intervals.md.

1. G(coeffs) vs the decoder's integer residual, and F(residual) vs the decoded coefficients, on
   the generated H.264 and HEVC test streams (tests/streams.py, tests/hevc_streams.py) and the
   real H.264 samples (`make samples`); with the breakdown of the F(residual) outliers of the real
   files by block kind and QP (why they are outside step/2).
2. Coverage: the fraction of *source* coefficients (F(source - prediction)) inside the symmetric
   interval [c - step/2, c + step/2] and encoder-aware ones, per QP and block kind, for x264 and
   x265 encodes (PyAV, preset medium, constant QP) of a synthetic clip and of a 256x256 crop of a
   real phone video (its decoded frames are the source).
3. A noisy oracle: source + Gaussian noise as a stand-in restored frame; PSNR before/after
   back-projection, H.264 and HEVC.

Usage: .venv/bin/python benchmarks/intervals_report.py [--out docs/intervals.md] [--frames 12]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import pycodec
from pycodec import transform as T
from pycodec.nn import BackProjection
from pycodec.transform import layout as LY

QPS = (18, 24, 30, 36, 42)
SIGMAS = (2.0, 4.0, 8.0)
KINDS = {
    "h264": ("Y intra 4x4", "Y intra 8x8", "Y intra16 AC", "Y intra16 DC", "Y inter 4x4", "Y inter 8x8",
             "Y uncoded", "C AC", "C DC", "C uncoded"),
    "hevc": ("Y intra DST 4x4", "Y intra 8x8", "Y intra 16x16", "Y intra 32x32", "Y inter 4x4", "Y inter 8x8",
             "Y inter 16x16", "Y inter 32x32", "Y transform skip", "Y uncoded", "C 4x4", "C 8x8", "C 16x16",
             "C transform skip", "C uncoded"),
}
H264_GENERATED = ("main_b", "high_temporal", "cavlc_8x8", "weightp", "crop_100x62", "slices4")
HEVC_GENERATED = ("ipb", "tskip", "tu4", "scaling_custom", "main10", "crop_100x62", "noloop", "cu_lossless")
REAL = ("hello_576p.avi", "hello_720p.mp4", "phone_1080p.mp4")
QP_BUCKETS = ((0, 5), (6, 11), (12, 17), (18, 23), (24, 51))


def up(m: np.ndarray, k: int = 4) -> np.ndarray:
    return np.repeat(np.repeat(m, k, -2), k, -1)


# ----------------------------------------------------------------------------------- sources


def synthetic_source(n: int, size: int = 256) -> list[list[np.ndarray]]:
    import streams

    return [[np.rint(p).astype(np.uint8) for p in pl] for pl in streams.render(size, size, n, seed=3)]


def real_source(n: int, size: int = 256) -> list[list[np.ndarray]] | None:
    path = ROOT / "build" / "samples" / "phone_1080p.mp4"
    if not path.exists():
        return None
    out = []
    with pycodec.open(str(path), fields="decoded", frames=(0, n)) as r:
        for fr in r:
            y = fr.arrays["decoded/y"]
            cy, cx = (y.shape[0] - size) // 2 & ~15, (y.shape[1] - size) // 2 & ~15
            out.append([fr.arrays["decoded/y"][cy:cy + size, cx:cx + size],
                        fr.arrays["decoded/u"][cy // 2:(cy + size) // 2, cx // 2:(cx + size) // 2],
                        fr.arrays["decoded/v"][cy // 2:(cy + size) // 2, cx // 2:(cx + size) // 2]])
    return out


ENCODERS = {
    "h264": ("libx264", "h264", "x264-params", "qp={qp}:keyint=12:min-keyint=12:scenecut=0:bframes=2:threads=1"),
    "hevc": ("libx265", "hevc", "x265-params",
             "qp={qp}:keyint=12:min-keyint=12:scenecut=0:bframes=2:frame-threads=1:pools=none:log-level=error"),
}


def encode(src: list[list[np.ndarray]], qp: int, path: Path, codec: str) -> Path:
    import av

    enc, fmt, key, params = ENCODERS[codec]
    h, w = src[0][0].shape
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(enc, rate=25)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "medium", key: params.format(qp=qp)}
        for i, planes in enumerate(src):
            fr = av.VideoFrame(w, h, "yuv420p")
            for pl, a in zip(fr.planes, planes, strict=True):
                buf = np.zeros((pl.height, pl.line_size), np.uint8)
                buf[:a.shape[0], :a.shape[1]] = a
                pl.update(buf.tobytes())
            fr.pts = i
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


# ----------------------------------------------------------------------------------- measures


def plane_data(fr, info, k, codec):
    """(layout, coeffs, projection-domain steps, (top, left)) of plane k."""
    a = fr.arrays
    sub = 1 if k == "y" else 2
    off = (info["crop"][0] // sub, info["crop"][2] // sub)
    if codec == "h264":
        lay = T.h264_frame_layouts(a)[k]
        return lay, a[f"coeffs/{k}"], T.h264_plane_steps(a[f"qstep/{k}"], a["h264/dc_qmul"], lay, k), off
    lay = T.hevc_frame_layouts(a, info["bit_depth"])[k]
    return lay, a[f"coeffs/{k}"], a[f"qstep/{k}"].astype(np.float64), off


def embed(lay, coef, off, disp_res):
    g = T.plane_inverse(coef, lay, dc_domain=False)
    h, w = disp_res.shape
    g[off[0]:off[0] + h, off[1]:off[1] + w] = disp_res
    return g


def domain_stats(info, frames, acc, codec):
    bp = BackProjection()
    for fr in frames:
        for k in "yuv":
            lay, coef, steps, off = plane_data(fr, info, k, codec)
            res = fr.arrays[f"residual/{k}"].astype(np.float64)
            h, w = res.shape
            win = np.s_[off[0]:off[0] + h, off[1]:off[1] + w]
            g = T.plane_inverse(coef, lay, dc_domain=False)[win]
            real = up(lay.family != LY.FREE)[win]
            acc["px"] += int(real.sum())
            acc["mismatch"] += int(np.count_nonzero(np.rint(g[real]) != res[real]))
            acc["max_err"] = max(acc["max_err"], float(np.abs(g[real] - res[real]).max(initial=0)))
            x = T.plane_forward(embed(lay, coef, off, res), lay)
            dev = np.abs(x - T.to_dc_domain(coef, lay))
            bound = T.plane_rounding_bound(lay, *coef.shape)
            ok = steps > 0
            wide = ok & (steps / 2 >= bound)
            inside = dev <= steps / 2
            acc["coefs"] += int(ok.sum())
            acc["within"] += int(np.count_nonzero(ok & inside))
            acc["wide"] += int(wide.sum())
            acc["wide_within"] += int(np.count_nonzero(wide & inside))
            acc["within_bound"] += int(np.count_nonzero(ok & (dev <= steps / 2 + bound)))
            # what a user of back-projection sees: the decoded (unclipped) frame is a fixed point
            pred = torch.tensor(fr.arrays[f"prediction/{k}"], dtype=torch.float64)
            xr = pred + torch.tensor(res)
            out = bp(xr, pred, torch.tensor(coef), torch.tensor(steps), lay, off)
            acc["bp_px"] += xr.numel()
            acc["bp_same"] += int(torch.count_nonzero(torch.round(out) == xr))


def h264_kind_map(fr, lay, k):
    """Kind index per coefficient (KINDS['h264']), -1 where no interval."""
    tk = fr.arrays["block/tkind"]
    if k != "y":
        tk = tk[::2, ::2]
    intra, coded, l8 = up(lay.intra), up(lay.coded), up(lay.log2 == 3)
    dcp = np.zeros(intra.shape, bool)
    dcp[::4, ::4] = lay.dc > 0
    i16 = up(tk == 3)
    if k == "y":
        kind = np.select([~coded, i16 & dcp, i16, intra & l8, intra, l8], [6, 3, 2, 1, 0, 5], 4)
    else:
        kind = np.select([~coded, dcp], [9, 8], 7)
    return np.where(up(lay.family != 0), kind, -1)


def hevc_kind_map(fr, lay, k):
    """Kind index per coefficient (KINDS['hevc']), -1 where no interval."""
    fam, lg, coded, intra = up(lay.family), up(lay.log2), up(lay.coded), up(lay.intra)
    if k == "y":
        size = np.select([intra & (lg == 3), intra & (lg == 4), intra & (lg == 5), ~intra & (lg == 2),
                          ~intra & (lg == 3), ~intra & (lg == 4), ~intra & (lg == 5)], [1, 2, 3, 4, 5, 6, 7], 0)
        kind = np.select([~coded, fam == LY.HEVC_SKIP, fam == LY.HEVC_DST], [9, 8, 0], size)
    else:
        kind = np.select([~coded, fam == LY.HEVC_SKIP], [14, 13], 10 + np.clip(lg - 2, 0, 2))
    return np.where(fam != LY.FREE, kind, -1)


def coverage(src, info, frames, cov, qp, codec):
    models = {"sym": T.IntervalModel.symmetric(), "tre": T.IntervalModel.x264_trellis(),
              "dz": T.IntervalModel.x265_deadzone() if codec == "hevc" else T.IntervalModel.x264_deadzone()}
    kind_map = h264_kind_map if codec == "h264" else hevc_kind_map
    nk = len(KINDS[codec])
    for fr in frames:
        s = src[fr.index]
        for pi, k in enumerate("yuv"):
            lay, coef, steps, off = plane_data(fr, info, k, codec)
            pred = fr.arrays[f"prediction/{k}"].astype(np.float64)
            x = T.plane_forward(embed(lay, coef, off, s[pi] - pred), lay)
            km = kind_map(fr, lay, k)
            h, w = pred.shape
            win = np.zeros(x.shape, bool)
            win[off[0]:off[0] + h, off[1]:off[1] + w] = True
            centers = T.to_dc_domain(coef, lay)
            nz = np.round(np.abs(centers) / np.where(steps > 0, steps, 1)) != 0
            for tag, model in models.items():
                mlay = lay
                if codec == "hevc" and tag == "dz":  # x265 picks the dead zone by slice type
                    mlay = replace(lay, intra=np.full(lay.intra.shape, fr.type == "I"))
                lo, hi = T.plane_intervals(coef, steps, mlay, model)
                ins = (x >= lo) & (x <= hi)
                for ki in range(nk):
                    m = (km == ki) & win & (steps > 0)
                    cov[(qp, ki)][f"{tag}_in"] += int(np.count_nonzero(ins & m))
                    if tag == "sym":
                        cov[(qp, ki)]["n"] += int(m.sum())
                        cov[(qp, ki)]["nz"] += int(np.count_nonzero(m & nz))
                        cov[(qp, ki)]["sym_nz_in"] += int(np.count_nonzero(m & nz & ins))


def breakdown(info, frames, tab):
    """H.264 F(residual) outliers by (kind, QP bucket): n, outside step/2, outside where step/2 is at
    least the rounding bound, outside with the residual re-rounded from G(coeffs) by us (rint), and
    outside with the unrounded G(coeffs)."""
    names = KINDS["h264"]
    for fr in frames:
        for k in "yuv":
            lay, coef, steps, off = plane_data(fr, info, k, "h264")
            res = fr.arrays[f"residual/{k}"].astype(np.float64)
            g = T.plane_inverse(coef, lay, dc_domain=False)
            c = T.to_dc_domain(coef, lay)
            bound = T.plane_rounding_bound(lay, *coef.shape)
            dev = {"dec": np.abs(T.plane_forward(embed(lay, coef, off, res), lay) - c),
                   "rint": np.abs(T.plane_forward(np.rint(g), lay) - c),
                   "exact": np.abs(T.plane_forward(g, lay) - c)}
            km = h264_kind_map(fr, lay, k)
            qname = "block/qp_y" if k == "y" else f"block/qp_{'cb' if k == 'u' else 'cr'}"
            qp = up(fr.arrays[qname].astype(np.int64), 4 if k == "y" else 2)[: coef.shape[0], : coef.shape[1]]
            ok = steps > 0
            out = {t: ok & (d > steps / 2) for t, d in dev.items()}
            for ki in np.unique(km[ok]):
                for b, (q0, q1) in enumerate(QP_BUCKETS):
                    m = ok & (km == ki) & (qp >= q0) & (qp <= q1)
                    if not m.any():
                        continue
                    row = tab[(names[ki], b)]
                    row["n"] += int(m.sum())
                    row["out"] += int(np.count_nonzero(out["dec"] & m))
                    row["out_wide"] += int(np.count_nonzero(out["dec"] & m & (steps / 2 >= bound)))
                    row["small"] += int(np.count_nonzero(m & (steps / 2 < bound)))
                    row["out_rint"] += int(np.count_nonzero(out["rint"] & m))
                    row["out_exact"] += int(np.count_nonzero(out["exact"] & m))
                    ratio = (dev["dec"] - steps / 2) / np.where(bound > 0, bound, 1)
                    row["worst"] = max(row["worst"], float(ratio[out["dec"] & m].max(initial=0)))


def psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 10 * np.log10(255 ** 2 / mse)


def noisy_oracle(src, info, frames, rows, label, qp, codec):
    rng = np.random.default_rng(7)
    wide = T.IntervalModel.x264_trellis()
    models = (("symmetric", BackProjection()), ("wide", BackProjection(wide)))
    for sigma in SIGMAS:
        before, after = [], defaultdict(list)
        dec = []
        for fr in frames:
            s = src[fr.index]
            lay, coef, steps, off = plane_data(fr, info, "y", codec)
            noisy = s[0] + rng.normal(0, sigma, s[0].shape)
            before.append(psnr(noisy, s[0]))
            dec.append(psnr(fr.arrays["decoded/y"], s[0]))
            p = torch.tensor(fr.arrays["prediction/y"], dtype=torch.float64)
            for name, bp in models:
                out = bp(torch.tensor(noisy), p, torch.tensor(coef), torch.tensor(steps), lay, off)
                after[name].append(psnr(out.numpy(), s[0]))
        rows.append((codec, label, qp, sigma, np.mean(dec), np.mean(before), np.mean(after["symmetric"]),
                     np.mean(after["wide"])))


# ----------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "intervals.md"))
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    import hevc_streams
    import streams

    tmp = Path(tempfile.mkdtemp(prefix="pycodec-intervals-"))
    for sub in ("h264", "hevc"):
        (tmp / sub).mkdir()
    # 1. coefficient domain on the test streams and the real samples
    dom = {}
    for codec, names, build in (("h264", H264_GENERATED, lambda n: streams.build(streams.SPECS[n], tmp / "h264")),
                                ("hevc", HEVC_GENERATED, lambda n: hevc_streams.build(hevc_streams.SPECS[n], tmp / "hevc"))):
        for name in names:
            acc = defaultdict(float)
            with pycodec.open(str(build(name))) as r:
                domain_stats(r.info, list(r), acc, codec)
            dom[f"generated {'H.264' if codec == 'h264' else 'HEVC'} {name}"] = acc
    tab: dict = defaultdict(lambda: defaultdict(float))
    for name in REAL:
        path = ROOT / "build" / "samples" / name
        if path.exists():
            acc = defaultdict(float)
            with pycodec.open(str(path), frames=(0, 4)) as r:
                info, frames = r.info, list(r)
            domain_stats(info, frames, acc, "h264")
            breakdown(info, frames, tab)
            dom[f"real H.264 {name} (4 frames)"] = acc
    # 2. + 3. coverage and the noisy oracle
    sources = {"synthetic 256x256": synthetic_source(args.frames)}
    real = real_source(args.frames)
    if real is not None:
        sources["phone 256x256 crop"] = real
    covs = {}
    oracle: list[tuple] = []
    for codec in ("h264", "hevc"):
        for label, src in sources.items():
            cov: dict = defaultdict(lambda: defaultdict(int))
            for qp in QPS:
                path = encode(src, qp, tmp / f"{label.split()[0]}_{qp}.{codec}", codec)
                with pycodec.open(str(path)) as r:
                    info, frames = r.info, list(r)
                coverage(src, info, frames, cov, qp, codec)
                if qp in (24, 30, 36):
                    noisy_oracle(src, info, frames, oracle, label, qp, codec)
            covs[(codec, label)] = cov
    write(args.out, dom, tab, covs, oracle, args.frames)
    print(f"wrote {args.out}")


def pct(a, b) -> str:
    return f"{a / b:.4%}" if b else "-"


def write(out, dom, tab, covs, oracle, nframes):
    L = ["# Coefficient domain and quantization intervals: measured", "",
         (f"Generated by `.venv/bin/python benchmarks/intervals_report.py` on {dt.date.today().isoformat()} "
          f"(pycodec {pycodec.__version__}, torch {torch.__version__}). Do not edit by hand."), "",
         "## 1. Transform pair on extracted streams", "",
         ("`G(coeffs)` (float, `pycodec.transform`) against the decoder's integer residual, and `F(residual)` "
          "against the decoded coefficients (projection domain: H.264 DC-path DCs in their Hadamard domain), over "
          "all coefficients with an interval (step > 0). *within step/2* is the plain figure (the paper's "
          "interval). The decoder's residual is rounded to integers, and `F` turns a change of at most `e` per "
          "residual sample into a change of at most `bound = e * sum|A|` of a coefficient "
          "(`plane_rounding_bound`, `e = 1/2`; `A` the unit's forward operator, e.g. 32 for an H.264 4x4 DC "
          "or a Hadamard-domain DC). Where `step/2 < bound` (low QP, DC paths, large HEVC TUs) the rounding "
          "alone can carry `F(residual)` out of the interval although the coefficient is exactly right; "
          "*within, step/2 >= bound* is the rate over the coefficients whose interval is wider than that, and "
          "*within step/2 + bound* the rate with the rounding allowed for. *BP fixed point* is what a user of "
          "back-projection sees: the share of samples of the decoder's unclipped reconstruction "
          "`prediction + residual` that `BackProjection` returns unchanged after rounding to integers."), "",
         ("| stream | residual samples | max abs(G - r) | round(G) != r | coefficients | F(r) within step/2 | "
          "within, step/2 >= bound | within step/2 + bound | BP fixed point |"),
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, a in dom.items():
        L.append(f"| {name} | {int(a['px']):,} | {a['max_err']:.3f} | {pct(a['mismatch'], a['px'])} | "
                 f"{int(a['coefs']):,} | {pct(a['within'], a['coefs'])} | {pct(a['wide_within'], a['wide'])} "
                 f"({pct(a['wide'], a['coefs'])} of all) | {pct(a['within_bound'], a['coefs'])} | "
                 f"{pct(a['bp_same'], a['bp_px'])} |")
    L += ["", "### 1b. Why F(residual) leaves step/2 on the real H.264 files", "",
          ("The three real files are coded at QP 2-27 (the two screen recordings at QP 2-6 for most macroblocks). "
           "Per block kind and QP range (all three files, first 4 frames): *outside* = `F(r)` outside step/2; "
           "*step/2 < bound* = coefficients whose interval is narrower than the rounding bound; *outside, "
           "step/2 >= bound* = outliers among the others; *outside, rint(G)* = the same count when the residual "
           "is re-rounded by us from `G(coeffs)` (numpy `rint`, independent of FFmpeg's integer IDCT); "
           "*outside, exact G* = with the unrounded `G(coeffs)` (0 means that `F` inverts `G` exactly on these "
           "layouts, DC paths and chroma included); *worst* = max of `(|F(r) - c| - step/2) / bound` over the "
           "outliers (<= 1: explained by the rounding bound)."), "",
          "| kind | QP | coefficients | outside | step/2 < bound | outside, step/2 >= bound | outside, rint(G) | outside, exact G | worst |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    tot: dict = defaultdict(float)
    for (kind, b), r in sorted(tab.items()):
        for key in ("n", "out", "out_wide", "small", "out_rint", "out_exact"):
            tot[key] += r[key]
        if not r["out"] and not r["out_rint"]:
            continue
        q0, q1 = QP_BUCKETS[b]
        L.append(f"| {kind} | {q0}-{q1} | {int(r['n']):,} | {int(r['out']):,} ({pct(r['out'], r['n'])}) | "
                 f"{pct(r['small'], r['n'])} | {int(r['out_wide'])} | {int(r['out_rint']):,} | {int(r['out_exact'])} | "
                 f"{r['worst']:.2f} |")
    if tot["n"]:
        L.append(f"| **all** | | {int(tot['n']):,} | {int(tot['out']):,} ({pct(tot['out'], tot['n'])}) | "
                 f"{pct(tot['small'], tot['n'])} | {int(tot['out_wide'])} | {int(tot['out_rint']):,} | "
                 f"{int(tot['out_exact'])} | |")
    L += ["", ("Rows with no outlier are omitted. Reading: the outliers are the decoder's rounding, not a transform, "
               "layout, DC-path or chroma error: exact `G(coeffs)` gives none, re-rounding it ourselves gives about as "
               "many, they occur only where step/2 is below the rounding bound, and none exceeds step/2 + bound. They concentrate in the DC paths (Hadamard-domain steps `qmul/256` and `qmul/128`, "
               "where DC-only blocks round all their samples the same way, so the errors add up instead of "
               "cancelling) and 8x8 blocks at QP < 20."), ""]
    L += ["## 2. Source coefficients inside the intervals", "",
          (f"x264 and x265 (PyAV libx264 / libx265, preset medium, constant `qp=Q`, keyint 12, 2 B-frames), "
           f"{nframes} frames per clip. x264 medium quantizes with trellis=1; x265 medium with rdoq-level=0 (dead "
           "zone, offsets 171/512 in I and 85/512 in P/B slices) and sign data hiding. For each coefficient with "
           "an interval, the source value is `F(source - prediction)` (prediction as the decoder formed it) in "
           "the same domain as the decoded coefficient. *sym* = `[c - step/2, c + step/2]` (the paper's hard "
           "clamp); *sym, l!=0* = the same restricted to nonzero levels; *wide* = nearest level or one less in "
           "magnitude (`IntervalModel.x264_trellis()`: `sign(k)x in [|c| - s/2, |c| + 3s/2]`, `|x| <= 3s/2` at "
           "level 0); *dz* = the encoder's dead zone (`IntervalModel.x264_deadzone()` / `x265_deadzone()`, "
           "x265: by slice type). *uncoded* = blocks without coded residual (H.264 skip / cbp bit clear, HEVC "
           "cbf 0 and skipped CUs), which get level-0 intervals. QP is the nominal `qp`; B frames are coded "
           "at higher QPs."), ""]
    for (codec, label), cov in covs.items():
        kinds = KINDS[codec]
        L += [f"### {'H.264 (x264)' if codec == 'h264' else 'HEVC (x265)'}: {label}", "",
              "| kind | " + " | ".join(f"QP {q}: n / sym / sym l!=0 / wide / dz" for q in QPS) + " |",
              "|---|" + "---:|" * len(QPS)]
        for ki, kname in enumerate(kinds):
            cells = []
            for q in QPS:
                c = cov[(q, ki)]
                if not c["n"]:
                    cells.append("-")
                    continue
                nzs = f"{c['sym_nz_in'] / c['nz']:.3f}" if c["nz"] else "-"
                cells.append(f"{c['n']} / {c['sym_in'] / c['n']:.3f} / {nzs} / {c['tre_in'] / c['n']:.4f} / "
                             f"{c['dz_in'] / c['n']:.4f}")
            if any(cell != "-" for cell in cells):
                L.append(f"| {kname} | " + " | ".join(cells) + " |")
        tot = {q: sum(cov[(q, ki)]["n"] for ki in range(len(kinds))) for q in QPS}

        def share(q, tag, kinds=kinds, cov=cov, tot=tot):
            return sum(cov[(q, k)][f"{tag}_in"] for k in range(len(kinds))) / max(tot[q], 1)

        L.append("| **all** | " + " | ".join(f"{tot[q]} / {share(q, 'sym'):.3f} / - / {share(q, 'tre'):.4f} / "
                                               f"{share(q, 'dz'):.4f}" for q in QPS) + " |")
        L.append("")
    L += ["## 3. Noisy oracle (reported, not asserted)", "",
          ("Restored stand-in = source luma + Gaussian noise (sigma in 8-bit units). PSNR (Y, display area) "
           "against the source, averaged over frames, before and after back-projection with the symmetric "
           "and the wide (nearest or one less) intervals. The decoded frame's PSNR is given for scale."), "",
          "| codec | clip | QP | sigma | decoded | noisy | after BP (symmetric) | after BP (wide) |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for codec, label, qp, sigma, d, b, a_s, a_t in oracle:
        L.append(f"| {'H.264' if codec == 'h264' else 'HEVC'} | {label} | {qp} | {sigma:g} | {d:.2f} | {b:.2f} | "
                 f"{a_s:.2f} | {a_t:.2f} |")
    L.append("")
    Path(out).write_text("\n".join(L))


if __name__ == "__main__":
    main()
