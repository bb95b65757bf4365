"""What a restoration model reads from a ``pycodec/1`` file or dataset shard: the contract between
the datasets (training), the inference engine (:mod:`pycodec.restore`) and the models.

A *sample* is a dict keyed by schema names, shaped as :class:`pycodec.nn.CodecWindowDataset`
returns it for these fields (window fields stacked over frames t-N..t+N, centre fields for frame
t only), plus ``offset`` (top, left of the sample in the coded plane).  Training samples add the
``TARGET_FIELDS``; the inference engine builds the same dict from frames decoded in memory.
"""

from __future__ import annotations

N_FRAMES = 2    # video window: t-2..t+2 (models.md 1.1)
N_SPEECH = 10   # speech window: video frames t-10..t+10, each with its MFCC steps

# (name, half-window) of the window fields
WINDOW_FIELDS: dict[str, int] = {
    "decoded/y": N_FRAMES, "decoded/u": N_FRAMES, "decoded/v": N_FRAMES,
    "frame/poc": N_FRAMES,       # to scale motion vectors towards each neighbour (models.md 1.3)
    "audio/mfcc": N_SPEECH,      # (2*N_SPEECH+1, 4, 13): 4 MFCC steps per video frame
}
# frame t only; the codec's view of the picture being restored
CENTER_COMMON = (
    "prediction/y", "prediction/u", "prediction/v",
    "residual/y", "residual/u", "residual/v",
    "coeffs/y", "coeffs/u", "coeffs/v",
    "qstep/y", "qstep/u", "qstep/v",
    "block/mv_l0", "block/mv_l1", "block/ref_l0", "block/ref_l1",
    "block/ref_poc_l0", "block/ref_poc_l1", "block/mode", "block/qp_y",
    "block/tu_log2", "block/tkind", "block/pu_w",
    "landmarks/decoded",
)
CENTER_CODEC = {
    "h264": ("h264/dc_qmul",),             # DC steps of the Hadamard paths (pycodec.transform.h264_plane_steps)
    "hevc": ("hevc/tu", "hevc/counts"),    # exact TU layouts (pycodec.transform.hevc_frame_layouts)
}
TARGET_FIELDS = ("gt/y", "gt/u", "gt/v")


def window_fields() -> tuple[str, ...]:
    return tuple(WINDOW_FIELDS)


def center_fields(codec: str, target: bool = False) -> tuple[str, ...]:
    """The centre-frame fields for ``codec`` ('h264' or 'hevc'); ``target`` adds the ground truth."""
    if codec not in CENTER_CODEC:
        raise ValueError(f"codec must be 'h264' or 'hevc', got {codec!r}")
    return CENTER_COMMON + CENTER_CODEC[codec] + (TARGET_FIELDS if target else ())
