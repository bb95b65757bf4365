"""Face tracking and landmarks for the dataset pipeline: re-exported from :mod:`pycodec.face`, where
the code lives because ``pycodec restore`` finds faces and landmarks the same way at inference.

The one difference: :func:`track` here reports too few faces as the pipeline's
``StepFailure("no-face", ...)`` (a skipped video in the report) instead of
:class:`pycodec.face.NoFaceError`.
"""

from __future__ import annotations

import numpy as np

from pycodec import face as _face
from pycodec.face import (
    DETECT_SIDE,
    PREDICTOR,
    FaceTrack,
    NoFaceError,
    TrackSettings,
    _detector,
    _gauss_smooth,
    _predictor,
    choose_faces,
    crop_square,
    detect,
    detect_scaled,
    iou,
    landmarks,
    model_path,
    rescale_boxes,
    rescale_points,
    resize,
    segments,
    to_crop_coords,
)

__all__ = [
    "DETECT_SIDE",
    "PREDICTOR",
    "FaceTrack",
    "NoFaceError",
    "TrackSettings",
    "_detector",
    "_gauss_smooth",
    "_predictor",
    "choose_faces",
    "crop_square",
    "detect",
    "detect_scaled",
    "iou",
    "landmarks",
    "model_path",
    "rescale_boxes",
    "rescale_points",
    "resize",
    "segments",
    "to_crop_coords",
    "track",
]


def track(dets: list[np.ndarray], fps: float, s: TrackSettings,
          attempted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pycodec.face.track` (per-frame face and square crop boxes); too few faces is the
    pipeline's ``StepFailure("no-face")``: the video is skipped and reported, the batch goes on."""
    from pipelines.common import StepFailure

    try:
        return _face.track(dets, fps, s, attempted)
    except NoFaceError as exc:
        raise StepFailure("no-face", str(exc)) from exc
