"""pycodec.models.keyframes: KeyframesConfig (presets, switches, validation, dict round trip), the
backbones (frozen VGG-19 taps, MobileNetV3 through the factory), AdaIN (exact statistics, gradcheck),
ASFF / concat / SPADE fusion, the dilated bottleneck, UpBlock with every modulation (gradcheck), the
binary landmark image, and KeyframesGenerator (the paper's parameter count, every switch combination
at 64x64 on a small stand-in backbone, identity at initialisation, input errors, devices and dtypes,
overfitting one batch)."""

from __future__ import annotations

import itertools
import time
from dataclasses import FrozenInstanceError

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.utils import parametrize

from pycodec.models.blocks import count_parameters, he_init
from pycodec.models.fpenv import flushed_denormals
from pycodec.models.keyframes import (
    ASFF,
    FUSIONS,
    MODULATIONS,
    PRESETS,
    SCALE_MODES,
    SFT,
    Blur,
    ConcatFusion,
    DilatedBottleneck,
    KeyframesConfig,
    KeyframesGenerator,
    SPADEFusion,
    UpBlock,
    VGGBackbone,
    adain,
    clamp01,
    landmark_image,
    make_backbone,
    make_fusion,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
DTYPES = [torch.float32, torch.float64]
PAPER_TOTAL = 96_350_723  # models.md 2.1 / paper Table III: 96.35M
PAPER_VGG = 20_024_384  # VGG-19 features 0..34 (up to conv5_4): 20.02M


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors gain nothing from a second thread on a shared 2-core machine; denormals
    flushed (about 3x faster CPU steps), both given back after the module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with flushed_denormals():
        yield
    torch.set_num_threads(n)


class StubBackbone(nn.Module):
    """A small stand-in backbone: 4 conv3x3 stride-2 layers (LReLU between), taps after each
    (strides 2, 4, 8, 16), frozen unless ``trainable``."""

    def __init__(self, channels: tuple[int, int, int, int] = (4, 8, 8, 12), seed: int = 0,
                 trainable: bool = False) -> None:
        super().__init__()
        self.channels = channels
        torch.manual_seed(seed)
        ci = 3
        layers = []
        for c in channels:
            layers.append(he_init(nn.Conv2d(ci, c, 3, 2, 1)))
            ci = c
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(trainable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x if i == 0 else F.leaky_relu(x, 0.2))
            out.append(x)
        return out


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype)


def _inputs(b=2, h=64, w=64, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    deg = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64).to(dtype)
    ref = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64).to(dtype)
    lm = torch.rand(b, 68, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1, h - 1])
    return deg, ref, landmark_image(lm, h, w, dtype)


def _tiny(**kw) -> KeyframesConfig:
    return KeyframesConfig.preset("tiny", **kw)


def _perturb_head(g: KeyframesGenerator, scale: float = 0.1) -> None:
    """He-initialise the zero-initialised last conv so the output differs from I_D."""
    he_init(g.head[-1], scale=scale)


def _has_sn(m: nn.Module) -> bool:
    return parametrize.is_parametrized(m, "weight")


# ----------------------------------------------------------------------------------- config


