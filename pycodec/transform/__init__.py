"""Exact H.264/HEVC transforms in the decoder's coefficient domain, quantization steps, intervals
and whole-plane (blockwise) helpers.  numpy functions never import torch; passing torch tensors
gives torch results (same math, differentiable).  See docs/transforms.md.
"""

from __future__ import annotations

from .blockwise import from_dc_domain, plane_forward, plane_inverse, plane_rounding_bound, to_dc_domain
from .flips import flip_coefficients
from .h264 import (
    chroma_dc_dequant,
    chroma_dc_from_hadamard,
    chroma_dc_to_hadamard,
    h264_chroma_qp,
    h264_dc_step,
    h264_forward,
    h264_inverse,
    h264_qmul,
    h264_qstep,
    h264_rounding_bound,
    luma_dc_dequant,
    luma_dc_from_hadamard,
    luma_dc_to_hadamard,
)
from .hevc import hevc_dct_matrix, hevc_dequant, hevc_forward, hevc_inverse, hevc_qstep
from .intervals import IntervalModel, intervals
from .layout import PlaneLayout, h264_layouts, hevc_layouts, hevc_tu_layouts
from .planes import frame_layouts, h264_frame_layouts, h264_plane_steps, hevc_frame_layouts, plane_intervals

__all__ = [
    "IntervalModel",
    "PlaneLayout",
    "chroma_dc_dequant",
    "chroma_dc_from_hadamard",
    "chroma_dc_to_hadamard",
    "flip_coefficients",
    "frame_layouts",
    "from_dc_domain",
    "h264_chroma_qp",
    "h264_dc_step",
    "h264_forward",
    "h264_frame_layouts",
    "h264_inverse",
    "h264_layouts",
    "h264_plane_steps",
    "h264_qmul",
    "h264_qstep",
    "h264_rounding_bound",
    "hevc_dct_matrix",
    "hevc_dequant",
    "hevc_forward",
    "hevc_frame_layouts",
    "hevc_inverse",
    "hevc_layouts",
    "hevc_qstep",
    "hevc_tu_layouts",
    "intervals",
    "luma_dc_dequant",
    "luma_dc_from_hadamard",
    "luma_dc_to_hadamard",
    "plane_forward",
    "plane_intervals",
    "plane_inverse",
    "plane_rounding_bound",
    "to_dc_domain",
]
