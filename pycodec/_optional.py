"""Optional dependencies of the model side of pycodec (``pip install .[models]``), imported only
when used, so that ``import pycodec`` and ``pycodec extract`` work without them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import PycodecError

EXTRA = "pip install .[models]"

# module name -> the distribution that provides it (what pip installs)
DISTRIBUTIONS = {
    "torch": "torch",
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models",
    "python_speech_features": "python_speech_features",
    "av": "av",
    "scipy": "scipy",
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
    "matplotlib": "matplotlib",
}


class MissingDependency(PycodecError):
    """An optional package that a model-side feature needs is not installed (one-line message)."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` (e.g. "face landmarks"), or raise :class:`MissingDependency`
    whose message names the package and ``pip install .[models]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name not in (None, module) and not module.startswith(f"{exc.name}."):
            raise  # the package is there but one of its own imports failed: report that as is
        dist = DISTRIBUTIONS.get(module.split(".")[0], module)
        raise MissingDependency(
            f"{what} needs the Python package {dist!r}, which is not installed; install the model "
            f"extras with `{EXTRA}` (or `pip install {dist}`)"
        ) from exc
