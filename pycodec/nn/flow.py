"""Motion vectors to dense flow and warping.  Convention of schema ``pycodec/1``: the block at
``p`` is predicted from the reference at ``p + mv/4`` (quarter luma samples), so warping the
reference with the flow aligns it to the current frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MODE_INTRA, MODE_PCM, MODE_BYPASS = 0, 3, 4


def _as_tensor(x: object, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception as exc:
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from exc


def mv_to_flow(mv: Tensor, valid: Tensor | None = None, block: int = 4, dtype: torch.dtype = torch.float32) -> Tensor:
    """Block motion vectors (..., H4, W4, 2) in quarter samples (x, y) -> dense flow
    (..., 2, H4*block, W4*block) in samples (channel 0 = x, 1 = y), constant over each block;
    zero where ``valid`` (..., H4, W4) is False."""
    mv = _as_tensor(mv, "mv")
    if mv.dim() < 3 or mv.shape[-1] != 2:
        raise ValueError(f"mv must have shape (..., H4, W4, 2), got {tuple(mv.shape)}")
    f = mv.to(dtype) / 4.0
    if valid is not None:
        valid = _as_tensor(valid, "valid").to(mv.device)
        if valid.shape != mv.shape[:-1]:
            raise ValueError(f"valid must have shape {tuple(mv.shape[:-1])}, got {tuple(valid.shape)}")
        f = f * valid.unsqueeze(-1).to(dtype)
    f = f.movedim(-1, -3)
    return f.repeat_interleave(block, dim=-1).repeat_interleave(block, dim=-2)


def block_flow(mv_l0: Tensor, mv_l1: Tensor, ref_l0: Tensor, ref_l1: Tensor, ref_poc_l0: Tensor,
               ref_poc_l1: Tensor, mode: Tensor, poc: Tensor | int, target_poc: Tensor | int) -> tuple[Tensor, Tensor]:
    """Per 4x4 block, the motion towards the picture with POC ``target_poc`` (models.md 1.3):
    the list whose reference is that picture; otherwise list 0 (else list 1) scaled by
    ``(target - poc) / (ref_poc - poc)``.  Intra, PCM and bypass blocks: 0 and invalid.  Skip
    blocks carry their derived motion and are valid.  Returns (mv (..., H4, W4, 2) float quarter
    samples, valid (..., H4, W4) bool); feed them to :func:`mv_to_flow`."""
    mv0, mv1 = _as_tensor(mv_l0, "mv_l0").float(), _as_tensor(mv_l1, "mv_l1").float()
    r0, r1 = _as_tensor(ref_l0, "ref_l0"), _as_tensor(ref_l1, "ref_l1")
    p0, p1 = _as_tensor(ref_poc_l0, "ref_poc_l0"), _as_tensor(ref_poc_l1, "ref_poc_l1")
    md = _as_tensor(mode, "mode")
    if not (mv0.shape == mv1.shape and mv0.shape[:-1] == r0.shape == r1.shape == p0.shape == p1.shape == md.shape):
        raise ValueError("mv_l0/mv_l1 (..., H4, W4, 2) and ref/ref_poc/mode maps (..., H4, W4) must agree in shape")
    lead = r0.dim() - 2
    poc_t = torch.as_tensor(poc, device=mv0.device).reshape(*([-1] * (lead > 0)), *([1] * 2)).float() \
        if lead else torch.as_tensor(poc, device=mv0.device).float()
    tgt = torch.as_tensor(target_poc, device=mv0.device).float()
    tgt = tgt.reshape(*tgt.shape, *([1] * 2)) if tgt.dim() else tgt
    use0, use1 = r0 >= 0, r1 >= 0
    inter = (md != MODE_INTRA) & (md != MODE_PCM) & (md != MODE_BYPASS) & (use0 | use1)
    d = tgt - poc_t
    exact0 = use0 & (p0.float() == tgt)
    exact1 = use1 & (p1.float() == tgt) & ~exact0

    def scaled(mv: Tensor, pr: Tensor) -> Tensor:
        den = pr.float() - poc_t
        s = torch.where(den != 0, d / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(den))
        return mv * s.unsqueeze(-1)

    out = torch.where(use0.unsqueeze(-1), scaled(mv0, p0), scaled(mv1, p1))
    out = torch.where(exact1.unsqueeze(-1), mv1, out)
    out = torch.where(exact0.unsqueeze(-1), mv0, out)
    out = torch.where(inter.unsqueeze(-1), out, torch.zeros_like(out))
    return out, inter


def downsample_flow(flow: Tensor, factor: int = 2) -> Tensor:
    """Luma flow (..., 2, H, W) -> chroma flow for subsampling ``factor`` (averaged over each
    factor x factor cell, values divided by ``factor``)."""
    if flow.dim() < 3 or flow.shape[-3] != 2:
        raise ValueError(f"flow must have shape (..., 2, H, W), got {tuple(flow.shape)}")
    lead = flow.shape[:-3]
    h, w = flow.shape[-2:]
    x = F.avg_pool2d(flow.reshape(-1, 2, h, w), factor, ceil_mode=True) / factor
    return x.reshape(*lead, 2, x.shape[-2], x.shape[-1])


def warp(image: Tensor, flow: Tensor, mode: str = "bilinear", padding_mode: str = "border") -> Tensor:
    """Backward warp: ``out(p) = image(p + flow(p))`` with bilinear sampling (differentiable in the
    image and the flow).  image (B, C, H, W) float, flow (B, 2, H, W) in samples (x, y)."""
    if not isinstance(image, Tensor) or not image.is_floating_point() or image.dim() != 4:
        raise ValueError(f"image must be a float tensor (B, C, H, W), got {getattr(image, 'shape', type(image))}")
    if not isinstance(flow, Tensor) or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be a tensor (B, 2, H, W), got {getattr(flow, 'shape', type(flow))}")
    b, _, h, w = image.shape
    if flow.shape[0] != b or flow.shape[-2:] != (h, w):
        raise ValueError(f"flow {tuple(flow.shape)} does not match image {tuple(image.shape)}")
    flow = flow.to(image.dtype)
    ys = torch.arange(h, dtype=image.dtype, device=image.device)
    xs = torch.arange(w, dtype=image.dtype, device=image.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    sx = gx + flow[:, 0]
    sy = gy + flow[:, 1]
    # align_corners=True: -1 and 1 are the centres of the corner samples
    nx = 2 * sx / max(w - 1, 1) - 1
    ny = 2 * sy / max(h - 1, 1) - 1
    grid = torch.stack([nx, ny], -1)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
