"""Keyframes-GAN generator (Agnolucci et al.; models.md 2.1 and 2.6): restores a compressed face crop
I_D with a high-quality reference keyframe I_G (MLS-warped to I_D's landmarks) and a binary image of
I_D's landmarks I_L, as I_R = I_D + G(I_D, I_G, I_L).

A shared backbone (frozen VGG-19 in the paper, MobileNetV3 in the ablation) extracts four feature
taps (strides 2, 4, 8, 16) from each input; per scale the guidance features are AdaIN-normalised to
the degraded features' statistics (eq. 1) and fused with the degraded and landmark features (ASFF,
or the concat / SPADE ablations); a dilated bottleneck on the deepest degraded tap feeds four
x2 up-sampling blocks, each modulated by the fused features of its scale (SFT, eq. 2, or the
ablations); a residual head predicts the correction.  The head's last conv starts at zero, so the
untrained generator is the identity (I_R = I_D).

Only the generator lives here; ``policy``, ``max_keyframes``, ``disc`` and ``train_ref`` ride along
in :class:`KeyframesConfig` for the training and streaming-inference code.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from .blocks import ResBlock, VGG19Features, conv3, he_init, lrelu, zero_init

BACKBONES = ("vgg19", "mnv3_small", "mnv3_large")
SCALE_MODES = ("all", "conv5_4")
FUSIONS = ("asff", "concat", "spade")
MODULATIONS = ("sft", "concat", "spade")
POLICIES = ("lfu", "maxdist")
DISCS = ("multiscale", "single")
TRAIN_REFS = ("gt_offset", "decoded_prev_iframe")
PRESETS = ("paper", "compact", "tiny")
SWITCHES = ("scales", "fusion", "modulation", "backbone", "sft_sigmoid", "policy", "max_keyframes", "disc",
            "train_ref", "spectral_norm")
VGG_TAPS = ("relu2_2", "relu3_4", "relu4_4", "conv5_4")
TAP_STRIDES = (2, 4, 8, 16)
MULTIPLE = 16  # input H and W must be multiples of the deepest tap's stride
DILATIONS = (4, 3, 2, 1)  # bottleneck branches (REL)
HEAD_BLOCKS = 2


# ----------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class KeyframesConfig:
    """Sizes and ablation switches (models.md 2.6) of :class:`KeyframesGenerator`; the defaults are
    the paper's model.  Decoder widths always equal the backbone's tap widths (VGG-19: 512 at the
    bottleneck, then 512, 256, 128), the last up-sampling block ends at ``head_channels``.

    Sizes: ``head_channels`` (64: the full-resolution width of the last Up block and the head);
    ``spade_hidden`` (128: hidden width of the SPADE gamma/beta nets, fusion and modulation).

    Generator switches: ``backbone`` ('vgg19' | 'mnv3_small' | 'mnv3_large'); ``scales`` ('all':
    fusion and modulation at the 4 taps, MSF | 'conv5_4': only the deepest, SSF, Up1-3 unguided);
    ``fusion`` ('asff' | 'concat' | 'spade'); ``modulation`` ('sft' | 'concat' | 'spade');
    ``sft_sigmoid`` (REL quirk: a sigmoid on the SFT shift beta); ``spectral_norm`` (REL: on every
    conv of the bottleneck and of the Up blocks).

    Carried for training and inference, unused by the generator: ``policy`` ('lfu' | 'maxdist'),
    ``max_keyframes`` (K, paper 10), ``disc`` ('multiscale' | 'single'), ``train_ref`` ('gt_offset'
    | 'decoded_prev_iframe')."""

    backbone: str = "vgg19"
    head_channels: int = 64
    spade_hidden: int = 128
    scales: str = "all"
    fusion: str = "asff"
    modulation: str = "sft"
    sft_sigmoid: bool = True
    spectral_norm: bool = True
    policy: str = "lfu"
    max_keyframes: int = 10
    disc: str = "multiscale"
    train_ref: str = "gt_offset"

    def __post_init__(self) -> None:
        for name in ("head_channels", "spade_hidden", "max_keyframes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"KeyframesConfig.{name} must be a positive int, got {v!r}")
        for name in ("sft_sigmoid", "spectral_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"KeyframesConfig.{name} must be true or false, got {getattr(self, name)!r}")  # noqa: TRY004
        choices = {"backbone": BACKBONES, "scales": SCALE_MODES, "fusion": FUSIONS, "modulation": MODULATIONS,
                   "policy": POLICIES, "disc": DISCS, "train_ref": TRAIN_REFS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"KeyframesConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> KeyframesConfig:
        """'paper' (models.md 2.1: frozen VGG-19, 96,350,723 parameters of which 20,024,384 VGG),
        'compact' (MobileNetV3-Small backbone, decoder widths = its tap widths, head width 16: a
        generator that trains on a CPU) or 'tiny' (as compact with 8-wide head and SPADE nets, for
        tests with a small stand-in backbone).  ``overrides``: any config field."""
        if name == "paper":
            cfg = cls()
        elif name == "compact":
            cfg = cls(backbone="mnv3_small", head_channels=16, spade_hidden=32)
        elif name == "tiny":
            cfg = cls(backbone="mnv3_small", head_channels=8, spade_hidden=8)
        else:
            raise ValueError(f"unknown Keyframes-GAN preset {name!r}; choose one of {PRESETS}")
        return replace(cfg, **overrides) if overrides else cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (YAML/JSON friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyframesConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are an error."""
        from .config_io import checked_mapping

        return cls(**checked_mapping(cls, d, "Keyframes-GAN"))

    @property
    def fused_scales(self) -> tuple[int, ...]:
        """Tap indices (0 = stride 2 ... 3 = stride 16) where guidance is fused and modulates."""
        return (0, 1, 2, 3) if self.scales == "all" else (3,)


