"""pycodec: codec-instrumented H.264 decoding into numpy arrays and HDF5 (schema pycodec/1)."""

from __future__ import annotations

__version__ = "0.1.0"

from ._reader import Frame, VideoReader, info, open
from .errors import InputError, PycodecError
from .fields import FIELD_GROUPS, FrameFlag

__all__ = [
    "FIELD_GROUPS",
    "Frame",
    "FrameFlag",
    "InputError",
    "PycodecError",
    "VideoReader",
    "__version__",
    "info",
    "open",
]
