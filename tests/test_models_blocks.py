"""pycodec.models.blocks: deformable convolution (against an independent per-pixel bilinear loop,
gradcheck, torchvision when installed), residual blocks, the one-map conv, pixel (un)shuffle,
VGG-19 features (torchvision key layout, no downloads) and He initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_helpers import DEVICES, flush_denormals, one_thread  # noqa: F401 (autouse fixtures of every test here)

from pycodec.models import blocks as B
from pycodec.models.blocks import (
    DeformConv2d,
    MapConv,
    ResBlock,
    UpResBlock,
    VGG19Features,
    deform_conv2d,
    he_init,
)

DTYPES = [torch.float32, torch.float64]
HAS_TV = B._torchvision_deform() is not None


def naive_deform(x: np.ndarray, offset: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                 mask: np.ndarray | None = None, dilation: int = 1) -> np.ndarray:
    """Deformable convolution by definition, one output sample at a time: bilinear interpolation
    with zeros outside the picture at p + p_k + (dy, dx) of group g, tap k (row-major)."""
    b, ci, h, w = x.shape
    co, _, k, _ = weight.shape
    g = offset.shape[1] // (2 * k * k)
    cg = ci // g
    pad = dilation * (k // 2)

    def pix(n, c, yy, xx):
        return x[n, c, yy, xx] if 0 <= yy < h and 0 <= xx < w else 0.0

    def bil(n, c, y, xq):
        y0, x0 = math.floor(y), math.floor(xq)
        fy, fx = y - y0, xq - x0
        return ((1 - fy) * (1 - fx) * pix(n, c, y0, x0) + (1 - fy) * fx * pix(n, c, y0, x0 + 1)
                + fy * (1 - fx) * pix(n, c, y0 + 1, x0) + fy * fx * pix(n, c, y0 + 1, x0 + 1))

    out = np.zeros((b, co, h, w))
    for n in range(b):
        for oy in range(h):
            for ox in range(w):
                col = np.zeros((ci, k, k))
                for c in range(ci):
                    gi = c // cg
                    for i in range(k):
                        for j in range(k):
                            t = i * k + j
                            dy = offset[n, 2 * (gi * k * k + t), oy, ox]
                            dx = offset[n, 2 * (gi * k * k + t) + 1, oy, ox]
                            v = bil(n, c, oy - pad + i * dilation + dy, ox - pad + j * dilation + dx)
                            if mask is not None:
                                v *= mask[n, gi * k * k + t, oy, ox]
                            col[c, i, j] = v
                out[n, :, oy, ox] = np.tensordot(weight, col, axes=3) + (0 if bias is None else bias)
    return out


def _rand(*shape, seed=0, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


class TestDeformConv2d:
    def test_smoke_zero_offsets_is_a_plain_conv(self):
        layer = DeformConv2d(6, 5, 3, groups=3).double()
        x = _rand(2, 6, 7, 9)
        off = torch.zeros(2, layer.offset_channels, 7, 9, dtype=torch.float64)
        y = layer(x, off)
        assert y.shape == (2, 5, 7, 9)
        torch.testing.assert_close(y, F.conv2d(x, layer.weight, layer.bias, padding=1))
        # whole-pixel offsets shift the input (zeros come in at the border)
        off[:, 0::2] = 1.0  # dy = +1 for every group and tap: rows oy..oy+2, zeros below the picture
        torch.testing.assert_close(layer(x, off), F.conv2d(F.pad(x, (1, 1, 0, 2)), layer.weight, layer.bias))

    @pytest.mark.parametrize(("groups", "k", "dilation", "masked"), [(1, 3, 1, False), (2, 3, 1, True), (2, 3, 2, False),
                                                                     (1, 1, 1, False)])
    def test_matches_the_naive_reference(self, groups, k, dilation, masked):
        b, ci, co, h, w = 2, 4, 3, 5, 6
        x = _rand(b, ci, h, w, seed=1)
        off = _rand(b, 2 * groups * k * k, h, w, seed=2, scale=2.5)  # fractional, often outside the picture
        wt = _rand(co, ci, k, k, seed=3)
        bias = _rand(co, seed=4)
        mask = torch.sigmoid(_rand(b, groups * k * k, h, w, seed=5)) if masked else None
        got = deform_conv2d(x, off, wt, bias, mask, dilation, impl="torch")
        ref = naive_deform(x.numpy(), off.numpy(), wt.numpy(), bias.numpy(), None if mask is None else mask.numpy(),
                           dilation)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)

    @staticmethod
    def _off_whole_pixels(*shape, seed):
        """Offsets at least 0.3 px from whole pixels (bilinear sampling has kinks there)."""
        g = torch.Generator().manual_seed(seed)
        return (torch.floor(torch.randn(*shape, generator=g, dtype=torch.float64) * 1.5) + 0.3
                + 0.4 * torch.rand(*shape, generator=g, dtype=torch.float64))

    def test_gradcheck(self):
        # full Jacobians at a tiny size, then fast (projected) mode with groups and a mask
        x = _rand(1, 1, 3, 3, seed=6).requires_grad_()
        off = self._off_whole_pixels(1, 18, 3, 3, seed=7).requires_grad_()
        wt = _rand(2, 1, 3, 3, seed=9).requires_grad_()
        bias = _rand(2, seed=10).requires_grad_()
        assert torch.autograd.gradcheck(lambda *a: deform_conv2d(*a, impl="torch"), (x, off, wt, bias))
        x = _rand(1, 2, 4, 4, seed=6).requires_grad_()
        off = self._off_whole_pixels(1, 36, 4, 4, seed=8).requires_grad_()
        wt = _rand(3, 2, 3, 3, seed=9).requires_grad_()
        mask = torch.rand(1, 18, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(11)).requires_grad_()
        assert torch.autograd.gradcheck(lambda *a: deform_conv2d(a[0], a[1], a[2], None, a[3], impl="torch"),
                                        (x, off, wt, mask), fast_mode=True)

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_devices_and_dtypes(self, device, dtype):
        layer = DeformConv2d(4, 4, 3, groups=2, impl="torch").to(device=device, dtype=dtype)
        x = _rand(2, 4, 6, 5, dtype=dtype).to(device)
        off = _rand(2, layer.offset_channels, 6, 5, seed=1, dtype=dtype).to(device)
        y = layer(x, off)
        assert y.dtype == dtype and y.device.type == device and y.shape == (2, 4, 6, 5)
        ref = layer.double().cpu()(x.double().cpu(), off.double().cpu())
        torch.testing.assert_close(y.double().cpu(), ref, rtol=1e-4, atol=1e-4)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="odd"):
            DeformConv2d(4, 4, 2)
        with pytest.raises(ValueError, match="divisible"):
            DeformConv2d(6, 4, 3, groups=4)
        layer = DeformConv2d(4, 4, 3, groups=2)
        x = torch.zeros(1, 4, 5, 5)
        with pytest.raises(ValueError, match="channels"):
            layer(x, torch.zeros(1, 18, 5, 5))
        with pytest.raises(ValueError, match="offset"):
            deform_conv2d(x, torch.zeros(1, 36, 4, 5), layer.weight)
        with pytest.raises(ValueError, match="weight"):
            deform_conv2d(x, torch.zeros(1, 36, 5, 5), torch.zeros(4, 3, 3, 3))
        with pytest.raises(ValueError, match="mask"):
            deform_conv2d(x, torch.zeros(1, 36, 5, 5), layer.weight, mask=torch.zeros(1, 9, 5, 5))
        with pytest.raises(ValueError, match="impl"):
            deform_conv2d(x, torch.zeros(1, 36, 5, 5), layer.weight, impl="cuda")
        if not HAS_TV:
            with pytest.raises(RuntimeError, match="torchvision"):
                deform_conv2d(x, torch.zeros(1, 36, 5, 5), layer.weight, impl="torchvision")

    @pytest.mark.skipif(not HAS_TV, reason="torchvision is not installed (its op is only an optional fast path)")
    @pytest.mark.parametrize("masked", [False, True])
    def test_torchvision_fast_path_equals_ours(self, masked):
        x = _rand(2, 4, 6, 7, seed=1)
        off = _rand(2, 2 * 2 * 9, 6, 7, seed=2, scale=3.0)
        wt, bias = _rand(5, 4, 3, 3, seed=3), _rand(5, seed=4)
        mask = torch.sigmoid(_rand(2, 18, 6, 7, seed=5)) if masked else None
        ours = deform_conv2d(x, off, wt, bias, mask, impl="torch")
        theirs = deform_conv2d(x, off, wt, bias, mask, impl="torchvision")
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


class TestResBlocks:
    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_shapes_devices_dtypes(self, device, dtype):
        torch.manual_seed(0)
        x = torch.rand(2, 8, 10, 12, dtype=dtype, device=device)
        rb = ResBlock(8).to(device=device, dtype=dtype)
        up = UpResBlock(8, 4).to(device=device, dtype=dtype)
        assert rb(x).shape == x.shape and rb(x).dtype == dtype
        assert up(x).shape == (2, 4, 20, 24)

    def test_residual_starts_near_identity(self):
        torch.manual_seed(0)
        x = torch.randn(4, 16, 16, 16)
        deep = B.res_stack(16, 10)
        # He init with the 0.1-scaled second conv: ten blocks keep the activation scale
        with torch.no_grad():
            ratio = float(deep(x).std() / x.std())
        assert 0.9 < ratio < 2.0, ratio
        assert len(B.res_stack(16, 0)) == 0 and torch.equal(B.res_stack(16, 0)(x), x)


class TestMapConv:
    def test_equals_conv2d(self):
        m = MapConv(6, 7).double()
        with torch.no_grad():
            m.bias.fill_(0.3)
        x = _rand(2, 6, 9, 11)
        torch.testing.assert_close(m(x), F.conv2d(x, m.weight, m.bias, padding=3))

    def test_gradcheck(self):
        m = MapConv(2, 3).double()
        x = _rand(1, 2, 4, 5).requires_grad_()
        assert torch.autograd.gradcheck(m, (x,))
        assert dict(m.named_parameters()).keys() == {"weight", "bias"}  # as nn.Conv2d(ci, 1, k)


class TestPixelShuffle:
    @pytest.mark.parametrize("u", [1, 2, 4])
    def test_equals_torch(self, u):
        x = _rand(2, 3, 8, 16)
        torch.testing.assert_close(B.pixel_unshuffle(x, u), F.pixel_unshuffle(x, u))
        torch.testing.assert_close(B.pixel_shuffle(B.pixel_unshuffle(x, u), u), x)
        y = _rand(2, 3 * u * u, 4, 5)
        torch.testing.assert_close(B.pixel_shuffle(y, u), F.pixel_shuffle(y, u))


def _torchvision_like_state(path, seed=0):
    """A torchvision-format VGG-19 state_dict file (random weights, classifier keys included)."""
    torch.manual_seed(seed)
    feats = B._vgg_layers(36)
    sd = {f"features.{k}": v for k, v in feats.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(sd, path)
    return sd


class TestVGG19Features:
    def test_torchvision_key_layout_and_taps(self):
        vgg = VGG19Features(allow_random=True)
        keys = set(vgg.state_dict())
        convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
        assert keys == {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
        assert not vgg.pretrained
        out = vgg(torch.rand(1, 3, 64, 64))
        assert {k: tuple(v.shape) for k, v in out.items()} == {
            "relu2_2": (1, 128, 32, 32), "relu3_4": (1, 256, 16, 16), "relu4_4": (1, 512, 8, 8), "conv5_4": (1, 512, 4, 4)}
        assert (out["conv5_4"] < 0).any()  # the pre-ReLU tap is not overwritten by an in-place ReLU
        assert (out["relu2_2"] >= 0).all()

    def test_loads_a_torchvision_state_dict_and_stays_frozen(self, tmp_path):
        path = tmp_path / "vgg19.pth"
        sd = _torchvision_like_state(path)
        vgg = VGG19Features(("relu2_2",), weights=path)
        assert vgg.pretrained
        torch.testing.assert_close(vgg.features[0].weight, sd["features.0.weight"])
        assert all(not p.requires_grad for p in vgg.parameters())
        vgg.train()
        assert not vgg.training
        # ImageNet normalisation inside: a mid-grey input is not fed as is
        x = torch.full((1, 3, 8, 8), 0.5)
        h = (x - torch.tensor(B.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(B.IMAGENET_STD).view(1, 3, 1, 1)
        torch.testing.assert_close(vgg(x)["relu2_2"], vgg.features(h))

    def test_missing_weights_never_download(self, tmp_path, monkeypatch):
        monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                            lambda *a, **k: pytest.fail("VGG19Features must not download"))
        with pytest.raises(FileNotFoundError, match="no VGG-19 weights"):
            VGG19Features(weights=tmp_path / "absent.pth")
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        assert str(tmp_path) in str(B.default_vgg19_path())
        with pytest.raises(FileNotFoundError, match=B.VGG19_FILE):
            VGG19Features()
        bad = tmp_path / "bad.pth"
        bad.write_bytes(b"not a torch file")
        with pytest.raises(ValueError, match="not a readable"):
            VGG19Features(weights=bad)
        other = tmp_path / "other.pth"
        torch.save({"conv.weight": torch.zeros(1)}, other)
        with pytest.raises(ValueError, match="not a VGG-19"):
            VGG19Features(weights=other)
        with pytest.raises(ValueError, match="unknown VGG-19 taps"):
            VGG19Features(("relu9_9",), allow_random=True)


class TestHeInit:
    def test_fan_in_statistics_scale_and_bias(self):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(64, 256, 3)
        he_init(conv, a=0.2)
        want = math.sqrt(2.0 / (1 + 0.2 ** 2) / (64 * 9))
        assert abs(float(conv.weight.detach().std()) / want - 1) < 0.03
        assert torch.count_nonzero(conv.bias) == 0
        lin = he_init(torch.nn.Linear(100, 400), scale=0.1)
        assert abs(float(lin.weight.detach().std()) / (0.1 * math.sqrt(2.0 / 1.04 / 100)) - 1) < 0.05
        z = B.zero_init(torch.nn.Conv2d(3, 3, 3))
        assert all(torch.count_nonzero(p) == 0 for p in z.parameters())
