"""Quantization intervals: where the true coefficient of a decoded one can lie.

The paper's symmetric interval ``[c - step/2, c + step/2]`` assumes a round-to-nearest quantizer.
Real encoders use a rounding offset theta < 1/2 (dead zone) and RDO/trellis quantization, which
shift and widen the cell; :class:`IntervalModel` makes those parameters explicit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._backend import Array, as_float, is_torch, to_like, where


@dataclass(frozen=True)
class IntervalModel:
    """Sign-aware quantization cell around a decoded coefficient ``c`` with step ``s``.

    For level ``k = round(c / s) != 0`` the true value ``x`` satisfies
    ``sign(k) x in [|c| - (theta + widen_in) s, |c| + (1 - theta + widen_out) s]``;
    for ``k = 0``: ``|x| <= zero_halfwidth * s`` (default ``1 - theta + widen_out``).
    ``theta`` is the encoder's rounding offset (x264: ``level = floor(|x|/s + theta)``), chosen per
    block by ``theta_intra`` / ``theta_inter``.  ``theta = 1/2`` with no widening is the symmetric
    interval ``[c - s/2, c + s/2]``.  ``constrain_uncoded=False`` leaves blocks without coded
    residual (skip, cbp bit clear) unconstrained instead of giving them level-0 intervals.
    """

    theta_intra: float = 0.5
    theta_inter: float = 0.5
    widen_in: float = 0.0
    widen_out: float = 0.0
    zero_halfwidth: float | None = None
    constrain_uncoded: bool = True

    def __post_init__(self) -> None:
        for name in ("theta_intra", "theta_inter"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("widen_in", "widen_out"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.zero_halfwidth is not None and self.zero_halfwidth < 0:
            raise ValueError(f"zero_halfwidth must be >= 0, got {self.zero_halfwidth}")

    @classmethod
    def symmetric(cls) -> IntervalModel:
        """The paper's ``[c - s/2, c + s/2]`` (round-to-nearest quantizer)."""
        return cls()

    @classmethod
    def x264_deadzone(cls, pad: float = 0.02) -> IntervalModel:
        """x264 without trellis: dead zones theta = 21/64 (intra), 11/64 (inter), padded by ``pad``
        steps on both sides for the rounding of x264's integer tables."""
        return cls(theta_intra=21 / 64, theta_inter=11 / 64, widen_in=pad, widen_out=pad)

    @classmethod
    def x264_trellis(cls) -> IntervalModel:
        """x264 with trellis (default in most presets): each level is the nearest one or one less
        in magnitude: ``sign(k) x in [|c| - s/2, |c| + 3s/2]``, ``|x| <= 3s/2`` at level 0."""
        return cls(widen_out=1.0)

    @classmethod
    def x265_deadzone(cls, pad: float = 0.02) -> IntervalModel:
        """x265 with ``rdoq-level=0`` (preset medium and faster): rounding offsets 171/512 in I
        slices, 85/512 in P/B slices, padded by ``pad`` steps.  x265 chooses the offset by slice
        type, not by block: pass layouts whose ``intra`` marks the I-slice frames.  Sign data
        hiding (x265's default ``signhide``) moves one level per 4x4 group by one outside it."""
        return cls(theta_intra=171 / 512, theta_inter=85 / 512, widen_in=pad, widen_out=pad)

    @property
    def is_symmetric(self) -> bool:
        """True when the cell is exactly ``[c - s/2, c + s/2]`` (also at level 0)."""
        return (self.theta_intra == self.theta_inter == 0.5 and self.widen_in == self.widen_out == 0
                and self.zero_halfwidth in (None, 0.5))


def intervals(centers: Array, steps: Array, model: IntervalModel | None = None,
              intra: Array | bool = False, constrained: Array | bool = True) -> tuple[Array, Array]:
    """(lo, hi) bounds of the true coefficients.  ``centers``: decoded coefficients (in the
    projection domain), ``steps``: their steps (<= 0: no interval), ``intra``: mask choosing
    theta, ``constrained``: mask (False: no interval).  Unconstrained entries get -inf/+inf."""
    model = model or IntervalModel()
    c = as_float(centers)
    s = as_float(steps)
    if is_torch(c) or is_torch(s):
        import torch

        s = to_like(s, c).to(c.dtype) if is_torch(c) else s
        c = to_like(c, s).to(s.dtype) if not is_torch(c) else c
        if model.is_symmetric:  # fast path (back-projection's default): [c - s/2, c + s/2]
            ok = s > 0
            if constrained is not True:
                ok = ok & torch.as_tensor(constrained, device=c.device)
            half = torch.where(ok, s * 0.5, torch.full((), float("inf"), dtype=c.dtype, device=c.device))
            return c - half, c + half
        intra_t = torch.as_tensor(intra, device=c.device)
        theta = torch.where(intra_t, torch.tensor(model.theta_intra, dtype=c.dtype, device=c.device),
                            torch.tensor(model.theta_inter, dtype=c.dtype, device=c.device))
        sign = torch.sign(c)
        absc = c.abs()
        inf = torch.tensor(float("inf"), dtype=c.dtype, device=c.device)
        ok = (s > 0) & torch.as_tensor(constrained, device=c.device)
        safe = torch.where(s > 0, s, torch.ones_like(s))
        zero = (torch.round(absc / safe) == 0) & (not model.is_symmetric)
    else:
        theta = np.where(np.asarray(intra), model.theta_intra, model.theta_inter)
        sign = np.sign(c)
        absc = np.abs(c)
        inf = np.inf
        ok = (s > 0) & np.asarray(constrained)
        safe = np.where(s > 0, s, 1.0)
        zero = (np.round(absc / safe) == 0) & (not model.is_symmetric)
    zhw = (1 - theta + model.widen_out) if model.zero_halfwidth is None else model.zero_halfwidth + 0 * theta
    a_lo = absc - (theta + model.widen_in) * s
    a_hi = absc + (1 - theta + model.widen_out) * s
    # sign(k) x in [a_lo, a_hi]  ->  x in [a_lo, a_hi] (k > 0) or [-a_hi, -a_lo] (k < 0)
    neg = sign < 0
    lo = where(zero, -zhw * s, where(neg, -a_hi, a_lo))
    hi = where(zero, zhw * s, where(neg, -a_lo, a_hi))
    lo = where(ok, lo, -inf)
    hi = where(ok, hi, inf)
    return lo, hi
