"""HEVC transforms, layouts, intervals and back-projection on extracted x265 streams
(tests/hevc_streams.py).  Oracles: the decoder's own integer output (residual, coefficients,
qstep, recon, decoded), the spec's dequantisation step formula, and, for interval coverage, the
frames that were given to the encoder."""

from __future__ import annotations

import hevc_streams as H
import numpy as np
import pytest
import torch

from pycodec import transform as T
from pycodec.nn import BackProjection
from pycodec.transform import layout as LY

# DCT 4..32, DST, transform skip (luma and chroma), scaling lists, 10 bits, a conformance window,
# no loop filter, transquant bypass
STREAMS = ["ipb", "tskip", "tu4", "scaling_custom", "main10", "crop_100x62", "noloop", "cu_lossless"]
TK_FAMILY = {6: LY.HEVC_DCT, 7: LY.HEVC_DST, 8: LY.HEVC_SKIP, 5: LY.FREE}
LEVEL_SCALE = np.array([40, 45, 51, 57, 64, 72])


def up(m: np.ndarray, k: int = 4) -> np.ndarray:
    """A per-cell map to samples."""
    return np.repeat(np.repeat(m, k, -2), k, -1)


def planes(fr, info):
    """Per plane: (k, layout, coeffs, steps, residual, prediction, recon, decoded, (top, left))."""
    a = fr.arrays
    lays = T.hevc_frame_layouts(a, info["bit_depth"])
    for k in "yuv":
        sub = 1 if k == "y" else 2
        yield (k, lays[k], a[f"coeffs/{k}"], a[f"qstep/{k}"].astype(np.float64), a[f"residual/{k}"].astype(np.float64),
               a[f"prediction/{k}"].astype(np.float64), a[f"recon/{k}"], a[f"decoded/{k}"],
               (info["crop"][0] // sub, info["crop"][2] // sub))


def embed(base: np.ndarray, part: np.ndarray, off) -> np.ndarray:
    out = base.copy()
    out[off[0]:off[0] + part.shape[0], off[1]:off[1] + part.shape[1]] = part
    return out


# ----------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("name", STREAMS)
def test_tu_layouts_explain_block_maps_and_qstep(hevc_store, name):
    """The layouts built from hevc/tu agree with the luma block maps, and their TU sizes and kinds
    reproduce the exported qstep from the spec's formula (flat-matrix streams) or its zeros."""
    info, frames = hevc_store.decode(name)
    bd = info["bit_depth"]
    flat = "scaling" not in name
    checked = 0
    for fr in frames:
        a = fr.arrays
        lays = T.hevc_frame_layouts(a, bd)
        lg, tk = a["block/tu_log2"], a["block/tkind"]
        coded = lg > 0
        y = lays["y"]
        assert np.array_equal(y.log2[coded], lg[coded])
        assert np.array_equal(y.family[coded], np.vectorize(TK_FAMILY.get, otypes=[np.int8])(tk[coded]))
        assert np.array_equal(y.coded, coded & (tk != 5))
        for k, qp in (("y", a["block/qp_y"]), ("u", a["block/qp_cb"][::2, ::2]), ("v", a["block/qp_cr"][::2, ::2])):
            lay, q = lays[k], a[f"qstep/{k}"]
            assert np.array_equal(up(lay.family != LY.FREE), q > 0), (name, fr.index, k)  # FREE <=> no interval
            if flat:
                qp = qp.astype(np.int64)
                exp = 16 * LEVEL_SCALE[qp % 6] * 2.0 ** (qp // 6) / 2.0 ** (bd + lay.log2.astype(np.int64) - 5)
                sel = q > 0
                assert np.allclose(q[sel], up(exp)[sel], rtol=1e-6, atol=0), (name, fr.index, k)
                checked += int(sel.sum())
    assert checked > 0 or not flat


def test_tu_layouts_refuse_bad_input():
    with pytest.raises(ValueError, match="MAXTU"):
        T.hevc_tu_layouts(np.zeros((4, 9)), 0, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="log2"):
        T.hevc_tu_layouts(np.array([[0, 0, 6, 0, 1, 0, 0, 6, 6, 6]]), 1, np.zeros((2, 2)))


# ----------------------------------------------------------------------------------- transform pair


def domain_stats(info, frames):
    s = dict.fromkeys(("px", "mismatch", "coefs", "within", "within_bound", "fail_wide", "free_px", "free_bad"), 0)
    s["max_err"] = 0.0
    for fr in frames:
        for _k, lay, coef, steps, res, _p, _r, _d, off in planes(fr, info):
            h, w = res.shape
            win = np.s_[off[0]:off[0] + h, off[1]:off[1] + w]
            g = T.plane_inverse(coef, lay)
            real = up(lay.family != LY.FREE)[win]
            e = g[win][real] - res[real]
            s["px"] += e.size
            s["mismatch"] += int(np.count_nonzero(np.rint(g[win][real]) != res[real]))
            s["max_err"] = max(s["max_err"], float(np.abs(e).max(initial=0)))
            # transquant bypass (FREE): the residual is the coefficients themselves
            s["free_px"] += int((~real).sum())
            s["free_bad"] += int(np.count_nonzero(coef[win][~real] != res[~real]))
            dev = np.abs(T.plane_forward(embed(g, res, off), lay) - coef)
            bound = T.plane_rounding_bound(lay, *coef.shape)
            ok = steps > 0
            s["coefs"] += int(ok.sum())
            s["within"] += int(np.count_nonzero(ok & (dev <= steps / 2)))
            s["within_bound"] += int(np.count_nonzero(ok & (dev <= steps / 2 + bound)))
            s["fail_wide"] += int(np.count_nonzero(ok & (dev > steps / 2) & (steps / 2 >= bound)))
    return s


@pytest.mark.parametrize("name", STREAMS)
def test_coefficient_domain(hevc_store, name):
    """G(coeffs) reproduces the decoder's residual within its rounding; F(residual) lands within
    step/2 of the decoded coefficients for >= 99.99 %, and every exception is explained by the
    rounding of the residual to integers (within step/2 + plane_rounding_bound, and only where
    step/2 is below that bound)."""
    info, frames = hevc_store.decode(name)
    s = domain_stats(info, frames)
    assert s["px"] > 0 and s["coefs"] > 0
    assert s["max_err"] < (1.0 if info["bit_depth"] > 8 else 0.65), s
    assert s["mismatch"] / s["px"] < 0.02, s
    assert s["within"] / s["coefs"] >= 0.9999, s
    assert s["within_bound"] == s["coefs"] and s["fail_wide"] == 0, s
    assert s["free_bad"] == 0, s
    if name == "cu_lossless":
        assert s["free_px"] > 0


# ----------------------------------------------------------------------------------- back-projection


@pytest.mark.parametrize("name", ["ipb", "tskip", "noloop", "crop_100x62", "main10", "cu_lossless"])
def test_back_projection_of_decoded_frames(hevc_store, name):
    info, frames = hevc_store.decode(name)
    bp = BackProjection()
    rng = np.random.default_rng(0)
    for fr in frames[:3]:
        for k, lay, coef, steps, res, pred, recon, dec, off in planes(fr, info):
            c, s, p = torch.tensor(coef), torch.tensor(steps), torch.tensor(pred)
            x = p + torch.tensor(res)  # the unclipped reconstruction
            out = bp(x, p, c, s, lay, off)
            assert (out - x).abs().max() < 0.5, (name, fr.index, k)  # unchanged to within rounding
            if name == "noloop":  # decoded == recon: rounding BP(recon) gives the decoded frame back
                o2 = bp(torch.tensor(recon, dtype=torch.float64), p, c, s, lay, off)
                assert torch.mean((torch.round(o2).clamp(0, 255) != torch.tensor(dec)).double()) < 1e-3
            noisy = x + torch.tensor(rng.normal(0, 4, x.shape))
            o3 = bp(noisy, p, c, s, lay, off)
            if not any(info["crop"]):
                assert torch.allclose(bp(o3, p, c, s, lay, off), o3, atol=1e-6)  # idempotent
            lo, hi = T.plane_intervals(coef, steps, lay)
            base = T.plane_inverse(coef, lay)
            xi = T.plane_forward(embed(base, (noisy - p).numpy(), off), lay)
            xo = T.plane_forward(embed(base, (o3 - p).numpy(), off), lay)
            # only TUs inside the display window (those at its edge also see samples outside it):
            # TUs are at most 32x32 luma and aligned, so whole aligned 32x32 areas inside it
            g = 32 // (1 if k == "y" else 2)
            win = np.zeros(xi.shape, bool)
            win[off[0]:off[0] + res.shape[0], off[1]:off[1] + res.shape[1]] = True
            hh, ww = (win.shape[0] + g - 1) // g * g, (win.shape[1] + g - 1) // g * g
            wp = np.zeros((hh, ww), bool)
            wp[:win.shape[0], :win.shape[1]] = win
            full = up(wp.reshape(hh // g, g, ww // g, g).all((1, 3)), g)[:win.shape[0], :win.shape[1]]
            inside = (xi >= lo) & (xi <= hi) & full
            assert inside.sum() > 0
            assert np.allclose(xo[inside], xi[inside], atol=1e-6)  # never moves a coefficient already inside
            assert np.all(((xo >= lo - 1e-6) & (xo <= hi + 1e-6))[full])
            free = up(lay.family == LY.FREE)[off[0]:off[0] + res.shape[0], off[1]:off[1] + res.shape[1]]
            assert np.allclose(o3.numpy()[free], noisy.numpy()[free])  # bypass blocks untouched


# ----------------------------------------------------------------------------------- coverage


def source_planes(name):
    """The planes given to x265 (8-bit units, as streams.video_frame rounded them)."""
    spec = H.SPECS[name]
    return [[np.rint(np.clip(p, 0, 255)) for p in pl] for pl in H.frames_of(spec)]


def coverage(info, frames, src):
    """{kind: (n, inside symmetric, inside 'nearest or one less in magnitude')} over coefficients with
    an interval, the source coefficient being F(source - prediction)."""
    sym, wide = T.IntervalModel.symmetric(), T.IntervalModel.x264_trellis()
    out: dict = {}
    for fr in frames:
        for pi, (k, lay, coef, steps, _res, pred, _r, _d, _off) in enumerate(planes(fr, info)):
            x = T.plane_forward(src[fr.index][pi] - pred, lay)
            fam, coded = up(lay.family), up(lay.coded)
            kind = np.select([~coded, fam == LY.HEVC_SKIP, fam == LY.HEVC_DST],
                             ["uncoded", "skip", "dst"], np.char.add("dct", up(1 << lay.log2.astype(np.int64)).astype(str)))
            kind = np.char.add(f"{'luma' if k == 'y' else 'chroma'} ", kind)
            ins = [(x >= lo) & (x <= hi) for lo, hi in (T.plane_intervals(coef, steps, lay, m) for m in (sym, wide))]
            ok = steps > 0
            for kk in np.unique(kind[ok]):
                m = ok & (kind == kk)
                n, a, b = out.get(kk, (0, 0, 0))
                out[kk] = (n + int(m.sum()), a + int((ins[0] & m).sum()), b + int((ins[1] & m).sum()))
    return out


def test_source_coefficients_in_intervals(hevc_store):
    """tu4 (x265 rdoq-level 0, no sign hiding: plain dead-zone quantisation, levels are the nearest
    or one less in magnitude): every source coefficient lies in that interval; the paper's
    symmetric interval holds for most.  A wrong transform, orientation or TU geometry would put
    many source coefficients far outside."""
    name = "tu4"
    info, frames = hevc_store.decode(name)
    cov = coverage(info, frames, source_planes(name))
    kinds = {k for k, v in cov.items() if v[0] >= 200}
    assert {"luma dst", "luma dct8", "luma dct16", "luma dct32", "chroma dct4", "luma uncoded"} <= kinds, cov
    for k in kinds:
        n, s, w = cov[k]
        assert w / n >= 0.999, (k, cov[k])
        assert s / n >= 0.85, (k, cov[k])
    tot = np.sum([v for v in cov.values()], axis=0)
    assert tot[1] / tot[0] >= 0.97 and tot[2] / tot[0] >= 0.9999, tot
