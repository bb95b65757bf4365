"""Checkpoints of the restoration models: one torch file holding the format tag, the
architecture, its config, free-form metadata and the weights (optionally fp16), written
atomically.  Loading never gives a silently random model: every problem is a
:class:`CheckpointError` naming the file and what to do."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

FORMAT = "pycodec-checkpoint/1"
ARCHS = ("mdvd", "keyframes")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of another format or does not fit its model."""


def _plain(x: Any, where: str = "meta") -> None:
    """Metadata must be plain data (loads with ``weights_only=True``, dumps to JSON/YAML)."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _plain(v, f"{where}[{i}]")
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            _plain(v, f"{where}.{k}")
        return
    raise TypeError(f"{where} must hold plain data (str, int, float, bool, None, lists, dicts), "
                     f"got {type(x).__name__}")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, cfg: Any = None, meta: dict[str, Any] | None = None,
                    optimizer: dict[str, Any] | torch.optim.Optimizer | None = None, fp16: bool = False,
                    arch: str = "mdvd") -> Path:
    """Write ``{'format', 'arch', 'config': cfg.to_dict(), 'meta', 'state_dict'[, 'optimizer']}``
    to ``path`` atomically (temporary file + rename).  ``cfg`` defaults to ``model.cfg``; ``meta``:
    plain data (iterations, data hash, validation figures, ...); ``fp16``: floating weights stored as
    float16 (half the size; loaded back as float32); ``optimizer``: an optimizer or its state_dict
    (for resuming; read it with :func:`read_checkpoint`)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    cfg = cfg if cfg is not None else getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        raise ValueError("save_checkpoint needs the model's config (an object with to_dict())")
    meta = dict(meta or {})
    _plain(meta)
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        sd[k] = v.to(torch.float16) if fp16 and v.is_floating_point() else v.clone()
    obj: dict[str, Any] = {"format": FORMAT, "arch": arch, "config": cfg.to_dict(), "meta": meta, "state_dict": sd,
                           "dtype": "float16" if fp16 else "float32"}
    if optimizer is not None:
        obj["optimizer"] = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checked contents of a checkpoint file (CPU tensors), e.g. to resume an optimizer."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file; check the path, or train one (pipelines/train.py)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{p}: unreadable checkpoint (truncated or corrupt: {why}); "
                              "copy it again or retrain") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        fmt = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{p}: format is {fmt!r}, expected {FORMAT!r}; save it with "
                              "pycodec.models.save_checkpoint")
    if obj.get("arch") not in ARCHS:
        raise CheckpointError(f"{p}: architecture {obj.get('arch')!r} is not one of {ARCHS}; use a newer pycodec")
    for key, typ in (("config", dict), ("meta", dict), ("state_dict", dict)):
        if not isinstance(obj.get(key), typ):
            raise CheckpointError(f"{p}: the checkpoint has no valid {key!r}; re-save it with save_checkpoint")
    return obj


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """A fresh model of ``arch`` from its config dict."""
    if arch == "mdvd":
        from .mdvd import MDVDConfig, MDVDNet

        return MDVDNet(MDVDConfig.from_dict(config))
    if arch == "keyframes":
        from .keyframes import KeyframesConfig, KeyframesGenerator, make_backbone

        cfg = KeyframesConfig.from_dict(config)
        # the backbone's weights (a frozen VGG's too) are in the checkpoint's state_dict
        kw = {"allow_random": True} if cfg.backbone == "vgg19" else {}
        return KeyframesGenerator(cfg, make_backbone(cfg.backbone, **kw))
    raise ValueError(f"unknown architecture {arch!r}")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on ``device``, meta) from a file written by :func:`save_checkpoint`.
    Missing, truncated or corrupt files, another format, a bad config, weights that do not fit
    the architecture or are not finite: :class:`CheckpointError`."""
    p = Path(path)
    obj = read_checkpoint(p)
    try:
        model = build_model(obj["arch"], obj["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{p}: invalid model config ({exc}); the file was written by an incompatible "
                              "pycodec or edited") from exc
    own = model.state_dict()
    sd: dict[str, Tensor] = obj["state_dict"]
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{p}: the weights do not fit the '{obj['arch']}' model of its config (missing "
                              f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                              f"{'...' if len(unexpected) > 3 else ''}); retrain or re-save it")
    for k, v in sd.items():
        if not isinstance(v, Tensor) or tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{p}: weight {k!r} has shape {tuple(getattr(v, 'shape', ()))}, the model needs "
                                  f"{tuple(own[k].shape)}; retrain or re-save it")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{p}: weight {k!r} holds NaN or inf (a diverged training); use an earlier checkpoint")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})
    model.to(device).eval()
    return model, dict(obj["meta"])
