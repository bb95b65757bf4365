"""pycodec.models.gan_losses (models.md 2.3): hinge and adversarial losses against hand-computed
values, Gram matrices against an explicit loop, float64 gradchecks, the weighted generator loss,
errors on mismatched inputs, devices and dtypes."""

from __future__ import annotations

import pytest
import torch
from models_helpers import DEVICES, flush_denormals, one_thread  # noqa: F401 (autouse fixtures of every test here)

from pycodec.models.gan_losses import (
    d_hinge_loss,
    g_adversarial_loss,
    generator_loss,
    gram,
    perceptual_loss,
    style_loss,
)

D64 = torch.float64


def _t(*v: float, shape: tuple[int, ...] = (1, 1, 2, 2)) -> torch.Tensor:
    return torch.tensor(v, dtype=D64).reshape(shape)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


def _away_from_kinks(*shape: int, seed: int) -> torch.Tensor:
    """Logits at least 0.2 from +-1 (the hinge's kinks), for finite differences."""
    x = _rand(*shape, seed=seed) * 2
    near = (x.abs() - 1).abs() < 0.2
    return torch.where(near, x + 0.5 * torch.sign(x), x)


class TestHinge:
    # scale 1: relu(1 - real) = .5, 0, 2, 1 -> .875; relu(1 + fake) = 0, 1.5, 2.5, .5 -> 1.125
    # scale 2: relu(1 - 3) = 0; relu(1 + (-3)) = 0   => L_D = 2.0
    REAL = (_t(0.5, 2.0, -1.0, 0.0), _t(3.0, shape=(1, 1, 1, 1)))
    FAKE = (_t(-2.0, 0.5, 1.5, -0.5), _t(-3.0, shape=(1, 1, 1, 1)))

    def test_d_hinge_hand_computed(self):
        assert float(d_hinge_loss(self.REAL, self.FAKE)) == pytest.approx(2.0)
        assert float(d_hinge_loss(self.REAL[0], self.FAKE[0])) == pytest.approx(2.0)  # a lone map is one scale
        assert float(d_hinge_loss([_t(1, 1, 1, 1)], [_t(-1, -1, -1, -1)])) == 0.0  # margins met: zero loss

    def test_g_adversarial_hand_computed(self):
        # means 0.25, 3, -3 and a fourth map of mean 1: -(4*.25 + 2*3 + 1*(-3) + 1*1) = -5
        fake = [_t(-2.0, 0.5, 1.5, 1.0), _t(3.0, shape=(1, 1, 1, 1)), _t(-3.0, shape=(1, 1, 1, 1)),
                _t(1.0, shape=(1, 1, 1, 1))]
        assert float(g_adversarial_loss(fake)) == pytest.approx(-5.0)
        assert float(g_adversarial_loss(fake[:2])) == pytest.approx(-7.0)  # weights truncated to 2 scales
        assert float(g_adversarial_loss(fake[:1])) == pytest.approx(-1.0)  # single D: weight 4
        assert float(g_adversarial_loss(fake[:2], weights=(1, 1))) == pytest.approx(-3.25)

    def test_gradcheck(self):
        real = [_away_from_kinks(2, 1, 3, 3, seed=1).requires_grad_(), _away_from_kinks(2, 1, 2, 2, seed=2).requires_grad_()]
        fake = [_away_from_kinks(2, 1, 3, 3, seed=3).requires_grad_(), _away_from_kinks(2, 1, 2, 2, seed=4).requires_grad_()]
        assert torch.autograd.gradcheck(lambda a, b, c, d: d_hinge_loss([a, b], [c, d]), (*real, *fake))
        assert torch.autograd.gradcheck(lambda a, b: g_adversarial_loss([a, b]), tuple(fake))

    def test_errors(self):
        with pytest.raises(ValueError, match="2 real logit maps but 1 fake"):
            d_hinge_loss(self.REAL, self.FAKE[:1])
        with pytest.raises(ValueError, match="scale 1"):
            d_hinge_loss(self.REAL, [self.FAKE[0], _t(1.0, 2.0, 3.0, 4.0)])
        with pytest.raises(ValueError, match="no logits"):
            d_hinge_loss([], [])
        with pytest.raises(ValueError, match="scale weights"):
            g_adversarial_loss(self.FAKE * 3)
        with pytest.raises(ValueError, match="no logits"):
            g_adversarial_loss([])


