"""Frame-level glue for schema ``pycodec/1``: layouts, step images and intervals of whole planes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._backend import Array, as_float, copy, is_torch, repeat2d, to_like, where
from .blockwise import to_dc_domain
from .intervals import IntervalModel, intervals
from .layout import DC_CHROMA2, DC_LUMA16, FREE, PlaneLayout, h264_layouts, hevc_layouts, hevc_tu_layouts

_PLANE_INDEX = {"y": 0, "u": 1, "v": 2}


def _need(arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in arrays:
        raise KeyError(f"field {name!r} is missing; extract the 'block' (and 'h264') groups to build layouts")
    return np.asarray(arrays[name])


def h264_frame_layouts(arrays: Mapping[str, np.ndarray]) -> dict[str, PlaneLayout]:
    """{'y', 'u', 'v'} layouts of an H.264 frame (or a stack of frames) from its schema arrays
    (``block/tkind``, ``block/mode``, ``block/pu_w``, optional ``h264/cbp``)."""
    luma, chroma = h264_layouts(_need(arrays, "block/tkind"), _need(arrays, "block/mode"),
                                _need(arrays, "block/pu_w"), arrays.get("h264/cbp"))
    return {"y": luma, "u": chroma, "v": chroma}


def hevc_frame_layouts(arrays: Mapping[str, np.ndarray], bit_depth: int | None = None) -> dict[str, PlaneLayout]:
    """{'y', 'u', 'v'} layouts of an HEVC frame (or a stack of frames) from its schema arrays: exact
    from ``hevc/tu`` + ``hevc/counts`` when present (:func:`hevc_tu_layouts`), else approximated
    from ``block/tkind``, ``block/tu_log2`` (:func:`hevc_layouts`: TUs without coded luma residual
    are FREE, chroma is assumed DCT).  ``bit_depth``: default 8, or 10 when the frame's
    ``decoded``/``prediction`` planes are uint16."""
    if bit_depth is None:
        planes = [arrays[k] for k in ("decoded/y", "prediction/y", "recon/y") if k in arrays]
        bit_depth = 10 if planes and np.asarray(planes[0]).dtype == np.uint16 else 8
    mode = _need(arrays, "block/mode")
    if "hevc/tu" in arrays and "hevc/counts" in arrays:
        y, u, v = hevc_tu_layouts(arrays["hevc/tu"], np.asarray(arrays["hevc/counts"])[..., 1], mode, bit_depth)
        return {"y": y, "u": u, "v": v}
    luma, chroma = hevc_layouts(_need(arrays, "block/tkind"), _need(arrays, "block/tu_log2"), mode, bit_depth)
    return {"y": luma, "u": chroma, "v": chroma}


def frame_layouts(arrays: Mapping[str, np.ndarray], codec: str) -> dict[str, PlaneLayout]:
    """{'y', 'u', 'v'} layouts of an H.264 or HEVC frame (``codec`` as in the file's attributes)."""
    if codec == "h264":
        return h264_frame_layouts(arrays)
    if codec == "hevc":
        return hevc_frame_layouts(arrays)
    raise ValueError(f"codec must be 'h264' or 'hevc', got {codec!r}")


def h264_plane_steps(qstep: Array, dc_qmul: Array | None, layout: PlaneLayout, plane: str) -> Array:
    """Step image in the projection domain: ``qstep/*`` with the DC positions of DC-path blocks
    (where the export stores 0) set to the Hadamard-domain DC step from ``h264/dc_qmul``
    (luma ``qmul / 256``, chroma ``qmul / 128``).  ``dc_qmul=None`` leaves those DCs unconstrained."""
    s = as_float(qstep)
    if dc_qmul is None:
        return s
    if plane not in _PLANE_INDEX:
        raise ValueError(f"plane must be 'y', 'u' or 'v', got {plane!r}")
    k = _PLANE_INDEX[plane]
    q = to_like(dc_qmul, s)[..., k]
    q = q.to(s.dtype) if is_torch(q) else q.astype(s.dtype)
    div, rep = (256.0, 4) if k == 0 else (128.0, 2)
    dcs = repeat2d(q / div, rep)  # per MB -> per DC position (every 4th sample)
    dcm = to_like(layout.dc, s)
    want = DC_LUMA16 if k == 0 else DC_CHROMA2
    out = copy(s)
    grid = out[..., ::4, ::4]
    sel = dcm[..., : grid.shape[-2], : grid.shape[-1]] == want
    vals = dcs[..., : grid.shape[-2], : grid.shape[-1]]
    out[..., ::4, ::4] = where(sel, vals, grid)
    return out


def plane_intervals(coeffs: Array, steps: Array, layout: PlaneLayout,
                    model: IntervalModel | None = None) -> tuple[Array, Array]:
    """(lo, hi) of every coefficient of a plane in the projection domain (DC-path DCs in the
    Hadamard domain).  ``coeffs``: the exported coefficient image; ``steps``: from
    :func:`h264_plane_steps` (or ``qstep/*``).  FREE blocks, steps <= 0 and, unless
    ``model.constrain_uncoded``, blocks without coded residual are unconstrained (+-inf)."""
    model = model or IntervalModel()
    centers = to_dc_domain(coeffs, layout)
    fam = repeat2d(to_like(layout.family, centers), 4)
    h, w = centers.shape[-2:]
    constrained = fam[..., :h, :w] != FREE
    if not model.constrain_uncoded:
        constrained = constrained & repeat2d(to_like(layout.coded, centers), 4)[..., :h, :w]
    intra = repeat2d(to_like(layout.intra, centers), 4)[..., :h, :w]
    return intervals(centers, to_like(steps, centers), model, intra=intra, constrained=constrained)
