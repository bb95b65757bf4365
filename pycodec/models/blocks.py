"""Shared building blocks of the restoration models (models.md, "Shared plain-torch blocks"):
residual blocks, deformable convolution in plain torch, a torchvision-compatible VGG-19 feature
extractor and He initialisation.  No torchvision needed (it is only an optional fast path)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2


# ----------------------------------------------------------------------------------- init


def he_init(module: nn.Module, a: float = LRELU_SLOPE, scale: float = 1.0) -> nn.Module:
    """He (Kaiming normal, fan-in, leaky-ReLU slope ``a``) initialisation of every Conv2d, Linear
    and :class:`DeformConv2d` weight in ``module`` (itself included), weights times ``scale``,
    biases 0.  models.md 4: with PyTorch's default init the residual nets sat at identity."""
    for m in module.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, (nn.Conv2d, nn.Linear, DeformConv2d, MapConv)) and isinstance(w, Tensor):
            nn.init.kaiming_normal_(w, a=a, mode="fan_in", nonlinearity="leaky_relu")
            with torch.no_grad():
                w.mul_(scale)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return module


def zero_init(module: nn.Module) -> nn.Module:
    """Set every weight and bias of ``module`` to 0 (a residual head that starts at identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def conv3(ci: int, co: int, k: int = 3, stride: int = 1, scale: float = 1.0) -> nn.Conv2d:
    """A He-initialised ``k x k`` convolution with 'same' zero padding."""
    return he_init(nn.Conv2d(ci, co, k, stride, k // 2), scale=scale)  # type: ignore[return-value]


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(LRELU_SLOPE)


# ----------------------------------------------------------------------------------- residual blocks


class ResBlock(nn.Module):
    """``x + conv3x3(LReLU(conv3x3(x)))``; the second conv starts at 0.1 x He so that deep stacks
    keep the activation scale (each block adds ~1% variance instead of doubling it)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = conv3(c, c)
        self.act = lrelu()
        self.conv2 = conv3(c, c, scale=0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def res_stack(c: int, n: int) -> nn.Sequential:
    """``n`` :class:`ResBlock` of width ``c`` (an empty Sequential is the identity)."""
    return nn.Sequential(*(ResBlock(c) for _ in range(n)))


class UpResBlock(nn.Module):
    """x2 upsampling residual block: [bilinear x2, conv3x3, LReLU, conv3x3] + [bilinear x2, conv1x1]."""

    def __init__(self, ci: int, co: int) -> None:
        super().__init__()
        self.conv1 = conv3(ci, co)
        self.act = lrelu()
        self.conv2 = conv3(co, co, scale=0.1)
        self.skip = he_init(nn.Conv2d(ci, co, 1), a=1.0)

    def forward(self, x: Tensor) -> Tensor:
        u = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv2(self.act(self.conv1(u))) + self.skip(u)


def pixel_unshuffle(x: Tensor, u: int) -> Tensor:
    """``F.pixel_unshuffle`` (B, C, H, W) -> (B, C*u*u, H/u, W/u), same channel order, as one
    reshape-permute copy (2x faster than the builtin on CPU)."""
    if u == 1:
        return x
    b, c, h, w = x.shape
    return x.reshape(b, c, h // u, u, w // u, u).permute(0, 1, 3, 5, 2, 4).reshape(b, c * u * u, h // u, w // u)


def pixel_shuffle(x: Tensor, u: int) -> Tensor:
    """Inverse of :func:`pixel_unshuffle` (= ``F.pixel_shuffle``)."""
    if u == 1:
        return x
    b, c, h, w = x.shape
    co = c // (u * u)
    return x.reshape(b, co, u, u, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, co, h * u, w * u)


class MapConv(nn.Module):
    """A ``k x k`` convolution from ``ci`` channels to one map (an attention logit), 'same' zero
    padding; parameters as ``nn.Conv2d(ci, 1, k)``.  Computed as a 1x1 GEMM to the k*k taps and a
    ``fold`` that adds them up: oneDNN's direct path for one output channel is ~6x slower."""

    def __init__(self, ci: int, k: int = 7) -> None:
        super().__init__()
        if k % 2 == 0:
            raise ValueError(f"k must be odd, got {k}")
        self.ci, self.k = ci, k
        self.weight = nn.Parameter(torch.empty(1, ci, k, k))
        self.bias = nn.Parameter(torch.zeros(1))
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        kk = self.k * self.k
        taps = F.conv2d(x, self.weight.reshape(self.ci, kk).t().reshape(kk, self.ci, 1, 1))
        # out(p) = sum_t taps_t(p + t - pad); fold adds column t at p - t + pad, so flip the taps
        out = F.fold(taps.flip(1).reshape(b, kk, h * w), (h, w), self.k, padding=self.k // 2)
        return out + self.bias.view(1, 1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.ci}, 1, k={self.k}"


# ----------------------------------------------------------------------------------- deformable conv


def _torchvision_deform() -> object | None:
    """``torchvision.ops.deform_conv2d`` when torchvision is importable, else None."""
    try:
        from torchvision.ops import deform_conv2d
    except (ImportError, RuntimeError, OSError):  # not installed or a broken build: plain torch
        return None
    return deform_conv2d


def deform_conv2d(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None,
                  mask: Tensor | None = None, dilation: int = 1, impl: str = "auto") -> Tensor:
    """Deformable convolution, stride 1, 'same' zero padding (k odd).

    x (B, Ci, H, W); offset (B, 2*G*k*k, H, W): (dy, dx) per offset group g and tap k (taps
    row-major), channel ``2*(g*k*k + tap)`` = dy, ``+1`` = dx (torchvision's layout); weight
    (Co, Ci, k, k); mask (B, G*k*k, H, W) optional modulation (DCNv2).  Samples at
    ``p + p_tap + offset`` bilinearly with zeros outside the picture (torchvision's kernel
    semantics).  ``impl``: 'torch' (grid_sample), 'torchvision' (its op, must be importable) or
    'auto' (torchvision when importable)."""
    if impl not in ("auto", "torch", "torchvision"):
        raise ValueError(f"impl must be 'auto', 'torch' or 'torchvision', got {impl!r}")
    if x.dim() != 4 or offset.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"x, offset and weight must be 4-D, got {tuple(x.shape)}, {tuple(offset.shape)}, "
                         f"{tuple(weight.shape)}")
    b, ci, h, w = x.shape
    co, wci, kh, kw = weight.shape
    if wci != ci or kh != kw or kh % 2 == 0:
        raise ValueError(f"weight {tuple(weight.shape)} must be (Co, {ci}, k, k) with odd k")
    kk = kh * kw
    if offset.shape[0] != b or offset.shape[-2:] != (h, w) or offset.shape[1] % (2 * kk):
        raise ValueError(f"offset {tuple(offset.shape)} must be ({b}, 2*G*{kk}, {h}, {w})")
    g = offset.shape[1] // (2 * kk)
    if ci % g:
        raise ValueError(f"in channels {ci} must be divisible by the {g} offset groups")
    if mask is not None and tuple(mask.shape) != (b, g * kk, h, w):
        raise ValueError(f"mask {tuple(mask.shape)} must be ({b}, {g * kk}, {h}, {w})")
    pad = dilation * (kh // 2)
    if impl != "torch":
        tv = _torchvision_deform()
        if tv is None and impl == "torchvision":
            raise RuntimeError("impl='torchvision' needs torchvision; install it or use impl='torch'")
        if tv is not None:
            return tv(x, offset, weight, bias, padding=(pad, pad), dilation=(dilation, dilation),  # type: ignore[operator]
                      mask=mask)
    cg = ci // g
    dt, dev = x.dtype, x.device
    off = offset.reshape(b, g, kk, 2, h, w)
    ys = torch.arange(h, device=dev, dtype=dt).view(1, 1, 1, h, 1)
    xs = torch.arange(w, device=dev, dtype=dt).view(1, 1, 1, 1, w)
    tap = torch.arange(kk, device=dev)
    ty = ((tap // kw) * dilation - pad).to(dt).view(1, 1, kk, 1, 1)
    tx = ((tap % kw) * dilation - pad).to(dt).view(1, 1, kk, 1, 1)
    py = ys + ty + off[:, :, :, 0]  # (B, G, kk, H, W) sample positions in pixels
    px = xs + tx + off[:, :, :, 1]
    # align_corners=False: pixel centre i sits at (2i + 1) / size - 1 (valid for size 1 too)
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)
    grid = grid.reshape(b * g, kk * h, w, 2)
    cols = F.grid_sample(x.reshape(b * g, cg, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)  # (B*G, cg, kk*H, W)
    cols = cols.reshape(b, g, cg, kk, h, w)
    if mask is not None:
        cols = cols * mask.reshape(b, g, 1, kk, h, w)
    cols = cols.reshape(b, ci * kk, h * w)  # row ci*kk + tap: weight (Co, Ci, k, k) flattened
    out = torch.matmul(weight.reshape(co, ci * kk), cols).reshape(b, co, h, w)  # GEMM: faster than a 1x1 conv
    return out if bias is None else out + bias.view(1, co, 1, 1)


class DeformConv2d(nn.Module):
    """Deformable convolution ``(ci -> co, k x k, G offset groups)``, stride 1, 'same' padding;
    forward(x, offset, mask=None) with offsets as in :func:`deform_conv2d`.  Plain torch
    (``grid_sample``); torchvision's op is used when importable and ``impl='auto'``."""

    def __init__(self, ci: int, co: int, k: int = 3, groups: int = 1, bias: bool = True, dilation: int = 1,
                 impl: str = "auto") -> None:
        super().__init__()
        if k % 2 == 0 or k < 1:
            raise ValueError(f"k must be odd, got {k}")
        if groups < 1 or ci % groups:
            raise ValueError(f"in channels {ci} must be divisible by groups={groups}")
        self.ci, self.co, self.k, self.groups, self.dilation, self.impl = ci, co, k, groups, dilation, impl
        self.weight = nn.Parameter(torch.empty(co, ci, k, k))
        self.bias = nn.Parameter(torch.zeros(co)) if bias else None
        he_init(self)

    @property
    def offset_channels(self) -> int:
        return 2 * self.groups * self.k * self.k

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        if offset.shape[1] != self.offset_channels:
            raise ValueError(f"offset has {offset.shape[1]} channels, this layer needs {self.offset_channels}")
        return deform_conv2d(x, offset, self.weight, self.bias, mask, self.dilation, self.impl)

    def extra_repr(self) -> str:
        return f"{self.ci}, {self.co}, k={self.k}, groups={self.groups}, dilation={self.dilation}, impl={self.impl}"


# ----------------------------------------------------------------------------------- VGG-19

# torchvision's vgg19 'E' configuration: conv widths, "M" = 2x2 max pool
_VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG19_TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26, "conv5_4": 34, "relu5_4": 35}
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's file name in the torch hub cache
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_layers(last: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    ci = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(ci, int(v), 3, padding=1), nn.ReLU(inplace=False)]  # tapped convs stay intact
            ci = int(v)
        if len(layers) > last:
            break
    return nn.Sequential(*layers[:last + 1])


def default_vgg19_path() -> Path:
    """Where torchvision would cache its VGG-19 weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


class VGG19Features(nn.Module):
    """Frozen VGG-19 feature taps, torchvision ``features.{i}`` layout (so torchvision's state_dict
    loads), ImageNet normalisation inside; input RGB in [0, 1].  forward(x) -> {tap: tensor}.

    ``weights``: a state_dict file (torchvision format, full model or ``features`` only); default the
    local torch hub cache (:func:`default_vgg19_path`).  Never downloads: missing weights raise
    FileNotFoundError unless ``allow_random`` (tests only: features of a random network)."""

    def __init__(self, taps: Sequence[str] = ("relu2_2", "relu3_4", "relu4_4", "conv5_4"),
                 weights: str | os.PathLike | None = None, allow_random: bool = False) -> None:
        super().__init__()
        bad = [t for t in taps if t not in VGG19_TAPS]
        if bad or not taps:
            raise ValueError(f"unknown VGG-19 taps {bad or taps}; choose from {sorted(VGG19_TAPS)}")
        self.taps = tuple(taps)
        self.features = _vgg_layers(max(VGG19_TAPS[t] for t in self.taps))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        path = Path(weights) if weights is not None else default_vgg19_path()
        self.pretrained = False
        if path.is_file():
            self.load_weights(path)
        elif not allow_random:
            raise FileNotFoundError(f"{path}: no VGG-19 weights; put torchvision's {VGG19_FILE} there (or pass "
                                    "weights=PATH), or use allow_random=True for tests")
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load the ``features.*`` tensors of a torchvision-format VGG-19 state_dict file."""
        try:
            sd = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable torch state_dict ({exc}); re-fetch the VGG-19 weights") from exc
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        own = self.state_dict()
        want = {k: v for k, v in sd.items() if k in own}
        missing = sorted(set(own) - set(want))
        if missing:
            raise ValueError(f"{path}: not a VGG-19 state_dict (missing {missing[:3]}...); pass torchvision's {VGG19_FILE}")
        self.load_state_dict(want)
        self.pretrained = True

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # frozen: always eval

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        want = {VGG19_TAPS[t]: t for t in self.taps}
        out: dict[str, Tensor] = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in want:
                out[want[i]] = h
        return out


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (``trainable_only``: those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
