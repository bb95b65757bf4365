"""pycodec: codec-instrumented H.264 and HEVC decoding into numpy arrays and HDF5 (schema pycodec/1).

The public names below load on first use (PEP 562), so that ``import pycodec`` and the start of the
``pycodec`` command stay light: numpy and the compiled extension load with the first of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import InputError, PycodecError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._reader import Frame, VideoReader, info, open
    from .fields import FIELD_GROUPS, FrameFlag
    from .restore import RestoreError, RestoreSummary, restore

# public name -> submodule that defines it
_LAZY = {
    "Frame": "_reader",
    "VideoReader": "_reader",
    "info": "_reader",
    "open": "_reader",
    "FIELD_GROUPS": "fields",
    "FrameFlag": "fields",
    # pycodec.restore itself is the module pycodec/restore.py, which is callable: pycodec.restore(src, dst)
    "RestoreError": "restore",
    "RestoreSummary": "restore",
}


def __getattr__(name: str) -> Any:
    """Load a public name (or a submodule such as ``pycodec.store``) on first access."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FIELD_GROUPS",
    "Frame",
    "FrameFlag",
    "InputError",
    "PycodecError",
    "RestoreError",
    "RestoreSummary",
    "VideoReader",
    "__version__",
    "info",
    "open",
    "restore",
]
