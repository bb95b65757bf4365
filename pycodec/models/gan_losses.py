"""Keyframes-GAN losses (models.md 2.3): hinge losses of the multi-scale discriminator, the
generator's weighted adversarial term, perceptual and Gram (style) losses on VGG-19 taps, and the
total generator loss L_G = 300 MSE + 10 perceptual + 1 style + 2 L_adv,G.

Logits are lists with one map per discriminator scale (full scale first); features are either
dicts keyed by tap name (as :class:`~pycodec.models.blocks.VGG19Features` returns) or lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ADV_SCALE_WEIGHTS = (4.0, 2.0, 1.0, 1.0)  # lambda_r for scales 1, 2, 4, 8
Features = Mapping[str, Tensor] | Sequence[Tensor]


def _as_list(logits: Tensor | Sequence[Tensor], what: str) -> list[Tensor]:
    """A list of logit maps (a lone tensor is one scale); empty raises ValueError."""
    out = [logits] if isinstance(logits, Tensor) else list(logits)
    if not out:
        raise ValueError(f"{what}: no logits given")
    return out


def d_hinge_loss(real_logits: Tensor | Sequence[Tensor], fake_logits: Tensor | Sequence[Tensor]) -> Tensor:
    """L_D = sum_r mean(relu(1 - D_r(real))) + mean(relu(1 + D_r(fake))): the discriminator's hinge
    loss summed (unweighted) over scales.  Pass fake logits of a detached generator output."""
    real, fake = _as_list(real_logits, "real_logits"), _as_list(fake_logits, "fake_logits")
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real logit maps but {len(fake)} fake ones")
    total = real[0].new_zeros(())
    for r, (lr, lf) in enumerate(zip(real, fake, strict=True)):
        if lr.shape != lf.shape:
            raise ValueError(f"scale {r}: real logits {tuple(lr.shape)} and fake {tuple(lf.shape)} differ")
        total = total + F.relu(1 - lr).mean() + F.relu(1 + lf).mean()
    return total


def g_adversarial_loss(fake_logits: Tensor | Sequence[Tensor],
                       weights: Sequence[float] = ADV_SCALE_WEIGHTS) -> Tensor:
    """L_adv,G = -sum_r lambda_r mean(D_r(fake)), ``weights`` (lambda = 4, 2, 1, 1) truncated to the
    number of scales; fewer weights than scales raise ValueError."""
    fake = _as_list(fake_logits, "fake_logits")
    if len(weights) < len(fake):
        raise ValueError(f"{len(fake)} logit maps but only {len(weights)} scale weights {tuple(weights)}")
    total = fake[0].new_zeros(())
    for lam, lf in zip(weights, fake, strict=False):
        total = total - float(lam) * lf.mean()
    return total


def gram(features: Tensor) -> Tensor:
    """Gram matrices Psi Psi^T / (C H W) per sample: (B, C, H, W) -> (B, C, C).  Half-precision input
    is computed and returned in float32 (a sum over H*W products overflows float16)."""
    if features.dim() != 4:
        raise ValueError(f"gram needs (B, C, H, W) features, got {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def _pairs(feats_out: Features, feats_gt: Features) -> list[tuple[str, Tensor, Tensor]]:
    """(name, out, gt) per layer; the two sides must have the same keys (or length) and shapes.  A lone
    tensor is one layer (not a list of per-sample maps)."""
    if isinstance(feats_out, Tensor):
        feats_out = [feats_out]
    if isinstance(feats_gt, Tensor):
        feats_gt = [feats_gt]
    if isinstance(feats_out, Mapping) != isinstance(feats_gt, Mapping):
        raise ValueError("feats_out and feats_gt must both be dicts or both be lists")
    if isinstance(feats_out, Mapping):
        assert isinstance(feats_gt, Mapping)
        if set(feats_out) != set(feats_gt):
            raise ValueError(f"feature layers differ: {sorted(feats_out)} vs {sorted(feats_gt)}")
        pairs = [(str(k), feats_out[k], feats_gt[k]) for k in feats_out]
    else:
        out, gt = list(feats_out), list(feats_gt)
        if len(out) != len(gt):
            raise ValueError(f"{len(out)} output feature maps but {len(gt)} ground-truth ones")
        pairs = [(str(i), a, b) for i, (a, b) in enumerate(zip(out, gt, strict=True))]
    if not pairs:
        raise ValueError("no feature layers given")
    for name, a, b in pairs:
        if a.shape != b.shape:
            raise ValueError(f"layer {name}: output features {tuple(a.shape)} and ground truth {tuple(b.shape)} differ")
    return pairs


def perceptual_loss(feats_out: Features, feats_gt: Features) -> Tensor:
    """sum_l MSE(Psi_l(out), Psi_l(gt)), every layer weight 1."""
    pairs = _pairs(feats_out, feats_gt)
    return torch.stack([F.mse_loss(a, b) for _, a, b in pairs]).sum()


def style_loss(feats_out: Features, feats_gt: Features) -> Tensor:
    """sum_l MSE(Gram(Psi_l(out)), Gram(Psi_l(gt))), every layer weight 1."""
    pairs = _pairs(feats_out, feats_gt)
    return torch.stack([F.mse_loss(gram(a), gram(b)) for _, a, b in pairs]).sum()


def generator_loss(out: Tensor, gt: Tensor, feats_out: Features, feats_gt: Features,
                   fake_logits: Tensor | Sequence[Tensor] | None, w_pix: float = 300.0, w_perc: float = 10.0,
                   w_style: float = 1.0, w_adv: float = 2.0,
                   adv_weights: Sequence[float] = ADV_SCALE_WEIGHTS) -> tuple[Tensor, dict[str, Tensor]]:
    """L_G = w_pix MSE(out, gt) + w_perc perceptual + w_style style + w_adv L_adv,G (models.md 2.3).

    ``feats_*``: the separate frozen VGG-19's taps of ``out`` and ``gt`` (relu2_2, relu3_4,
    relu4_4, conv5_4); ``fake_logits``: the discriminator on ``out`` (not detached), or None for a
    reconstruction-only step (the adversarial term is then 0).  Returns (total, parts) with the
    unweighted, detached terms ``pix``, ``perc``, ``style``, ``adv`` and the detached ``total``."""
    if out.shape != gt.shape:
        raise ValueError(f"output {tuple(out.shape)} and ground truth {tuple(gt.shape)} differ")
    pix = F.mse_loss(out, gt)
    perc = perceptual_loss(feats_out, feats_gt)
    sty = style_loss(feats_out, feats_gt)
    adv = pix.new_zeros(()) if fake_logits is None else g_adversarial_loss(fake_logits, adv_weights)
    total = w_pix * pix + w_perc * perc + w_style * sty + w_adv * adv
    parts = {"pix": pix, "perc": perc, "style": sty, "adv": adv, "total": total}
    return total, {k: v.detach() for k, v in parts.items()}
