"""Streaming Keyframes-GAN restoration (models.md 2.5): for every face, in display order and with
no look-ahead, a keyframe bank (:class:`pycodec.models.KeyframeBank`) fed by the stream's own
I-frames (the decoded crop and its landmarks), the keyframe nearest by landmarks MLS-warped onto the
frame's landmarks, and the generator.

Faces are cut as :mod:`pycodec.scene` cuts them (a face crop is one window: the whole frame) and
scaled so the face has its training size; the generator's change (RGB) is scaled back, turned into
a YUV change with the BT.601 limited-range matrix (linear: no rounding on the way, so a zero change
leaves the decoded frame exactly as it was) and pasted back by :class:`pycodec.scene.Composite`.
No back-projection: the model restores perceptual detail, not the bitstream's intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._optional import require

# BT.601 limited range: RGB in [0, 1] -> Y', Cb, Cr changes in [0, 1] units of 8-bit levels / 255
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]]) * np.array([[219.0], [224.0], [224.0]]) / 255.0
MULTIPLE = 16  # the generator takes sides that are multiples of 16


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One yuv420p picture (BT.601 limited range) -> RGB float32 (H, W, 3) in [0, 1], converted as
    the training data is (:func:`pycodec.nn.keyframes_data.yuv420_to_rgb`: bilinear chroma)."""
    from .nn.keyframes_data import yuv420_to_rgb

    return np.ascontiguousarray(np.asarray(yuv420_to_rgb(y, u, v)).transpose(1, 2, 0), np.float32)


def rgb_change_to_yuv(d: np.ndarray) -> dict[str, np.ndarray]:
    """An RGB change (H, W, 3) in [0, 1] units -> planes 'y' (H, W), 'u', 'v' (H/2, W/2): the
    BT.601 limited-range matrix, chroma 2x2-averaged (linear, so zero stays zero)."""
    yuv = d.astype(np.float64) @ _RGB_TO_YUV.T
    h, w = d.shape[:2]
    out = {"y": yuv[..., 0].astype(np.float32)}
    for i, k in ((1, "u"), (2, "v")):
        c = yuv[: h // 2 * 2, : w // 2 * 2, i]
        out[k] = c.reshape(h // 2, 2, w // 2, 2).mean((1, 3)).astype(np.float32)
    return out


def model_side(size: tuple[int, int], k: float) -> tuple[int, int]:
    """A window's size at scale ``k``, in multiples of 16 (at least 32)."""
    return tuple(max(2 * MULTIPLE, MULTIPLE * round(v * k / MULTIPLE)) for v in size)  # type: ignore[return-value]


class FaceStream:
    """One face's keyframe bank and the generator calls for it."""

    def __init__(self, net: Any, device: Any, policy: str, max_keyframes: int) -> None:
        from .models.keyframe_bank import KeyframeBank

        self.net, self.device = net, device
        self.bank = KeyframeBank(policy, max_keyframes)

    def __call__(self, t: int, key: bool, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        """The generator's RGB change (H, W, 3) for frame ``t`` of this face at model size (``rgb``
        float32 in [0, 1], ``landmarks`` (68, 2) in its pixels); None before the first I-frame."""
        torch = require("torch", "Keyframes-GAN")
        from .models.keyframes import landmark_image
        from .models.mls import mls_warp

        if key:
            self.bank.add(t, rgb, landmarks)
        ref = self.bank.choose(landmarks)
        if ref is None:
            return None
        h, w = rgb.shape[:2]
        with torch.inference_mode():
            dev = self.device
            deg = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(dev)
            refimg = torch.from_numpy(np.ascontiguousarray(ref.crop.transpose(2, 0, 1)))[None].to(dev)
            src = torch.as_tensor(landmarks, dtype=torch.float32)[None].to(dev)
            dst = torch.as_tensor(ref.landmarks, dtype=torch.float32)[None].to(dev)
            guide = mls_warp(refimg, src, dst)
            lm = landmark_image(src, h, w).to(dev)
            out = self.net(deg, guide, lm)
            return (out - deg)[0].permute(1, 2, 0).float().cpu().numpy()


def face_change(stream: FaceStream, t: int, key: bool, decoded: dict[str, np.ndarray],
                win: tuple[int, int, int, int], box: np.ndarray, k: float,
                landmarks_of: Any) -> dict[str, np.ndarray] | None:
    """The YUV change of one face's window (planes at the window's size), or None (no keyframe
    yet). ``landmarks_of(gray, box)`` gives the 68 points of the scaled window's luma."""
    cv2 = require("cv2", "Keyframes-GAN restoration")
    y0, x0, h, w = win
    planes = {"y": decoded["y"][y0:y0 + h, x0:x0 + w],
              "u": decoded["u"][y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2],
              "v": decoded["v"][y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2]}
    rgb = yuv_to_rgb(np.ascontiguousarray(planes["y"]), np.ascontiguousarray(planes["u"]),
                     np.ascontiguousarray(planes["v"]))
    mh, mw = model_side((h, w), k)
    small = cv2.resize(rgb, (mw, mh), interpolation=cv2.INTER_AREA if mh < h else cv2.INTER_CUBIC)
    gray = cv2.resize(np.ascontiguousarray(planes["y"]), (mw, mh), interpolation=cv2.INTER_LINEAR)
    sx, sy = mw / w, mh / h
    b = (np.asarray(box, np.float64)[:4] - [x0, y0, x0, y0]) * [sx, sy, sx, sy]
    lm = landmarks_of(gray, b)
    d = stream(t, key, np.clip(small, 0, 1).astype(np.float32), lm)
    if d is None:
        return None
    back = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
    return rgb_change_to_yuv(back)


