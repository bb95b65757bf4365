"""pycodec.models.mobilenet: the plain-torch MobileNetV3 encoder (models.md 2.6 ``backbone: mnv3_*``):
tap shapes, strides and widths, parameter counts against the published networks, torchvision's
state_dict key names, weight loading (never downloading) and its errors, devices and dtypes."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from models_helpers import DEVICES, flush_denormals, one_thread  # noqa: F401 (autouse fixtures of every test here)

from pycodec.models import mobilenet as M
from pycodec.models.blocks import IMAGENET_MEAN, IMAGENET_STD, count_parameters
from pycodec.models.mobilenet import MobileNetV3Features, mobilenet_v3_layers

CHANNELS = {"small": (16, 16, 24, 48), "large": (16, 24, 40, 112)}
# the classifier after ``features``: pool, Linear(6*last, 1024|1280), hard-swish, dropout, Linear(., 1000)
HEAD = {"small": 576 * 1024 + 1024 + 1024 * 1000 + 1000, "large": 960 * 1280 + 1280 + 1280 * 1000 + 1000}
# torchvision's documented parameter counts of the complete ImageNet classifiers (paper: 2.5M, 5.4M)
CLASSIFIER_PARAMS = {"small": 2_542_856, "large": 5_483_032}


@pytest.fixture(scope="module")
def nets() -> dict[str, MobileNetV3Features]:
    torch.manual_seed(0)
    return {k: MobileNetV3Features(k).eval() for k in ("small", "large")}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _conv_bn(prefix: str, co: int, ci: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.0.weight": (co, ci, k, k), **_bn(f"{prefix}.1", co)}


def _se(prefix: str, c: int, s: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.fc1.weight": (s, c, 1, 1), f"{prefix}.fc1.bias": (s,), f"{prefix}.fc2.weight": (c, s, 1, 1),
            f"{prefix}.fc2.bias": (c,)}


# derived by hand from Table 2 and torchvision's naming: Conv2dNormActivation = (0 conv, 1 BN, 2 act),
# block = [expand if exp != in], depthwise, [SE: squeeze = exp/4 rounded to 8], project
SMALL_FIRST_KEYS = {
    **_conv_bn("features.0", 16, 3, 3),
    **_conv_bn("features.1.block.0", 16, 1, 3), **_se("features.1.block.1", 16, 8),
    **_conv_bn("features.1.block.2", 16, 16, 1),
    **_conv_bn("features.2.block.0", 72, 16, 1), **_conv_bn("features.2.block.1", 72, 1, 3),
    **_conv_bn("features.2.block.2", 24, 72, 1),
    **_conv_bn("features.3.block.0", 88, 24, 1), **_conv_bn("features.3.block.1", 88, 1, 3),
    **_conv_bn("features.3.block.2", 24, 88, 1),
    **_conv_bn("features.4.block.0", 96, 24, 1), **_conv_bn("features.4.block.1", 96, 1, 5),
    **_se("features.4.block.2", 96, 24), **_conv_bn("features.4.block.3", 40, 96, 1),
}


def _shapes(sd: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items() if k.startswith(prefixes)}


class TestArchitecture:
    @pytest.mark.parametrize("kind", ["small", "large"])
    @pytest.mark.parametrize("hw", [(64, 64), (64, 96)])
    def test_tap_shapes_strides_channels(self, nets, kind, hw):
        net = nets[kind]
        assert net.channels == CHANNELS[kind] and net.strides == (2, 4, 8, 16)
        assert net.taps == M.TAPS[kind] and len(net.features) == net.taps[-1] + 1
        h, w = hw
        with torch.no_grad():
            out = net(torch.rand(2, 3, h, w))
        assert isinstance(out, list) and len(out) == 4
        assert [tuple(f.shape) for f in out] == [(2, c, h // s, w // s) for c, s in zip(net.channels, net.strides)]

    @pytest.mark.parametrize("kind", ["small", "large"])
    def test_taps_are_the_last_layer_of_each_stride(self, kind):
        feats = mobilenet_v3_layers(kind)
        strides, s = [], 1
        for layer in feats:
            s *= max(m.stride[0] for m in layer.modules() if isinstance(m, torch.nn.Conv2d))
            strides.append(s)
        want = tuple(max(i for i, v in enumerate(strides) if v == target) for target in (2, 4, 8, 16))
        assert M.TAPS[kind] == want, (strides, want)

    @pytest.mark.parametrize("kind", ["small", "large"])
    def test_parameter_counts(self, nets, kind):
        full = count_parameters(mobilenet_v3_layers(kind))
        lo, hi = {"small": (0.5e6, 2.5e6), "large": (2.0e6, 5.4e6)}[kind]
        assert lo < full < hi, f"MobileNetV3-{kind} full feature stack: {full:,} parameters"
        # with torchvision's classifier head it is exactly the published network
        assert full + HEAD[kind] == CLASSIFIER_PARAMS[kind], \
            f"MobileNetV3-{kind}: features {full:,} + head {HEAD[kind]:,} != {CLASSIFIER_PARAMS[kind]:,}"
        tapped = count_parameters(nets[kind])
        want = {"small": 190_520, "large": 792_488}[kind]
        assert tapped == want, f"MobileNetV3-{kind} features up to the stride-16 tap: {tapped:,} parameters"
        assert count_parameters(nets[kind], trainable_only=True) == tapped  # trained from scratch: all trainable

    def test_round_channels(self):
        assert [M.round_channels(v) for v in (4, 18, 30, 36, 60, 120, 144, 168, 240)] == \
            [8, 24, 32, 40, 64, 120, 144, 168, 240]

    def test_residuals_and_activations(self):
        feats = mobilenet_v3_layers("small")
        assert [i for i in range(1, 12) if feats[i].residual] == [3, 5, 6, 8, 10, 11]
        assert isinstance(feats[0][2], torch.nn.Hardswish)
        assert isinstance(feats[2].block[0][2], torch.nn.ReLU) and isinstance(feats[4].block[0][2], torch.nn.Hardswish)
        assert len(feats[2].block[2]) == 2  # linear projection: conv + BN, no activation
        large = mobilenet_v3_layers("large", 2)
        assert large[1].residual and len(large[1].block) == 2  # expansion 16 = input: no expand conv

    def test_squeeze_excite_is_a_hard_sigmoid_gate(self):
        torch.manual_seed(1)
        se = M.SqueezeExcite(6, 8).double()
        x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
        s = x.mean((2, 3), keepdim=True)
        z = F.conv2d(F.relu(F.conv2d(s, se.fc1.weight, se.fc1.bias)), se.fc2.weight, se.fc2.bias)
        torch.testing.assert_close(se(x), x * (z + 3).clamp(0, 6) / 6)
        assert torch.autograd.gradcheck(se, (x[:1, :, :2, :2].clone().requires_grad_(),))

    def test_block_gradcheck(self):
        torch.manual_seed(2)
        blk = M.InvertedResidual(4, M.Bneck(3, 8, 4, True, True, 1)).double().eval()
        x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
        assert blk.residual
        assert torch.autograd.gradcheck(blk, (x,))

    def test_normalisation_inside_and_he_init(self, nets):
        net = nets["small"]
        x = torch.rand(1, 3, 32, 32)
        h = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            torch.testing.assert_close(net(x)[0], net.features[0](h))
        w = net.features[8].block[0][0].weight  # 1x1 expand 48 -> 144: fan-in 48
        assert abs(float(w.detach().std()) / math.sqrt(2 / 48) - 1) < 0.06
        assert torch.count_nonzero(net.features[1].block[1].fc1.bias) == 0

    def test_trainable_every_parameter_gets_a_gradient(self):
        torch.manual_seed(3)
        net = MobileNetV3Features("small").train()
        out = net(torch.rand(2, 3, 32, 32))
        sum(f.square().mean() for f in out).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        assert all(p.requires_grad for p in net.parameters())


class TestStateDict:
    def test_torchvision_key_names(self, nets):
        sd = nets["small"].state_dict()
        prefixes = ("features.0.", "features.1.", "features.2.", "features.3.", "features.4.")
        assert _shapes(sd, prefixes) == SMALL_FIRST_KEYS
        assert "mean" not in sd and "std" not in sd  # normalisation constants are not weights
        assert not any(k.startswith("features.9.") for k in sd)  # stride 32 is not built
        large = nets["large"].state_dict()
        assert _shapes(large, ("features.1.",)) == {**_conv_bn("features.1.block.0", 16, 1, 3),
                                                    **_conv_bn("features.1.block.1", 16, 16, 1)}
        assert _shapes(large, ("features.4.block.2.",)) == _se("features.4.block.2", 72, 24)
        assert tuple(large["features.12.block.2.fc1.weight"].shape) == (168, 672, 1, 1)
        assert max(int(k.split(".")[1]) for k in large) == 12

    @pytest.mark.parametrize("kind", ["small", "large"])
    def test_round_trip(self, tmp_path, kind):
        torch.manual_seed(4)
        src = MobileNetV3Features(kind)
        with torch.no_grad():  # non-default BN statistics too
            for m in src.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        path = tmp_path / "mnv3.pth"
        torch.save(src.state_dict(), path)
        dst = MobileNetV3Features(kind, weights=path)
        assert dst.pretrained and not src.pretrained
        for k, v in src.state_dict().items():
            assert torch.equal(dst.state_dict()[k], v), k
        x = torch.rand(1, 3, 32, 48)
        with torch.no_grad():
            for a, b in zip(src.eval()(x), dst.eval()(x), strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)

    def test_loads_torchvision_format_files(self, tmp_path):
        """A whole classifier's state_dict (stride-32 layers and classifier ignored), a ``features``-only
        one (no prefix), and a {'state_dict': ...} wrapper."""
        torch.manual_seed(5)
        full = mobilenet_v3_layers("small")
        sd = {f"features.{k}": v for k, v in full.state_dict().items()}
        sd |= {"classifier.0.weight": torch.zeros(1024, 576), "classifier.3.bias": torch.zeros(1000)}
        torch.save(sd, tmp_path / "tv.pth")
        net = MobileNetV3Features("small", weights=tmp_path / "tv.pth")
        assert torch.equal(net.features[8].block[3][0].weight, full[8].block[3][0].weight)
        torch.save(full.state_dict(), tmp_path / "features_only.pth")
        net = MobileNetV3Features("small", weights=tmp_path / "features_only.pth")
        assert torch.equal(net.features[0][0].weight, full[0][0].weight)
        torch.save({"state_dict": sd}, tmp_path / "wrapped.pth")
        assert MobileNetV3Features("small", weights=tmp_path / "wrapped.pth").pretrained

    def test_errors(self, tmp_path, monkeypatch):
        monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                            lambda *a, **k: pytest.fail("MobileNetV3Features must not download"))
        with pytest.raises(FileNotFoundError, match="no MobileNetV3-small weights"):
            MobileNetV3Features("small", weights=tmp_path / "absent.pth")
        torch.save(MobileNetV3Features("large").state_dict(), tmp_path / "large.pth")
        with pytest.raises(ValueError, match="missing"):
            MobileNetV3Features("small", weights=tmp_path / "large.pth")
        sd = MobileNetV3Features("small").state_dict()
        sd["features.2.block.0.0.weight"] = torch.zeros(64, 16, 1, 1)
        torch.save(sd, tmp_path / "bad_shape.pth")
        with pytest.raises(ValueError, match="shape mismatch.*features.2.block.0.0.weight"):
            MobileNetV3Features("small", weights=tmp_path / "bad_shape.pth")
        (tmp_path / "junk.pth").write_bytes(b"not a torch file")
        with pytest.raises(ValueError, match="not a readable"):
            MobileNetV3Features("small", weights=tmp_path / "junk.pth")
        torch.save([torch.zeros(1)], tmp_path / "list.pth")
        with pytest.raises(ValueError, match="not a state_dict"):
            MobileNetV3Features("small", weights=tmp_path / "list.pth")
        with pytest.raises(ValueError, match="unknown MobileNetV3 kind"):
            MobileNetV3Features("medium")
        with pytest.raises(ValueError, match="depth"):
            mobilenet_v3_layers("small", 14)
        with pytest.raises(ValueError, match="RGB"):
            MobileNetV3Features("small")(torch.rand(1, 1, 32, 32))
        assert MobileNetV3Features("mnv3_large").kind == "large"  # the ablation switch's names


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_devices_and_dtypes(nets, device, dtype):
    net = nets["small"]
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    moved = MobileNetV3Features("small").eval()
    moved.load_state_dict(net.state_dict())
    moved = moved.to(device=device, dtype=dtype)
    with torch.no_grad():
        out = moved(x.to(device=device, dtype=dtype))
        ref = copy.deepcopy(net).double()(x)
    assert all(f.dtype == dtype and f.device.type == device for f in out)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a.double().cpu(), b, rtol=1e-3, atol=1e-3)
