"""Datasets over ``pycodec/1`` files: windows of 2n+1 frames of chosen fields, crops aligned to
the codec grid (so block maps, coefficient images and MVs stay valid), flips that also flip
block maps and motion vectors, HDF5 files opened lazily per worker process."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

SCHEMA = "pycodec/1"
PLANE_GROUPS = ("decoded", "prediction", "residual", "recon", "gt")  # display size (gt: dataset shards)
# Dataset-shard groups (docs/schema.md "Dataset shards") that are per-frame values, not images:
# x, y points in display pixels (moved by crops, mirrored by flips), and plain per-frame values.
POINT_FIELDS = ("landmarks/gt", "landmarks/decoded", "face/box")
VALUE_GROUPS = ("audio", "crop", "keyframes", "face", "landmarks", "frame")
# 68-point mirror permutation (iBUG order): point i of a mirrored face is point MIRROR_68[i].
MIRROR_68 = np.array([*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                      45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48,
                      59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
COEF_GROUPS = ("coeffs", "levels", "qstep")  # coded size, per-block frequency layout
MV_FIELDS = ("block/mv_l0", "block/mv_l1")
TRAILING_AXES = {"block/mv_l0": 1, "block/mv_l1": 1, "h264/dc_qmul": 1, "hevc/sao": 2}
HEVC_ROWS = ("hevc/tu", "hevc/cu", "hevc/counts")  # records with positions, not maps
LAYOUT_FIELDS = {"h264": ("block/tkind", "block/mode", "block/pu_w"),
                 "hevc": ("hevc/tu", "hevc/counts", "block/mode")}  # what flipping coefficient images reads


def _attr(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


class ShardFiles:
    """Lazily opened HDF5 handles of ``self.paths``, one set per process: a worker process forked
    by a DataLoader opens its own (HDF5 handles must not cross a fork), and pickling drops them."""

    paths: list[str]
    _pid: int = -1
    _handles: dict[int, h5py.File]

    def _file(self, i: int) -> h5py.File:
        if self._pid != os.getpid():  # a new worker process: never share handles across a fork
            self._pid, self._handles = os.getpid(), {}
        if i not in self._handles:
            self._handles[i] = h5py.File(self.paths[i], "r")
        return self._handles[i]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, -1
        return state

    def close(self) -> None:
        """Close the HDF5 handles this process opened."""
        for h in self._handles.values():
            h.close()
        self._handles = {}


class CodecWindowDataset(ShardFiles, Dataset):
    """Samples = (file, centre frame t): each field of ``fields`` as a window (2n+1, ...) of frames
    t-n..t+n (``edge='replicate'`` repeats the first/last frame, ``'skip'`` only uses centres with a
    full window), each of ``center_fields`` for frame t only.

    ``crop=(h, w)``: a window of the display area whose size and coded position are multiples of the
    codec grid (16 for H.264, attribute ``ctu_size`` or 64 for HEVC); random per sample when
    ``random_crop`` (seeded by ``seed``, the sample index and :meth:`set_epoch`), else centred.
    ``hflip``/``vflip``: probabilities of flipping the sample; planes and block/MB maps are
    mirrored and motion vectors negated.  Coefficient images (coeffs, levels, qstep) are mirrored
    with the residual they describe (:func:`pycodec.transform.flip_coefficients`: exact for the
    H.264 transforms, the HEVC DCTs and transform skip; HEVC DST 4x4 blocks become unconstrained,
    qstep 0), using the frame's layout (H.264: ``block/tkind``, ``block/mode``, ``block/pu_w``; HEVC:
    ``hevc/tu``, ``hevc/counts``, ``block/mode`` must be in the file); this needs a crop, or a stream
    whose display area is the whole coded frame.  ``hevc/tu``, ``hevc/cu`` and ``hevc/counts`` are
    cropped and mirrored as records (rows inside the window, positions in window coordinates).

    Each sample also has ``offset`` = (top, left) of the crop in the coded plane (luma), which is
    what :class:`pycodec.nn.BackProjection` needs for display-size planes.

    Dataset shards (``make dataset``) add ``gt/{y,u,v}`` (cropped and flipped like ``decoded/``),
    ``landmarks/{gt,decoded}`` and ``face/box`` (x, y in display pixels: shifted by the crop,
    mirrored by flips, with the 68-point left/right permutation) and per-frame values such as
    ``audio/mfcc``.  ``windows`` gives fields their own half-window, e.g. ``{"audio/mfcc": 10}`` for
    the papers' 21 speech steps around frame t (edges replicated).
    """

    def __init__(self, files: str | os.PathLike | Sequence[str | os.PathLike], fields: Iterable[str] = ("decoded/y",),
                 center_fields: Iterable[str] = (), n: int = 2, crop: tuple[int, int] | None = None,
                 random_crop: bool = True, hflip: float = 0.0, vflip: float = 0.0, seed: int = 0,
                 edge: str = "replicate", windows: dict[str, int] | None = None) -> None:
        paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        if not paths:
            raise ValueError("no files given; pass one or more pycodec/1 files written by `pycodec extract`")
        if n < 0:
            raise ValueError(f"n must be >= 0 (window of 2n+1 frames), got {n}")
        if edge not in ("replicate", "skip"):
            raise ValueError(f"edge must be 'replicate' or 'skip', got {edge!r}")
        if not (0 <= hflip <= 1 and 0 <= vflip <= 1):
            raise ValueError("hflip and vflip are probabilities in [0, 1]")
        self.paths = [os.fspath(p) for p in paths]
        self.fields = tuple(fields)
        self.center_fields = tuple(center_fields)
        self.windows = dict(windows or {})
        for name, k in self.windows.items():
            if name not in self.fields:
                raise ValueError(f"windows: {name!r} is not one of the fields {self.fields}")
            if int(k) < 0:
                raise ValueError(f"windows: {name!r} needs a half-window >= 0, got {k}")
        if not self.fields and not self.center_fields:
            raise ValueError("no fields asked for; name schema paths such as 'decoded/y'")
        self._coef_flips = bool(hflip or vflip) and any(f.split("/")[0] in COEF_GROUPS
                                                         for f in self.fields + self.center_fields)
        self.n, self.crop, self.random_crop = n, crop, random_crop
        self.hflip, self.vflip, self.seed, self.edge = hflip, vflip, seed, edge
        self.epoch = 0
        self.meta = [self._inspect(p) for p in self.paths]
        self.index: list[tuple[int, int]] = []
        for i, m in enumerate(self.meta):
            lo, hi = (n, m["frames"] - n) if edge == "skip" else (0, m["frames"])
            self.index += [(i, t) for t in range(lo, hi)]
        self._pid = -1
        self._handles: dict[int, h5py.File] = {}

    # ------------------------------------------------------------------ files
    def _inspect(self, path: str) -> dict[str, Any]:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file; check the path or extract it with `pycodec extract`")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"{path}: not a readable HDF5 file; pass a file written by `pycodec extract`") from exc
        with f:
            schema = _attr(f.attrs.get("schema"))
            if schema != SCHEMA:
                raise ValueError(f"{path}: schema is {schema!r}, expected {SCHEMA!r}; re-extract it with `pycodec extract`")
            present = set()
            f.visititems(lambda k, o: present.add(k) if isinstance(o, h5py.Dataset) else None)
            for name in self.fields + self.center_fields:
                if name not in present:
                    group = name.split("/")[0]
                    raise KeyError(f"{path}: field {name!r} is not in the file (fields extracted: "
                                   f"{_attr(f.attrs.get('fields', '?'))}); re-extract with --fields including {group!r}")
            a = {k: _attr(v) for k, v in f.attrs.items()}
            codec = a.get("codec", "h264")
            grid = 16 if codec == "h264" else int(a.get("ctu_size", 64))
            crop = [int(v) for v in a.get("crop", (0, 0, 0, 0))]
            meta = {"frames": int(f["frame/pts"].shape[0]), "codec": codec, "grid": grid,
                    "height": int(a["height"]), "width": int(a["width"]), "top": crop[0], "left": crop[2],
                    "coded": (int(a.get("coded_height", a["height"])), int(a.get("coded_width", a["width"]))),
                    "bit_depth": int(a.get("bit_depth", 8))}
            if self._coef_flips:
                need = LAYOUT_FIELDS[codec]
                if not set(need) <= present:
                    raise KeyError(f"{path}: flipping coefficient images needs the frame layout ({', '.join(need)}); "
                                   "re-extract with --fields including 'block'" + (" and 'hevc'" if codec == "hevc" else ""))
                if self.crop is None and (any(crop) or meta["coded"] != (meta["height"], meta["width"])):
                    raise ValueError(f"{path}: flipping coefficient images needs a crop (the display area is not the "
                                     "whole coded frame, so mirrored blocks would not line up with mirrored planes)")
        if self.crop is not None:
            ch, cw = self.crop
            if ch % grid or cw % grid or ch <= 0 or cw <= 0:
                raise ValueError(f"{path}: crop {self.crop} must be positive multiples of the codec grid ({grid})")
            if not self._positions(meta, 0, ch, meta["height"]) or not self._positions(meta, 1, cw, meta["width"]):
                raise ValueError(f"{path}: no grid-aligned {ch}x{cw} window fits the {meta['width']}x{meta['height']} "
                                 "display area; use a smaller crop")
        if meta["frames"] == 0:
            raise ValueError(f"{path}: the file has no frames")
        return meta

    @staticmethod
    def _positions(meta: dict[str, Any], axis: int, size: int, extent: int) -> list[int]:
        """Display offsets whose coded position is on the grid and whose window fits."""
        off = meta["top"] if axis == 0 else meta["left"]
        g = meta["grid"]
        return [k * g - off for k in range((off + g - 1) // g, (off + extent) // g + 1) if k * g - off + size <= extent]

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops/flips (the same epoch gives the same samples)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self.index)

    def _read(self, f: h5py.File, name: str, frames: list[int], win: tuple[int, int, int, int] | None,
              meta: dict[str, Any]) -> np.ndarray:
        ds = f[name]
        uniq = sorted(set(frames))
        data = ds[uniq]
        data = data[[uniq.index(t) for t in frames]]
        return crop_field(name, data, win, meta)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"sample {idx} out of range (dataset has {len(self)})")
        fi, t = self.index[idx % len(self)]
        meta = self.meta[fi]
        rng = np.random.default_rng([self.seed, self.epoch, idx % len(self)])
        win = None
        y0 = x0 = 0
        if self.crop is not None:
            ch, cw = self.crop
            ys = self._positions(meta, 0, ch, meta["height"])
            xs = self._positions(meta, 1, cw, meta["width"])
            y0, x0 = (ys[rng.integers(len(ys))], xs[rng.integers(len(xs))]) if self.random_crop else \
                (ys[len(ys) // 2], xs[len(xs) // 2])
            win = (y0, x0, ch, cw)
        hf = bool(rng.random() < self.hflip)
        vf = bool(rng.random() < self.vflip)
        f = self._file(fi)
        frames = [min(max(t + k, 0), meta["frames"] - 1) for k in range(-self.n, self.n + 1)]
        out: dict[str, Any] = {"file": self.paths[fi], "frame": t, "hflip": hf, "vflip": vf,
                               "offset": np.array([y0 + meta["top"], x0 + meta["left"]], np.int64)}
        size = (win[2], win[3]) if win is not None else (meta["height"], meta["width"])
        for names, fr, squeeze in ((self.fields, frames, False), (self.center_fields, [t], True)):
            lays = self._layouts(f, fr, win, meta) if (hf or vf) and any(n.split("/")[0] in COEF_GROUPS
                                                                         for n in names) else None
            for name in names:
                if name in self.windows and not squeeze:
                    k = int(self.windows[name])
                    fr = [min(max(t + j, 0), meta["frames"] - 1) for j in range(-k, k + 1)]
                elif not squeeze:
                    fr = frames
                if name in HEVC_ROWS:
                    a = self._rows(f, name, fr, win, meta, hf, vf)
                elif name in POINT_FIELDS:
                    a = _flip_points(name, self._read(f, name, fr, win, meta), hf, vf, size)
                elif name.split("/")[0] in VALUE_GROUPS:
                    a = self._read(f, name, fr, win, meta)
                else:
                    a = self._read(f, name, fr, win, meta)
                    a = _flip(name, a, hf, vf) if lays is None or name.split("/")[0] not in COEF_GROUPS else \
                        _flip_coefficients(name, a, lays, hf, vf)
                out[name] = a[0] if squeeze else a
        return out

    # ------------------------------------------------------------------ coefficient flips, HEVC records
    def _window(self, win: tuple[int, int, int, int] | None, meta: dict[str, Any]) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the sample in the coded luma plane."""
        if win is None:
            return 0, 0, *meta["coded"]
        return win[0] + meta["top"], win[1] + meta["left"], win[2], win[3]

    def _layouts(self, f: h5py.File, frames: list[int], win: tuple[int, int, int, int] | None,
                 meta: dict[str, Any]) -> dict[str, Any]:
        """The unflipped {'y', 'u', 'v'} layouts of the sample's frames (window of the coded plane)."""
        from pycodec.transform import h264_layouts, hevc_tu_layouts

        if meta["codec"] == "h264":
            luma, chroma = h264_layouts(*(self._read(f, n, frames, win, meta) for n in LAYOUT_FIELDS["h264"]))
            return {"y": luma, "u": chroma, "v": chroma}
        oy, ox, h, w = self._window(win, meta)
        tu, counts, mode = (self._read(f, n, frames, None, meta) for n in LAYOUT_FIELDS["hevc"])
        lays = hevc_tu_layouts(tu, counts[..., 1], mode, meta["bit_depth"])
        out = {}
        for k, lay, s in (("y", lays[0], 4), ("u", lays[1], 8), ("v", lays[2], 8)):
            out[k] = lay.map(lambda m, s=s: m[..., oy // s:(oy + h) // s, ox // s:(ox + w) // s])
        return out

    def _rows(self, f: h5py.File, name: str, frames: list[int], win: tuple[int, int, int, int] | None,
              meta: dict[str, Any], hf: bool, vf: bool) -> np.ndarray:
        """``hevc/tu`` / ``hevc/cu`` rows inside the sample window, in window coordinates, mirrored
        with the sample (AMP partitions swapped); ``hevc/counts`` recounted."""
        if win is None and not (hf or vf):
            return self._read(f, name, frames, None, meta)
        if name == "hevc/counts":
            cu, tu = (self._rows(f, n, frames, win, meta, hf, vf) for n in ("hevc/cu", "hevc/tu"))
            return recount_rows(cu, tu)
        rows = self._read(f, name, frames, None, meta)
        counts = self._read(f, "hevc/counts", frames, None, meta)[:, 1 if name == "hevc/tu" else 0]
        return _window_rows(rows, counts, self._window(win, meta), hf, vf, amp=name == "hevc/cu")


def crop_field(name: str, data: np.ndarray, win: tuple[int, int, int, int] | None,
               meta: dict[str, Any]) -> np.ndarray:
    """Frames (T, ...) of field ``name`` cut to the window ``win`` = (top, left, height, width) of
    the display area (grid-aligned in the coded plane): planes and block maps cut at their own
    resolution, points shifted; per-frame values and HEVC records (:func:`crop_rows`) are returned
    as they are. ``meta``: ``top``/``left`` of the display area in the coded plane."""
    group = name.split("/")[0]
    if name in POINT_FIELDS and win is not None:
        data = data.copy()
        data[..., 0::2] -= win[1]  # x: landmarks (..., 68, 2) and boxes (..., 4) alike
        data[..., 1::2] -= win[0]
        return data
    if win is None or data.ndim < 3 or group in VALUE_GROUPS or name in HEVC_ROWS:
        return data
    y0, x0, h, w = win  # display luma coordinates
    chroma = name.endswith(("/u", "/v"))
    if group in PLANE_GROUPS:
        oy, ox = y0, x0
    else:  # coded-size data: shift by the crop
        oy, ox = y0 + meta["top"], x0 + meta["left"]
    s = 2 if chroma else 1
    if group == "block":
        s = 4
    elif group == "h264":
        s = 8 if name.endswith("sub_mb_type") else 16
    sl = (slice(None), slice(oy // s, (oy + h) // s), slice(ox // s, (ox + w) // s))
    return data[sl]


def crop_rows(arrays: dict[str, np.ndarray], win: tuple[int, int, int, int], meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """``hevc/tu`` (and ``hevc/cu`` when given) with ``hevc/counts`` (frames first) of ``arrays``
    cut to the display window ``win``: rows inside it, in window coordinates, counts recounted
    (the CU count is 0 without ``hevc/cu``)."""
    coded = (win[0] + meta["top"], win[1] + meta["left"], win[2], win[3])
    counts = arrays["hevc/counts"]
    out = {}
    for name, k in (("hevc/cu", 0), ("hevc/tu", 1)):
        if name in arrays:
            out[name] = _window_rows(arrays[name], counts[:, k], coded, False, False, amp=name == "hevc/cu")
    tu = out["hevc/tu"]
    cu = out.get("hevc/cu", np.zeros((tu.shape[0], 0, 3), tu.dtype))
    out["hevc/counts"] = recount_rows(cu, tu)
    return out


def recount_rows(cu: np.ndarray, tu: np.ndarray) -> np.ndarray:
    """``hevc/counts`` (frames, 2) of windowed ``hevc/cu`` and ``hevc/tu`` rows."""
    return np.stack([(cu[..., 2] > 0).sum(-1), (tu[..., 2] > 0).sum(-1)], -1).astype(np.int32)


def _flip_coefficients(name: str, a: np.ndarray, lays: dict[str, Any], hf: bool, vf: bool) -> np.ndarray:
    """Mirror a coefficient image with its residual (frames first; ``lays``: unflipped layouts)."""
    from pycodec.transform import flip_coefficients

    lay = lays[name.rsplit("/", 1)[1]]
    field = name.split("/")[0]
    if hf:
        a = flip_coefficients(a, lay, -1, field)
        lay = lay.map(lambda m: np.flip(m, -1))
    if vf:
        a = flip_coefficients(a, lay, -2, field)
    return np.ascontiguousarray(a)


def _window_rows(rows: np.ndarray, counts: np.ndarray, window: tuple[int, int, int, int], hf: bool, vf: bool,
                 amp: bool) -> np.ndarray:
    """Rows ``[x, y, log2, ...]`` (frames, MAX, C) inside ``window`` = (top, left, h, w), shifted to
    it and mirrored; zero rows after the kept ones."""
    oy, ox, h, w = window
    out = np.zeros_like(rows)
    for i in range(rows.shape[0]):
        r = rows[i, : int(counts[i])].copy()
        r = r[(r[:, 0] >= ox) & (r[:, 0] < ox + w) & (r[:, 1] >= oy) & (r[:, 1] < oy + h)]
        r[:, 0] -= ox
        r[:, 1] -= oy
        size = 1 << r[:, 2]
        if hf:
            r[:, 0] = w - r[:, 0] - size
            if amp:  # nLx2N <-> nRx2N
                r[:, 4] = np.select([r[:, 4] == 6, r[:, 4] == 7], [7, 6], r[:, 4])
        if vf:
            r[:, 1] = h - r[:, 1] - size
            if amp:  # 2NxnU <-> 2NxnD
                r[:, 4] = np.select([r[:, 4] == 4, r[:, 4] == 5], [5, 4], r[:, 4])
        out[i, : len(r)] = r
    return out


def _flip(name: str, a: np.ndarray, hf: bool, vf: bool) -> np.ndarray:
    """Mirror spatial arrays (frames first); negate the matching MV component."""
    if a.ndim < 3 or not (hf or vf):
        return a
    mv = name in MV_FIELDS
    t = TRAILING_AXES.get(name, 0)  # per-block vectors after the two spatial axes
    ax_y, ax_x = -t - 2, -t - 1
    if hf:
        a = np.flip(a, ax_x)
    if vf:
        a = np.flip(a, ax_y)
    a = np.ascontiguousarray(a)
    if mv:
        if hf:
            a[..., 0] = -a[..., 0]
        if vf:
            a[..., 1] = -a[..., 1]
    return a


def _flip_points(name: str, a: np.ndarray, hf: bool, vf: bool, size: tuple[int, int]) -> np.ndarray:
    """Mirror x, y points (pixel centres at integers) in an (h, w) picture; landmarks also swap
    left and right (MIRROR_68), boxes swap their x0/x1 (y0/y1) edges."""
    if not (hf or vf):
        return a
    h, w = size
    a = a.astype(np.float32, copy=True)
    if hf:
        a[..., 0::2] = (w - 1) - a[..., 0::2]
    if vf:
        a[..., 1::2] = (h - 1) - a[..., 1::2]
    if name.startswith("landmarks/"):
        if hf:  # a vertical flip alone keeps left and right
            a = a[..., MIRROR_68, :]
    elif name == "face/box":
        if hf:
            a[..., [0, 2]] = a[..., [2, 0]]
        if vf:
            a[..., [1, 3]] = a[..., [3, 1]]
    return np.ascontiguousarray(a)


def shards_from_manifest(manifest: str | os.PathLike, split: str | None = None, codec: str | None = None,
                         setting: str | None = None) -> list[str]:
    """Shard paths listed in a ``make dataset`` manifest (``manifest.jsonl``), optionally only one
    split (train/val/test), codec or setting (e.g. ``h264-cbr80k``)."""
    import json

    root = os.path.dirname(os.path.abspath(manifest))
    if not os.path.isfile(manifest):
        raise FileNotFoundError(f"{manifest}: no such manifest; build the dataset with `make dataset`")
    out = []
    with open(manifest) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if (split is None or r["split"] == split) and (codec is None or r["codec"] == codec) \
                    and (setting is None or r["setting"] == setting):
                out.append(os.path.join(root, r["shard"]))
    return out


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    if a.dtype == np.uint16:
        a = a.astype(np.int32)
    elif a.dtype == np.uint32:
        a = a.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(a))


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples into a dict of batched tensors (strings stay lists)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if isinstance(vals[0], np.ndarray):
            out[k] = torch.stack([_to_tensor(v) for v in vals])
        elif isinstance(vals[0], (bool, int, float, np.integer, np.floating, np.bool_)):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out