class TestKeyframesConfig:
    def test_presets(self):
        paper = KeyframesConfig.preset("paper")
        assert paper == KeyframesConfig()
        assert (paper.backbone, paper.scales, paper.fusion, paper.modulation) == ("vgg19", "all", "asff", "sft")
        assert paper.sft_sigmoid and paper.spectral_norm and paper.head_channels == 64 and paper.spade_hidden == 128
        assert (paper.policy, paper.max_keyframes, paper.disc, paper.train_ref) == ("lfu", 10, "multiscale",
                                                                                   "gt_offset")
        compact = KeyframesConfig.preset("compact")
        assert compact.backbone == "mnv3_small" and compact.head_channels == 16
        assert (compact.scales, compact.fusion, compact.modulation) == ("all", "asff", "sft")
        assert KeyframesConfig.preset("tiny").head_channels == 8
        assert KeyframesConfig.preset("compact", fusion="concat").fusion == "concat"
        assert set(PRESETS) == {"paper", "compact", "tiny"}
        with pytest.raises(ValueError, match="unknown Keyframes-GAN preset"):
            KeyframesConfig.preset("huge")

    def test_frozen(self):
        cfg = KeyframesConfig()
        with pytest.raises(FrozenInstanceError):
            cfg.fusion = "concat"  # type: ignore[misc]
        assert hash(cfg) == hash(KeyframesConfig())

    def test_fused_scales(self):
        assert KeyframesConfig().fused_scales == (0, 1, 2, 3)
        assert KeyframesConfig(scales="conv5_4").fused_scales == (3,)

    def test_dict_round_trip_through_yaml(self):
        cfg = KeyframesConfig.preset("compact", scales="conv5_4", fusion="spade", modulation="concat", policy="maxdist",
                                     max_keyframes=3, disc="single", train_ref="decoded_prev_iframe")
        d = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
        assert KeyframesConfig.from_dict(d) == cfg
        assert KeyframesConfig.from_dict({"fusion": "concat"}) == KeyframesConfig(fusion="concat")
        with pytest.raises(ValueError, match=r"unknown Keyframes-GAN config keys \['fusoin'\]"):
            KeyframesConfig.from_dict({"fusoin": "concat"})
        with pytest.raises(ValueError, match="mapping"):
            KeyframesConfig.from_dict([("fusion", "concat")])  # type: ignore[arg-type]

    @pytest.mark.parametrize(("kw", "msg"), [
        ({"scales": "some"}, "scales"), ({"fusion": "add"}, "fusion"), ({"modulation": "film"}, "modulation"),
        ({"backbone": "resnet50"}, "backbone"), ({"policy": "lru"}, "policy"), ({"disc": "patch"}, "disc"),
        ({"train_ref": "gt"}, "train_ref"), ({"sft_sigmoid": 1}, "sft_sigmoid"), ({"spectral_norm": "yes"}, "spectral_norm"),
        ({"max_keyframes": 0}, "max_keyframes"), ({"max_keyframes": True}, "max_keyframes"),
        ({"head_channels": 2.5}, "head_channels"), ({"spade_hidden": -1}, "spade_hidden")])
    def test_invalid_values(self, kw, msg):
        with pytest.raises(ValueError, match=f"KeyframesConfig.{msg} must"):
            KeyframesConfig(**kw)


# ----------------------------------------------------------------------------------- backbones


