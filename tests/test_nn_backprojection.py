"""pycodec.nn.BackProjection (kornia-style: smoke, exceptions, gradcheck, devices/dtypes, batch
consistency) and its defining properties on synthetic frames: the output's coefficients lie in
their intervals, coefficients already inside are not moved, projection is idempotent, FREE
blocks are untouched, and the H.264 DC paths are constrained in the Hadamard domain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_transform_blockwise import random_h264_maps, random_hevc_maps

from pycodec import transform as T
from pycodec.nn import BackProjection, back_project, embed_plane
from pycodec.transform import layout as LY

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]


def synthetic(seed: int = 0, batch: int = 2, mbh: int = 2, mbw: int = 2, hevc: bool = False, pcm: bool = False):
    """A batch of luma planes with a layout, decoded coefficients on the step lattice and a
    'restored' frame that differs from the decoded one."""
    rng = np.random.default_rng(seed)
    if hevc:
        maps = [random_hevc_maps(rng, 1, 1) for _ in range(batch)]
        lay, _ = T.hevc_layouts(*(np.stack(m) for m in zip(*maps)))
        h, w = 32, 32
    else:
        maps = [random_h264_maps(rng, mbh, mbw, pcm) for _ in range(batch)]
        lay, _ = T.h264_layouts(*(np.stack(m) for m in zip(*maps)))
        h, w = 16 * mbh, 16 * mbw
    steps = rng.uniform(4, 40, (batch, h, w)) * (8 if hevc else 1)
    steps[np.repeat(np.repeat(lay.family == LY.FREE, 4, -1), 4, -2)] = 0
    levels = rng.integers(-4, 5, (batch, h, w)) * (rng.random((batch, h, w)) < 0.4)
    centers = levels * steps
    coeffs = T.from_dc_domain(centers, lay)  # decoded coefficients, exported (per-block) form
    pred = rng.uniform(0, 255, (batch, h, w))
    restored = pred + T.plane_inverse(centers, lay) + rng.normal(0, 6, (batch, h, w))
    return restored, pred, coeffs, steps, lay


def tensors(*arrays, dtype=torch.float64, device="cpu"):
    return [torch.tensor(a, dtype=dtype, device=device) for a in arrays]


class TestBackProjection:
    def test_smoke(self):
        r, p, c, s, lay = synthetic()
        bp = BackProjection()
        out = bp(*tensors(r, p, c, s), lay)
        assert out.shape == r.shape and out.dtype == torch.float64
        assert "symmetric" in repr(bp) or "theta_intra=0.5" in repr(bp)

    @pytest.mark.parametrize("hevc", [False, True])
    def test_output_in_intervals_idempotent_and_inside_untouched(self, hevc):
        r, p, c, s, lay = synthetic(1, hevc=hevc)
        rt, pt, ct, st_ = tensors(r, p, c, s)
        out = BackProjection()(rt, pt, ct, st_, lay)
        lo, hi = T.plane_intervals(c, s, lay)
        x = T.plane_forward(out.numpy() - p, lay)
        assert np.all(x >= lo - 1e-7) and np.all(x <= hi + 1e-7)
        again = BackProjection()(out, pt, ct, st_, lay)
        assert torch.allclose(again, out, atol=1e-9, rtol=0)
        # coefficients that were inside their interval keep their value
        x0 = T.plane_forward(r - p, lay)
        inside = (x0 >= lo) & (x0 <= hi)
        assert inside.mean() > 0.2 and np.allclose(x[inside], x0[inside], atol=1e-8)
        assert not np.allclose(x, x0)  # and some were moved

    def test_free_blocks_and_zero_steps_untouched(self):
        r, p, c, s, lay = synthetic(2, pcm=True)
        free = np.repeat(np.repeat(lay.family == LY.FREE, 4, -1), 4, -2)
        assert free.any()
        out = BackProjection()(*tensors(r, p, c, s), lay).numpy()
        assert np.allclose(out[free], r[free])
        out0 = BackProjection()(*tensors(r, p, c, np.zeros_like(s)), lay).numpy()
        assert np.allclose(out0, r, atol=1e-9)  # no interval anywhere: identity

    def test_dc_path_constrains_the_hadamard_domain(self):
        # one intra 16x16 MB: only the DC of block (0, 0) is far off; in the Hadamard domain that
        # spreads over all 16 Z values, and the projection pulls Z back into [c - s/2, c + s/2]
        tk = np.full((4, 4), 3, np.uint8)
        lay, _ = T.h264_layouts(tk, np.zeros((4, 4), np.uint8), np.full((4, 4), 16, np.uint8))
        s = np.full((16, 16), 10.0)
        c = np.zeros((16, 16))
        p = np.full((16, 16), 100.0)
        r = p.copy()
        r[:4, :4] += 30.0
        out = BackProjection()(*tensors(r, p, c, s), lay).numpy()
        z = T.plane_forward(out - p, lay)
        assert np.abs(z).max() <= 5.0 + 1e-9
        assert np.abs(out - p).max() < np.abs(r - p).max()

    def test_display_window_and_clip(self):
        r, p, c, s, lay = synthetic(3, batch=1)
        rt, pt, ct, st_ = tensors(r, p, c, s)
        full = BackProjection()(rt, pt, ct, st_, lay)
        part = BackProjection()(rt[..., 1:30, :27], pt[..., 1:30, :27], ct, st_, lay, offset=(1, 0))
        assert part.shape == (1, 29, 27)
        # outside the window the decoder's own residual stands in for the unknown samples
        r_full = p + T.plane_inverse(c, lay, dc_domain=False)
        r_full[..., 1:30, :27] = r[..., 1:30, :27]
        ref = BackProjection()(*tensors(r_full), pt, ct, st_, lay)
        assert torch.allclose(part, ref[..., 1:30, :27], atol=1e-9)
        assert not torch.allclose(part, full[..., 1:30, :27], atol=1e-3)
        clipped = BackProjection(clip=(0.0, 255.0))(rt, pt, ct, st_, lay)
        assert clipped.min() >= 0 and clipped.max() <= 255

    def test_window_with_decoded_residual_is_exact(self):
        # when the restored window equals the decoded frame, embedding keeps it (identity)
        _r, p, c, s, lay = synthetic(4, batch=1)
        dec = p + T.plane_inverse(c, lay, dc_domain=False)
        win = (slice(None), slice(2, 30), slice(0, 29))
        out = BackProjection()(*tensors(dec[win], p[win]), *tensors(c, s), lay, offset=(2, 0))
        assert torch.allclose(out, torch.tensor(dec[win]), atol=1e-9)

    def test_exceptions(self):
        r, p, c, s, lay = synthetic()
        rt, pt, ct, st_ = tensors(r, p, c, s)
        bp = BackProjection()
        with pytest.raises(ValueError, match="differ in shape"):
            bp(rt, pt[..., :-1], ct, st_, lay)
        with pytest.raises(TypeError, match="floating-point"):
            bp(rt.long(), pt, ct, st_, lay)
        with pytest.raises(TypeError, match="torch.Tensor"):
            bp(r, pt, ct, st_, lay)
        with pytest.raises(ValueError, match="does not fit"):
            bp(rt[..., :20, :20], pt[..., :20, :20], ct, st_, lay, offset=(20, 0))
        with pytest.raises(ValueError, match="layout"):
            bp(rt[..., :16, :16], pt[..., :16, :16], ct[..., :16, :16], st_[..., :16, :16], lay)
        with pytest.raises(ValueError, match="clip"):
            BackProjection(clip=(1.0, 0.0))
        with pytest.raises(ValueError, match="fit"):
            embed_plane(rt, rt[..., :4, :4])

    @pytest.mark.parametrize("hevc", [False, True])
    def test_gradcheck(self, hevc):
        r, p, c, s, lay = synthetic(5, batch=1, mbh=1, mbw=1, hevc=hevc)
        rt, pt, ct, st_ = tensors(r, p, c, s)
        rt.requires_grad_(True)
        pt.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a, b: back_project(a, b, ct, st_, lay), (rt, pt), eps=1e-6, atol=1e-5, fast_mode=True)
        rt2 = rt.detach().clone().requires_grad_(True)
        BackProjection()(rt2, pt.detach(), ct, st_, lay).sum().backward()
        assert rt2.grad is not None and torch.isfinite(rt2.grad).all()

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_devices_and_dtypes(self, device, dtype):
        r, p, c, s, lay = synthetic(6)
        ref = BackProjection()(*tensors(r, p, c, s), lay)
        out = BackProjection()(*tensors(r, p, c, s, dtype=dtype, device=device), lay)
        assert out.dtype == dtype and out.device.type == device
        tol = 1e-9 if dtype == torch.float64 else 1e-2
        assert torch.allclose(out.cpu().double(), ref, atol=tol, rtol=0)
        out2 = BackProjection()(*tensors(r, p, dtype=dtype, device=device), *tensors(c, s, dtype=dtype, device=device),
                                lay.to_torch(device))
        assert torch.allclose(out2, out)

    def test_batch_consistency(self):
        r, p, c, s, lay = synthetic(7, batch=3)
        out = BackProjection()(*tensors(r, p, c, s), lay)
        for i in range(3):
            one = BackProjection()(*tensors(r[i:i + 1], p[i:i + 1], c[i:i + 1], s[i:i + 1]),
                                   lay.map(lambda a, i=i: a[i:i + 1]))
            assert torch.allclose(out[i:i + 1], one, atol=1e-12)

    def test_encoder_aware_model_is_wider(self):
        r, p, c, s, lay = synthetic(8)
        rt, pt, ct, st_ = tensors(r, p, c, s)
        sym = BackProjection()(rt, pt, ct, st_, lay)
        tre = BackProjection(T.IntervalModel.x264_trellis())(rt, pt, ct, st_, lay)
        # a wider interval moves less: closer to the input
        assert (tre - rt).abs().sum() < (sym - rt).abs().sum()
        unc = BackProjection(T.IntervalModel(constrain_uncoded=False))(rt, pt, ct, st_, lay)
        assert (unc - rt).abs().sum() <= (sym - rt).abs().sum()
        # explicit bounds (projection domain) instead of a model
        lo, hi = T.plane_intervals(c, s, lay, T.IntervalModel.x264_trellis())
        assert torch.allclose(back_project(rt, pt, ct, st_, lay, lo_hi=(torch.tensor(lo), torch.tensor(hi))), tre)
