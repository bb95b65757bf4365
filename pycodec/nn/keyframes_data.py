"""Keyframes-GAN training samples from dataset shards (models.md 2.3, 2.4; docs/schema.md "Dataset
shards"): the decoded frame t (I_D), its ground truth (I_GT), a reference frame MLS-warped onto the
decoded frame's landmarks (I_G) and the binary landmark image (I_L), as RGB in [0, 1].

Colour: the shards' crops are yuv420p made by swscale with its default matrix, BT.601 limited range
(docs/dataset.md), and x264/x265 keep it, so every plane (decoded, ground truth, reference) is
converted with :func:`yuv420_to_rgb`: chroma upsampled bilinearly with centred (MPEG-1/JPEG)
siting, i.e. chroma sample k sits at luma position 2k + 1/2, edges replicated (the same as
``F.interpolate(..., mode='bilinear', align_corners=False)``), then the BT.601 limited-range
matrix.  This equals swscale with ``SWS_BILINEAR | SWS_FULL_CHR_H_INT | SWS_ACCURATE_RND`` to
rounding; swscale's *default* unscaled path (what ``av.VideoFrame.to_ndarray('rgb24')`` does)
replicates chroma instead and is up to ~3 levels off even on flat chroma.

Order per sample: read and convert; warp the reference (before any augmentation, models.md 2.4;
only the output window is evaluated); cut the ``size`` window; build I_L; augment.

Augmentation (models.md 2.3, "REL"), each with probability 0.2, in this order, identical on every
image of the sample (degraded, target, guide, landmark image, and the auxiliary reference):

* shift: integer (dy, dx), each uniform in [-floor(0.13 side), floor(0.13 side)], by pad-and-crop
  with zeros (not ``np.roll``: no wrap-around, so no piece of the face appears at the far edge and
  the landmarks move by a plain translation; I_L is shifted as an image, so a point that leaves
  the picture leaves I_L, and one that enters it (from outside a ``size`` window) stays out);
* rot90: k in 1..3 quarter turns counter-clockwise (``np.rot90`` on the (H, W) axes), landmarks
  (x, y) -> (y, W-1-x) per turn; a non-square sample only turns by k = 2 (an odd k would change its
  shape and break batching);
* cutout: one square hole, side uniform in 16..64 px (at most the picture's shorter side), wholly
  inside the picture, set to 0 in *all* the images: the spec says the augmentation is identical
  on I_D, I_G, I_L and I_GT, so the target is cut as well (the landmark points themselves are
  kept; their pixels in I_L are zeroed).

There are no flips, so the landmarks keep their iBUG order (a flip would need
:data:`pycodec.nn.datasets.MIRROR_68`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .datasets import ShardFiles

TRAIN_REFS = ("gt_offset", "decoded_prev_iframe")
AUG_P = 0.2          # probability of each augmentation (REL)
SHIFT_MAX = 0.13     # largest shift, fraction of the side
HOLE = (16, 64)      # cutout side range in pixels, inclusive
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}  # (Kr, Kb)
REBUILD = "rebuild the shard with `make dataset` (docs/dataset.md)"


def _chroma_up(c: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear, centred siting: luma position i reads chroma coordinate i/2 - 1/4 (clamped)."""
    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip(np.arange(n_out, dtype=np.float64) / 2.0 - 0.25, 0.0, n_in - 1)
        i0 = np.floor(pos).astype(np.intp)
        return i0, np.minimum(i0 + 1, n_in - 1), (pos - i0).astype(np.float32)

    r0, r1, fr = taps(h, c.shape[0])
    c = c[r0] * (1 - fr)[:, None] + c[r1] * fr[:, None]
    c0, c1, fc = taps(w, c.shape[1])
    return c[:, c0] * (1 - fc) + c[:, c1] * fc


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt601",
                  full_range: bool = False, bit_depth: int = 8) -> np.ndarray:
    """One 4:2:0 picture, planes y (H, W), u and v (ceil(H/2), ceil(W/2)) of code values ->
    R'G'B' float32 (3, H, W) clipped to [0, 1]: chroma upsampled bilinearly (centred siting, edges
    replicated), then the ``matrix`` ('bt601' or 'bt709') in limited (16-235 / 16-240 at 8 bits,
    scaled by 2^(bit_depth-8)) or full range."""
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    if y.ndim != 2:
        raise ValueError(f"y must be (H, W), got {y.shape}")
    h, w = y.shape
    cs = ((h + 1) // 2, (w + 1) // 2)
    if u.shape != cs or v.shape != cs:
        raise ValueError(f"4:2:0 chroma of a {h}x{w} picture must be {cs}, got {u.shape}, {v.shape}")
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    mid = float(1 << (bit_depth - 1))
    if full_range:
        yo, ys, csc = 0.0, float((1 << bit_depth) - 1), float((1 << bit_depth) - 1)
    else:
        m = float(1 << (bit_depth - 8))
        yo, ys, csc = 16.0 * m, 219.0 * m, 224.0 * m
    yy = (y.astype(np.float32) - yo) / ys
    cb = (_chroma_up(u.astype(np.float32), h, w) - mid) / csc
    cr = (_chroma_up(v.astype(np.float32), h, w) - mid) / csc
    r = yy + 2 * (1 - kr) * cr
    b = yy + 2 * (1 - kb) * cb
    g = (yy - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b]), 0.0, 1.0).astype(np.float32)


