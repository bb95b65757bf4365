"""pycodec.nn motion-vector flow and warping (kornia-style), against exact shifts."""

from __future__ import annotations

import pytest
import torch

from pycodec.nn import block_flow, downsample_flow, mv_to_flow, warp

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]


def maps(h4=2, w4=3):
    z = torch.zeros(h4, w4, dtype=torch.long)
    return {"mv_l0": torch.zeros(h4, w4, 2, dtype=torch.int16), "mv_l1": torch.zeros(h4, w4, 2, dtype=torch.int16),
            "ref_l0": z - 1, "ref_l1": z - 1, "ref_poc_l0": z, "ref_poc_l1": z, "mode": z}


class TestMvToFlow:
    def test_smoke_and_values(self):
        mv = torch.tensor([[[4, -2], [8, 1]]], dtype=torch.int16)  # (1, 2, 2): H4=1, W4=2
        f = mv_to_flow(mv)
        assert f.shape == (2, 4, 8)
        assert torch.all(f[0, :, :4] == 1.0) and torch.all(f[1, :, :4] == -0.5)
        assert torch.all(f[0, :, 4:] == 2.0) and torch.all(f[1, :, 4:] == 0.25)
        f0 = mv_to_flow(mv, valid=torch.tensor([[True, False]]))
        assert torch.all(f0[:, :, 4:] == 0) and torch.all(f0[0, :, :4] == 1.0)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="H4, W4, 2"):
            mv_to_flow(torch.zeros(2, 3, 3))
        with pytest.raises(ValueError, match="valid"):
            mv_to_flow(torch.zeros(2, 3, 2), valid=torch.ones(3, 2, dtype=torch.bool))

    def test_batch_consistency(self):
        mv = torch.randint(-20, 20, (3, 2, 2, 2))
        assert torch.equal(mv_to_flow(mv)[1], mv_to_flow(mv[1]))


class TestBlockFlow:
    def test_selects_list_scales_and_drops_intra(self):
        m = maps(1, 4)
        # block 0: L0 points at the target; block 1: L1 points at it; block 2: L0 elsewhere
        # (scaled); block 3: intra
        m["ref_l0"] = torch.tensor([[0, 0, 0, -1]])
        m["ref_l1"] = torch.tensor([[-1, 0, -1, -1]])
        m["ref_poc_l0"] = torch.tensor([[4, 2, 2, 0]])
        m["ref_poc_l1"] = torch.tensor([[0, 4, 0, 0]])
        m["mv_l0"] = torch.tensor([[[8, 4], [100, 100], [6, -2], [9, 9]]], dtype=torch.int16)
        m["mv_l1"] = torch.tensor([[[0, 0], [-4, 12], [0, 0], [9, 9]]], dtype=torch.int16)
        m["mode"] = torch.tensor([[1, 1, 2, 0]])
        mv, valid = block_flow(**m, poc=6, target_poc=4)
        assert valid.tolist() == [[True, True, True, False]]
        assert mv[0, 0].tolist() == [8, 4] and mv[0, 1].tolist() == [-4, 12]
        assert mv[0, 2].tolist() == pytest.approx([3, -1])  # (4-6)/(2-6) = 1/2
        assert mv[0, 3].tolist() == [0, 0]

    def test_batched_pocs(self):
        m = {k: torch.stack([v, v]) for k, v in maps().items()}
        m["ref_l0"][:] = 0
        m["ref_poc_l0"][:] = 2
        m["mv_l0"][..., 0] = 4
        m["mode"][:] = 1
        mv, valid = block_flow(**m, poc=torch.tensor([4, 6]), target_poc=torch.tensor([2, 4]))
        assert valid.all()
        assert mv[0, ..., 0].unique().tolist() == [4.0] and mv[1, ..., 0].unique().tolist() == [2.0]

    def test_exceptions(self):
        m = maps()
        m["mode"] = torch.zeros(5, 5)
        with pytest.raises(ValueError, match="agree in shape"):
            block_flow(**m, poc=0, target_poc=1)


class TestWarp:
    def test_integer_shift_is_exact(self):
        img = torch.arange(48, dtype=torch.float64).reshape(1, 1, 6, 8)
        flow = torch.zeros(1, 2, 6, 8, dtype=torch.float64)
        flow[:, 0] = 2.0
        flow[:, 1] = -1.0
        out = warp(img, flow)
        assert torch.allclose(out[0, 0, 1:, :6], img[0, 0, :-1, 2:], atol=1e-12, rtol=0)
        assert torch.allclose(warp(img, torch.zeros_like(flow)), img, atol=1e-12, rtol=0)

    def test_half_sample_is_bilinear(self):
        img = torch.tensor([[[[0.0, 10.0, 20.0]]]], dtype=torch.float64)
        flow = torch.zeros(1, 2, 1, 3, dtype=torch.float64)
        flow[:, 0] = 0.5
        assert warp(img, flow)[0, 0, 0, :2].tolist() == pytest.approx([5.0, 15.0])

    def test_prediction_from_reference(self):
        # a reference shifted by the block MVs reproduces a translated frame (schema convention:
        # block at p predicted from ref at p + mv/4)
        g = torch.Generator().manual_seed(0)
        ref = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
        mv = torch.zeros(1, 4, 4, 2, dtype=torch.int16)
        mv[..., 0] = 4  # one sample to the right
        out = warp(ref, mv_to_flow(mv, dtype=torch.float64))
        assert torch.allclose(out[..., :15], ref[..., 1:], atol=1e-12, rtol=0)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="image"):
            warp(torch.zeros(1, 4, 4), torch.zeros(1, 2, 4, 4))
        with pytest.raises(ValueError, match="does not match"):
            warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 5))
        with pytest.raises(ValueError, match="flow"):
            downsample_flow(torch.zeros(1, 3, 4, 4))

    def test_gradcheck(self):
        g = torch.Generator().manual_seed(1)
        img = torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
        flow = (torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64) * 1.4 - 0.7 + 0.13).requires_grad_(True)
        assert torch.autograd.gradcheck(warp, (img, flow))

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_devices_and_dtypes(self, device, dtype):
        img = torch.rand(2, 3, 8, 8, dtype=dtype, device=device)
        flow = torch.rand(2, 2, 8, 8, dtype=dtype, device=device)
        out = warp(img, flow)
        assert out.dtype == dtype and out.device.type == device
        ref = warp(img.double().cpu(), flow.double().cpu())
        assert torch.allclose(out.cpu().double(), ref, atol=1e-4)
        assert downsample_flow(flow).shape == (2, 2, 4, 4)

    def test_batch_consistency(self):
        img = torch.rand(3, 1, 8, 8, dtype=torch.float64)
        flow = torch.rand(3, 2, 8, 8, dtype=torch.float64) * 3
        assert torch.allclose(warp(img, flow)[1:2], warp(img[1:2], flow[1:2]))

    def test_downsample_flow_halves(self):
        f = torch.full((1, 2, 4, 4), 6.0)
        assert torch.all(downsample_flow(f) == 3.0)
