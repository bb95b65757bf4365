"""Generated inputs for tests and benchmarks: a real face photo (scikit-image's ``astronaut``)
moving and zooming over a wider frame, with synthetic "speech" (tone bursts at known times) in an
MP4 (H.264 + AAC), the same face as a small webcam inset in a screencast, and a faceless clip with
sound."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

AUDIO_RATE = 44100


def bursts_audio(seconds: float, bursts: Sequence[tuple[float, float]], rate: int = AUDIO_RATE) -> np.ndarray:
    """Stereo float32 (2, S): quiet noise, and voiced tone bursts (140 Hz with harmonics) in each
    (start, end) second interval."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.002, n)
    for a, b in bursts:
        m = (t >= a) & (t < b)
        x[m] += sum(0.2 / h * np.sin(2 * math.pi * 140 * h * t[m]) for h in range(1, 6))
    return np.stack([x, x]).astype(np.float32)


def write_clip(path: str | os.PathLike, frames: Sequence[np.ndarray] | np.ndarray, fps: int,
               sound: np.ndarray | None, crf: int = 18) -> str:
    """RGB frames (H, W, 3 uint8) -> H.264 (yuv420p, CRF ``crf``) + AAC stereo in ``path`` (MP4)."""
    import av

    path = os.fspath(path)
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=Fraction(fps))
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        v.options = {"crf": str(crf), "preset": "fast", "x264-params": "threads=1"}
        a = None
        if sound is not None:
            a = out.add_stream("aac", rate=AUDIO_RATE)
            a.layout = "stereo"
        for t, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = t
            vf.time_base = Fraction(1, fps)
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None and sound is not None:
            hop = 1024
            for i in range(0, sound.shape[1], hop):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, i:i + hop]), format="fltp",
                                                layout="stereo")
                af.sample_rate, af.pts = AUDIO_RATE, i
                af.time_base = Fraction(1, AUDIO_RATE)
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


def face_clip(path: str | os.PathLike, width: int = 480, height: int = 272, frames: int = 75, fps: int = 25,
              bursts: Sequence[tuple[float, float]] = ((1.0, 1.4), (2.0, 2.4)), seed: int = 0) -> str:
    """The astronaut's face moving, zooming and 'talking' (pycodec.samples.TalkingHead) with bursts."""
    from pycodec.samples import TalkingHead

    scene = TalkingHead(width, height, fps, seed)
    return write_clip(path, [scene.frame(t) for t in range(frames)], fps, bursts_audio(frames / fps, bursts))


def screen_background(width: int, height: int, seed: int = 1) -> np.ndarray:
    """A grey screen-like picture (H, W) uint8: blurred noise, flat panels, lines of text."""
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (height, width), dtype=np.uint8), (0, 0), 6)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(80, 600)), y + int(rng.integers(40, 300))),
                      int(rng.integers(0, 256)), -1)
    for _ in range(60):
        cv2.putText(img, "lorem ipsum 42", (int(rng.integers(0, width)), int(rng.integers(0, height))),
                    cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.4, 1.2)), int(rng.integers(0, 256)), 1)
    return img


def screencast_clip(path: str | os.PathLike, width: int = 1280, height: int = 720, inset: int = 224,
                    frames: int = 50, fps: int = 25, seed: int = 0) -> str:
    """A screencast with the talking face as a webcam inset (``inset`` pixels square, bottom right):
    with the default sizes the face is about 75 px wide, the case a 640-px detection missed."""
    from pycodec.samples import TalkingHead

    scene = TalkingHead(inset, inset, fps, seed)
    screen = np.repeat(screen_background(width, height)[..., None], 3, -1)
    y0, x0 = height - inset - 24, width - inset - 24
    imgs = []
    for t in range(frames):
        img = screen.copy()
        img[y0:y0 + inset, x0:x0 + inset] = scene.frame(t)
        imgs.append(img)
    return write_clip(path, imgs, fps, bursts_audio(frames / fps, [(0.4, 0.8)]))


def faceless_clip(path: str | os.PathLike, width: int = 192, height: int = 144, frames: int = 40,
                  fps: int = 25) -> str:
    """A moving colour gradient with sound and no face."""
    ys, xs = np.mgrid[0:height, 0:width]
    imgs = [np.stack([(xs + 3 * t) % 256, (ys + 2 * t) % 256, np.full_like(xs, 128)], -1).astype(np.uint8)
            for t in range(frames)]
    return write_clip(path, imgs, fps, bursts_audio(frames / fps, [(0.2, 0.6)]))
