"""Whole-plane transforms: a residual plane and a :class:`PlaneLayout` -> the coefficient image
(every transform block's coefficients in its own footprint, natural orientation, as in
``coeffs/*``) and back.  numpy or torch (batched, differentiable, any device), same results.

With ``dc_domain=True`` the DC positions of H.264 DC-path blocks (intra 16x16 luma, 4:2:0
chroma) hold the Hadamard-domain values that the encoder quantized (``Z = H Cdc H / 16`` or
``/ 4``, the entry of Hadamard frequency (a, b) at the DC position of block (a, b) of the group)
instead of the per-block DCs: that is the domain in which their quantization intervals live.

The work is done by a cached :class:`~pycodec.transform.plan.TransformPlan` per layout.
"""

from __future__ import annotations

import numpy as np

from ._backend import Array, as_float, is_torch
from .layout import PlaneLayout
from .plan import TransformPlan, plan_for


def planned(x: Array, layout: PlaneLayout) -> tuple[TransformPlan, Array]:
    """The plan for ``x`` and ``x`` broadcast to the plan's leading shape where needed."""
    x = as_float(x)
    plan = plan_for(layout, x)
    nl = len(plan.lead)
    if tuple(x.shape[len(x.shape) - 2 - nl:-2]) != plan.lead or x.ndim - 2 < nl:
        shape = (*plan.lead, *x.shape[-2:])
        x = x.expand(*shape) if is_torch(x) else np.broadcast_to(x, shape)
    return plan, x


def to_dc_domain(coeffs: Array, layout: PlaneLayout) -> Array:
    """Coefficient image (as exported) -> the same with DC-path DCs in the Hadamard domain."""
    plan, c = planned(coeffs, layout)
    return plan.dc_map(c, True)


def from_dc_domain(coeffs: Array, layout: PlaneLayout) -> Array:
    """Inverse of :func:`to_dc_domain`."""
    plan, c = planned(coeffs, layout)
    return plan.dc_map(c, False)


def plane_forward(residual: Array, layout: PlaneLayout, dc_domain: bool = True) -> Array:
    """F over a plane: residual (..., H, W) -> coefficient image (..., H, W).  FREE blocks pass
    through unchanged.  H, W: the plane's coded size (blocks must lie inside it)."""
    plan, x = planned(residual, layout)
    c = plan.forward(x)
    return c if dc_domain else plan.dc_map(c, False)


def plane_inverse(coeffs: Array, layout: PlaneLayout, dc_domain: bool = True) -> Array:
    """G over a plane: coefficient image -> float residual; ``dc_domain`` says whether the DC-path
    positions of ``coeffs`` hold Hadamard-domain values (as :func:`plane_forward` returns them)."""
    plan, c = planned(coeffs, layout)
    return plan.inverse(c if dc_domain else plan.dc_map(c, True))



def plane_rounding_bound(layout: PlaneLayout, h: int, w: int, eps: float = 0.5) -> np.ndarray:
    """Per coefficient of an ``h x w`` plane (projection domain): the largest change of ``F`` when
    every residual sample moves by at most ``eps`` -- how far the decoder's integer rounding of the
    residual alone can push ``F(residual)`` from the decoded coefficient (0 on FREE cells)."""
    return plan_for(layout, np.zeros((h, w))).rounding_bound(eps)