class TestGram:
    def test_against_einsum_and_loop(self):
        f = _rand(2, 3, 4, 5, seed=5)
        b, c, h, w = f.shape
        g = gram(f)
        assert g.shape == (2, 3, 3)
        torch.testing.assert_close(g, torch.einsum("bchw,bdhw->bcd", f, f) / (c * h * w))
        loop = torch.zeros(b, c, c, dtype=D64)
        for n in range(b):
            for i in range(c):
                for j in range(c):
                    loop[n, i, j] = sum(float(f[n, i, y, x] * f[n, j, y, x]) for y in range(h) for x in range(w))
        torch.testing.assert_close(g, loop / (c * h * w))
        torch.testing.assert_close(g, g.transpose(1, 2))

    def test_gradcheck(self):
        assert torch.autograd.gradcheck(gram, (_rand(2, 3, 2, 3, seed=6).requires_grad_(),))

    def test_half_precision_is_computed_in_float32(self):
        f = (_rand(1, 4, 16, 16, seed=7) * 100).to(torch.bfloat16)
        g = gram(f)
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, gram(f.double()).float(), rtol=1e-5, atol=1e-3)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            gram(torch.zeros(3, 4, 5))


def _feats(seed: int, as_dict: bool = True):
    shapes = {"relu2_2": (2, 4, 4, 4), "relu3_4": (2, 6, 2, 2)}
    fs = {k: _rand(*s, seed=seed + i) for i, (k, s) in enumerate(shapes.items())}
    return fs if as_dict else list(fs.values())


class TestFeatureLosses:
    @pytest.mark.parametrize("as_dict", [True, False])
    def test_perceptual_and_style_values(self, as_dict):
        fo, fg = _feats(10, as_dict), _feats(20, as_dict)
        lo, lg = (list(fo.values()), list(fg.values())) if as_dict else (fo, fg)
        want_p = sum(float(((a - b) ** 2).mean()) for a, b in zip(lo, lg, strict=True))
        want_s = sum(float(((gram(a) - gram(b)) ** 2).mean()) for a, b in zip(lo, lg, strict=True))
        assert float(perceptual_loss(fo, fg)) == pytest.approx(want_p)
        assert float(style_loss(fo, fg)) == pytest.approx(want_s)
        assert float(perceptual_loss(fo, fo)) == 0.0 and float(style_loss(fg, fg)) == 0.0

    def test_gradcheck(self):
        a, b = _rand(1, 3, 2, 2, seed=11).requires_grad_(), _rand(1, 2, 2, 1, seed=12).requires_grad_()
        c, d = _rand(1, 3, 2, 2, seed=13).requires_grad_(), _rand(1, 2, 2, 1, seed=14).requires_grad_()
        assert torch.autograd.gradcheck(lambda *t: perceptual_loss({"x": t[0], "y": t[1]}, {"x": t[2], "y": t[3]}),
                                        (a, b, c, d))
        assert torch.autograd.gradcheck(lambda *t: style_loss([t[0], t[1]], [t[2], t[3]]), (a, b, c, d))

    def test_errors(self):
        fo = _feats(0)
        with pytest.raises(ValueError, match="layers differ"):
            perceptual_loss(fo, {"relu2_2": fo["relu2_2"]})
        with pytest.raises(ValueError, match="both be dicts"):
            style_loss(fo, list(fo.values()))
        with pytest.raises(ValueError, match="2 output feature maps but 1"):
            perceptual_loss(list(fo.values()), [fo["relu2_2"]])
        with pytest.raises(ValueError, match="layer relu3_4"):
            style_loss(fo, {"relu2_2": fo["relu2_2"], "relu3_4": fo["relu3_4"][:, :3]})
        with pytest.raises(ValueError, match="no feature layers"):
            perceptual_loss({}, {})


