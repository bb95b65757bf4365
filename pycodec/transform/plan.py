"""Compiled transform plans: a :class:`PlaneLayout` turned once into index arrays and small
matrices, so that a whole plane's blockwise F or G is a few gathers and matmuls (numpy or torch,
any device) instead of a pass per block kind over the whole plane.

Every transform *unit* of a layout is a square of ``n x n`` samples whose ``n*n`` values are
gathered (row-major) and mapped by one linear operator:

* ``dense``: a ``(n^2, n^2)`` matrix (H.264 4x4/8x8, HEVC DCT 4/8 and DST 4, and the H.264 DC
  paths, where the unit is the whole intra-16x16 macroblock or 4:2:0 chroma 8x8 and the matrix
  includes the Hadamard transform of the blocks' DCs, i.e. the projection domain);
* ``sep``: ``L X R`` with ``n x n`` matrices (HEVC DCT 16/32);
* ``scale``: a scalar (HEVC transform skip);
* ``id``: FREE 4x4 cells (no transform, no constraint).

The matrices are built by applying the reference block functions of :mod:`.h264` / :mod:`.hevc`
to the unit basis, so a plan computes exactly what those functions compute.  Plans are cached
(LRU) by the content of the layout's ``family``/``log2``/``dc`` maps and the plane size.  The
*permuted* domain of a plan is the concatenation of all units' values (units of one kind
contiguous, FREE cells last); back-projection clamps there and never un-permutes in between.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from ._backend import Array, as_float, is_torch
from .h264 import (
    chroma_dc_from_hadamard,
    chroma_dc_to_hadamard,
    h264_forward,
    h264_inverse,
    luma_dc_from_hadamard,
    luma_dc_to_hadamard,
)
from .hevc import _mats, _ts_scale, hevc_forward, hevc_inverse
from .layout import DC_CHROMA2, DC_LUMA16, DC_NONE, FAMILY_NAMES, FREE, H264, HEVC_DCT, HEVC_DST, HEVC_SKIP

_CACHE_SIZE = 256
# Plans hold int64 indices of every sample (about 64 bytes per sample with their torch copies): a
# 1080p frame's plan is ~130 MB, so the cache is bounded by bytes too (the newest plan always stays).
_CACHE_BYTES = 256 << 20
_HEVC_KIND = {HEVC_DCT: "dct", HEVC_DST: "dst", HEVC_SKIP: "skip"}
_DC_GROUP = {DC_LUMA16: (16, 4), DC_CHROMA2: (8, 2)}  # unit side, blocks per side


# ----------------------------------------------------------------------------------- unit operators


def _basis(fn: Any, n: int) -> np.ndarray:
    """Matrix ``A`` with ``vec(fn(X)) = vec(X) @ A`` (row-major vec), from fn on the unit basis."""
    e = np.eye(n * n).reshape(n * n, n, n)
    return np.ascontiguousarray(np.asarray(fn(e), np.float64).reshape(n * n, n * n))


def _blocks4(x: np.ndarray) -> np.ndarray:
    """(k, n, n) -> (k, n/4, n/4, 4, 4) 4x4 blocks."""
    k, n, _ = x.shape
    return x.reshape(k, n // 4, 4, n // 4, 4).swapaxes(2, 3)


def _unblocks4(b: np.ndarray) -> np.ndarray:
    k, g, _, _, _ = b.shape
    return b.swapaxes(2, 3).reshape(k, 4 * g, 4 * g)


def _dc_fns(dc: int) -> tuple[Any, Any]:
    return (luma_dc_to_hadamard, luma_dc_from_hadamard) if dc == DC_LUMA16 else (chroma_dc_to_hadamard,
                                                                                chroma_dc_from_hadamard)


def _dc_group_forward(x: np.ndarray, dc: int) -> np.ndarray:
    """Reference F of one DC-path group: 4x4 F per block, then the DCs to the Hadamard domain."""
    out = _unblocks4(h264_forward(_blocks4(x)))
    out[:, ::4, ::4] = _dc_fns(dc)[0](out[:, ::4, ::4])
    return out


def _dc_group_inverse(c: np.ndarray, dc: int) -> np.ndarray:
    """Reference G of one DC-path group (its DCs in the Hadamard domain)."""
    c = np.array(c, np.float64)
    c[:, ::4, ::4] = _dc_fns(dc)[1](c[:, ::4, ::4])
    return _unblocks4(h264_inverse(_blocks4(c)))


@dataclass(frozen=True)
class UnitOp:
    """How one unit kind is transformed: ``op`` in dense/sep/scale/id, forward and inverse data."""

    n: int
    op: str
    fwd: Any
    inv: Any


@cache
def unit_op(family: int, log2: int, dc: int, bit_depth: int) -> UnitOp:
    """The operator of a (family, log2, dc) unit (float64 numpy matrices, built once)."""
    if family == FREE:
        return UnitOp(4, "id", None, None)
    if family == H264:
        if dc != DC_NONE:
            if log2 != 2 or dc not in _DC_GROUP:
                raise ValueError(f"H.264 DC-path blocks must be 4x4 with a known DC code, got log2 {log2}, dc {dc}")
            n = _DC_GROUP[dc][0]
            return UnitOp(n, "dense", _basis(lambda x: _dc_group_forward(x, dc), n),
                          _basis(lambda x: _dc_group_inverse(x, dc), n))
        if log2 not in (2, 3):
            raise ValueError(f"H.264 transform blocks are 4x4 or 8x8, got log2 {log2}")
        n = 1 << log2
        return UnitOp(n, "dense", _basis(h264_forward, n), _basis(h264_inverse, n))
    if family in _HEVC_KIND:
        kind, n = _HEVC_KIND[family], 1 << log2
        if dc != DC_NONE:
            raise ValueError("HEVC blocks have no DC path")
        if kind == "dst" and n != 4 or not 4 <= n <= 32:
            raise ValueError(f"invalid HEVC {kind} size {n}x{n}")
        if kind == "skip":
            s = _ts_scale(n, bit_depth)
            return UnitOp(n, "scale", 1.0 / s, s)
        if n <= 8:
            return UnitOp(n, "dense", _basis(lambda x: hevc_forward(x, kind, bit_depth), n),
                          _basis(lambda x: hevc_inverse(x, kind, bit_depth), n))
        m, mi = _mats(kind, n)
        return UnitOp(n, "sep", (2.0 ** (27 - bit_depth) * mi.T, mi), (m.T / 2.0 ** (27 - bit_depth), m))
    raise ValueError(f"unknown transform family {family}")


# ----------------------------------------------------------------------------------- plans


@dataclass(eq=False)
class Group:
    """All units of one kind: ``idx`` (N, n*n) flat sample indices, ``start:stop`` in the permuted
    vector; ``dc_pos`` (DC-path units) the in-unit offsets of the blocks' DCs."""

    code: tuple[int, int, int]
    unit: UnitOp
    idx: np.ndarray
    start: int
    stop: int
    dc_pos: np.ndarray | None