def _attr(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


class KeyframesDataset(ShardFiles, Dataset):
    """Keyframes-GAN samples (models.md 2.4) over dataset shards (``make dataset``).

    Samples are the frames t with t % ``every`` == 0 of each shard (file frame indices) that have a
    reference and finite landmarks (samples whose degraded-frame or reference landmarks are NaN,
    as when no face was found, are left out; :attr:`skipped` counts them):

    * ``train_ref='gt_offset'``: t >= ``offset``; reference = ``gt/*`` of frame t - ``offset``
      with ``landmarks/gt`` of that frame;
    * ``train_ref='decoded_prev_iframe'``: reference = ``decoded/*`` of the latest I-frame r <= t
      (``keyframes/iframe``; ``frame/type`` == 'I' for files without it; r = t on an I-frame) with
      ``landmarks/decoded`` of r; frames before the first I-frame are left out.

    Each sample is a dict: ``degraded`` (decoded t), ``target`` (gt t), ``reference``, ``guide``
    (the reference MLS-warped so that its landmarks land on the degraded frame's,
    :func:`pycodec.models.mls.mls_warp`), all float32 (3, H, W) RGB in [0, 1] (module docstring:
    BT.601 limited range unless ``matrix``/``full_range`` say otherwise); ``landmark_image``
    float32 (1, H, W) (:func:`pycodec.models.keyframes.landmark_image` of the decoded landmarks,
    points outside the picture left out); ``landmarks`` and ``ref_landmarks`` float32 (68, 2) (x, y)
    in the sample's pixels (moved with the crop and augmentation; not clipped); ``crop`` int64 (2,)
    = (top, left) of the window in the shard's picture; ``aug`` int64 (6,) = (dy, dx, k, hole_top,
    hole_left, hole_side) of the augmentations applied (zeros where not); ``file`` (str), ``frame``
    and ``ref_frame`` (int).  ``torch.utils.data.default_collate`` batches it when all samples share
    a shape: set ``size``, or use shards of one crop size.

    ``size=(h, w)``: cut a window of that size from every image (the same window for all, the
    landmarks shifted with it): random when ``augment``, else centred.  ``augment``: shift, rot90
    and cutout with probability 0.2 each (module docstring).  Randomness comes from
    ``np.random.default_rng([seed, epoch, index])``: the same seed, :meth:`set_epoch` and index give
    the same sample in any process.  HDF5 files are opened lazily, once per process (DataLoader
    workers never share a handle); :meth:`close` closes this process's.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], every: int = 5, offset: int = 5,
                 train_ref: str = "gt_offset", augment: bool = True, seed: int = 0,
                 size: tuple[int, int] | None = None, *, matrix: str = "bt601", full_range: bool = False) -> None:
        files = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not files:
            raise ValueError("no shards given; pass one or more dataset shards written by `make dataset`")
        if train_ref not in TRAIN_REFS:
            raise ValueError(f"train_ref must be one of {TRAIN_REFS}, got {train_ref!r}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if train_ref == "gt_offset" and int(offset) < 1:
            raise ValueError(f"offset must be >= 1 (the reference precedes the frame), got {offset}")
        if matrix not in MATRICES:
            raise ValueError(f"matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
        if size is not None:
            if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
                raise ValueError(f"size must be (h, w) with positive sides, got {size!r}")
            size = (int(size[0]), int(size[1]))
        self.paths = [os.fspath(p) for p in files]
        self.every, self.offset, self.train_ref = int(every), int(offset), train_ref
        self.augment, self.seed, self.size = bool(augment), int(seed), size
        self.matrix, self.full_range = matrix, bool(full_range)
        self.epoch = 0
        self.skipped = 0
        self.meta: list[dict[str, Any]] = []
        self.index: list[tuple[int, int, int]] = []  # (file, frame t, reference frame)
        for i, p in enumerate(self.paths):
            m = self._inspect(p)
            self.meta.append(m)
            self.index += [(i, t, r) for t, r in self._pairs(m)]
        if not self.index:
            raise ValueError(f"no samples: no frame of {self.paths} has a reference under train_ref={train_ref!r}, "
                             f"every={every}, offset={offset} (and finite landmarks)")
        self._pid = -1
        self._handles: dict[int, h5py.File] = {}

    # ------------------------------------------------------------------ files
    def _inspect(self, path: str) -> dict[str, Any]:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such shard; check the path or build it with `make dataset`")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"{path}: not a readable HDF5 file; pass a dataset shard written by `make dataset`") from exc
        with f:
            ref_lm = "landmarks/gt" if self.train_ref == "gt_offset" else "landmarks/decoded"
            need = ["decoded/y", "decoded/u", "decoded/v", "gt/y", "gt/u", "gt/v", "landmarks/decoded", ref_lm]
            for name in dict.fromkeys(need):
                if not isinstance(f.get(name), h5py.Dataset):
                    hint = "(FIELDS must include 'decoded')" if name.startswith("decoded/") else \
                        "(shard groups: docs/schema.md, 'Dataset shards')"
                    raise KeyError(f"{path}: field {name!r} is missing; KeyframesDataset(train_ref={self.train_ref!r}) "
                                   f"needs {', '.join(dict.fromkeys(need))}; {REBUILD} {hint}")
            n, h, w = f["decoded/y"].shape
            cs = ((h + 1) // 2, (w + 1) // 2)
            for name, shape in (("decoded/u", (n, *cs)), ("decoded/v", (n, *cs)), ("gt/y", (n, h, w)),
                                ("gt/u", (n, *cs)), ("gt/v", (n, *cs)), ("landmarks/decoded", (n, 68, 2)),
                                (ref_lm, (n, 68, 2))):
                if f[name].shape != shape:
                    raise ValueError(f"{path}: field {name!r} has shape {f[name].shape}, expected {shape} "
                                     f"(4:2:0 planes of {n} frames of {w}x{h}, 68 landmarks); {REBUILD}")
            iframe = None
            if self.train_ref == "decoded_prev_iframe":
                if isinstance(f.get("keyframes/iframe"), h5py.Dataset):
                    iframe = f["keyframes/iframe"][:].astype(bool)
                elif isinstance(f.get("frame/type"), h5py.Dataset):
                    iframe = f["frame/type"][:] == ord("I")
                else:
                    raise KeyError(f"{path}: neither 'keyframes/iframe' nor 'frame/type' is in the file; "
                                   f"train_ref='decoded_prev_iframe' needs the I-frames; {REBUILD}")
                if iframe.shape != (n,):
                    raise ValueError(f"{path}: the I-frame flags have shape {iframe.shape}, expected ({n},); {REBUILD}")
            bit_depth = int(_attr(f.attrs.get("bit_depth", 8)))
            meta = {"frames": n, "height": h, "width": w, "iframe": iframe,
                    "lm": np.asarray(f["landmarks/decoded"][:], np.float32),
                    "ref_lm": np.asarray(f[ref_lm][:], np.float32),
                    "depth": {g: 8 if f[f"{g}/y"].dtype == np.uint8 else bit_depth for g in ("decoded", "gt")}}
        if self.size is not None and (self.size[0] > h or self.size[1] > w):
            raise ValueError(f"{path}: size {self.size} (h, w) does not fit its {h}x{w} pictures; use a smaller size")
        if n == 0:
            raise ValueError(f"{path}: the shard has no frames; {REBUILD}")
        return meta

    def _pairs(self, m: dict[str, Any]) -> list[tuple[int, int]]:
        """(t, reference frame) of one shard's samples."""
        out = []
        last = -1
        for t in range(m["frames"]):
            if m["iframe"] is not None and m["iframe"][t]:
                last = t
            if t % self.every:
                continue
            r = t - self.offset if self.train_ref == "gt_offset" else last
            if r < 0:
                continue
            if not (np.isfinite(m["lm"][t]).all() and np.isfinite(m["ref_lm"][r]).all()):
                self.skipped += 1
                continue
            out.append((t, r))
        return out

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops and augmentations (the same epoch gives the same samples)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ samples
    def _rgb(self, f: h5py.File, group: str, t: int, depth: int) -> np.ndarray:
        y, u, v = (f[f"{group}/{k}"][t] for k in "yuv")
        return yuv420_to_rgb(y, u, v, self.matrix, self.full_range, depth)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"sample {idx} out of range (dataset has {len(self)})")
        idx %= len(self)
        fi, t, r = self.index[idx]
        m = self.meta[fi]
        f = self._file(fi)
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        H, W = m["height"], m["width"]
        h, w = self.size or (H, W)
        if self.augment:
            y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        else:
            y0, x0 = (H - h) // 2, (W - w) // 2

        ref_group = "gt" if self.train_ref == "gt_offset" else "decoded"
        degraded = self._rgb(f, "decoded", t, m["depth"]["decoded"])
        target = self._rgb(f, "gt", t, m["depth"]["gt"])
        reference = self._rgb(f, ref_group, r, m["depth"][ref_group])
        lm = m["lm"][t].copy()
        ref_lm = m["ref_lm"][r].copy()
        # the guide over the output window only, sampled from the whole reference (warp before augmenting)
        guide = warp_window(torch.from_numpy(reference), torch.from_numpy(lm), torch.from_numpy(ref_lm),
                            (y0, x0, h, w)).clamp_(0, 1).numpy()  # bilinear rounding can pass 1 by an ulp
        win = (slice(None), slice(y0, y0 + h), slice(x0, x0 + w))
        degraded, target, reference = degraded[win], target[win], reference[win]
        shift = np.array([x0, y0], np.float32)
        lm -= shift
        ref_lm -= shift
        limg = _landmark_image(lm, h, w)

        images = [degraded, target, guide, limg, reference]
        aug = np.zeros(6, np.int64)
        if self.augment:
            images, (lm, ref_lm), aug = augment(images, [lm, ref_lm], rng)
        degraded, target, guide, limg, reference = (torch.from_numpy(np.ascontiguousarray(a)) for a in images)
        return {"degraded": degraded, "target": target, "reference": reference, "guide": guide,
                "landmarks": torch.from_numpy(np.ascontiguousarray(lm, np.float32)),
                "ref_landmarks": torch.from_numpy(np.ascontiguousarray(ref_lm, np.float32)),
                "landmark_image": limg, "crop": torch.tensor([y0, x0], dtype=torch.int64),
                "aug": torch.from_numpy(aug), "file": self.paths[fi], "frame": t, "ref_frame": r}