class TestBackbones:
    def test_vgg_taps_frozen_and_always_eval(self):
        bb = VGGBackbone(allow_random=True)
        assert bb.channels == (128, 256, 512, 512)
        assert not any(p.requires_grad for p in bb.parameters())
        assert count_parameters(bb) == PAPER_VGG
        bb.train()
        assert not bb.training and not bb.vgg.training
        with torch.inference_mode():
            out = bb(_rand(1, 3, 32, 48, dtype=torch.float32))
        assert [tuple(f.shape) for f in out] == [(1, 128, 16, 24), (1, 256, 8, 12), (1, 512, 4, 6), (1, 512, 2, 3)]
        assert (out[0] >= 0).all() and (out[3] < 0).any()  # relu2_2 after a ReLU, conv5_4 before one

    def test_vgg_without_weights(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="allow_random"):
            VGGBackbone(weights=tmp_path / "none.pth")

    def test_factory(self):
        assert isinstance(make_backbone("vgg19", allow_random=True), VGGBackbone)
        with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
            make_backbone("resnet")

    @pytest.mark.parametrize("name", ["mnv3_small", "mnv3_large"])
    def test_factory_mobilenet(self, name):
        from pycodec.models import mobilenet as mob
        bb = make_backbone(name)
        assert isinstance(bb, mob.MobileNetV3Features) and len(bb.channels) == 4
        with torch.inference_mode():
            out = bb.eval()(_rand(1, 3, 64, 64, dtype=torch.float32))
        assert [tuple(f.shape) for f in out] == [(1, c, 64 // s, 64 // s) for c, s in zip(bb.channels, (2, 4, 8, 16))]


# ----------------------------------------------------------------------------------- AdaIN


class TestAdain:
    def test_exact_statistics(self):
        content = _rand(2, 5, 6, 7, seed=1) * 3 - 1
        style = _rand(2, 5, 4, 9, seed=2) * 0.5 + 2  # another spatial size
        out = adain(content, style, eps=0.0)
        assert out.shape == content.shape
        var_o, mean_o = torch.var_mean(out, dim=(2, 3), correction=0)
        var_s, mean_s = torch.var_mean(style, dim=(2, 3), correction=0)
        torch.testing.assert_close(mean_o, mean_s, rtol=0, atol=1e-12)
        torch.testing.assert_close(var_o.sqrt(), var_s.sqrt(), rtol=1e-12, atol=1e-12)
        # the normalised pattern is the content's: a per-channel affine map of it
        z = (content - content.mean((2, 3), keepdim=True)) / content.std((2, 3), keepdim=True, correction=0)
        torch.testing.assert_close(out, z * var_s.sqrt()[..., None, None] + mean_s[..., None, None])

    def test_default_eps_is_close_and_one_pixel_maps_are_finite(self):
        content, style = _rand(1, 3, 8, 8, seed=3), _rand(1, 3, 8, 8, seed=4)
        out = adain(content, style)
        torch.testing.assert_close(out.std((2, 3), correction=0), style.std((2, 3), correction=0), rtol=1e-3, atol=0)
        one = adain(_rand(2, 4, 1, 1, seed=5), style.repeat(2, 4, 1, 1)[:, :4, :1, :1])
        assert torch.isfinite(one).all()
        torch.testing.assert_close(adain(content, content, eps=0.0), content)  # own statistics: unchanged

    def test_gradcheck(self):
        content = _rand(2, 3, 4, 5, seed=6).requires_grad_()
        style = _rand(2, 3, 3, 3, seed=7).requires_grad_()
        assert torch.autograd.gradcheck(adain, (content, style))

    def test_errors(self):
        with pytest.raises(ValueError, match="equal B, C"):
            adain(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, 4))
        with pytest.raises(ValueError, match="equal B, C"):
            adain(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))


# ----------------------------------------------------------------------------------- fusion


class TestASFF:
    def test_shape_and_formula(self):
        torch.manual_seed(0)
        m = ASFF(6).double().eval()
        fd, fg, fl = (_rand(2, 6, 5, 7, seed=s) for s in (1, 2, 3))
        out = m(fd, fg, fl)
        assert out.shape == (2, 6, 5, 7)
        mask = m.mask(torch.cat([m.red_d(fd), m.red_g(fg), m.red_l(fl)], 1))
        d, g = m.proj_d(fd), m.proj_g(fg)
        torch.testing.assert_close(out, d + (g - d) * mask)
        assert [mm.out_channels for mm in (m.red_d, m.red_g, m.red_l)] == [3, 3, 3]

    @pytest.mark.parametrize("train", [True, False])
    def test_gradcheck(self, train):
        torch.manual_seed(1)
        m = ASFF(4).double().train(train)
        fd, fg, fl = (_rand(2, 4, 3, 4, seed=s).requires_grad_() for s in (4, 5, 6))
        assert torch.autograd.gradcheck(m, (fd, fg, fl))

    @pytest.mark.parametrize("kind", FUSIONS)
    def test_variants(self, kind):
        torch.manual_seed(2)
        m = make_fusion(kind, 8, hidden=4)
        assert isinstance(m, {"asff": ASFF, "concat": ConcatFusion, "spade": SPADEFusion}[kind])
        out = m(*(_rand(2, 8, 4, 4, seed=s, dtype=torch.float32) for s in range(3)))
        assert out.shape == (2, 8, 4, 4) and torch.isfinite(out).all()
        with pytest.raises(ValueError, match="unknown fusion"):
            make_fusion("add", 8)

    def test_concat_is_a_1x1_conv(self):
        m = ConcatFusion(2).double()
        fd, fg, fl = (_rand(1, 2, 3, 3, seed=s) for s in range(3))
        torch.testing.assert_close(m(fd, fg, fl), F.conv2d(torch.cat([fd, fg, fl], 1), m.conv.weight, m.conv.bias))


