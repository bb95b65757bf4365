"""Restoration models (torch): MDVD-Net, its inputs, blocks and checkpoints; Keyframes-GAN's
generator, discriminators, MLS warp and keyframe bank.

Names load on first use (PEP 562): ``import pycodec.models`` (or its torch-free ``fields``
contract) does not import torch; ``pycodec.models.MDVDNet`` does.  Shipped checkpoints live in
``pycodec/weights/<name>.pt``: :func:`load` takes such a name or a path, :func:`available` lists
the names.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .blocks import DeformConv2d, ResBlock, UpResBlock, VGG19Features, deform_conv2d, he_init
    from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
    from .discriminators import MultiScaleDiscriminator, PatchDiscriminator
    from .inputs import BPData, MDVDInputs, dataset_kwargs, make_inputs, target_planes
    from .keyframe_bank import Keyframe, KeyframeBank
    from .keyframes import KeyframesConfig, KeyframesGenerator
    from .landmarks import LandmarkCorrector, landmark_loss
    from .mdvd import MDVDConfig, MDVDNet, MDVDOutput, apply_back_projection, mdvd_loss
    from .mls import mls_affine_grid, mls_warp
    from .mobilenet import MobileNetV3Features

_LAZY = {
    "DeformConv2d": "blocks", "ResBlock": "blocks", "UpResBlock": "blocks", "VGG19Features": "blocks",
    "deform_conv2d": "blocks", "he_init": "blocks",
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "read_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "BPData": "inputs", "MDVDInputs": "inputs", "dataset_kwargs": "inputs", "make_inputs": "inputs",
    "target_planes": "inputs",
    "LandmarkCorrector": "landmarks", "landmark_loss": "landmarks",
    "MDVDConfig": "mdvd", "MDVDNet": "mdvd", "MDVDOutput": "mdvd", "apply_back_projection": "mdvd",
    "mdvd_loss": "mdvd",
    "MultiScaleDiscriminator": "discriminators", "PatchDiscriminator": "discriminators",
    "Keyframe": "keyframe_bank", "KeyframeBank": "keyframe_bank",
    "KeyframesConfig": "keyframes", "KeyframesGenerator": "keyframes",
    "mls_affine_grid": "mls", "mls_warp": "mls", "MobileNetV3Features": "mobilenet",
}

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def __getattr__(name: str) -> Any:
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


def available(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the shipped checkpoints (``pycodec/weights/*.pt``), sorted."""
    d = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    return sorted(p.stem for p in d.glob("*.pt")) if d.is_dir() else []


def load(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
         weights_dir: str | os.PathLike | None = None) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, meta) from a shipped checkpoint name such as ``'mdvd-h264'`` or from a
    checkpoint path (anything with a path separator or a ``.pt``/``.pth`` suffix, or an existing
    file).  An unknown name raises :class:`CheckpointError` listing the available ones."""
    from .checkpoint import CheckpointError, load_checkpoint

    s = os.fspath(name_or_path)
    is_path = os.sep in s or "/" in s or s.endswith((".pt", ".pth")) or os.path.isfile(s)
    if is_path:
        return load_checkpoint(s, device)
    d = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    path = d / f"{s}.pt"
    if not path.is_file():
        names = available(d)
        raise CheckpointError(f"no shipped checkpoint named {s!r} (looked for {path}); available: "
                              f"{', '.join(names) if names else 'none yet'}; pass a checkpoint path instead")
    return load_checkpoint(path, device)


__all__ = [
    "WEIGHTS_DIR",
    "BPData",
    "CheckpointError",
    "DeformConv2d",
    "Keyframe",
    "KeyframeBank",
    "KeyframesConfig",
    "KeyframesGenerator",
    "LandmarkCorrector",
    "MDVDConfig",
    "MDVDInputs",
    "MDVDNet",
    "MDVDOutput",
    "MobileNetV3Features",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "ResBlock",
    "UpResBlock",
    "VGG19Features",
    "apply_back_projection",
    "available",
    "dataset_kwargs",
    "deform_conv2d",
    "he_init",
    "landmark_loss",
    "load",
    "load_checkpoint",
    "make_inputs",
    "mdvd_loss",
    "mls_affine_grid",
    "mls_warp",
    "read_checkpoint",
    "save_checkpoint",
    "target_planes",
]