class TestGeneratorLoss:
    def _inputs(self):
        out, gt = _rand(2, 3, 4, 4, seed=30), _rand(2, 3, 4, 4, seed=31)
        logits = [_rand(2, 1, 2, 2, seed=32), _rand(2, 1, 1, 1, seed=33)]
        return out, gt, _feats(40), _feats(50), logits

    def test_weighted_sum(self):
        out, gt, fo, fg, logits = self._inputs()
        total, parts = generator_loss(out, gt, fo, fg, logits)
        pix = float(((out - gt) ** 2).mean())
        assert float(parts["pix"]) == pytest.approx(pix)
        assert float(parts["perc"]) == pytest.approx(float(perceptual_loss(fo, fg)))
        assert float(parts["style"]) == pytest.approx(float(style_loss(fo, fg)))
        assert float(parts["adv"]) == pytest.approx(-(4 * float(logits[0].mean()) + 2 * float(logits[1].mean())))
        want = 300 * pix + 10 * float(parts["perc"]) + 1 * float(parts["style"]) + 2 * float(parts["adv"])
        assert float(total) == pytest.approx(want) and float(parts["total"]) == pytest.approx(want)
        assert set(parts) == {"pix", "perc", "style", "adv", "total"}
        assert all(not v.requires_grad for v in parts.values())
        t2, p2 = generator_loss(out, gt, fo, fg, None, w_pix=1, w_perc=0, w_style=0, w_adv=5)
        assert float(p2["adv"]) == 0.0 and float(t2) == pytest.approx(pix)

    def test_gradcheck(self):
        out, gt, fo, fg, logits = self._inputs()
        out = out[:1, :, :2, :2].clone().requires_grad_()
        f1 = fo["relu3_4"][:1, :3].clone().requires_grad_()
        l0 = logits[0][:1].clone().requires_grad_()
        gt, g1 = gt[:1, :, :2, :2], fg["relu3_4"][:1, :3]

        def fn(o, f, lg):
            return generator_loss(o, gt, {"relu3_4": f}, {"relu3_4": g1}, [lg])[0]

        assert torch.autograd.gradcheck(fn, (out, f1, l0))

    def test_errors(self):
        out, gt, fo, fg, logits = self._inputs()
        with pytest.raises(ValueError, match="ground truth"):
            generator_loss(out, gt[:, :, :2], fo, fg, logits)
        with pytest.raises(ValueError, match="layers differ"):
            generator_loss(out, gt, fo, {"relu2_2": fg["relu2_2"]}, logits)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_devices_and_dtypes(device, dtype):
    def mv(x):
        return x.to(device=device, dtype=dtype)

    out, gt = _rand(2, 3, 4, 4, seed=60), _rand(2, 3, 4, 4, seed=61)
    fo, fg = _feats(70), _feats(80)
    logits = [_rand(2, 1, 2, 2, seed=62), _rand(2, 1, 1, 1, seed=63)]
    ref, ref_parts = generator_loss(out, gt, fo, fg, logits)
    total, parts = generator_loss(mv(out), mv(gt), {k: mv(v) for k, v in fo.items()}, {k: mv(v) for k, v in fg.items()},
                                  [mv(x) for x in logits])
    assert total.dtype == dtype and total.device.type == device and total.dim() == 0
    torch.testing.assert_close(total.double().cpu(), ref, rtol=1e-5, atol=1e-5)
    for k, v in ref_parts.items():
        assert parts[k].dtype == dtype and parts[k].device.type == device
        torch.testing.assert_close(parts[k].double().cpu(), v, rtol=1e-5, atol=1e-5)
    d = d_hinge_loss([mv(x) for x in logits], [mv(-x) for x in logits])
    assert d.dtype == dtype and d.device.type == device
    assert gram(mv(fo["relu2_2"])).dtype == dtype
