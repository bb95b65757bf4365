"""pycodec.models.discriminators (models.md 2.3): PatchGAN layout and output sizes, spectral norm on
every conv, the average pooling between scales, the single-scale ablation, devices and dtypes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from models_helpers import DEVICES, flush_denormals, one_thread  # noqa: F401 (autouse fixtures of every test here)
from torch.nn.utils import parametrize

from pycodec.models.blocks import count_parameters
from pycodec.models.discriminators import MultiScaleDiscriminator, PatchDiscriminator, make_discriminator


def _convs(module: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.fixture(scope="module")
def multi() -> MultiScaleDiscriminator:
    torch.manual_seed(0)
    return MultiScaleDiscriminator().eval()


class TestPatchDiscriminator:
    def test_layout_and_parameter_count(self):
        d = PatchDiscriminator()
        convs = _convs(d)
        assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
            (3, 64, (3, 3), (1, 1)), (64, 128, (3, 3), (2, 2)), (128, 256, (3, 3), (2, 2)),
            (256, 512, (3, 3), (2, 2)), (512, 1, (3, 3), (1, 1))]
        assert [c.bias is None for c in convs] == [True] * 4 + [False]  # BN follows the first four
        kinds = [type(m).__name__ for m in d.net]
        assert kinds == ["ParametrizedConv2d", "BatchNorm2d", "LeakyReLU"] * 4 + ["ParametrizedConv2d"]
        assert all(m.negative_slope == 0.2 for m in d.net if isinstance(m, torch.nn.LeakyReLU))
        n = count_parameters(d)
        assert n == 1_556_545, f"PatchDiscriminator: {n:,} parameters"

    def test_spectral_norm_on_every_conv(self):
        torch.manual_seed(1)
        d = PatchDiscriminator().eval()
        convs = _convs(d)
        assert len(convs) == 5
        for c in convs:
            assert parametrize.is_parametrized(c, "weight")
            assert [type(p).__name__ for p in c.parametrizations.weight] == ["_SpectralNorm"]
            sigma = float(torch.linalg.matrix_norm(c.weight.detach().reshape(c.out_channels, -1), 2))
            assert 0.999 < sigma < 1.15, sigma  # power-iteration estimate: at or a little under the true norm

    @pytest.mark.parametrize(("hw", "out"), [((64, 64), (8, 8)), ((64, 96), (8, 12)), ((36, 20), (5, 3))])
    def test_output_shape(self, hw, out):
        d = PatchDiscriminator().eval()
        with torch.no_grad():
            y = d(torch.rand(2, 3, *hw))
        assert tuple(y.shape) == (2, 1, *out)

    def test_gradient_reaches_the_input(self):
        d = PatchDiscriminator().train()
        x = torch.rand(2, 3, 16, 16, requires_grad=True)
        d(x).mean().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert all(p.grad is not None for p in d.parameters())

    def test_errors(self):
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            PatchDiscriminator()(torch.rand(1, 4, 16, 16))
        assert tuple(PatchDiscriminator(in_ch=6).eval()(torch.rand(1, 6, 16, 16)).shape) == (1, 1, 2, 2)


class TestMultiScale:
    def test_shapes_64(self, multi):
        with torch.no_grad():
            out = multi(torch.rand(2, 3, 64, 64))
        assert [tuple(o.shape) for o in out] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2), (2, 1, 1, 1)]

    def test_shapes_256(self, multi):
        with torch.no_grad():
            out = multi(torch.rand(1, 3, 256, 256))
        assert [tuple(o.shape[-2:]) for o in out] == [(32, 32), (16, 16), (8, 8), (4, 4)]

    def test_scales_see_the_pooled_image(self, multi):
        seen: list[torch.Tensor] = []
        hooks = [d.register_forward_pre_hook(lambda _m, a: seen.append(a[0])) for d in multi.discriminators]
        x = torch.rand(1, 3, 24, 40)
        try:
            with torch.no_grad():
                multi(x)
        finally:
            for h in hooks:
                h.remove()
        want = x
        for r, got in enumerate(seen):
            if r:
                want = F.avg_pool2d(want, 3, 2, 1, count_include_pad=False)
            torch.testing.assert_close(got, want)
        assert tuple(seen[-1].shape[-2:]) == (3, 5)
        # count_include_pad=False: a constant image stays constant at the borders
        assert torch.allclose(multi.pool(torch.full((1, 3, 8, 8), 0.7)), torch.tensor(0.7))

    def test_parameter_count_and_independent_scales(self, multi):
        n = count_parameters(multi)
        assert n == 4 * 1_556_545, f"MultiScaleDiscriminator(4): {n:,} parameters"
        ps = [d.net[0].parametrizations.weight.original for d in multi.discriminators]
        assert len({p.data_ptr() for p in ps}) == 4  # one discriminator per scale, no sharing

    def test_single_variant(self):
        single = make_discriminator("single").eval()
        assert single.scales == 1 and len(single.discriminators) == 1
        with torch.no_grad():
            out = single(torch.rand(1, 3, 32, 32))
        assert len(out) == 1 and tuple(out[0].shape) == (1, 1, 4, 4)
        assert make_discriminator("multiscale").scales == 4
        assert MultiScaleDiscriminator(scales=2).scales == 2

    def test_errors(self):
        with pytest.raises(ValueError, match="scales"):
            MultiScaleDiscriminator(scales=0)
        with pytest.raises(ValueError, match="unknown disc"):
            make_discriminator("triple")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_devices_and_dtypes(device, dtype):
    torch.manual_seed(2)
    d = MultiScaleDiscriminator(scales=2).eval()
    ref_net = MultiScaleDiscriminator(scales=2).eval()
    ref_net.load_state_dict(d.state_dict())
    d = d.to(device=device, dtype=dtype)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        out = d(x.to(device=device, dtype=dtype))
        ref = ref_net.double()(x)
    assert all(o.dtype == dtype and o.device.type == device for o in out)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a.double().cpu(), b, rtol=1e-3, atol=1e-3)
