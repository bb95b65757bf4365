"""pycodec.nn colour conversion and 4:2:0 chroma resampling (kornia-style)."""

from __future__ import annotations

import pytest
import torch

from pycodec.nn import chroma_downsample, chroma_upsample, rgb_to_ycbcr, ycbcr_to_rgb

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]
CASES = [("bt601", False), ("bt601", True), ("bt709", False), ("bt709", True)]


def rgb(seed=0, shape=(2, 3, 5, 6), dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


class TestRgbToYcbcr:
    def test_smoke_and_known_values(self):
        white = torch.ones(1, 3, 1, 1, dtype=torch.float64)
        black = torch.zeros(1, 3, 1, 1, dtype=torch.float64)
        assert rgb_to_ycbcr(white).flatten().tolist() == pytest.approx([235, 128, 128])
        assert rgb_to_ycbcr(black).flatten().tolist() == pytest.approx([16, 128, 128])
        assert rgb_to_ycbcr(white, full_range=True).flatten().tolist() == pytest.approx([255, 128, 128])
        red = torch.tensor([1.0, 0, 0], dtype=torch.float64).reshape(1, 3, 1, 1)
        # BT.601 limited: red = (81.48, 90.20, 240) (the classic 8-bit values, unrounded)
        assert rgb_to_ycbcr(red).flatten().tolist() == pytest.approx([81.481, 90.203, 240.0], abs=1e-3)
        # BT.709 luma of red: 16 + 219 * 0.2126
        assert rgb_to_ycbcr(red, "bt709")[0, 0, 0, 0].item() == pytest.approx(16 + 219 * 0.2126)
        assert rgb_to_ycbcr(white, bit_depth=10).flatten().tolist() == pytest.approx([940, 512, 512])

    @pytest.mark.parametrize("matrix,full", CASES)
    def test_round_trip(self, matrix, full):
        x = rgb()
        assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x, matrix, full), matrix, full), x, atol=1e-12)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="matrix"):
            rgb_to_ycbcr(rgb(), "bt2020")
        with pytest.raises(ValueError, match="3 channels"):
            rgb_to_ycbcr(torch.rand(1, 4, 2, 2))
        with pytest.raises(TypeError, match="floating-point"):
            ycbcr_to_rgb(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
        with pytest.raises(ValueError, match="bit_depth"):
            rgb_to_ycbcr(rgb(), bit_depth=4)

    def test_gradcheck(self):
        x = rgb(shape=(1, 3, 2, 2)).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a: rgb_to_ycbcr(a, "bt709"), (x,))
        assert torch.autograd.gradcheck(lambda a: ycbcr_to_rgb(a * 200, "bt601", True), (x,))

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_devices_and_dtypes(self, device, dtype):
        x = rgb(dtype=dtype, device=device)
        y = rgb_to_ycbcr(x)
        assert y.dtype == dtype and y.device.type == device
        assert torch.allclose(y.cpu().double(), rgb_to_ycbcr(rgb()), atol=1e-3)

    def test_batch_consistency(self):
        x = rgb(shape=(3, 3, 4, 4))
        assert torch.allclose(rgb_to_ycbcr(x)[1:2], rgb_to_ycbcr(x[1:2]))


class TestChroma:
    def test_down_up(self):
        c = torch.arange(16, dtype=torch.float64).reshape(1, 4, 4)
        d = chroma_downsample(c)
        assert d.tolist() == [[[2.5, 4.5], [10.5, 12.5]]]
        assert chroma_downsample(torch.ones(3, 5, 7)).shape == (3, 3, 4)
        flat = torch.full((2, 4, 4), 7.0)
        assert torch.allclose(chroma_upsample(flat, (8, 8)), torch.full((2, 8, 8), 7.0))

    def test_exceptions(self):
        with pytest.raises(TypeError):
            chroma_downsample(torch.zeros(4, 4, dtype=torch.long))
        with pytest.raises(TypeError):
            chroma_upsample([1, 2], (2, 2))

    def test_gradcheck(self):
        x = torch.rand(1, 4, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(chroma_downsample, (x,))
        assert torch.autograd.gradcheck(lambda a: chroma_upsample(a, (8, 8)), (x,))

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_devices_and_dtypes(self, device, dtype):
        x = torch.rand(2, 6, 6, dtype=dtype, device=device)
        assert chroma_downsample(x).dtype == dtype and chroma_upsample(x, (12, 12)).device.type == device

    def test_batch_consistency(self):
        x = torch.rand(3, 6, 6, dtype=torch.float64)
        assert torch.allclose(chroma_downsample(x)[2], chroma_downsample(x[2:3])[0])