class TestDilatedBottleneck:
    def test_shape_residual_and_count(self):
        m = DilatedBottleneck(4)
        x = _rand(2, 4, 4, 4, dtype=torch.float32)
        assert m(x).shape == x.shape
        assert [b[0].dilation for b in m.branches] == [(4, 4), (3, 3), (2, 2), (1, 1)]
        assert [b[2].dilation for b in m.branches] == [(4, 4), (3, 3), (2, 2), (1, 1)]
        nn.init.zeros_(m.fuse.weight)
        nn.init.zeros_(m.fuse.bias)
        assert torch.equal(m(x), x)  # residual around the branches
        c = 512  # the paper's: 4 x 2 conv3x3(512, 512) + conv3x3(2048, 512)
        assert count_parameters(DilatedBottleneck(c, sn=True)) == 8 * (c * c * 9 + c) + (4 * c * c * 9 + c)

    def test_spectral_norm(self):
        m = DilatedBottleneck(4, sn=True)
        convs = [m.fuse, *(b[i] for b in m.branches for i in (0, 2))]
        assert all(_has_sn(c) for c in convs)
        for c in convs:  # largest singular value about 1 after a few power iterations
            for _ in range(30):
                c.train()(torch.zeros(1, c.in_channels, 4, 4))
            sigma = torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2)
            assert abs(float(sigma) - 1) < 1e-3


# ----------------------------------------------------------------------------------- Up block


class TestUpBlock:
    @pytest.mark.parametrize("modulation", [*MODULATIONS, None])
    def test_shapes(self, modulation):
        torch.manual_seed(3)
        m = UpBlock(6, 4, 6, modulation, spade_hidden=4)
        h, ff = _rand(2, 6, 4, 5, seed=1, dtype=torch.float32), _rand(2, 6, 4, 5, seed=2, dtype=torch.float32)
        out = m(h, ff)
        assert out.shape == (2, 4, 8, 10) and (modulation is None) == (m.mod is None)
        if modulation is None:
            assert torch.equal(out, m(h))  # unguided: ff is ignored
        else:
            with pytest.raises(ValueError, match="guided"):
                m(h)

    def test_unknown_modulation(self):
        with pytest.raises(ValueError, match="unknown modulation"):
            UpBlock(4, 4, 4, "film")

    def test_sft_formula_and_sigmoid(self):
        torch.manual_seed(4)
        sft = SFT(3, 5, sigmoid=True).double()
        h, ff = _rand(1, 3, 4, 4, seed=1) - 0.5, _rand(1, 5, 4, 4, seed=2)
        assert isinstance(sft.beta[-1], nn.Sigmoid) and not isinstance(SFT(3, 5, sigmoid=False).beta[-1], nn.Sigmoid)
        beta = sft.beta(ff)
        assert (beta > 0).all() and (beta < 1).all()
        torch.testing.assert_close(sft(h, ff), sft.alpha(ff) * h + beta)

    def test_blur(self):
        b = Blur(2).double()
        x = torch.ones(1, 2, 5, 5, dtype=torch.float64)
        y = b(x)
        assert torch.allclose(y[..., 1:-1, 1:-1], x[..., 1:-1, 1:-1])  # sums to 1
        assert float(y[0, 0, 0, 0]) == pytest.approx(9 / 16)  # zero padding at the corner
        assert count_parameters(b) == 0

    @pytest.mark.parametrize(("modulation", "sn"), [("sft", False), ("sft", True), ("concat", True), ("spade", False)])
    def test_gradcheck(self, modulation, sn):
        torch.manual_seed(5)
        m = UpBlock(3, 2, 4, modulation, sft_sigmoid=True, sn=sn, spade_hidden=3).double()
        if sn:
            m.train()(_rand(1, 3, 3, 3), _rand(1, 4, 3, 3))  # one power iteration, then fixed (eval)
        m.eval()
        h, ff = _rand(2, 3, 3, 3, seed=1).requires_grad_(), _rand(2, 4, 3, 3, seed=2).requires_grad_()
        assert torch.autograd.gradcheck(m, (h, ff))

    @pytest.mark.parametrize("modulation", MODULATIONS)
    def test_spectral_norm_on_every_conv(self, modulation):
        m = UpBlock(4, 4, 4, modulation, sn=True, spade_hidden=4)
        convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
        assert convs and all(_has_sn(c) for c in convs)
        assert not any(_has_sn(c) for c in UpBlock(4, 4, 4, modulation, sn=False).modules() if isinstance(c, nn.Conv2d))


