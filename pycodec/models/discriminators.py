"""Keyframes-GAN discriminators (models.md 2.3): a spectrally normalised PatchGAN and the multi-scale
stack of them at scales 1, 2, 4, 8 (``disc: multiscale``), or a single full-scale one
(``disc: single``, the ablation of eq. 12)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from .blocks import LRELU_SLOPE, he_init

PATCH_WIDTHS = (64, 128, 256, 512)
DISC_KINDS = {"multiscale": 4, "single": 1}


def sn_conv(ci: int, co: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """He-initialised conv3x3 ('same' zero padding) wrapped in spectral norm (the weight is divided
    by its largest singular value, one power iteration per training forward)."""
    conv = he_init(nn.Conv2d(ci, co, 3, stride, 1, bias=bias))  # before the parametrization: it owns the tensor
    return spectral_norm(conv)  # type: ignore[arg-type]


class PatchDiscriminator(nn.Module):
    """PatchGAN: conv3x3 s1 (in_ch -> 64)-BN-LReLU(0.2), 3 x [conv3x3 s2 -> 128, 256, 512, BN,
    LReLU], conv3x3 (512 -> 1); spectral norm on every conv.  (B, in_ch, H, W) -> logits
    (B, 1, ceil(H/8), ceil(W/8)): 32x32 at 256.  The convs before a BN carry no bias (BN's shift
    takes its place); the last one has one."""

    def __init__(self, in_ch: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ci = in_ch
        for i, co in enumerate(PATCH_WIDTHS):
            layers += [sn_conv(ci, co, 1 if i == 0 else 2, bias=False), nn.BatchNorm2d(co), nn.LeakyReLU(LRELU_SLOPE)]
            ci = co
        layers.append(sn_conv(ci, 1))
        self.net = nn.Sequential(*layers)
        self.in_ch = in_ch

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"expected (B, {self.in_ch}, H, W), got {tuple(x.shape)}")
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """One :class:`PatchDiscriminator` per scale 1, 2, 4, ... (``scales`` of them), the image average
    pooled 3x3 stride 2 padding 1 (count_include_pad=False) between scales.  forward(x) -> list of
    logit maps, full scale first: 32, 16, 8, 4 px at 256 with the default 4 scales; ``scales=1`` is
    the single-discriminator ablation."""

    def __init__(self, scales: int = 4, in_ch: int = 3) -> None:
        super().__init__()
        if not isinstance(scales, int) or scales < 1:
            raise ValueError(f"scales must be a positive int, got {scales!r}")
        self.scales = scales
        self.discriminators = nn.ModuleList(PatchDiscriminator(in_ch) for _ in range(scales))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        out: list[Tensor] = []
        for r, d in enumerate(self.discriminators):
            if r:
                x = self.pool(x)
            out.append(d(x))
        return out


def make_discriminator(disc: str = "multiscale", in_ch: int = 3) -> MultiScaleDiscriminator:
    """The discriminator of the ablation switch ``disc``: 'multiscale' (4 scales) or 'single'."""
    if disc not in DISC_KINDS:
        raise ValueError(f"unknown disc {disc!r}; choose from {sorted(DISC_KINDS)}")
    return MultiScaleDiscriminator(DISC_KINDS[disc], in_ch)