# ----------------------------------------------------------------------------------- backbones


class VGGBackbone(nn.Module):
    """The paper's shared, frozen VGG-19 (:class:`VGG19Features`): forward(x RGB in [0, 1]) -> [relu2_2,
    relu3_4, relu4_4, conv5_4] at strides 2, 4, 8, 16 with ``channels`` (128, 256, 512, 512).  Always in
    eval mode, no gradients to its weights.  ``weights``/``allow_random`` as in :class:`VGG19Features`
    (missing weights raise FileNotFoundError unless ``allow_random``, for tests)."""

    channels: tuple[int, int, int, int] = (128, 256, 512, 512)

    def __init__(self, weights: str | os.PathLike | None = None, allow_random: bool = False) -> None:
        super().__init__()
        self.vgg = VGG19Features(VGG_TAPS, weights=weights, allow_random=allow_random)
        self.requires_grad_(False)
        self.eval()

    @property
    def pretrained(self) -> bool:
        return self.vgg.pretrained

    def train(self, mode: bool = True) -> VGGBackbone:
        return super().train(False)  # frozen: always eval

    def forward(self, x: Tensor) -> list[Tensor]:
        taps = self.vgg(x)
        return [taps[t] for t in VGG_TAPS]


def make_backbone(name: str, **kw: Any) -> nn.Module:
    """Backbone ``name`` of :data:`BACKBONES`: 'vgg19' -> :class:`VGGBackbone` (``kw``: weights,
    allow_random); 'mnv3_small' | 'mnv3_large' -> ``pycodec.models.mobilenet.MobileNetV3Features``
    (imported here, on first use; ``kw``: its arguments, e.g. weights)."""
    if name == "vgg19":
        return VGGBackbone(**kw)
    if name in ("mnv3_small", "mnv3_large"):
        mod = importlib.import_module("pycodec.models.mobilenet")
        return mod.MobileNetV3Features(kind=name.removeprefix("mnv3_"), **kw)
    raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")


# ----------------------------------------------------------------------------------- blocks


