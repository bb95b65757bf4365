"""Back-projection (MDVD-Net section 3.6): clamp the coefficients of (restored - prediction) into
the quantization intervals the bitstream implies, then transform back and add the prediction.

Exact codec transforms from :mod:`pycodec.transform`; the H.264 DC paths are constrained in their
Hadamard domain (docs/transforms.md).  Differentiable (gradient 1 inside the interval, 0 where a
coefficient is clamped), batched, CPU/CUDA, float32/float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pycodec.transform import IntervalModel, PlaneLayout, intervals, plane_inverse
from pycodec.transform.blockwise import planned
from pycodec.transform.plan import TransformPlan, host


def _check_float(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def embed_plane(plane: Tensor, base: Tensor, offset: Sequence[int] = (0, 0)) -> Tensor:
    """Put a display-size plane (..., h, w) into a coded-size tensor ``base`` (..., H, W) at
    ``offset`` = (top, left), differentiably (the rest of ``base`` is kept)."""
    top, left = int(offset[0]), int(offset[1])
    h, w = plane.shape[-2:]
    H, W = base.shape[-2:]
    if top < 0 or left < 0 or top + h > H or left + w > W:
        raise ValueError(f"a {h}x{w} plane at offset ({top}, {left}) does not fit the coded {H}x{W} plane")
    if (h, w) == (H, W):
        return plane
    out = base.clone()
    out[..., top:top + h, left:left + w] = plane
    return out


def _to_lead(a: Tensor, lead: tuple[int, ...]) -> Tensor:
    """``a`` (..., H, W) broadcast so that its leading shape ends with ``lead``."""
    al = tuple(a.shape[:-2])
    if len(al) >= len(lead) and al[len(al) - len(lead):] == lead:
        return a
    return a.expand(*torch.broadcast_shapes(al, lead), *a.shape[-2:])


def _bounds(plan: TransformPlan, coeffs: Tensor, steps: Tensor, layout: PlaneLayout, model: IntervalModel,
            lo_hi: tuple[Tensor, Tensor] | None, like: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """(lo, hi) in the plan's permuted order (rows x size) and the rows' leading shape."""
    dt, dev = like.dtype, like.device
    if lo_hi is not None:
        lo, hi = (_to_lead(torch.as_tensor(b, device=dev).to(dt), plan.lead) for b in lo_hi)
        lo, hi = torch.broadcast_tensors(lo, hi)
        return plan.gather(lo), plan.gather(hi), tuple(lo.shape[:lo.ndim - 2 - len(plan.lead)])
    coeffs, steps = torch.broadcast_tensors(_to_lead(coeffs, plan.lead), _to_lead(steps, plan.lead))
    rows = tuple(coeffs.shape[:coeffs.ndim - 2 - len(plan.lead)])
    c = plan.gather(plan.dc_map(coeffs, True))
    s = plan.gather(steps)
    constrained: Tensor | bool = True
    if plan.free_start < plan.size or not model.constrain_uncoded:
        cons = torch.ones(plan.size, dtype=torch.bool, device=dev)
        cons[plan.free_start:] = False  # FREE cells: no transform, no constraint
        constrained = cons
        if not model.constrain_uncoded:
            coded = plan.gather_cells(torch.as_tensor(host(layout.coded), device=dev).to(torch.bool))
            constrained = cons & coded
    intra: Tensor | bool = False
    if not model.is_symmetric:
        intra = plan.gather_cells(torch.as_tensor(host(layout.intra), device=dev).to(torch.bool))
    lo, hi = intervals(c, s, model, intra=intra, constrained=constrained)
    return lo, hi, rows


def back_project(restored: Tensor, prediction: Tensor, coeffs: Tensor, steps: Tensor,
                 layout: PlaneLayout, model: IntervalModel | None = None,
                 offset: Sequence[int] = (0, 0), lo_hi: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Project one plane (see :class:`BackProjection`); returns the projected plane at the size of
    ``restored``.  ``lo_hi``: precomputed coefficient-image bounds (projection domain) instead of
    the intervals of ``model``."""
    _check_float("restored", restored)
    _check_float("prediction", prediction)
    if restored.shape != prediction.shape:
        raise ValueError(f"restored {tuple(restored.shape)} and prediction {tuple(prediction.shape)} differ in shape")
    if coeffs.shape[-2:] != steps.shape[-2:]:
        raise ValueError(f"coeffs {tuple(coeffs.shape)} and steps {tuple(steps.shape)} differ in shape")
    model = model or IntervalModel()
    dt, dev = restored.dtype, restored.device
    coeffs = torch.as_tensor(coeffs, device=dev).to(dt)
    steps = torch.as_tensor(steps, device=dev).to(dt)
    e = restored - prediction
    if e.shape[-2:] != coeffs.shape[-2:]:
        # the coded area outside the display window keeps the decoder's own residual
        base = plane_inverse(coeffs, layout, dc_domain=False)
        base = base.expand(*torch.broadcast_shapes(e.shape[:-2], base.shape[:-2]), *base.shape[-2:])
        e = embed_plane(e, base, offset)
    plan, e = planned(e, layout)
    x = plan.forward_perm(e)  # the coefficients of every transform unit, in the plan's permuted order
    lo, hi, rows = _bounds(plan, coeffs, steps, layout, model, lo_hi, e)
    x = torch.clamp(x, min=lo, max=hi)
    lead = (*torch.broadcast_shapes(tuple(e.shape[:e.ndim - 2 - len(plan.lead)]), rows), *plan.lead)
    e2 = plan.scatter(plan.inverse_perm(x), lead)
    h, w = restored.shape[-2:]
    top, left = (int(offset[0]), int(offset[1])) if e2.shape[-2:] != (h, w) else (0, 0)
    return prediction + e2[..., top:top + h, left:left + w]

class BackProjection(nn.Module):
    """``X = P + G(clamp(F(Y - P), lo, hi))`` per plane, with ``[lo, hi]`` the quantization
    intervals of the decoded coefficients under ``model`` (default: the paper's symmetric
    ``[c - step/2, c + step/2]``).  No weights.

    forward(restored, prediction, coeffs, steps, layout, offset=(0, 0)):
      restored, prediction: float (..., h, w) in pixel units (0..255 for 8 bits), display or coded size;
      coeffs: the ``coeffs/*`` image (..., H, W) at coded size; steps: the projection-domain step
      image (``pycodec.transform.h264_plane_steps``; 0 = no constraint); layout: the plane's
      :class:`~pycodec.transform.PlaneLayout` (numpy or torch, batch axes matching);
      offset: (top, left) of the display window inside the coded plane (the stream's crop).
    ``clip``: optional (min, max) applied to the output (clipping can move coefficients out again).
    """

    def __init__(self, model: IntervalModel | None = None, clip: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.model = model or IntervalModel.symmetric()
        if clip is not None and clip[0] > clip[1]:
            raise ValueError(f"clip must be (min, max) with min <= max, got {clip}")
        self.clip = clip

    def forward(self, restored: Tensor, prediction: Tensor, coeffs: Tensor, steps: Tensor,
                layout: PlaneLayout, offset: Sequence[int] = (0, 0)) -> Tensor:
        out = back_project(restored, prediction, coeffs, steps, layout, self.model, offset)
        if self.clip is not None:
            out = out.clamp(self.clip[0], self.clip[1])
        return out

    def extra_repr(self) -> str:
        return f"model={self.model}, clip={self.clip}"