class TransformPlan:
    """A layout compiled for planes of ``h x w`` samples (see the module docstring).  ``lead``: the
    layout's leading (batch) shape; planes may add leading axes in front of it."""

    def __init__(self, family: np.ndarray, log2: np.ndarray, dc: np.ndarray, bit_depth: int, h: int, w: int) -> None:
        self.lead = tuple(family.shape[:-2])
        self.h, self.w, self.bit_depth = h, w, bit_depth
        h4, w4 = family.shape[-2:]
        if (h4, w4) != ((h + 3) // 4, (w + 3) // 4):
            raise ValueError(f"plane of {h}x{w} samples needs a layout of {(h + 3) // 4}x{(w + 3) // 4} 4x4 blocks, "
                             f"got {h4}x{w4} (is the plane at coded size?)")
        p = int(np.prod(self.lead, dtype=np.int64))
        fam = family.reshape(p, h4, w4).astype(np.int64)
        lg = log2.reshape(p, h4, w4).astype(np.int64)
        dcm = dc.reshape(p, h4, w4).astype(np.int64)
        lg = np.where(fam == FREE, 2, lg)
        dcm = np.where(fam == FREE, DC_NONE, dcm)
        code = (fam * 8 + lg) * 4 + dcm
        kinds = [(int(c) // 32, int(c) // 4 % 8, int(c) % 4) for c in np.unique(code)]
        ops = {k: unit_op(*k, bit_depth) for k in kinds}
        nmax = max([u.n for u in ops.values()] + [4])
        self.hp, self.wp = -(-h // nmax) * nmax, -(-w // nmax) * nmax
        ch, cw = self.hp // 4, self.wp // 4
        if (ch, cw) != (h4, w4):  # units at a ragged edge: extend the layout by its edge cells
            code = np.pad(code, ((0, 0), (0, ch - h4), (0, cw - w4)), mode="edge")
        self.size = p * self.hp * self.wp
        groups: list[Group] = []
        pos = 0
        cy, cx = np.mgrid[0:ch, 0:cw]
        order = sorted(kinds, key=lambda k: (k[0] == FREE, k))
        for k in order:
            u = ops[k]
            c = (k[0] * 8 + k[1]) * 4 + k[2]
            m = u.n // 4
            sel = code == c
            if m > 1:
                cnt = sel.reshape(p, ch // m, m, cw // m, m).sum(axis=(2, 4))
                if np.any((cnt != 0) & (cnt != m * m)):
                    raise ValueError(f"inconsistent layout: {FAMILY_NAMES[k[0]]} {u.n}x{u.n} blocks must cover whole, "
                                     "size-aligned squares of the 4x4 grid")
                sel = sel & (cy % m == 0) & (cx % m == 0)
            pi, oy, ox = np.nonzero(sel)
            base = pi * (self.hp * self.wp) + 4 * oy * self.wp + 4 * ox
            off = (np.arange(u.n)[:, None] * self.wp + np.arange(u.n)[None, :]).ravel()
            idx = base[:, None] + off[None, :]
            dc_pos = None
            if k[2] != DC_NONE:
                g = _DC_GROUP[k[2]][1]
                dc_pos = ((4 * np.arange(g))[:, None] * u.n + 4 * np.arange(g)[None, :]).ravel()
            groups.append(Group(k, u, idx, pos, pos + idx.size, dc_pos))
            pos += idx.size
        if pos != self.size:
            raise ValueError("inconsistent layout: transform blocks overlap or leave gaps")
        self.groups = groups
        self.perm = np.concatenate([g.idx.ravel() for g in groups])
        self.inv_perm = np.empty_like(self.perm)
        self.inv_perm[self.perm] = np.arange(self.size)
        # the FREE cells (identity units) form the tail of the permuted order
        self.free_start = groups[-1].start if groups[-1].code[0] == FREE else self.size
        # the 4x4 cell (flat index into the (P, hp/4, wp/4) grid) of every permuted position
        pi, r = np.divmod(self.perm, self.hp * self.wp)
        ry, rx = np.divmod(r, self.wp)
        self.cells = (pi * ch + ry // 4) * cw + rx // 4
        self._torch: dict[Any, Any] = {}
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Memory the plan holds or will hold: its index arrays, twice (numpy and torch copies)."""
        own = self.perm.nbytes + self.inv_perm.nbytes + self.cells.nbytes + sum(g.idx.nbytes for g in self.groups)
        return 2 * own

    # ------------------------------------------------------------------ backend data
    def _t_index(self, device: Any) -> dict[str, Any]:
        """Index tensors on ``device`` (built once per device)."""
        key = str(device)
        with self._lock:
            if key not in self._torch:
                import torch

                t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.int64, device=device)
                self._torch[key] = {
                    "perm": t(self.perm), "inv_perm": t(self.inv_perm),
                    "idx": [t(g.idx.ravel()) for g in self.groups],
                    "dc": [t((g.idx[:, g.dc_pos]).ravel()) if g.dc_pos is not None else None for g in self.groups],
                    "cells": t(self.cells),
                }
            return self._torch[key]

    def _mats(self, x: Array) -> list[tuple[Any, Any]]:
        """Per group (forward, inverse) operator data in the dtype/device of ``x``."""
        if not is_torch(x):
            return [(g.unit.fwd, g.unit.inv) for g in self.groups]
        key = (str(x.dtype), str(x.device))
        with self._lock:
            if key not in self._torch:
                import torch

                def conv(a: Any) -> Any:
                    if isinstance(a, np.ndarray):
                        return torch.as_tensor(a, dtype=x.dtype, device=x.device)
                    if isinstance(a, tuple):
                        return tuple(conv(b) for b in a)
                    return a

                self._torch[key] = [(conv(g.unit.fwd), conv(g.unit.inv)) for g in self.groups]
            return self._torch[key]

    # ------------------------------------------------------------------ shapes
    def _flat(self, x: Array) -> tuple[Array, tuple[int, ...]]:
        """(..., h, w) -> (M, size) zero-padded and flattened; returns the leading shape too."""
        lead = tuple(x.shape[:-2])
        if tuple(x.shape[-2:]) != (self.h, self.w):
            raise ValueError(f"plane of {tuple(x.shape[-2:])} does not match the plan's {self.h}x{self.w}")
        nl = len(self.lead)
        if lead[len(lead) - nl:] != self.lead or len(lead) < nl:
            raise ValueError(f"leading shape {lead} does not end with the layout's {self.lead}")
        ph, pw = self.hp - self.h, self.wp - self.w
        if ph or pw:
            if is_torch(x):
                import torch.nn.functional as F

                x = F.pad(x, (0, pw, 0, ph))
            else:
                x = np.pad(x, [(0, 0)] * len(lead) + [(0, ph), (0, pw)])
        return x.reshape(-1, self.size), lead

    def _unflat(self, y: Array, lead: tuple[int, ...]) -> Array:
        y = y.reshape(*lead, self.hp, self.wp) if lead else y.reshape(self.hp, self.wp)
        return y[..., : self.h, : self.w]

    # ------------------------------------------------------------------ permuted domain
    def gather(self, x: Array) -> Array:
        """Plane (..., h, w) -> its values in permuted order (M, size) (no transform)."""
        x2, _ = self._flat(x)
        if is_torch(x2):
            return x2.index_select(1, self._t_index(x2.device)["perm"])
        return x2[:, self.perm]

    def scatter(self, y: Array, lead: tuple[int, ...]) -> Array:
        """Inverse of :meth:`gather` (``lead``: the plane's leading shape)."""
        if is_torch(y):
            return self._unflat(y.index_select(1, self._t_index(y.device)["inv_perm"]), lead)
        return self._unflat(y[:, self.inv_perm], lead)

    def gather_cells(self, m: Array) -> Array:
        """A per-4x4-cell map (..., h4, w4) of the layout (e.g. ``coded``, ``intra``) -> its value at
        every permuted position (M, size)."""
        ch, cw = self.hp // 4, self.wp // 4
        h4, w4 = m.shape[-2:]
        if is_torch(m):
            import torch.nn.functional as F

            if (ch, cw) != (h4, w4):
                m = F.pad(m.reshape(-1, 1, h4, w4).float(), (0, cw - w4, 0, ch - h4), mode="replicate").to(m.dtype)
            return m.reshape(-1, self.size // 16).index_select(1, self._t_index(m.device)["cells"])
        m = np.asarray(m)
        if (ch, cw) != (h4, w4):
            m = np.pad(m.reshape(-1, h4, w4), ((0, 0), (0, ch - h4), (0, cw - w4)), mode="edge")
        return m.reshape(-1, self.size // 16)[:, self.cells]

    def _apply(self, parts: list[Array], inverse: bool, like: Array) -> Array:
        out = []
        for g, v, (fwd, inv) in zip(self.groups, parts, self._mats(like), strict=True):
            u, a = g.unit, (inv if inverse else fwd)
            if u.op == "dense":
                v = (v.reshape(v.shape[0], -1, u.n * u.n) @ a).reshape(v.shape[0], -1)
            elif u.op == "sep":
                v = (a[0] @ v.reshape(v.shape[0], -1, u.n, u.n) @ a[1]).reshape(v.shape[0], -1)
            elif u.op == "scale":
                v = v * a
            out.append(v)
        if is_torch(like):
            import torch

            return torch.cat(out, dim=1) if len(out) > 1 else out[0]
        return np.concatenate(out, axis=1)

    def forward_perm(self, x: Array) -> Array:
        """F of every unit: plane (..., h, w) -> coefficients in permuted order (M, size), DC-path
        DCs in their Hadamard domain."""
        x = as_float(x)
        x2, _ = self._flat(x)
        if is_torch(x2):
            ti = self._t_index(x2.device)["idx"]
            parts = [x2.index_select(1, i) for i in ti]
        else:
            parts = [x2[:, g.idx.ravel()] for g in self.groups]
        return self._apply(parts, False, x2)

    def inverse_perm(self, y: Array) -> Array:
        """G of every unit: permuted coefficients (M, size) -> flat residual (M, size) in permuted order."""
        parts = [y[:, g.start:g.stop] for g in self.groups]
        return self._apply(parts, True, y)

    def rounding_bound(self, eps: float = 0.5) -> np.ndarray:
        """Largest change of each projection-domain coefficient when every residual sample changes
        by at most ``eps`` (e.g. the decoder's rounding to integers): ``eps * sum_i |A[i, j]|`` over
        the unit operator; 0 on FREE cells.  numpy (h, w) with the layout's leading shape."""
        parts = []
        for g in self.groups:
            u, nu = g.unit, len(g.idx)
            if u.op == "dense":
                b = np.abs(u.fwd).sum(axis=0)
            elif u.op == "sep":
                b = np.outer(np.abs(u.fwd[0]).sum(axis=1), np.abs(u.fwd[1]).sum(axis=0)).ravel()
            elif u.op == "scale":
                b = np.full(u.n * u.n, abs(u.fwd))
            else:
                b = np.zeros(u.n * u.n)
            parts.append(np.tile(eps * b, nu))
        return self.scatter(np.concatenate(parts)[None], self.lead)

    # ------------------------------------------------------------------ planes
    def forward(self, x: Array) -> Array:
        """F over the plane (DC-path DCs in the Hadamard domain)."""
        lead = tuple(x.shape[:-2])
        return self.scatter(self.forward_perm(x), lead)

    def inverse(self, c: Array) -> Array:
        """G over the plane (``c`` with DC-path DCs in the Hadamard domain)."""
        c = as_float(c)
        lead = tuple(c.shape[:-2])
        return self.scatter(self.inverse_perm(self.gather(c)), lead)

    def dc_map(self, c: Array, to_hadamard: bool) -> Array:
        """Coefficient image with the DC-path DCs moved to (or from) the Hadamard domain."""
        c = as_float(c)
        dcg = [(i, g) for i, g in enumerate(self.groups) if g.dc_pos is not None]
        if not dcg:
            return c
        c2, lead = self._flat(c)
        fns = {DC_LUMA16: (luma_dc_to_hadamard, luma_dc_from_hadamard),
               DC_CHROMA2: (chroma_dc_to_hadamard, chroma_dc_from_hadamard)}
        if is_torch(c2):
            out = c2.clone()
            ti = self._t_index(c2.device)["dc"]
            for i, g in dcg:
                k = _DC_GROUP[g.code[2]][1]
                v = c2.index_select(1, ti[i]).reshape(c2.shape[0], -1, k, k)
                v = fns[g.code[2]][0 if to_hadamard else 1](v)
                out = out.index_copy(1, ti[i], v.reshape(c2.shape[0], -1))
        else:
            out = c2.copy()
            for _i, g in dcg:
                k = _DC_GROUP[g.code[2]][1]
                sel = g.idx[:, g.dc_pos].ravel()
                v = c2[:, sel].reshape(c2.shape[0], -1, k, k)
                out[:, sel] = fns[g.code[2]][0 if to_hadamard else 1](v).reshape(c2.shape[0], -1)
        return self._unflat(out, lead)


# ----------------------------------------------------------------------------------- cache

_plans: OrderedDict[tuple, TransformPlan] = OrderedDict()
_plans_lock = threading.Lock()


def host(a: Array) -> np.ndarray:
    """A layout map as a host numpy array (one small copy for device tensors)."""
    return np.asarray(a.detach().cpu()) if is_torch(a) else np.asarray(a)


def get_plan(layout: Any, h: int, w: int, lead: tuple[int, ...] | None = None) -> TransformPlan:
    """The (cached) plan of ``layout`` for ``h x w`` planes; ``lead``: broadcast the layout's
    leading shape to this one first (when it is not already a suffix of the planes' shape)."""
    fam, lg, dc = host(layout.family), host(layout.log2), host(layout.dc)
    if lead is not None and tuple(fam.shape[:-2]) != tuple(lead):
        fam, lg, dc = (np.broadcast_to(a, (*lead, *a.shape[-2:])) for a in (fam, lg, dc))
    fam, lg, dc = (np.ascontiguousarray(a, np.int8) for a in (fam, lg, dc))
    key = (fam.shape, fam.tobytes(), lg.tobytes(), dc.tobytes(), int(layout.bit_depth), h, w)
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    plan = TransformPlan(fam, lg, dc, int(layout.bit_depth), h, w)
    with _plans_lock:
        _plans[key] = plan
        total = sum(p.nbytes for p in _plans.values())
        while len(_plans) > 1 and (len(_plans) > _CACHE_SIZE or total > _CACHE_BYTES):
            total -= _plans.popitem(last=False)[1].nbytes
    return plan


def plan_for(layout: Any, x: Array) -> TransformPlan:
    """The plan of ``layout`` for planes shaped like ``x`` (..., h, w), broadcasting the layout's
    leading axes when they are not a suffix of ``x``'s."""
    h, w = x.shape[-2:]
    xl = tuple(x.shape[:-2])
    ll = tuple(layout.family.shape[:-2])
    if len(ll) <= len(xl) and xl[len(xl) - len(ll):] == ll:
        return get_plan(layout, h, w)
    return get_plan(layout, h, w, tuple(np.broadcast_shapes(xl, ll)))


def clear_cache() -> None:
    """Forget all cached plans."""
    with _plans_lock:
        _plans.clear()
