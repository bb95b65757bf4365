"""MobileNetV3 (Howard et al. 2019, "Searching for MobileNetV3") as a trainable multi-scale feature
extractor in plain torch: the Keyframes-GAN encoder of the ablation ``backbone: mnv3_small|mnv3_large``
(models.md 2.6).  Written from the paper's Tables 1 (Large) and 2 (Small): inverted-residual
bottlenecks with depthwise convolutions, squeeze-and-excitation gated by hard-sigmoid, hard-swish
in the deeper layers.  Parameter names follow torchvision's ``mobilenet_v3_{small,large}``
``state_dict`` (``features.{i}.block.{j}...``), so its ImageNet weights load from a local file, but
torchvision is not needed.

Layout of ``features`` (torchvision's, stride after each layer; 256x256 in -> 128, 64, 32, 16 px):

* ``features.0``: conv3x3 s2 (3 -> 16) - BN - hard-swish, as ``0`` conv, ``1`` BN.
* ``features.1 ..``: one bottleneck each, ``features.i.block`` a Sequential of
  [expand conv1x1-BN-act (left out when the expansion equals the input width)], depthwise
  conv-BN-act, [SE with ``fc1``/``fc2`` 1x1 convs], project conv1x1-BN (no activation); a residual
  add when the stride is 1 and the widths agree.
* the last layer: conv1x1 to 6x the last bottleneck width - BN - hard-swish (stride 32; built only
  by :func:`mobilenet_v3_layers` for the full stack, never tapped here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .blocks import IMAGENET_MEAN, IMAGENET_STD, he_init

# BatchNorm as in the published ImageNet training (and torchvision): a slow running average
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
STEM_WIDTH = 16


class Bneck(NamedTuple):
    """One row of the paper's layer table: kernel, expansion width, output width, SE, hard-swish
    (else ReLU), stride."""

    k: int
    exp: int
    out: int
    se: bool
    hs: bool
    stride: int


# Table 2 (MobileNetV3-Small) and Table 1 (MobileNetV3-Large), the bneck rows in order
_SMALL = (
    Bneck(3, 16, 16, True, False, 2),
    Bneck(3, 72, 24, False, False, 2),
    Bneck(3, 88, 24, False, False, 1),
    Bneck(5, 96, 40, True, True, 2),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 120, 48, True, True, 1),
    Bneck(5, 144, 48, True, True, 1),
    Bneck(5, 288, 96, True, True, 2),
    Bneck(5, 576, 96, True, True, 1),
    Bneck(5, 576, 96, True, True, 1),
)
_LARGE = (
    Bneck(3, 16, 16, False, False, 1),
    Bneck(3, 64, 24, False, False, 2),
    Bneck(3, 72, 24, False, False, 1),
    Bneck(5, 72, 40, True, False, 2),
    Bneck(5, 120, 40, True, False, 1),
    Bneck(5, 120, 40, True, False, 1),
    Bneck(3, 240, 80, False, True, 2),
    Bneck(3, 200, 80, False, True, 1),
    Bneck(3, 184, 80, False, True, 1),
    Bneck(3, 184, 80, False, True, 1),
    Bneck(3, 480, 112, True, True, 1),
    Bneck(3, 672, 112, True, True, 1),
    Bneck(5, 672, 160, True, True, 2),
    Bneck(5, 960, 160, True, True, 1),
    Bneck(5, 960, 160, True, True, 1),
)
CONFIGS: dict[str, tuple[Bneck, ...]] = {"small": _SMALL, "large": _LARGE}
# the last layer of each stride 2, 4, 8, 16 (indices into ``features``)
TAPS: dict[str, tuple[int, int, int, int]] = {"small": (0, 1, 3, 8), "large": (1, 3, 6, 12)}
TAP_STRIDES = (2, 4, 8, 16)
_ALIASES = {"small": "small", "large": "large", "mnv3_small": "small", "mnv3_large": "large"}


def round_channels(v: float, divisor: int = 8) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), one step up when
    rounding down lost more than 10%: the paper's rule that keeps every width a multiple of 8."""
    r = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return r + divisor if r < 0.9 * v else r


def _kind(kind: str) -> str:
    if kind not in _ALIASES:
        raise ValueError(f"unknown MobileNetV3 kind {kind!r}; choose 'small' or 'large' (or 'mnv3_small', 'mnv3_large')")
    return _ALIASES[kind]