# ----------------------------------------------------------------------------------- landmark image


class TestLandmarkImage:
    def test_rounded_pixels(self):
        lm = torch.tensor([[[0.0, 0.0], [2.5, 1.49], [4.4, 2.6], [2.6, 1.0]]])  # (x, y); the 2nd and 4th coincide
        img = landmark_image(lm, 4, 6)
        assert img.shape == (1, 1, 4, 6) and img.dtype == torch.float32
        want = torch.zeros(4, 6)
        want[0, 0] = want[1, 3] = want[3, 4] = 1  # half-up: x 2.5 -> 3; y 2.6 -> 3
        assert torch.equal(img[0, 0], want)

    def test_clipped_per_axis_and_batches(self):
        lm = torch.tensor([[[-3.0, 1.0], [10.0, 2.0]], [[9.0, 99.0], [1.0, -0.6]]])
        img = landmark_image(lm, 3, 8)  # H 3 != W 8: x clips to 7, y to 2
        ones = [tuple(i) for i in img.nonzero().tolist()]
        assert ones == [(0, 0, 1, 0), (0, 0, 2, 7), (1, 0, 0, 1), (1, 0, 2, 7)]

    def test_non_finite_points_are_left_out(self):
        lm = torch.tensor([[[1.0, 1.0], [float("nan"), 1.0], [1.0, float("inf")]]])
        img = landmark_image(lm, 3, 3)
        assert img.sum() == 1 and img[0, 0, 1, 1] == 1
        lm = torch.tensor([[[0.0, 0.0], [float("nan"), float("nan")]]])  # NaN maps onto (0, 0) but never clears it
        assert landmark_image(lm, 2, 2)[0, 0, 0, 0] == 1

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_device_dtype(self, device, dtype):
        lm = (torch.rand(2, 68, 2) * 63).to(device)
        img = landmark_image(lm, 64, 64, dtype)
        assert img.device.type == device and img.dtype == dtype
        assert ((img == 0) | (img == 1)).all() and 1 <= int(img[0].sum()) <= 68

    def test_errors(self):
        with pytest.raises(ValueError, match="B, N, 2"):
            landmark_image(torch.zeros(68, 2), 8, 8)
        with pytest.raises(ValueError, match="positive"):
            landmark_image(torch.zeros(1, 68, 2), 0, 8)


# ----------------------------------------------------------------------------------- generator


