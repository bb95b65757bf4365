"""Speech features for the dataset pipeline: re-exported from :mod:`pycodec.audio`, where the code
lives because ``pycodec restore`` computes the same features at inference (docs/dataset.md).

    python -m pipelines.audio AUDIO.wav OUT.npy --fps 25 --frames 75
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from pycodec.audio import (
    AUDIBLE_DB,
    EPS,
    SAMPLE_RATE,
    MfccSettings,
    frame_mfcc,
    frame_steps,
    level_db,
    mfcc,
    read_audio,
    read_wav,
    silence,
    video_mfcc,
    write_wav,
)

__all__ = [
    "AUDIBLE_DB",
    "EPS",
    "SAMPLE_RATE",
    "MfccSettings",
    "frame_mfcc",
    "frame_steps",
    "level_db",
    "main",
    "mfcc",
    "read_audio",
    "read_wav",
    "silence",
    "video_mfcc",
    "write_wav",
]


def main(argv: Sequence[str] | None = None) -> int:
    """MFCCs of a 16 kHz mono WAV aligned to ``--frames`` video frames at ``--fps``, to a .npy file."""
    p = argparse.ArgumentParser(prog="python -m pipelines.audio",
                                description="MFCCs of a 16 kHz mono WAV, aligned to video frames at FPS.")
    p.add_argument("wav")
    p.add_argument("out", help=".npy file, (N, 4, 13) float32")
    p.add_argument("--fps", type=float, required=True)
    p.add_argument("--frames", type=int, required=True)
    a = p.parse_args(argv)
    x, sr = read_wav(a.wav)
    if sr != SAMPLE_RATE:
        print(f"error: {a.wav}: sample rate {sr}, expected {SAMPLE_RATE}", file=sys.stderr)
        return 2
    np.save(a.out, frame_mfcc(x, np.arange(a.frames) / a.fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