def conv_bn_act(ci: int, co: int, k: int, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = None) -> nn.Sequential:
    """conv k x k ('same' padding, no bias) - BN - optional activation, indexed 0, 1, 2 as in
    torchvision's ``Conv2dNormActivation`` (so ``...0.weight`` / ``...1.running_mean`` keys)."""
    layers: list[nn.Module] = [nn.Conv2d(ci, co, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(co, eps=BN_EPS, momentum=BN_MOMENTUM)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate x * hsigmoid(fc2(relu(fc1(mean_HW x)))), squeeze width = expansion/4 rounded to
    a multiple of 8 (paper 5.3).  1x1 convs with bias named ``fc1``/``fc2`` (torchvision's keys)."""

    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.act = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class InvertedResidual(nn.Module):
    """The MobileNetV3 bottleneck (``bneck``): expand 1x1, depthwise k x k (carries the stride),
    optional SE, linear project 1x1; the input is added back when the shape is unchanged."""

    def __init__(self, ci: int, cfg: Bneck) -> None:
        super().__init__()
        act = nn.Hardswish if cfg.hs else nn.ReLU
        layers: list[nn.Module] = []
        if cfg.exp != ci:
            layers.append(conv_bn_act(ci, cfg.exp, 1, act=act))
        layers.append(conv_bn_act(cfg.exp, cfg.exp, cfg.k, cfg.stride, groups=cfg.exp, act=act))
        if cfg.se:
            layers.append(SqueezeExcite(cfg.exp, round_channels(cfg.exp // 4)))
        layers.append(conv_bn_act(cfg.exp, cfg.out, 1))
        self.block = nn.Sequential(*layers)
        self.residual = cfg.stride == 1 and ci == cfg.out

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def mobilenet_v3_layers(kind: str = "small", depth: int | None = None) -> nn.Sequential:
    """The first ``depth`` layers of MobileNetV3's ``features`` (all of them, the stride-32 1x1 conv
    to 6x the last width included, when None), PyTorch's default initialisation."""
    cfgs = CONFIGS[_kind(kind)]
    n = len(cfgs) + 2
    depth = n if depth is None else depth
    if not 1 <= depth <= n:
        raise ValueError(f"depth must be in 1..{n}, got {depth}")
    layers: list[nn.Module] = [conv_bn_act(3, STEM_WIDTH, 3, 2, act=nn.Hardswish)]
    ci = STEM_WIDTH
    for cfg in cfgs:
        layers.append(InvertedResidual(ci, cfg))
        ci = cfg.out
    layers.append(conv_bn_act(ci, 6 * ci, 1, act=nn.Hardswish))
    return nn.Sequential(*layers[:depth])


def _out_channels(layer: nn.Module) -> int:
    convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class MobileNetV3Features(nn.Module):
    """Trainable MobileNetV3 encoder: forward(x) -> [f2, f4, f8, f16], the outputs of the last layer
    at strides 2, 4, 8, 16 (``features`` indices :data:`TAPS`: small 0, 1, 3, 8; large 1, 3, 6, 12).
    Input RGB in [0, 1] (ImageNet mean/std normalisation inside), any H, W (odd sizes round up).

    ``channels``: the tap widths, small (16, 16, 24, 48), large (16, 24, 40, 112); the Keyframes-GAN
    decoder widths equal these.  Only ``features`` up to the stride-16 tap are built (the stride-32
    layers would be dead weight).  ``kind``: 'small' | 'large' (or 'mnv3_small' | 'mnv3_large').
    He initialisation of the convs; ``weights``: a local torchvision-format state_dict file (whole
    classifier or ``features`` only) whose matching ``features.*`` tensors are loaded, the rest
    (classifier, stride-32 layers) ignored.  Never downloads."""

    def __init__(self, kind: str = "small", weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.kind = _kind(kind)
        self.taps: tuple[int, int, int, int] = TAPS[self.kind]
        self.strides = TAP_STRIDES
        self.features = mobilenet_v3_layers(self.kind, self.taps[-1] + 1)
        he_init(self.features, a=0.0)  # ReLU-family activations
        self.channels: tuple[int, int, int, int] = tuple(  # type: ignore[assignment]
            _out_channels(self.features[i]) for i in self.taps)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.pretrained = False
        if weights is not None:
            self.load_weights(weights)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load the ``features.*`` tensors of a torchvision-format MobileNetV3 state_dict file of the
        same kind (keys without the ``features.`` prefix, as saved from ``model.features``, too).
        FileNotFoundError when absent; ValueError when unreadable, of another kind or shape."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no MobileNetV3-{self.kind} weights file (nothing is downloaded)")
        try:
            sd = torch.load(os.fspath(p), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{p}: not a readable torch state_dict ({exc})") from exc
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            # a bad weights file, like the key and shape mismatches below: one exception type for callers
            raise ValueError(f"{p}: holds a {type(sd).__name__}, not a state_dict")  # noqa: TRY004
        if not any(str(k).startswith("features.") for k in sd):
            sd = {f"features.{k}": v for k, v in sd.items()}
        own = self.state_dict()
        missing = sorted(k for k in own if k not in sd and not k.endswith("num_batches_tracked"))
        if missing:
            raise ValueError(f"{p}: not a torchvision MobileNetV3-{self.kind} state_dict: missing {len(missing)} "
                             f"keys ({', '.join(missing[:3])}, ...)")
        bad = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
               if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
        if bad:
            raise ValueError(f"{p}: not a MobileNetV3-{self.kind} state_dict: shape mismatch {'; '.join(bad[:3])}")
        self.load_state_dict({k: sd.get(k, v) for k, v in own.items()})
        self.pretrained = True

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB (B, 3, H, W), got {tuple(x.shape)}")
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: list[Tensor] = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out

    def extra_repr(self) -> str:
        return f"kind={self.kind}, taps={self.taps}, channels={self.channels}"