def adain(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """AdaIN (eq. 1): ``content`` normalised per channel over space, then given ``style``'s per-channel
    spatial mean and std.  In the generator content = guidance F^g, style = degraded F^d, so
    F^{g,a} = std(F^d) (F^g - mean(F^g)) / std(F^g) + mean(F^d).  std = sqrt(population variance +
    eps) for both (defined on 1x1 maps too; with eps = 0 the output's mean and std are exactly the
    style's).  (B, C, H, W) each; the spatial sizes may differ."""
    if content.dim() != 4 or style.dim() != 4 or content.shape[:2] != style.shape[:2]:
        raise ValueError(f"adain needs (B, C, H, W) content and style with equal B, C; got {tuple(content.shape)} "
                         f"and {tuple(style.shape)}")
    cv, cm = torch.var_mean(content, dim=(2, 3), keepdim=True, correction=0)
    sv, sm = torch.var_mean(style, dim=(2, 3), keepdim=True, correction=0)
    return (content - cm) * torch.sqrt((sv + eps) / (cv + eps)) + sm


def _sn(conv: nn.Conv2d, on: bool) -> nn.Module:
    """``conv`` with spectral norm when ``on`` (applied after He init: the parametrization owns it)."""
    return _spectral_norm(conv) if on else conv  # type: ignore[return-value]


def _conv(ci: int, co: int, k: int = 3, dilation: int = 1, sn: bool = False) -> nn.Module:
    """He-initialised ``k x k`` conv, 'same' zero padding, optionally spectrally normalised."""
    c = he_init(nn.Conv2d(ci, co, k, padding=dilation * (k // 2), dilation=dilation))
    return _sn(c, sn)  # type: ignore[arg-type]


class ASFF(nn.Module):
    """Adaptive spatial feature fusion (REL layout, models.md 2.1) at width ``c``:
    M = LReLU(BN(conv3x3(LReLU(BN(conv3x3([1x1 F^d, 1x1 F^{g,a}, 1x1 F^l] (c/2 each)))))));
    d' = conv1x1(LReLU(BN(conv3x3 F^d))), g' alike from F^{g,a}; F^f = d' + (g' - d') * M.
    forward(fd, fg, fl), fg already AdaIN-aligned."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = max(1, c // 2)
        self.red_d, self.red_g, self.red_l = (_conv(c, h, 1) for _ in range(3))
        self.mask = nn.Sequential(_conv(3 * h, c), nn.BatchNorm2d(c), lrelu(), _conv(c, c), nn.BatchNorm2d(c), lrelu())
        self.proj_d = nn.Sequential(_conv(c, c), nn.BatchNorm2d(c), lrelu(), _conv(c, c, 1))
        self.proj_g = nn.Sequential(_conv(c, c), nn.BatchNorm2d(c), lrelu(), _conv(c, c, 1))

    def forward(self, fd: Tensor, fg: Tensor, fl: Tensor) -> Tensor:
        m = self.mask(torch.cat([self.red_d(fd), self.red_g(fg), self.red_l(fl)], 1))
        d, g = self.proj_d(fd), self.proj_g(fg)
        return d + (g - d) * m


class ConcatFusion(nn.Module):
    """Fusion ablation (models.md 2.6): F^f = conv1x1([F^d, F^{g,a}, F^l]).  forward(fd, fg, fl)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = _conv(3 * c, c, 1)

    def forward(self, fd: Tensor, fg: Tensor, fl: Tensor) -> Tensor:
        return self.conv(torch.cat([fd, fg, fl], 1))


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation (models.md 2.6): gamma(cond) * BN_noaffine(x) + beta(cond),
    gamma and beta from a shared conv3x3(cc, hidden)-ReLU, then one conv3x3(hidden, c) each.
    ``sn``: spectral norm on its convs (inside an Up block)."""

    def __init__(self, c: int, cc: int, hidden: int = 128, sn: bool = False) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c, affine=False)
        self.shared = nn.Sequential(_conv(cc, hidden, sn=sn), nn.ReLU())
        self.gamma = _conv(hidden, c, sn=sn)
        self.beta = _conv(hidden, c, sn=sn)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        a = self.shared(cond)
        return self.gamma(a) * self.norm(x) + self.beta(a)


class SPADEFusion(nn.Module):
    """Fusion ablation: F^f = SPADE(x = F^d, cond = [F^{g,a}, F^l]).  forward(fd, fg, fl)."""

    def __init__(self, c: int, hidden: int = 128) -> None:
        super().__init__()
        self.spade = SPADE(c, 2 * c, hidden)

    def forward(self, fd: Tensor, fg: Tensor, fl: Tensor) -> Tensor:
        return self.spade(fd, torch.cat([fg, fl], 1))


def make_fusion(kind: str, c: int, hidden: int = 128) -> nn.Module:
    """The fusion block ``kind`` ('asff' | 'concat' | 'spade') at width ``c``."""
    if kind == "asff":
        return ASFF(c)
    if kind == "concat":
        return ConcatFusion(c)
    if kind == "spade":
        return SPADEFusion(c, hidden)
    raise ValueError(f"unknown fusion {kind!r}; choose one of {FUSIONS}")


class DilatedBottleneck(nn.Module):
    """REL bottleneck: 4 branches [conv3x3-LReLU-conv3x3] with dilations 4, 3, 2, 1 (both convs of a
    branch dilated), concat -> conv3x3(4c, c), plus the input.  ``sn``: spectral norm on every conv."""

    def __init__(self, c: int, dilations: tuple[int, ...] = DILATIONS, sn: bool = False) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(_conv(c, c, dilation=d, sn=sn), lrelu(), _conv(c, c, dilation=d, sn=sn)) for d in dilations)
        self.fuse = _conv(len(dilations) * c, c, sn=sn)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fuse(torch.cat([b(x) for b in self.branches], 1))


class Blur(nn.Module):
    """Fixed depthwise 3x3 binomial blur ([1, 2, 1] x [1, 2, 1] / 16), zero padding, no parameters."""

    def __init__(self, c: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(c, 1, 3, 3).clone(), persistent=False)
        self.c = c

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=self.c)


class SFT(nn.Module):
    """Spatial feature transform (eq. 2): h = alpha * h + beta, alpha = conv3x3(cf, co)-LReLU-conv3x3(co, co)
    of the fused features, beta alike, plus a sigmoid when ``sigmoid`` (REL quirk)."""

    def __init__(self, co: int, cf: int, sigmoid: bool = True, sn: bool = False) -> None:
        super().__init__()
        self.alpha = nn.Sequential(_conv(cf, co, sn=sn), lrelu(), _conv(co, co, sn=sn))
        beta: list[nn.Module] = [_conv(cf, co, sn=sn), lrelu(), _conv(co, co, sn=sn)]
        self.beta = nn.Sequential(*beta, nn.Sigmoid()) if sigmoid else nn.Sequential(*beta)

    def forward(self, h: Tensor, ff: Tensor) -> Tensor:
        return self.alpha(ff) * h + self.beta(ff)


class ConcatModulation(nn.Module):
    """Modulation ablation (models.md 2.6): h = conv1x1([h, F^f])."""

    def __init__(self, co: int, cf: int, sn: bool = False) -> None:
        super().__init__()
        self.conv = _conv(co + cf, co, 1, sn=sn)

    def forward(self, h: Tensor, ff: Tensor) -> Tensor:
        return self.conv(torch.cat([h, ff], 1))


class SPADEModulation(nn.Module):
    """Modulation ablation: h = SPADE(x = h, cond = F^f)."""

    def __init__(self, co: int, cf: int, hidden: int = 128, sn: bool = False) -> None:
        super().__init__()
        self.spade = SPADE(co, cf, hidden, sn=sn)

    def forward(self, h: Tensor, ff: Tensor) -> Tensor:
        return self.spade(h, ff)


class UpBlock(nn.Module):
    """x2 up-sampling decoder block (REL): blur -> conv3x3(ci, co) -> LReLU -> modulation by the fused
    features F^f (cf channels, same size as the input) -> bilinear x2 -> conv3x3(co, co) -> LReLU.
    ``modulation``: 'sft' | 'concat' | 'spade' | None (unguided: forward ignores ``ff``).  ``sn``:
    spectral norm on every conv of the block, modulation included.  forward(h, ff=None)."""

    def __init__(self, ci: int, co: int, cf: int, modulation: str | None = "sft", sft_sigmoid: bool = True,
                 sn: bool = False, spade_hidden: int = 128) -> None:
        super().__init__()
        self.blur = Blur(ci)
        self.conv1 = nn.Sequential(_conv(ci, co, sn=sn), lrelu())
        self.modulation = modulation
        if modulation == "sft":
            self.mod: nn.Module | None = SFT(co, cf, sft_sigmoid, sn=sn)
        elif modulation == "concat":
            self.mod = ConcatModulation(co, cf, sn=sn)
        elif modulation == "spade":
            self.mod = SPADEModulation(co, cf, spade_hidden, sn=sn)
        elif modulation is None:
            self.mod = None
        else:
            raise ValueError(f"unknown modulation {modulation!r}; choose one of {MODULATIONS} or None")
        self.conv2 = nn.Sequential(_conv(co, co, sn=sn), lrelu())

    def forward(self, h: Tensor, ff: Tensor | None = None) -> Tensor:
        h = self.conv1(self.blur(h))
        if self.mod is not None:
            if ff is None:
                raise ValueError("this UpBlock is guided: pass the fused features ff")
            h = self.mod(h, ff)
        return self.conv2(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False))


# ----------------------------------------------------------------------------------- inputs


def landmark_image(landmarks: Tensor, height: int, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Binary landmark image I_L (B, 1, height, width): 1 at each landmark's rounded pixel, 0 elsewhere.
    ``landmarks`` (B, N, 2) as (x, y) pixel coordinates (N = 68 for dlib); rounding is half-up
    (floor(v + 0.5)), x is clipped to [0, width - 1] and y to [0, height - 1] separately; points
    with a non-finite coordinate are left out."""
    if landmarks.dim() != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must be (B, N, 2) (x, y) pixels, got {tuple(landmarks.shape)}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    b = landmarks.shape[0]
    lm = landmarks.detach().to(torch.float64)
    ok = torch.isfinite(lm).all(-1)  # (B, N)
    p = torch.floor(torch.nan_to_num(lm, 0.0, 0.0, 0.0) + 0.5)
    x = p[..., 0].clamp(0, width - 1).long()
    y = p[..., 1].clamp(0, height - 1).long()
    out = torch.zeros(b, height * width, dtype=dtype, device=landmarks.device)
    out.scatter_reduce_(1, y * width + x, ok.to(dtype), reduce="amax")  # a skipped point never clears a hit
    return out.view(b, 1, height, width)


def clamp01(x: Tensor) -> Tensor:
    """I_R clamped to [0, 1], for output and metrics only (the training losses see the raw output)."""
    return x.clamp(0, 1)


# ----------------------------------------------------------------------------------- generator


class KeyframesGenerator(nn.Module):
    """Keyframes-GAN generator (models.md 2.1; switches 2.6).  forward(degraded, guide, landmarks,
    clamp=False) -> I_R (B, 3, H, W) = I_D + G(I_D, I_G, I_L), unclamped unless ``clamp``.

    ``degraded`` I_D and ``guide`` I_G (MLS-warped reference): (B, 3, H, W) RGB in [0, 1];
    ``landmarks`` I_L: (B, 1, H, W) binary (:func:`landmark_image`), repeated to 3 channels inside
    (3 channels are taken as they are).  H, W multiples of 16.

    ``backbone``: any module with ``channels`` (4 widths) whose forward(x) returns 4 maps at strides
    2, 4, 8, 16; default :func:`make_backbone` (cfg.backbone) - for 'vgg19' that needs the VGG weights
    in the torch hub cache (pass ``VGGBackbone(weights=...)`` otherwise).  It is run once on the 3B
    batch [I_D, I_G, I_L] and counts as a submodule (its parameters are in the model's count); it is
    trained or not as it comes: :class:`VGGBackbone` is frozen, MobileNetV3Features is trainable.

    Per fused scale s: F^f_s = fusion(F^d_s, adain(F^g_s, F^d_s), F^l_s).  Bottleneck on F^d_3; Up0..Up3
    consume F^f_3..F^f_0 (Up_k's input is at tap 3-k's size); head conv3x3-LReLU-2 ResBlock-conv3x3(c, 3).
    He init everywhere; the head's last conv is zero, so an untrained generator returns I_D exactly."""

    def __init__(self, cfg: KeyframesConfig | None = None, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or KeyframesConfig()
        self.backbone = backbone if backbone is not None else make_backbone(cfg.backbone)
        ch = tuple(getattr(self.backbone, "channels", ()))
        if len(ch) != 4 or not all(isinstance(c, int) and c > 0 for c in ch):
            raise ValueError(f"the backbone must have 'channels' with 4 positive widths (strides 2, 4, 8, 16), got {ch!r}")
        self.channels: tuple[int, int, int, int] = ch  # type: ignore[assignment]
        sn = cfg.spectral_norm
        self.fusion = nn.ModuleDict({str(s): make_fusion(cfg.fusion, ch[s], cfg.spade_hidden) for s in cfg.fused_scales})
        self.bottleneck = DilatedBottleneck(ch[3], sn=sn)
        outs = (ch[2], ch[1], ch[0], cfg.head_channels)
        self.ups = nn.ModuleList(
            UpBlock(ch[3 - k], outs[k], ch[3 - k], cfg.modulation if (3 - k) in cfg.fused_scales else None,
                    cfg.sft_sigmoid, sn, cfg.spade_hidden) for k in range(4))
        hc = cfg.head_channels
        self.head = nn.Sequential(conv3(hc, hc), lrelu(), *(ResBlock(hc) for _ in range(HEAD_BLOCKS)),
                                  zero_init(nn.Conv2d(hc, 3, 3, padding=1)))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters to optimise (a frozen backbone's excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    def _check(self, degraded: Tensor, guide: Tensor, landmarks: Tensor) -> None:
        if degraded.dim() != 4 or degraded.shape[1] != 3:
            raise ValueError(f"degraded must be (B, 3, H, W), got {tuple(degraded.shape)}")
        b, _, h, w = degraded.shape
        if tuple(guide.shape) != tuple(degraded.shape):
            raise ValueError(f"guide must match degraded {tuple(degraded.shape)}, got {tuple(guide.shape)}")
        if landmarks.dim() != 4 or landmarks.shape[1] not in (1, 3) or landmarks.shape[0] != b \
                or tuple(landmarks.shape[-2:]) != (h, w):
            raise ValueError(f"landmarks must be ({b}, 1, {h}, {w}) (or 3 channels), got {tuple(landmarks.shape)}")
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"H and W must be multiples of {MULTIPLE}, got {h}x{w}; pad or crop the inputs")

    def features(self, x: Tensor) -> list[Tensor]:
        """The backbone's 4 taps of ``x``, checked against ``channels`` and strides 2, 4, 8, 16."""
        feats = list(self.backbone(x))
        h, w = x.shape[-2:]
        want = [(x.shape[0], c, h // s, w // s) for c, s in zip(self.channels, TAP_STRIDES, strict=True)]
        got = [tuple(f.shape) for f in feats]
        if got != want:
            raise ValueError(f"the backbone returned maps {got}, expected {want} (strides {TAP_STRIDES})")
        return feats

    def forward(self, degraded: Tensor, guide: Tensor, landmarks: Tensor, clamp: bool = False) -> Tensor:
        self._check(degraded, guide, landmarks)
        b = degraded.shape[0]
        lm = landmarks.to(degraded.dtype)
        if lm.shape[1] == 1:
            lm = lm.expand(-1, 3, -1, -1)
        feats = self.features(torch.cat([degraded, guide, lm], 0))
        fd = [f[:b] for f in feats]
        fused: list[Tensor | None] = [None] * 4
        for s in self.cfg.fused_scales:
            fg, fl = feats[s][b:2 * b], feats[s][2 * b:]
            fused[s] = self.fusion[str(s)](fd[s], adain(fg, fd[s]), fl)
        h = self.bottleneck(fd[3])
        for k, up in enumerate(self.ups):
            h = up(h, fused[3 - k])
        out = degraded + self.head(h)
        return clamp01(out) if clamp else out