class TestKeyframesGenerator:
    def test_paper_parameter_count(self):
        g = KeyframesGenerator(KeyframesConfig.preset("paper"), VGGBackbone(allow_random=True))
        assert count_parameters(g) == PAPER_TOTAL  # 96.35M
        assert count_parameters(g.backbone) == PAPER_VGG  # 20.02M, frozen
        assert count_parameters(g, trainable_only=True) == PAPER_TOTAL - PAPER_VGG
        assert sum(p.numel() for p in g.trainable_parameters()) == PAPER_TOTAL - PAPER_VGG
        assert [(u.conv1[0].in_channels, u.conv2[0].out_channels) for u in g.ups] == [(512, 512), (512, 256),
                                                                                      (256, 128), (128, 64)]
        # the untrained paper model is the identity too (small input: VGG taps down to 2x2)
        deg, ref, lm = _inputs(1, 32, 32, seed=9)
        g.train()
        with torch.no_grad():
            assert torch.equal(g(deg, ref, lm), deg)
        assert not g.backbone.training  # frozen VGG stays in eval mode

    @pytest.mark.parametrize(("scales", "fusion", "modulation"),
                             list(itertools.product(SCALE_MODES, FUSIONS, MODULATIONS)))
    def test_every_switch_combination(self, scales, fusion, modulation):
        deg, ref, lm = _inputs(2, 64, 64, seed=1)
        for sn, sig in itertools.product((False, True), (False, True)):
            if modulation != "sft" and sig:
                continue
            cfg = _tiny(scales=scales, fusion=fusion, modulation=modulation, spectral_norm=sn, sft_sigmoid=sig)
            g = KeyframesGenerator(cfg, StubBackbone())
            assert sorted(g.fusion) == [str(s) for s in cfg.fused_scales]
            assert [u.mod is not None for u in g.ups] == ([True] * 4 if scales == "all" else [True, False, False, False])
            out = g(deg, ref, lm)
            assert out.shape == deg.shape and torch.equal(out, deg)  # identity at initialisation
            _perturb_head(g)
            out = g(deg, ref, lm)
            assert torch.isfinite(out).all() and not torch.equal(out, deg)
            out.square().mean().backward()
            missing = [n for n, p in g.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, missing
            g.eval()
            with torch.inference_mode():
                e = g(deg, ref, lm, clamp=True)
            assert e.min() >= 0 and e.max() <= 1

    def test_carried_fields_do_not_change_the_generator(self):
        shapes = {}
        for kw in ({}, {"policy": "maxdist", "max_keyframes": 1, "disc": "single", "train_ref": "decoded_prev_iframe"}):
            g = KeyframesGenerator(_tiny(**kw), StubBackbone())
            shapes[len(shapes)] = {k: tuple(v.shape) for k, v in g.state_dict().items()}
        assert shapes[0] == shapes[1]

    def test_spectral_norm_placement(self):
        g = KeyframesGenerator(_tiny(spectral_norm=True), StubBackbone())
        for part in (g.bottleneck, g.ups):
            convs = [c for c in part.modules() if isinstance(c, nn.Conv2d)]
            assert convs and all(_has_sn(c) for c in convs)
        for part in (g.head, g.fusion):
            assert not any(_has_sn(c) for c in part.modules() if isinstance(c, nn.Conv2d))
        plain = KeyframesGenerator(_tiny(spectral_norm=False), StubBackbone())
        assert count_parameters(plain) == count_parameters(g)  # u, v are buffers

    def test_identity_at_init_and_zero_head(self):
        g = KeyframesGenerator(_tiny(), StubBackbone())
        last = g.head[-1]
        assert isinstance(last, nn.Conv2d) and last.out_channels == 3
        assert not last.weight.any() and not last.bias.any()
        deg, ref, lm = _inputs(3, 48, 80, seed=2)
        assert torch.equal(g(deg, ref, lm), deg)
        he_w = g.bottleneck.fuse.weight  # He-initialised elsewhere
        assert he_w.std() > 0.5 * (2 / (1 + 0.2 ** 2) / he_w[0].numel()) ** 0.5

    def test_landmark_channels_and_clamp(self):
        g = KeyframesGenerator(_tiny(), StubBackbone())
        _perturb_head(g, 3.0)
        g.eval()
        deg, ref, lm = _inputs(1, 32, 32, seed=3)
        with torch.inference_mode():
            a, b = g(deg, ref, lm), g(deg, ref, lm.expand(-1, 3, -1, -1))
            c = g(deg, ref, lm, clamp=True)
        assert torch.equal(a, b)
        assert a.min() < 0 or a.max() > 1  # unclamped by default
        assert torch.equal(c, clamp01(a)) and torch.equal(c, a.clamp(0, 1))

    def test_input_errors(self):
        g = KeyframesGenerator(_tiny(), StubBackbone())
        deg, ref, lm = _inputs(1, 64, 64)
        with pytest.raises(ValueError, match="multiples of 16"):
            g(deg[..., :60], ref[..., :60], lm[..., :60])
        with pytest.raises(ValueError, match="guide must match"):
            g(deg, ref[..., :32, :32], lm)
        with pytest.raises(ValueError, match="landmarks must be"):
            g(deg, ref, lm.expand(-1, 2, -1, -1))
        with pytest.raises(ValueError, match="degraded must be"):
            g(deg[:, :1], ref, lm)

    def test_backbone_errors(self):
        with pytest.raises(ValueError, match="4 positive widths"):
            KeyframesGenerator(_tiny(), nn.Identity())
        bad = StubBackbone()
        bad.channels = (4, 8, 8, 16)  # says 16, gives 12
        g = KeyframesGenerator(_tiny(), bad)
        with pytest.raises(ValueError, match="backbone returned maps"):
            g(*_inputs(1, 32, 32))

    def test_trainable_backbone_is_trained(self):
        g = KeyframesGenerator(_tiny(), StubBackbone(trainable=True))
        _perturb_head(g)
        g(*_inputs(1, 32, 32)).mean().backward()
        assert all(p.grad is not None for p in g.backbone.parameters())
        assert len(g.trainable_parameters()) == len(list(g.parameters()))

    @pytest.mark.parametrize("kind", ["small", "large"])
    def test_mobilenet_backbones(self, kind):
        g = KeyframesGenerator(KeyframesConfig.preset("compact", backbone=f"mnv3_{kind}"))
        assert g.channels == g.backbone.channels
        assert g.ups[0].conv1[0].in_channels == g.channels[3] and g.ups[3].conv2[0].out_channels == 16
        assert count_parameters(g) < 4e6
        deg, ref, lm = _inputs(1, 64, 64, seed=4)
        assert torch.equal(g(deg, ref, lm), deg)

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_device_dtype(self, device, dtype):
        g = KeyframesGenerator(_tiny(), StubBackbone()).to(device=device, dtype=dtype)
        _perturb_head(g)
        g.eval()  # fixed spectral-norm vectors and BN statistics: both models compute the same function
        deg, ref, lm = (t.to(device) for t in _inputs(2, 32, 48, seed=5, dtype=dtype))
        out = g(deg, ref, lm)
        assert out.dtype == dtype and out.device.type == device and out.shape == (2, 3, 32, 48)
        ref64 = KeyframesGenerator(_tiny(), StubBackbone()).double().eval()
        ref64.load_state_dict(g.state_dict())
        want = ref64(*(t.cpu().double() for t in (deg, ref, lm)))
        tol = 1e-12 if dtype == torch.float64 else 1e-3
        torch.testing.assert_close(out.cpu().double(), want, rtol=tol, atol=tol)

    def test_overfits_one_batch(self):
        """A blurred 64x64 batch restored towards its sharp target (the reference is the target, as a
        keyframe of the same face would be): the loss falls at least 10x with Adam, on 1 CPU thread."""
        torch.manual_seed(0)
        g0 = torch.Generator().manual_seed(7)
        base = F.interpolate(torch.rand(2, 3, 8, 8, generator=g0), size=(64, 64), mode="bilinear", align_corners=False)
        target = base.clone()
        target[:, :, 20:44:4, 8:56] += 0.3  # sharp stripes the blur removes
        target = target.clamp(0, 1)
        degraded = F.avg_pool2d(F.pad(target, (2, 2, 2, 2), mode="replicate"), 5, 1)
        lm = landmark_image(torch.rand(2, 68, 2, generator=g0) * 63, 64, 64)
        g = KeyframesGenerator(_tiny(), StubBackbone())
        opt = torch.optim.Adam(g.trainable_parameters(), lr=2e-3)
        first = F.mse_loss(degraded, target).item()
        best, t0 = first, time.perf_counter()
        for _ in range(400):
            loss = F.mse_loss(g(degraded, target, lm), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            best = min(best, loss.item())
            if best < first / 10 or time.perf_counter() - t0 > 40:
                break
        assert best < first / 10, (first, best, time.perf_counter() - t0)
