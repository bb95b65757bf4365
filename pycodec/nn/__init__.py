"""The thin torch layer: back-projection into quantization intervals, colour conversion,
motion-vector flow and warping, and datasets over ``pycodec/1`` files.  Imports torch (``import
pycodec`` alone does not)."""

from __future__ import annotations

from .backprojection import BackProjection, back_project, embed_plane
from .color import chroma_downsample, chroma_upsample, rgb_to_ycbcr, ycbcr_to_rgb
from .datasets import MIRROR_68, CodecWindowDataset, collate, shards_from_manifest
from .flow import block_flow, downsample_flow, mv_to_flow, warp
from .keyframes_data import KeyframesDataset

__all__ = [
    "MIRROR_68",
    "BackProjection",
    "CodecWindowDataset",
    "KeyframesDataset",
    "back_project",
    "block_flow",
    "chroma_downsample",
    "chroma_upsample",
    "collate",
    "downsample_flow",
    "embed_plane",
    "mv_to_flow",
    "rgb_to_ycbcr",
    "shards_from_manifest",
    "warp",
    "ycbcr_to_rgb",
]
