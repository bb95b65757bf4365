"""Synthetic sample videos (and reader-shaped synthetic frames) shared by demo, bench and tests."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from pycodec.fields import FIELD_GROUPS

# Where the face sits in scikit-image's 512x512 ``astronaut`` photo (x, y), in source pixels.
_FACE_CENTRE = (225.0, 150.0)
_CHIN = (226.0, 168.0)
_CROP_HEIGHT = 288.0

DEFAULT_X264_OPTIONS = {"preset": "medium", "crf": "26", "x264-params": "keyint=30:bframes=3"}


def _bilinear(img: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Sample ``img`` (H, W, C float32) at float coordinates with edge clamping; vectorised bilinear."""
    h, w = img.shape[:2]
    sx = np.clip(sx, 0.0, w - 1.001)
    sy = np.clip(sy, 0.0, h - 1.001)
    x0 = sx.astype(np.int32)
    y0 = sy.astype(np.int32)
    fx = (sx - x0)[..., None]
    fy = (sy - y0)[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bot = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


class TalkingHead:
    """Renders frame t of the astronaut photo moving, zooming and 'talking' (jaw motion) smoothly."""

    def __init__(self, width: int, height: int, fps: float = 30, seed: int = 0) -> None:
        from skimage import data

        self.width, self.height, self.fps = width, height, float(fps)
        self.src = data.astronaut().astype(np.float32)
        rng = np.random.default_rng(seed)
        self.phase = rng.uniform(0, 2 * math.pi, size=5)
        self.noise_rng = np.random.default_rng(seed + 1)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self.gx = xs - (width - 1) / 2
        self.gy = ys - (height - 1) / 2
        self.base = _CROP_HEIGHT / height  # source pixels per output pixel at zoom 1

    def pose(self, t: int) -> tuple[float, float, float, float]:
        """Where frame ``t`` looks: source centre x, y, zoom and tilt (radians)."""
        s = t / self.fps
        p = self.phase
        cx = _FACE_CENTRE[0] + 28 * math.sin(2 * math.pi * s / 2.1 + p[0])
        cy = _FACE_CENTRE[1] + 14 * math.sin(2 * math.pi * s / 1.7 + p[1])
        zoom = 1.0 + 0.10 * math.sin(2 * math.pi * s / 2.5 + p[2])
        tilt = 0.04 * math.sin(2 * math.pi * s / 2.9 + p[3])
        return cx, cy, zoom, tilt

    def to_frame(self, points: np.ndarray, t: int) -> np.ndarray:
        """Source-photo pixel coordinates (..., 2) -> frame ``t`` pixel coordinates (jaw motion aside)."""
        cx, cy, zoom, tilt = self.pose(t)
        k = self.base / zoom
        dx, dy = (points[..., 0] - cx) / k, (points[..., 1] - cy) / k
        c, si = math.cos(tilt), math.sin(tilt)
        return np.stack([c * dx + si * dy + (self.width - 1) / 2, -si * dx + c * dy + (self.height - 1) / 2], -1)

    def frame(self, t: int) -> np.ndarray:
        """Return frame ``t`` as an (H, W, 3) uint8 RGB array."""
        s = t / self.fps
        p = self.phase
        cx, cy, zoom, tilt = self.pose(t)
        k = self.base / zoom
        c, si = math.cos(tilt), math.sin(tilt)
        sx = cx + k * (c * self.gx - si * self.gy)
        sy = cy + k * (si * self.gx + c * self.gy)
        # Jaw: a smooth downward pull below the mouth, opening and closing at about 4 Hz.
        jaw = 4.0 * (0.5 + 0.5 * math.sin(2 * math.pi * 4.0 * s + p[4]))
        d2 = ((sx - _CHIN[0]) / 30.0) ** 2 + ((sy - _CHIN[1]) / 16.0) ** 2
        sy = sy - jaw * np.exp(-d2)
        rgb = _bilinear(self.src, sx, sy)
        rgb += self.noise_rng.normal(0.0, 1.5, size=rgb.shape).astype(np.float32)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def make_talking_sample(
    path: str | os.PathLike,
    width: int,
    height: int,
    frames: int,
    fps: float = 30,
    codec_options: Mapping[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    seed: int = 0,
    codec: str = "libx264",
) -> str:
    """Encode a synthetic talking-head clip with PyAV (x264 with B-frames by default); return the path.

    ``codec_options`` are PyAV stream options merged over the defaults, e.g.
    ``{'x264-params': 'cabac=0:bframes=0', 'profile': 'baseline', 'crf': '28'}``.
    """
    import av

    path = os.fspath(path)
    opts = dict(DEFAULT_X264_OPTIONS) if codec == "libx264" else {}
    opts.update(codec_options or {})
    scene = TalkingHead(width, height, fps, seed)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(path, "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {str(k): str(v) for k, v in opts.items()}
        for t in range(frames):
            vf = av.VideoFrame.from_ndarray(scene.frame(t), format="rgb24")
            vf.pts = t
            vf.time_base = 1 / rate
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# ---------------------------------------------------------------- reader-shaped synthetic frames


@dataclass
class SyntheticFrame:
    """Frame-like record with the attributes of the contract's ``pycodec.Frame``."""

    index: int
    decode_index: int
    pts: int
    poc: int
    type: str
    key: bool
    pkt_bytes: int
    flags: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        """Index the arrays by schema path."""
        return self.arrays[name]


def synthetic_arrays(
    width: int, height: int, groups: set[str], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Arrays shaped and typed like the reader's export of a 4:2:0 8-bit stream (random content)."""
    cw, ch = -(-width // 16) * 16, -(-height // 16) * 16
    h4, w4, mbh, mbw = ch // 4, cw // 4, ch // 16, cw // 16
    planes = {
        "y": (height, width),
        "u": ((height + 1) // 2, (width + 1) // 2),
        "v": ((height + 1) // 2, (width + 1) // 2),
    }
    cplanes = {"y": (ch, cw), "u": (ch // 2, cw // 2), "v": (ch // 2, cw // 2)}
    out: dict[str, np.ndarray] = {}
    shift = int(rng.integers(0, 8))
    for g, dt in (("decoded", np.uint8), ("prediction", np.uint8), ("recon", np.uint8)):
        if g in groups:
            for p, (h, w) in planes.items():
                yy, xx = np.mgrid[0:h, 0:w]
                smooth = 128 + 60 * np.sin((xx + shift) / 9.0) * np.cos(yy / 13.0)
                out[f"{g}/{p}"] = np.clip(smooth + rng.normal(0, 2, (h, w)), 0, 255).astype(dt)
    if "residual" in groups:
        for p, shp in planes.items():
            r = rng.integers(-6, 7, size=shp).astype(np.int16)
            r[rng.random(shp) < 0.8] = 0
            out[f"residual/{p}"] = r
    for g, dt in (("coeffs", np.int32), ("levels", np.int32), ("qstep", np.float32)):
        if g in groups:
            for p, shp in cplanes.items():
                a = np.zeros(shp, dtype=dt)
                mask = rng.random(shp) < 0.01
                a[mask] = rng.integers(-200, 200, size=int(mask.sum())).astype(dt)
                if g == "qstep":  # a step per coefficient of coded 4x4 blocks, 0 elsewhere
                    coded = rng.random((shp[0] // 4, shp[1] // 4)) < 0.3
                    a = np.kron(coded, np.full((4, 4), 2.5, dt)).astype(dt)
                out[f"{g}/{p}"] = a
    if "block" in groups:
        mb = (h4, w4)
        mode = rng.integers(0, 3, size=mb).astype(np.uint8)
        out.update(
            {
                "block/mv_l0": rng.integers(-64, 64, size=(h4, w4, 2)).astype(np.int16),
                "block/mv_l1": rng.integers(-64, 64, size=(h4, w4, 2)).astype(np.int16),
                "block/ref_l0": rng.integers(-1, 2, size=mb).astype(np.int8),
                "block/ref_l1": rng.integers(-1, 2, size=mb).astype(np.int8),
                "block/ref_poc_l0": rng.integers(0, 64, size=mb).astype(np.int32),
                "block/ref_poc_l1": rng.integers(0, 64, size=mb).astype(np.int32),
                "block/qp_y": rng.integers(20, 40, size=mb).astype(np.int8),
                "block/qp_cb": rng.integers(20, 40, size=mb).astype(np.int8),
                "block/qp_cr": rng.integers(20, 40, size=mb).astype(np.int8),
                "block/mode": mode,
                "block/cu_log2": np.full(mb, 4, np.uint8),
                "block/pu_w": np.full(mb, 8, np.uint8),
                "block/pu_h": np.full(mb, 16, np.uint8),
                "block/tu_log2": rng.choice(np.array([0, 2, 3], np.uint8), size=mb),
                "block/tkind": rng.integers(0, 3, size=mb).astype(np.uint8),
                "block/intra_mode": np.where(mode == 0, 2, 255).astype(np.uint8),
            }
        )
    if "h264" in groups:
        out.update(
            {
                "h264/mb_type": rng.integers(0, 1 << 16, size=(mbh, mbw)).astype(np.uint32),
                "h264/cbp": rng.integers(0, 48, size=(mbh, mbw)).astype(np.uint8),
                "h264/chroma_pred_mode": rng.integers(0, 4, size=(mbh, mbw)).astype(np.uint8),
                "h264/sub_mb_type": rng.integers(0, 1 << 16, size=(mbh * 2, mbw * 2)).astype(np.uint32),
                "h264/dc_qmul": rng.integers(0, 4096, size=(mbh, mbw, 3)).astype(np.int32),
            }
        )
    return out


ALL_GROUPS = tuple(FIELD_GROUPS)


def synthetic_frames(
    width: int = 64, height: int = 48, n: int = 10, groups: str | set[str] | None = None, seed: int = 0
) -> Iterator[SyntheticFrame]:
    """Yield ``n`` reader-shaped frames of random content (IBBP-like), for writer tests and benchmarks."""
    if groups is None:
        gset = set(ALL_GROUPS)
    elif isinstance(groups, str):
        gset = {g.strip() for g in groups.split(",") if g.strip()}
    else:
        gset = set(groups)
    rng = np.random.default_rng(seed)
    pattern = "IBBP"
    for i in range(n):
        t = "I" if i % 30 == 0 else pattern[i % 4] if i % 4 else "P"
        yield SyntheticFrame(
            index=i,
            decode_index=i,
            pts=i * 512,
            poc=2 * i,
            type=t,
            key=t == "I",
            pkt_bytes=int(rng.integers(100, 5000)),
            flags=0,
            arrays=synthetic_arrays(width, height, gset, rng),
        )
