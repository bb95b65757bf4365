"""MDVD-Net inputs from a batch of samples (models.md 1.1): decoded window, speech, landmarks,
motion vectors as dense fields (1.3), codec priors and the back-projection data.

A batch is ``pycodec.nn.collate`` of samples with the fields of :mod:`pycodec.models.fields`
(``CodecWindowDataset(**dataset_kwargs(codec, train), ...)`` reads them).  Crops of that dataset
are aligned to the codec grid, so block maps, coefficient images and MVs of a crop stay valid;
without a crop, coded-size maps are cut to the display window at ``offset``.  Flips are not used
(coefficient images cannot be flipped as images, models.md 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pycodec.nn import block_flow, chroma_upsample, mv_to_flow
from pycodec.transform import PlaneLayout, frame_layouts, h264_plane_steps

from . import fields as FL

PLANES = ("y", "u", "v")
NEIGHBOURS = (0, 1, 3, 4)  # window positions of t-2, t-1, t+1, t+2
QP_SCALE = 51.0
LOG2_SCALE = 5.0


@dataclass
class BPData:
    """What back-projection needs, per plane ``'y'``, ``'u'``, ``'v'``, batched:

    prediction (B, h, w) in pixel units at display (or crop) size; coeffs (B, Hc, Wc) and steps
    (projection domain: :func:`pycodec.transform.h264_plane_steps` for H.264, ``qstep`` for HEVC) at
    coded (or crop) size; layouts: :class:`PlaneLayout` with torch maps (B, Hc/4, Wc/4); offset
    (B, 2) luma (top, left) of the display window in the coded plane (chroma: half); peak: the
    pixel value of 1.0 (255 for 8 bits, 1023 for 10)."""

    prediction: dict[str, Tensor]
    coeffs: dict[str, Tensor]
    steps: dict[str, Tensor]
    layouts: dict[str, PlaneLayout]
    offset: Tensor
    peak: float = 255.0

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> BPData:
        """Tensors on ``device``; floating ones (prediction, coeffs, steps) as ``dtype``."""
        def fl(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)

        return BPData({k: fl(v) for k, v in self.prediction.items()}, {k: fl(v) for k, v in self.coeffs.items()},
                      {k: fl(v) for k, v in self.steps.items()},
                      {k: lay.to_torch(device) for k, lay in self.layouts.items()}, self.offset.to(device), self.peak)

    def select(self, idx: int | slice) -> BPData:
        """The samples ``idx`` of the batch (an int keeps a batch axis of 1)."""
        sl = slice(idx, idx + 1) if isinstance(idx, int) else idx
        return BPData({k: v[sl] for k, v in self.prediction.items()}, {k: v[sl] for k, v in self.coeffs.items()},
                      {k: v[sl] for k, v in self.steps.items()},
                      {k: lay.map(lambda m: m[sl]) for k, lay in self.layouts.items()}, self.offset[sl], self.peak)


@dataclass
class MDVDInputs:
    """One batch for :class:`pycodec.models.MDVDNet` (all float, [0, 1] unless said):

    frames (B, 5, 3, H, W) decoded YUV of t-2..t+2, chroma bilinear-upsampled; mfcc (B, 21, 52);
    landmarks (B, 68, 2) x, y in pixels of the sample (decoded frame t); mv (B, 4, 3, H, W) per
    neighbour (t-2, t-1, t+1, t+2): dx, dy in pixels (the block at p is at p + (dx, dy) in the
    neighbour) and valid; pred, resid (B, 3, H, W) prediction and signed residual / peak; tu (B, 2,
    H, W) transform-block boundary map and log2(TU size)/5 (0 = no residual); qp (B, 1, H, W)
    qp_y/51; bp: :class:`BPData` or None; origin (B, 2) (top, left) of the sample in its frame
    (places the speech map; None = the sample is the whole frame); decoded: frame t's own 4:2:0
    planes 'y' (B, H, W), 'u', 'v' (B, ceil(H/2), ceil(W/2)) in [0, 1], to which the model adds its
    residual (upsampling then 2x2-averaging the chroma of ``frames`` would blur it; None, or planes
    of another size than ``frames`` (e.g. after rescaling the other inputs): the model averages its
    4:4:4 output).  Branches a model does not use may be None."""

    frames: Tensor
    mfcc: Tensor | None = None
    landmarks: Tensor | None = None
    mv: Tensor | None = None
    pred: Tensor | None = None
    resid: Tensor | None = None
    tu: Tensor | None = None
    qp: Tensor | None = None
    bp: BPData | None = None
    origin: Tensor | None = None
    decoded: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, Tensor) or f.dim() != 5 or f.shape[1:3] != (5, 3):
            raise ValueError(f"frames must be (B, 5, 3, H, W), got {getattr(f, 'shape', type(f))}")
        b, _, _, h, w = f.shape
        want = {"mfcc": None, "landmarks": (b, 68, 2), "mv": (b, 4, 3, h, w), "pred": (b, 3, h, w),
                "resid": (b, 3, h, w), "tu": (b, 2, h, w), "qp": (b, 1, h, w), "origin": (b, 2)}
        for name, shape in want.items():
            t = getattr(self, name)
            if t is None:
                continue
            if name == "mfcc":
                if t.dim() != 3 or t.shape[0] != b:
                    raise ValueError(f"mfcc must be ({b}, T, D), got {tuple(t.shape)}")
            elif tuple(t.shape) != shape:
                raise ValueError(f"{name} must be {shape}, got {tuple(t.shape)}")
        if self.decoded is not None and (not isinstance(self.decoded, dict) or set(self.decoded) != set(PLANES)):
            raise ValueError(f"decoded must be a dict of planes 'y', 'u', 'v', got {type(self.decoded).__name__}")

    def decoded_fits(self) -> bool:
        """``decoded`` is given and matches the size of ``frames`` (after a rescale it may not)."""
        if self.decoded is None:
            return False
        b, _, _, h, w = self.frames.shape
        c = (b, (h + 1) // 2, (w + 1) // 2)
        return (tuple(self.decoded["y"].shape) == (b, h, w) and tuple(self.decoded["u"].shape) == c
                and tuple(self.decoded["v"].shape) == c)

    @property
    def batch_size(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[-2]), int(self.frames.shape[-1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MDVDInputs:
        """A copy on ``device`` with floating tensors as ``dtype`` (origin stays integer)."""
        out: dict[str, Any] = {}
        for fd in fields(self):
            v = getattr(self, fd.name)
            if v is None:
                out[fd.name] = None
            elif isinstance(v, BPData):
                out[fd.name] = v.to(device, dtype)
            elif isinstance(v, dict):
                out[fd.name] = {k: t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)
                                for k, t in v.items()}
            elif v.is_floating_point() and dtype is not None:
                out[fd.name] = v.to(device=device, dtype=dtype)
            else:
                out[fd.name] = v.to(device)
        return replace(self, **out)


# ----------------------------------------------------------------------------------- dataset glue


def dataset_kwargs(codec: str, train: bool, crop: tuple[int, int] | None = None) -> dict[str, Any]:
    """Keyword arguments of :class:`pycodec.nn.CodecWindowDataset` for MDVD-Net samples of ``codec``
    with ground truth: the fields of :mod:`pycodec.models.fields`, the video and speech windows,
    no flips.  ``crop``: (h, w), multiples of the codec grid (16 for H.264, the CTU size, usually
    64, for HEVC): random positions when ``train``, centred otherwise."""
    kw: dict[str, Any] = {"fields": FL.window_fields(), "center_fields": FL.center_fields(codec, target=True),
                          "n": FL.N_FRAMES, "windows": {"audio/mfcc": FL.N_SPEECH}, "hflip": 0.0, "vflip": 0.0,
                          "random_crop": bool(train)}
    if crop is not None:
        kw["crop"] = (int(crop[0]), int(crop[1]))
    return kw


def _need(batch: Mapping[str, Any], name: str) -> Any:
    if name not in batch:
        raise KeyError(f"the batch has no {name!r}; read samples with "
                       "CodecWindowDataset(files, **pycodec.models.dataset_kwargs(codec, train))")
    return batch[name]


def _peak(t: Tensor) -> float:
    """Pixel value of 1.0: 255 for 8-bit planes (uint8), 1023 for 10-bit ones (uint16 -> int32)."""
    return 255.0 if t.dtype == torch.uint8 else 1023.0


def _plane(t: Tensor, peak: float, dtype: torch.dtype) -> Tensor:
    return t.to(dtype) / peak


def _yuv(batch: Mapping[str, Any], group: str, peak: float, dtype: torch.dtype) -> Tensor:
    """(..., 3, H, W) of ``group/{y,u,v}`` with chroma bilinear-upsampled to the luma size."""
    y = _plane(_need(batch, f"{group}/y"), peak, dtype)
    size = (int(y.shape[-2]), int(y.shape[-1]))
    u, v = (chroma_upsample(_plane(_need(batch, f"{group}/{k}"), peak, dtype), size) for k in "uv")
    return torch.stack([y, u, v], -3)


def to_display(m: Tensor, offset: Tensor, size: tuple[int, int], sub: int = 1) -> Tensor:
    """Cut maps (B, ..., Hm, Wm) of the coded plane (or of a crop) to the display window ``size``
    at ``offset // sub`` (per sample); maps already of that size are returned as they are."""
    if tuple(m.shape[-2:]) == tuple(size):
        return m
    h, w = size
    offs = (offset // sub).tolist()
    if all(o == offs[0] for o in offs):
        t, left = offs[0]
        return m[..., t:t + h, left:left + w]
    return torch.stack([m[i, ..., t:t + h, left:left + w] for i, (t, left) in enumerate(offs)])


def block_up(m: Tensor, block: int = 4) -> Tensor:
    """Nearest upsampling of a (..., H4, W4) block map to samples."""
    return m.repeat_interleave(block, -1).repeat_interleave(block, -2)


def motion_fields(batch: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, 4, 3, Hm, Wm) dense fields towards t-2, t-1, t+1, t+2 (models.md 1.3): dx, dy in
    pixels and valid, at the size of the block maps (coded plane or crop)."""
    poc = _need(batch, "frame/poc")
    args = [_need(batch, f"block/{n}") for n in ("mv_l0", "mv_l1", "ref_l0", "ref_l1", "ref_poc_l0",
                                                  "ref_poc_l1", "mode")]
    out = []
    for j in NEIGHBOURS:
        mv, valid = block_flow(*args, poc=poc[:, FL.N_FRAMES], target_poc=poc[:, j])
        flow = mv_to_flow(mv, valid, dtype=dtype)
        out.append(torch.cat([flow, block_up(valid.to(dtype)).unsqueeze(1)], 1))
    return torch.stack(out, 1)


def tu_map(layout_y: PlaneLayout, tu_log2: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, 2, Hm, Wm): 1 on both sides of every luma transform-block edge (block sizes from the
    layout, also where no residual was coded), and ``block/tu_log2 / 5`` (0 = no residual)."""
    lg = torch.as_tensor(np.asarray(layout_y.log2) if not isinstance(layout_y.log2, Tensor) else layout_y.log2)
    size = block_up(torch.ones_like(lg, dtype=torch.int64) << lg.to(torch.int64))
    hm, wm = size.shape[-2:]
    yy = torch.arange(hm).view(-1, 1) % size
    xx = torch.arange(wm).view(1, -1) % size
    edge = (yy == 0) | (yy == size - 1) | (xx == 0) | (xx == size - 1)
    return torch.stack([edge.to(dtype), block_up(tu_log2.to(dtype)) / LOG2_SCALE], 1)


def make_inputs(batch: Mapping[str, Any], codec: str, bp: bool = True,
                dtype: torch.dtype = torch.float32) -> MDVDInputs:
    """:class:`MDVDInputs` of a collated CPU batch (see the module docstring; layouts are built
    with numpy); ``bp``: also the back-projection data.  Move the result with ``.to(device)``."""
    if codec not in FL.CENTER_CODEC:
        raise ValueError(f"codec must be 'h264' or 'hevc', got {codec!r}")
    dec_y = _need(batch, "decoded/y")
    if dec_y.dim() != 4 or dec_y.shape[1] != 2 * FL.N_FRAMES + 1:
        raise ValueError(f"decoded/y must be a window (B, {2 * FL.N_FRAMES + 1}, H, W), got {tuple(dec_y.shape)}")
    peak = _peak(dec_y)
    size = (int(dec_y.shape[-2]), int(dec_y.shape[-1]))
    offset = torch.as_tensor(_need(batch, "offset")).to(torch.int64)
    frames = _yuv(batch, "decoded", peak, dtype)

    mf = torch.as_tensor(_need(batch, "audio/mfcc")).to(dtype)
    mfcc = mf.reshape(mf.shape[0], mf.shape[1], -1)
    lm = torch.nan_to_num(torch.as_tensor(_need(batch, "landmarks/decoded")).to(dtype))

    mv = to_display(motion_fields(batch, dtype), offset, size)
    pred = _yuv(batch, "prediction", peak, dtype)
    resid = _yuv(batch, "residual", peak, dtype)
    arrays = {k: v for k, v in batch.items() if isinstance(v, Tensor)}
    lays = frame_layouts(arrays, codec) if codec == "h264" else \
        _hevc_layouts(arrays, 8 if peak == 255.0 else 10)
    tu = to_display(tu_map(lays["y"], _need(batch, "block/tu_log2"), dtype), offset, size)
    qp = to_display(block_up(_need(batch, "block/qp_y").to(dtype)).unsqueeze(1) / QP_SCALE, offset, size)

    bpd = None
    if bp:
        bpd = bp_data(batch, codec, lays, peak, dtype)
    decoded = {k: _plane(_need(batch, f"decoded/{k}")[:, FL.N_FRAMES], peak, dtype) for k in PLANES}
    return MDVDInputs(frames=frames, mfcc=mfcc, landmarks=lm, mv=mv, pred=pred, resid=resid, tu=tu, qp=qp,
                      bp=bpd, origin=offset.clone(), decoded=decoded)


def _hevc_layouts(arrays: Mapping[str, Any], bit_depth: int) -> dict[str, PlaneLayout]:
    from pycodec.transform import hevc_frame_layouts

    return hevc_frame_layouts(arrays, bit_depth)


def bp_data(batch: Mapping[str, Any], codec: str, layouts: dict[str, PlaneLayout] | None = None,
            peak: float | None = None, dtype: torch.dtype = torch.float32) -> BPData:
    """The :class:`BPData` of a collated batch (layouts from the block maps when not given)."""
    arrays = {k: v for k, v in batch.items() if isinstance(v, Tensor)}
    if peak is None:
        peak = _peak(_need(batch, "prediction/y"))
    if layouts is None:
        layouts = frame_layouts(arrays, codec) if codec == "h264" else \
            _hevc_layouts(arrays, 8 if peak == 255.0 else 10)
    pred, coeffs, steps = {}, {}, {}
    dc_qmul = batch.get("h264/dc_qmul") if codec == "h264" else None
    if codec == "h264" and dc_qmul is None:
        raise KeyError("the batch has no 'h264/dc_qmul' (the DC steps of H.264's Hadamard paths); "
                       "read samples with pycodec.models.dataset_kwargs('h264', ...)")
    for k in PLANES:
        pred[k] = _need(batch, f"prediction/{k}").to(dtype)
        coeffs[k] = _need(batch, f"coeffs/{k}").to(dtype)
        q = _need(batch, f"qstep/{k}").to(dtype)
        steps[k] = h264_plane_steps(q, dc_qmul, layouts[k], k) if codec == "h264" else q
    lays = {k: lay.to_torch(pred["y"].device) for k, lay in layouts.items()}
    return BPData(pred, coeffs, steps, lays, torch.as_tensor(_need(batch, "offset")).to(torch.int64), float(peak))


def target_planes(batch: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """The ground truth ``gt/{y,u,v}`` of a batch as float planes in [0, 1] (B, h, w)."""
    gt = _need(batch, "gt/y")
    peak = _peak(gt)
    return {k: _plane(_need(batch, f"gt/{k}"), peak, dtype) for k in PLANES}