def warp_window(reference: torch.Tensor, points: torch.Tensor, ref_points: torch.Tensor,
                window: tuple[int, int, int, int]) -> torch.Tensor:
    """``mls_warp(reference[None], points[None], ref_points[None])[0]`` evaluated only inside
    ``window`` = (top, left, h, w): reference (C, H, W), points (N, 2) (x, y) in its pixels.  The
    MLS map only depends on v - p, so the grid of the window is the grid of points shifted by
    -(left, top); the whole reference is sampled (border padding, normalised by its own size)."""
    from pycodec.models.mls import mls_affine_grid

    y0, x0, h, w = window
    H, W = reference.shape[-2:]
    p = points.to(torch.float32)[None] - torch.tensor([x0, y0], dtype=torch.float32)
    u = mls_affine_grid(p, ref_points.to(torch.float32)[None], h, w)
    gx = u[..., 0] * (2.0 / max(W - 1, 1)) - 1.0
    gy = u[..., 1] * (2.0 / max(H - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), -1).to(reference.dtype)
    return F.grid_sample(reference[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def _landmark_image(lm: np.ndarray, h: int, w: int) -> np.ndarray:
    """I_L (1, h, w) of points (N, 2); points whose rounded pixel is outside the picture are left
    out (landmark_image would clip them onto the border)."""
    from pycodec.models.keyframes import landmark_image

    p = np.floor(lm.astype(np.float64) + 0.5)
    inside = (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
    pts = np.where(inside[:, None], lm, np.nan).astype(np.float32)
    return landmark_image(torch.from_numpy(pts)[None], h, w)[0].numpy()


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move the content of (C, H, W) by (dy, dx) pixels, zeros where nothing comes in."""
    out = np.zeros_like(a)
    h, w = a.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        a[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def augment(images: list[np.ndarray], points: list[np.ndarray],
            rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """models.md 2.3 on images (C, H, W) of one size and point sets (N, 2) (x, y) in them: shift,
    rot90 and cutout, each with probability :data:`AUG_P` (module docstring).  Returns the images,
    the points and (dy, dx, k, hole_top, hole_left, hole_side) of what was applied (zeros where not).
    Every draw is made whatever the outcome, so the random stream has a fixed layout."""
    h, w = images[0].shape[-2:]
    do = rng.random(3) < AUG_P
    my, mx = int(SHIFT_MAX * h), int(SHIFT_MAX * w)
    dy, dx = int(rng.integers(-my, my + 1)), int(rng.integers(-mx, mx + 1))
    k = int(rng.integers(1, 4))
    side = int(rng.integers(HOLE[0], HOLE[1] + 1))
    fy, fx = rng.random(2)
    out_i = list(images)
    out_p = [p.astype(np.float32, copy=True) for p in points]
    rec = np.zeros(6, np.int64)
    if do[0]:
        out_i = [_shift(a, dy, dx) for a in out_i]
        for p in out_p:
            p += np.array([dx, dy], np.float32)
        rec[:2] = dy, dx
    if do[1]:
        if h != w and k % 2:
            k = 2  # a quarter turn would change the shape of a non-square sample
        out_i = [np.rot90(a, k, axes=(-2, -1)) for a in out_i]
        for p in out_p:
            ch, cw = h, w
            for _ in range(k):  # one counter-clockwise quarter turn: (x, y) -> (y, W-1-x)
                x = p[:, 0].copy()
                p[:, 0] = p[:, 1]
                p[:, 1] = (cw - 1) - x
                ch, cw = cw, ch
        if k % 2:
            h, w = w, h
        rec[2] = k
    if do[2]:
        s = min(side, h, w)
        top, left = int(fy * (h - s + 1)), int(fx * (w - s + 1))
        out_i = [a.copy() for a in out_i]
        for a in out_i:
            a[..., top:top + s, left:left + s] = 0
        rec[3:] = top, left, s
    return out_i, out_p, rec
