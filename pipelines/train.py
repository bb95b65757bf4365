"""Training from YAML configs: MDVD-Net and its Table 1 ablations (``task: mdvd``) and the landmark
corrector it uses (``task: landmarks``).  docs/training.md.

    python -m pipelines.train --config pipelines/configs/mdvd.yaml [--out runs/NAME] [--resume]
                              [--device auto|cpu|cuda[:N]] [section.key=value ...]
    python -m torch.distributed.run --nproc_per_node=2 -m pipelines.train --config ...   # DDP

One process or DDP (``torchrun``: gloo on CPU, nccl on CUDA; rank 0 logs, validates and saves).
Exact resume: ``OUT/last.pt`` holds everything that decides the rest of the run (weights, optimiser,
AMP scaler, every rank's RNG states, data epoch and position, iteration), so an interrupted run
resumed with ``--resume`` ends with the same weights as an uninterrupted one.  SIGINT/SIGTERM
save ``last.pt`` after the current iteration and exit (128 + signal); a second signal aborts.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

FORMAT = "pycodec-train/1"
TASKS = ("mdvd", "landmarks")
SCHEDULES = ("constant", "step", "cosine")
AMP_MODES = ("off", "bf16", "fp16")

# Every key a config may set, with its default.  ``model`` also takes the fields of the model's own
# config (MDVDConfig, or the LandmarkCorrector's arguments); they are checked when it is built.
DEFAULTS: dict[str, Any] = {
    "task": "mdvd",            # mdvd | landmarks
    "description": "",         # free text, copied into logs and checkpoints
    "seed": 0,
    "model": {
        "preset": "compact",   # MDVDConfig.preset: paper | compact | realtime
        "table1_row": None,    # 0..8: MDVDConfig.table1_row(row, preset) (models.md 1.5)
        "corrector": None,     # landmarks 'corrected': the corrector trained by task landmarks (or 'untrained')
        "init": None,          # start from these weights: a checkpoint path or a shipped name (mdvd-h264)
    },
    "data": {
        "manifest": None,      # manifest.jsonl of `make dataset` (or a folder holding one); env PYCODEC_DATA
        "codec": "h264",       # one model per codec (models.md 1.4)
        "settings": [],        # e.g. [h264-cbr60k, h264-cbr70k]; [] = every setting of the codec
        "split": "train",
        "crop": 96,            # training patch side (multiple of the codec grid: 16 for H.264)
        "batch_size": 32,      # samples per optimiser step, all processes and accumulation steps together
        "workers": 2,          # DataLoader processes per training process
    },
    "optim": {
        "lr": 1.0e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
        "schedule": "step",    # constant | step | cosine
        "milestones": [0.8],   # step: fractions of total_iters (< 1) or iterations (>= 1)
        "gamma": 0.1,          # step: lr factor at each milestone
        "min_lr": 0.0,         # cosine: final lr
        "warmup_iters": 0,     # linear warm-up
        "accum": 1,            # gradient accumulation steps per optimiser step
        "total_iters": 100000,  # optimiser steps
        "grad_clip": 0.0,      # max gradient norm (0 = off)
        "amp": "bf16",         # off | bf16 | fp16 autocast (CUDA only; CPU trains in float32)
    },
    "val": {
        "every": 1000,         # iterations between validations (0 = never; then no best.pt)
        "split": "val",
        "settings": None,      # None = data.settings
        "frames": 64,          # a fixed, evenly spaced subset of the split's frames (whole frames)
        "batch_size": 4,
        "metric": None,        # what best.pt maximises; None = the task's default
        "at_start": True,      # also validate the untrained model (iteration 0): best.pt is never worse
    },
    "checkpoint": {
        "every": 1000,         # iterations between last.pt updates (it is also written at the end)
        "keep_every": 0,       # also keep a numbered copy every k iterations (0 = never)
    },
    "log": {
        "every": 50,           # iterations between CSV rows
        "tensorboard": "auto",  # auto (when installed) | true | false
    },
}
OPEN_SECTIONS = ("model",)
UNTRAINED = "untrained"  # model.corrector: keep the zero-initialised corrector (landmarks pass unchanged)
VAL_COLUMNS = {
    "mdvd": ("val_y_psnr", "val_y_gain", "val_yuv_psnr", "val_yuv_gain"),
    "landmarks": ("val_err_px", "val_err_in_px", "val_err_gain_px"),
}
DEFAULT_METRIC = {"mdvd": "val_y_gain", "landmarks": "val_err_gain_px"}


class ConfigError(Exception):
    """A problem with the config, the command line or the data it names: one line, exit 2."""


# ------------------------------------------------------------------------------------------ config


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config file with its ``base:`` chain merged in (paths relative to the file naming them)."""
    import yaml

    path = os.path.abspath(path)
    if path in chain:
        raise ConfigError(f"{path}: 'base' chain loops ({' -> '.join(chain + (path,))})")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config; see pipelines/configs/") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
    parent = _read_yaml(os.path.join(os.path.dirname(path), base), chain + (path,))
    return _deep_merge(parent, data)


def _set_dotted(cfg: dict[str, Any], item: str) -> None:
    import yaml

    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected section.key=value, e.g. optim.lr=5e-4")
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a section")
    node[parts[-1]] = value


def _check_keys(given: dict[str, Any], defaults: dict[str, Any], where: str, prefix: str = "") -> None:
    for k, v in given.items():
        name = prefix + k
        if k not in defaults:
            if prefix.rstrip(".") in OPEN_SECTIONS:
                continue
            raise ConfigError(f"{where}: unknown key {name!r} (known in this section: {', '.join(sorted(defaults))})")
        d = defaults[k]
        if isinstance(d, float) and isinstance(v, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                given[k] = v = float(v)
        if isinstance(d, dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {name!r} must be a section (mapping), got {v!r}")
            _check_keys(v, d, where, name + ".")
        elif d is not None and v is not None:
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool)) if isinstance(d, float) else \
                isinstance(v, type(d)) and not (isinstance(v, bool) and not isinstance(d, bool))
            if isinstance(d, str) and isinstance(v, bool):  # tensorboard: true/false
                ok = True
            if not ok:
                raise ConfigError(f"{where}: {name!r} must be {type(d).__name__}, got {v!r}")


def load_config(path: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config at ``path`` (with ``base:`` inheritance), ``overrides`` applied, defaults filled
    in and checked: unknown keys, wrong types and impossible values raise :class:`ConfigError`."""
    raw = _read_yaml(path)
    for item in overrides:
        _set_dotted(raw, item)
    _check_keys(raw, DEFAULTS, os.path.basename(path))
    cfg = _deep_merge(DEFAULTS, raw)
    _check_values(cfg, os.path.basename(path))
    return cfg


def _check_values(cfg: dict[str, Any], where: str) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{where}: {msg}")

    d, o, v = cfg["data"], cfg["optim"], cfg["val"]
    if o["amp"] is False:  # YAML 1.1 reads a bare `off` as false
        o["amp"] = "off"
    need(cfg["task"] in TASKS, f"task must be one of {', '.join(TASKS)}, got {cfg['task']!r}")
    need(d["codec"] in ("h264", "hevc"), f"data.codec must be h264 or hevc, got {d['codec']!r}")
    need(isinstance(d["settings"], list), "data.settings must be a list such as [h264-cbr60k, h264-cbr120k]")
    grid = 16 if d["codec"] == "h264" else 64
    need(d["crop"] > 0 and d["crop"] % grid == 0, f"data.crop must be a positive multiple of {grid} "
         f"(the {d['codec']} grid), got {d['crop']}")
    need(d["batch_size"] >= 1 and d["workers"] >= 0, "data.batch_size must be >= 1 and data.workers >= 0")
    need(o["schedule"] in SCHEDULES, f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {o['schedule']!r}")
    need(str(o["amp"]) in AMP_MODES, f"optim.amp must be one of {', '.join(AMP_MODES)}, got {o['amp']!r}")
    need(o["total_iters"] >= 1 and o["accum"] >= 1, "optim.total_iters and optim.accum must be >= 1")
    need(o["lr"] > 0 and len(o["betas"]) == 2, "optim.lr must be > 0 and optim.betas a pair")
    need(all(isinstance(m, (int, float)) and m > 0 for m in o["milestones"]), "optim.milestones must be positive")
    need(d["batch_size"] % o["accum"] == 0, f"data.batch_size ({d['batch_size']}) must be a multiple of "
         f"optim.accum ({o['accum']})")
    metric = v["metric"] or DEFAULT_METRIC[cfg["task"]]
    need(metric in VAL_COLUMNS[cfg["task"]], f"val.metric must be one of {', '.join(VAL_COLUMNS[cfg['task']])}")
    v["metric"] = metric
    need(v["every"] >= 0 and v["frames"] >= 1 and v["batch_size"] >= 1, "val.every >= 0, val.frames and "
         "val.batch_size >= 1")
    need(cfg["checkpoint"]["every"] >= 1 and cfg["log"]["every"] >= 1, "checkpoint.every and log.every must be >= 1")
    tb = cfg["log"]["tensorboard"]
    need(tb in ("auto", True, False), f"log.tensorboard must be auto, true or false, got {tb!r}")


def resolve_manifest(cfg: dict[str, Any]) -> str:
    """``data.manifest``, else ``$PYCODEC_DATA`` (a manifest or a folder with manifest.jsonl)."""
    m = cfg["data"]["manifest"] or os.environ.get("PYCODEC_DATA")
    if not m:
        raise ConfigError("data.manifest is not set; pass data.manifest=PATH/manifest.jsonl or set PYCODEC_DATA")
    if os.path.isdir(m):
        m = os.path.join(m, "manifest.jsonl")
    if not os.path.isfile(m):
        raise ConfigError(f"data.manifest: {m}: no such file; build the dataset with `make dataset` (docs/dataset.md)")
    return os.path.abspath(m)


def select_shards(manifest: str, split: str, codec: str, settings: Sequence[str]) -> list[str]:
    """Shard paths of ``split`` for ``codec`` and ``settings`` ([] = all of the codec), manifest order."""
    from pycodec.nn import shards_from_manifest

    with open(manifest) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    have = sorted({r["setting"] for r in rows if r["codec"] == codec})
    if not have:
        raise ConfigError(f"{manifest}: no {codec} shards (settings there: "
                          f"{', '.join(sorted({r['setting'] for r in rows})) or 'none'})")
    missing = [s for s in settings if s not in have]
    if missing:
        raise ConfigError(f"data.settings: {', '.join(missing)} not in {manifest} (it has {', '.join(have)})")
    out: list[str] = []
    for s in settings or have:
        out += shards_from_manifest(manifest, split=split, codec=codec, setting=s)
    return out


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ tasks


def _centre(a: Any) -> Any:
    """Frame t of a window field (B, 2n+1, ...)."""
    return a[:, a.shape[1] // 2]


def _psnr(mse: Any) -> Any:
    import torch

    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))


def mdvd_config(cfg: dict[str, Any]) -> Any:
    """The :class:`~pycodec.models.mdvd.MDVDConfig` of a config's ``model`` section: the preset (or
    its Table 1 row), then any MDVDConfig field set there."""
    from pycodec.models.mdvd import MDVDConfig

    m = {k: v for k, v in cfg["model"].items() if k not in DEFAULTS["model"]}
    preset, row = cfg["model"]["preset"], cfg["model"]["table1_row"]
    try:
        mc = MDVDConfig.table1_row(int(row), preset) if row is not None else MDVDConfig.preset(preset)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"model: preset {preset!r} / table1_row {row!r}: {exc}") from None
    known = {f.name for f in dataclasses.fields(MDVDConfig)}
    bad = sorted(set(m) - known)
    if bad:
        raise ConfigError(f"model: unknown key {bad[0]!r} (MDVDConfig fields: {', '.join(sorted(known))}; "
                          "or preset, table1_row, corrector)")
    try:
        return dataclasses.replace(mc, **m) if m else mc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from None


class MdvdTask:
    """MDVD-Net (or one of its Table 1 ablations) on ``pycodec.models``' inputs and loss."""

    name = "mdvd"

    def __init__(self, cfg: dict[str, Any], device: Any, autocast: Any) -> None:
        self.cfg, self.device, self.autocast = cfg, device, autocast
        self.mcfg = mdvd_config(cfg)
        self.corrector = cfg["model"]["corrector"]
        if self.mcfg.landmarks == "corrected" and self.corrector is None:
            raise ConfigError("model: landmarks are 'corrected' but model.corrector is not set; train the corrector "
                              "(pipelines/configs/landmarks.yaml) and set model.corrector=PATH/best.pt, or "
                              f"model.corrector={UNTRAINED} (decoded landmarks unchanged)")
        if self.corrector not in (None, UNTRAINED) and not os.path.isfile(self.corrector):
            raise ConfigError(f"model.corrector: {self.corrector}: no such file; train it first: python -m "
                              f"pipelines.train --config pipelines/configs/landmarks.yaml --out "
                              f"{os.path.dirname(self.corrector) or 'runs/landmarks'}")
        self.init = cfg["model"]["init"]
        if self.init is not None:
            from pycodec import models

            if not os.path.isfile(str(self.init)) and str(self.init) not in models.available():
                raise ConfigError(f"model.init: {self.init}: neither a checkpoint file nor a shipped checkpoint "
                                  f"(shipped: {', '.join(models.available()) or 'none'})")
        self.codec = cfg["data"]["codec"]
        self.collate = functools.partial(mdvd_collate, self.codec)

    def model_config(self) -> Any:
        return self.mcfg

    def build(self) -> Any:
        from pycodec.models.mdvd import MDVDNet

        net = MDVDNet(self.mcfg)
        if self.corrector not in (None, UNTRAINED):
            _load_corrector(net, self.corrector)
        if self.init is not None:  # fine-tune: every weight (the frozen corrector included) from there
            from pycodec import models

            start, _ = models.load(str(self.init))
            if start.cfg.to_dict() != self.mcfg.to_dict():
                diff = sorted(k for k, v in self.mcfg.to_dict().items() if start.cfg.to_dict().get(k) != v)
                raise ConfigError(f"model.init: {self.init} is another architecture (differs in {', '.join(diff)}); "
                                  "use the config it was trained with (its card: pycodec/weights/NAME.json)")
            net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in start.state_dict().items()})
        return net

    def dataset(self, files: list[str], train: bool, seed: int) -> Any:
        from pycodec.models.inputs import dataset_kwargs
        from pycodec.nn import CodecWindowDataset

        d = self.cfg["data"]
        kw = dict(dataset_kwargs(self.codec, train, (d["crop"], d["crop"]) if train else None))
        kw.update(seed=seed, random_crop=train)  # random crops: the only augmentation (models.md 1.4)
        return CodecWindowDataset(files, **kw)

    def _forward(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch

        inp = batch["inputs"].to(self.device, torch.float32)
        with self.autocast():
            return model(inp)

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(training loss, the same L1 of the decoded input: where a model at identity stands)."""
        import torch

        from pycodec.models.mdvd import mdvd_loss

        out = self._forward(model, batch)
        tgt = {k: v.to(self.device, non_blocking=True) for k, v in batch["target"].items()}
        with self.autocast():
            loss = mdvd_loss(out, tgt, self.mcfg).float()
        with torch.no_grad():
            n = sum(t.numel() for t in tgt.values())
            base = sum((batch["decoded"][k].to(self.device).float() / 255 - tgt[k].float()).abs().sum()
                       for k in tgt) / n
        return loss, base

    def validate(self, model: Any, loader: Any) -> dict[str, float]:
        """PSNR (8-bit output vs ground truth) and its gain over the decoded input, per frame, averaged:
        on Y and on all YUV 4:2:0 samples together."""
        import torch

        psnr: dict[str, list[Any]] = {k: [] for k in ("y_out", "y_in", "all_out", "all_in")}
        for batch in loader:
            out = self._forward(model, batch)
            se: dict[str, Any] = {"out": 0.0, "in": 0.0}
            n_all = 0
            for k in ("y", "u", "v"):
                gt = batch["target"][k].float()
                b = gt.shape[0]
                gt = (gt.reshape(b, -1) * 255).round()
                pred = (out.planes[k].detach().float().cpu().clamp(0, 1).reshape(b, -1) * 255).round()
                dec = batch["decoded"][k].float().reshape(b, -1)
                e_out, e_in = ((pred - gt) ** 2).sum(1), ((dec - gt) ** 2).sum(1)
                if k == "y":
                    psnr["y_out"].append(_psnr(e_out / gt.shape[1]))
                    psnr["y_in"].append(_psnr(e_in / gt.shape[1]))
                se["out"], se["in"] = se["out"] + e_out, se["in"] + e_in
                n_all += gt.shape[1]
            psnr["all_out"].append(_psnr(se["out"] / n_all))
            psnr["all_in"].append(_psnr(se["in"] / n_all))
        g = {k: torch.cat(v).double() for k, v in psnr.items()}
        return {"val_y_psnr": float(g["y_out"].mean()), "val_y_gain": float((g["y_out"] - g["y_in"]).mean()),
                "val_yuv_psnr": float(g["all_out"].mean()),
                "val_yuv_gain": float((g["all_out"] - g["all_in"]).mean())}


def mdvd_collate(codec: str, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Samples -> {'inputs': MDVDInputs, 'target': gt planes in [0, 1], 'decoded': frame t's decoded
    planes}: built in the DataLoader workers, so the training process only runs the model."""
    from pycodec.models.inputs import make_inputs, target_planes
    from pycodec.nn import collate

    b = collate(samples)
    return {"inputs": make_inputs(b, codec, bp=True), "target": target_planes(b),
            "decoded": {k: _centre(b[f"decoded/{k}"]) for k in ("y", "u", "v")}}


CORRECTOR_ARCH = "landmarks"


def save_corrector(path: str, model: Any, kwargs: dict[str, Any], meta: dict[str, Any]) -> None:
    """A trained :class:`~pycodec.models.landmarks.LandmarkCorrector` in the layout of
    ``pycodec-checkpoint/1`` with ``arch: landmarks`` (config = its constructor arguments)."""
    import torch

    from pycodec.models.checkpoint import FORMAT as CKPT_FORMAT

    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": CKPT_FORMAT, "arch": CORRECTOR_ARCH, "config": kwargs, "meta": meta,
                       "state_dict": sd, "dtype": "float32", "torch": str(torch.__version__)}, path)


def _load_corrector(net: Any, path: str) -> None:
    """Put the corrector trained by ``task: landmarks`` (file ``path``) into ``net``; it stays frozen."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConfigError(f"model.corrector: {path}: unreadable ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(obj, dict) or obj.get("arch") != CORRECTOR_ARCH or "state_dict" not in obj:
        raise ConfigError(f"model.corrector: {path} is not a landmark corrector checkpoint (write one with "
                          "task: landmarks, pipelines/configs/landmarks.yaml)")
    if not hasattr(net, "corrector"):
        raise ConfigError("model.corrector is set but this model has no landmark corrector (its landmarks are not "
                          "'corrected'); remove model.corrector")
    try:
        net.load_corrector(obj["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"model.corrector: {path} does not fit MDVD-Net's corrector (trained with "
                          f"{obj.get('config')}; MDVD-Net uses the default sizes): "
                          f"{str(exc).splitlines()[0][:160]}") from None


class LandmarkTask:
    """The landmark corrector (models.md 1.2, 1.4): (MFCC window, decoded landmarks) -> ground-truth
    landmarks, MSE on coordinates / 256."""

    name = "landmarks"

    def __init__(self, cfg: dict[str, Any], device: Any, autocast: Any) -> None:
        from pycodec.models.landmarks import LandmarkCorrector

        self.cfg, self.device, self.autocast = cfg, device, autocast
        m = {k: v for k, v in cfg["model"].items() if k not in DEFAULTS["model"]}
        params = inspect.signature(LandmarkCorrector.__init__).parameters
        known = {k for k in params if k != "self"}
        bad = sorted(set(m) - known)
        if bad:
            raise ConfigError(f"model: unknown key {bad[0]!r} for the landmark corrector (arguments: "
                              f"{', '.join(sorted(known)) or 'none'})")
        self.kwargs = m
        from pycodec.nn import collate

        self.collate = collate

    def model_config(self) -> Any:
        from pycodec.models.landmarks import LandmarkCorrector

        params = inspect.signature(LandmarkCorrector.__init__).parameters
        return {k: self.kwargs.get(k, p.default) for k, p in params.items() if k != "self"}

    def build(self) -> Any:
        from pycodec.models.landmarks import LandmarkCorrector

        return LandmarkCorrector(**self.kwargs)

    def dataset(self, files: list[str], train: bool, seed: int) -> Any:
        from pycodec.models.fields import N_SPEECH
        from pycodec.nn import CodecWindowDataset

        return CodecWindowDataset(files, fields=("audio/mfcc",), center_fields=("landmarks/decoded", "landmarks/gt"),
                                  n=0, windows={"audio/mfcc": N_SPEECH}, seed=seed)

    def _predict(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(corrected, ground truth, valid): samples whose landmarks are missing (NaN) are masked."""
        import torch

        mf = batch["audio/mfcc"].float()
        mfcc = mf.reshape(mf.shape[0], mf.shape[1], -1).to(self.device)  # (B, 21, 4 * 13)
        lm, gt = batch["landmarks/decoded"].float(), batch["landmarks/gt"].float()
        valid = torch.isfinite(lm).flatten(1).all(1) & torch.isfinite(gt).flatten(1).all(1)
        lm, gt = torch.nan_to_num(lm).to(self.device), torch.nan_to_num(gt).to(self.device)
        with self.autocast():
            return model(mfcc, lm).float(), gt, valid.to(self.device)

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(training loss, the same loss of the decoded landmarks)."""
        import torch

        from pycodec.models.landmarks import landmark_loss

        pred, gt, valid = self._predict(model, batch)
        dec = torch.nan_to_num(batch["landmarks/decoded"].float()).to(gt.device)
        return landmark_loss(pred, gt, valid).float(), landmark_loss(dec, gt, valid).float()

    def validate(self, model: Any, loader: Any) -> dict[str, float]:
        """Mean point error in pixels of the corrected and of the decoded landmarks (valid samples)."""
        import torch

        out, inp = [], []
        for batch in loader:
            pred, gt, valid = self._predict(model, batch)
            dec = torch.nan_to_num(batch["landmarks/decoded"].float()).to(gt.device)
            out.append((pred - gt).norm(dim=-1).mean(-1)[valid].cpu())
            inp.append((dec - gt).norm(dim=-1).mean(-1)[valid].cpu())
        e_out, e_in = torch.cat(out).double().mean(), torch.cat(inp).double().mean()
        return {"val_err_px": float(e_out), "val_err_in_px": float(e_in), "val_err_gain_px": float(e_in - e_out)}


# ------------------------------------------------------------------------------------------ data order


def _ignore_signals(_: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the training process (which stops cleanly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class BatchStream:
    """Deterministic, resumable data order.  Epoch e is a permutation of the dataset seeded by (seed,
    e); every micro-step takes the next ``world * micro`` samples of it and rank r the r-th block of
    ``micro``; ``position`` counts the samples taken (all ranks), so (epoch, position) is the whole
    sampler state and a resumed run (any world size) continues where the interrupted one stopped."""

    def __init__(self, ds: Any, collate: Any, micro: int, rank: int, world: int, seed: int, workers: int, pin: bool,
                 epoch: int = 0, position: int = 0) -> None:
        self.ds, self.micro, self.rank, self.world, self.seed = ds, micro, rank, world, seed
        self.workers, self.pin, self.collate = workers, pin, collate
        self.epoch, self.position = epoch, position
        self.step = world * micro
        if len(ds) < self.step:
            raise ConfigError(f"the training set has {len(ds)} samples, fewer than one step takes "
                              f"({world} process(es) x {micro}); use more shards or a smaller data.batch_size")
        self._it: Iterator[Any] | None = None

    def _order(self) -> list[list[int]]:
        import torch

        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        perm = torch.randperm(len(self.ds), generator=g).tolist()
        r, m = self.rank, self.micro
        return [perm[p + r * m:p + (r + 1) * m] for p in range(self.position, len(perm) - self.step + 1, self.step)]

    def _start(self) -> None:
        import torch
        from torch.utils.data import DataLoader

        order = self._order()
        if not order:  # the epoch was used up exactly
            self.epoch, self.position = self.epoch + 1, 0
            order = self._order()
        self.ds.set_epoch(self.epoch)
        kw: dict[str, Any] = {"num_workers": self.workers, "collate_fn": self.collate, "pin_memory": self.pin,
                              "generator": torch.Generator()}  # never draws from the global RNG
        if self.workers:
            kw.update(worker_init_fn=_ignore_signals, prefetch_factor=2)
        self._it = iter(DataLoader(self.ds, batch_sampler=order, **kw))

    def next(self) -> dict[str, Any]:
        """The next micro-batch of this rank (advancing the position)."""
        if self._it is None:
            self._start()
        try:
            batch = next(self._it)  # type: ignore[arg-type]
        except StopIteration:
            self.epoch, self.position, self._it = self.epoch + 1, 0, None
            self._start()
            batch = next(self._it)  # type: ignore[arg-type]
        self.position += self.step
        return batch

    def reset(self, epoch: int, position: int) -> None:
        """Go back to (epoch, position): an iteration that did not finish is redone after resuming."""
        self.close()
        self.epoch, self.position = epoch, position

    def close(self) -> None:
        self._it = None


# ------------------------------------------------------------------------------------------ helpers


def lr_at(it: int, o: dict[str, Any]) -> float:
    """Learning rate of the optimiser step that follows ``it`` completed steps."""
    base, total = float(o["lr"]), int(o["total_iters"])
    if o["schedule"] == "constant":
        lr = base
    elif o["schedule"] == "step":
        marks = [round(m * total) if m < 1 else int(m) for m in o["milestones"]]
        lr = base * float(o["gamma"]) ** sum(it >= m for m in marks)
    else:
        lo = float(o["min_lr"])
        lr = lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
    w = int(o["warmup_iters"])
    return lr * (it + 1) / w if it < w else lr


def rng_state() -> dict[str, Any]:
    import torch

    s = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict[str, Any]) -> None:
    import torch

    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def atomic_torch_save(obj: Any, path: str) -> None:
    import torch

    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def param_checksum(model: Any) -> str:
    """sha256 of the model's parameters and buffers (bit-exact comparisons across ranks and runs)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current iteration; a second one aborts."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class CsvLog:
    """``log.csv``: one row per log interval and per validation.  On resume, rows after the
    checkpoint's iteration (written by the interrupted run after its last save) are dropped."""

    def __init__(self, path: str, columns: Sequence[str], resume_iter: int | None) -> None:
        self.path, self.columns = path, list(columns)
        if resume_iter is not None and os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iter"]) <= resume_iter]
            self._rewrite(rows)
        elif not os.path.exists(path) or resume_iter is None:
            self._rewrite([])

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def row(self, values: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()})


# ------------------------------------------------------------------------------------------ training


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _device(arg: str, dist: Dist) -> Any:
    import torch

    if arg == "auto":
        arg = "cuda" if torch.cuda.is_available() else "cpu"
    if arg.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {arg}: CUDA is not available here; use --device cpu")
        if arg == "cuda":
            arg = f"cuda:{dist.local}"
        torch.cuda.set_device(torch.device(arg))
    elif arg != "cpu":
        raise ConfigError(f"--device {arg!r}: expected auto, cpu, cuda or cuda:N")
    return torch.device(arg)


class Trainer:
    """One training run (this process's share of it under DDP)."""

    def __init__(self, cfg: dict[str, Any], out: str, args: argparse.Namespace, dist: Dist) -> None:
        import torch

        self.cfg, self.out, self.args, self.dist = cfg, out, args, dist
        self.device = _device(args.device, dist)
        amp = str(cfg["optim"]["amp"])
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp) if self.device.type == "cuda" \
            else None
        task_cls = {"mdvd": MdvdTask, "landmarks": LandmarkTask}[cfg["task"]]
        self.task = task_cls(cfg, self.device, self.autocast)
        self.manifest = resolve_manifest(cfg)
        d, v, o = cfg["data"], cfg["val"], cfg["optim"]
        self.micro = d["batch_size"] // o["accum"]
        if self.micro % dist.world:
            raise ConfigError(f"data.batch_size / optim.accum = {self.micro} must be a multiple of the number of "
                              f"processes ({dist.world})")
        self.micro //= dist.world
        train_files = select_shards(self.manifest, d["split"], d["codec"], d["settings"])
        if not train_files:
            raise ConfigError(f"{self.manifest}: no {d['split']} shards for {d['codec']} {d['settings'] or ''}")
        self.train_ds = self.task.dataset(train_files, True, cfg["seed"])
        self.val_ds = None
        if v["every"]:
            val_settings = d["settings"] if v["settings"] is None else v["settings"]
            val_files = select_shards(self.manifest, v["split"], d["codec"], val_settings)
            if not val_files:
                raise ConfigError(f"{self.manifest}: no {v['split']} shards to validate on; set val.every=0 to "
                                  "train without validation")
            self.val_ds = self.task.dataset(val_files, False, cfg["seed"])
        self.data_hash = file_sha256(self.manifest)

    def describe(self) -> str:
        """What this run would do (``--dry-run``)."""
        import torch

        seed_everything(self.cfg["seed"])
        net = self.task.build()
        n_all = sum(p.numel() for p in net.parameters())
        n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
        d, o = self.cfg["data"], self.cfg["optim"]
        steps = len(self.train_ds) // (self.micro * self.dist.world * o["accum"])
        amp = "off" if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", "")
        return "\n".join([
            f"task {self.cfg['task']}: {self.cfg['description'] or '-'}",
            f"model {type(net).__name__}: {n_train / 1e6:.3f} M trainable parameters ({n_all / 1e6:.3f} M in all)",
            f"config {json.dumps(_config_dict(self.task.model_config()), sort_keys=True)}",
            (f"data {self.manifest}: {len(self.train_ds)} {d['split']} samples ({d['codec']}, "
            f"{', '.join(d['settings']) or 'all settings'}), {len(self.val_ds) if self.val_ds else 0} "
            f"{self.cfg['val']['split']} frames"),
            (f"steps {o['total_iters']} x {d['batch_size']} samples = {o['total_iters'] * d['batch_size']} "
            f"({o['total_iters'] * d['batch_size'] / max(len(self.train_ds), 1):.2f} epochs; {steps} steps per epoch); "
            f"per process micro-batch {self.micro} x {o['accum']} accumulation x {self.dist.world} process(es)"),
            f"device {self.device} (amp {amp}), torch {torch.__version__}, {torch.get_num_threads()} threads",
            f"out {self.out}"])

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        import torch

        if self.amp_dtype is None:
            yield
        else:
            with torch.autocast("cuda", dtype=self.amp_dtype):
                yield

    # ------------------------------------------------------------------ checkpoints
    def _state(self, it: int, stream: BatchStream, best: float, wall: float) -> dict[str, Any] | None:
        """The resume state (every rank takes part: RNG states are gathered); None off rank 0."""
        import torch.distributed as tdist

        rng = rng_state()
        rngs = [rng]
        if self.dist.world > 1:
            rngs = [None] * self.dist.world
            tdist.all_gather_object(rngs, rng)
        if not self.dist.main:
            return None
        return {"format": FORMAT, "config": self.cfg, "iteration": it, "epoch": stream.epoch,
                "position": stream.position, "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rngs, "best": best, "world_size": self.dist.world,
                "wall_s": wall, "data_sha256": self.data_hash,
                "model_config": _config_dict(self.task.model_config())}

    def _save_last(self, it: int, stream: BatchStream, best: float, wall: float) -> None:
        if getattr(self, "_saved_at", None) == it:
            return
        self._saved_at = it
        state = self._state(it, stream, best, wall)
        if state is None:
            return
        path = os.path.join(self.out, "last.pt")
        atomic_torch_save(state, path)
        k = self.cfg["checkpoint"]["keep_every"]
        if k and it % k == 0:
            atomic_torch_save(state, os.path.join(self.out, f"iter-{it:07d}.pt"))

    def _save_model(self, name: str, it: int, figures: dict[str, float]) -> None:
        """``best.pt`` / ``final.pt``: the model alone (pycodec.models.load_checkpoint reads MDVD-Net)."""
        from pycodec.models.checkpoint import save_checkpoint

        meta = {"task": self.cfg["task"], "iteration": it, "val": figures, "config": self.cfg,
                "data_sha256": self.data_hash, "manifest": self.manifest, "description": self.cfg["description"]}
        path = os.path.join(self.out, name)
        if self.cfg["task"] == "landmarks":
            save_corrector(path, self.net, self.task.model_config(), meta)
        else:
            save_checkpoint(path, self.net, self.task.model_config(), meta)

    def _resume(self) -> dict[str, Any] | None:
        import torch

        path = os.path.join(self.out, "last.pt")
        if not os.path.exists(path):
            return None
        st = torch.load(path, map_location="cpu", weights_only=False)  # our own file (RNG states are tuples)
        if st.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a training state written by pipelines.train")
        # keys added to DEFAULTS since the state was written count with their default value
        saved_model = {**DEFAULTS["model"], **st["config"]["model"]}
        if st["config"]["task"] != self.cfg["task"] or saved_model != self.cfg["model"]:
            raise ConfigError(f"{path}: the config's task/model section differs from the checkpoint's; resume with "
                              f"the same model config (or use another --out)")
        return st

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        import torch
        from torch.utils.data import DataLoader, Subset

        n = len(self.val_ds)
        k = min(self.cfg["val"]["frames"], n)
        idx = sorted({round(float(i)) for i in np.linspace(0, n - 1, k)})
        loader = DataLoader(Subset(self.val_ds, idx), batch_size=self.cfg["val"]["batch_size"], shuffle=False,
                            num_workers=min(self.cfg["data"]["workers"], 2), collate_fn=self.task.collate,
                            generator=torch.Generator(),
                            worker_init_fn=_ignore_signals if self.cfg["data"]["workers"] else None)
        self.net.eval()
        try:
            with torch.no_grad():
                return self.task.validate(self.net, loader)
        finally:
            self.net.train()

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        import torch

        cfg, o, dist = self.cfg, self.cfg["optim"], self.dist
        seed_everything(cfg["seed"])  # the same initial weights on every rank
        self.net = self.task.build().to(self.device)
        params = [p for p in self.net.parameters() if p.requires_grad]  # the frozen corrector stays out
        self.opt = torch.optim.Adam(params, lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"])
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        seed_everything(cfg["seed"] + 1_000_003 * dist.rank)  # dropout etc. differ per rank
        state = self._resume() if self.args.resume else None
        it, epoch, position, best, wall = 0, 0, 0, -math.inf, 0.0
        if state is not None:
            self.net.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            it, epoch, position, best, wall = (state["iteration"], state["epoch"], state["position"], state["best"],
                                               state["wall_s"])
            if len(state["rng"]) == dist.world:
                set_rng_state(state["rng"][dist.rank])
            else:
                if dist.main:
                    print(f"train: resuming {state['world_size']} process(es)' run with {dist.world}: the data order "
                          "continues, random streams are reseeded (not bit-identical)", file=sys.stderr)
                seed_everything(cfg["seed"] + 7919 * it + 1_000_003 * dist.rank)
            del state
        model: Any = self.net
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                        find_unused_parameters=True)
        stream = BatchStream(self.train_ds, self.task.collate, self.micro, dist.rank, dist.world, cfg["seed"],
                             cfg["data"]["workers"], self.device.type == "cuda", epoch, position)
        return self._loop(model, stream, it, best, wall)

    def _loop(self, model: Any, stream: BatchStream, it: int, best: float, wall: float) -> int:
        import torch
        import torch.distributed as tdist

        cfg, o, dist = self.cfg, self.cfg["optim"], self.dist
        total, accum, resumed_at = o["total_iters"], o["accum"], it
        columns = ["iter", "epoch", "loss", "loss_in", "lr", "samples_per_s", "elapsed_s", *VAL_COLUMNS[cfg["task"]]]
        log = CsvLog(os.path.join(self.out, "log.csv"), columns, it if self.args.resume else None) \
            if dist.main else None
        tb = _tensorboard(self.out, cfg["log"]["tensorboard"]) if dist.main else None
        bar = _progress(total, it, cfg["task"]) if dist.main else None
        stop = StopFlag()
        stop.install()
        t_start = time.perf_counter()
        win_loss, win_base, win_n = 0.0, 0.0, 0
        win_train_s = 0.0
        reason = ""
        if it == 0 and self.val_ds is not None and cfg["val"]["at_start"]:  # the untrained model: best.pt's floor
            figures, best = self._validate_step(0, best, bar)
            if log is not None:
                log.row({"iter": 0, "epoch": stream.epoch, **figures, "elapsed_s": 0.0})
        try:
            while it < total:
                t_it = time.perf_counter()
                snap = (stream.epoch, stream.position, rng_state())
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(it, o)
                self.opt.zero_grad(set_to_none=True)
                sums = torch.zeros(3, device=self.device)  # loss, loss of the input, stop flag
                try:
                    for k in range(accum):
                        batch = stream.next()
                        sync = dist.world == 1 or k == accum - 1
                        with contextlib.nullcontext() if sync else model.no_sync():
                            loss, base = self.task.loss(model, batch)
                            self.scaler.scale(loss / accum).backward()
                        sums[0] += loss.detach() / accum
                        sums[1] += base.detach() / accum
                except Exception:
                    if stop.signum:  # a DataLoader worker went down with the signal: redo this iteration
                        stream.reset(snap[0], snap[1])
                        set_rng_state(snap[2])
                        reason = f"signal {stop.signum}"
                        break
                    raise
                if o["grad_clip"]:
                    self.scaler.unscale_(self.opt)
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), o["grad_clip"])
                self.scaler.step(self.opt)
                self.scaler.update()
                it += 1
                sums[2] = float(self._want_stop(stop, it, t_start))
                if dist.world > 1:
                    tdist.all_reduce(sums)
                    sums[:2] /= dist.world
                loss_v, base_v, want_stop = float(sums[0]), float(sums[1]), bool(sums[2] > 0)
                if not math.isfinite(loss_v):
                    raise FloatingPointError(f"the loss is {loss_v} at iteration {it}; lower optim.lr or enable "
                                             "optim.grad_clip (last.pt keeps the last good state)")
                win_loss, win_base, win_n = win_loss + loss_v, win_base + base_v, win_n + 1
                win_train_s += time.perf_counter() - t_it
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_v:.4g}", refresh=False)
                row: dict[str, Any] = {}
                if it % cfg["log"]["every"] == 0 or it == total:
                    sps = win_n * cfg["data"]["batch_size"] / max(win_train_s, 1e-9)
                    row = {"iter": it, "epoch": stream.epoch, "loss": win_loss / win_n, "loss_in": win_base / win_n,
                           "lr": lr_at(it - 1, o), "samples_per_s": sps}
                    win_loss, win_base, win_n, win_train_s = 0.0, 0.0, 0, 0.0
                # a planned stop (--time-limit, --stop-at) validates too, so best.pt has seen its weights
                planned_stop = want_stop and it < total and not stop.signum
                if self.val_ds is not None and (it % cfg["val"]["every"] == 0 or it == total or planned_stop):
                    figures, best = self._validate_step(it, best, bar)
                    row = {"iter": it, "epoch": stream.epoch, **row, **figures}
                if row and log is not None:
                    row["elapsed_s"] = wall + time.perf_counter() - t_start
                    log.row(row)
                    if tb is not None:
                        for k, v in row.items():
                            if k not in ("iter", "epoch", "elapsed_s") and isinstance(v, float):
                                tb.add_scalar(k, v, it)
                    if bar is None or bar.disable:
                        _say(None, f"iter {it}/{total} " + " ".join(
                            f"{k} {v:.4g}" for k, v in row.items() if k in ("loss", "loss_in", "lr", "samples_per_s")))
                if it % cfg["checkpoint"]["every"] == 0 or it == total:
                    self._save_last(it, stream, best, wall + time.perf_counter() - t_start)
                if want_stop and it < total:
                    reason = f"signal {stop.signum}" if stop.signum else \
                        ("--stop-at" if self.args.stop_at and it >= self.args.stop_at else "--time-limit")
                    break
        finally:
            stop.restore()
            stream.close()
            if bar is not None:
                bar.close()
            if tb is not None:
                tb.close()
        wall += time.perf_counter() - t_start
        checks = self._checksums()
        if reason:
            self._save_last(it, stream, best, wall)
            if dist.main:
                print(f"train: stopped ({reason}) at iteration {it} of {total}; {self.out}/last.pt saved; continue "
                      f"with --resume", file=sys.stderr)
            return 128 + stop.signum if stop.signum else 0
        if dist.main:
            figures = self._last_figures()
            self._save_model("final.pt", it, figures)
            summary = {"iterations": it, "resumed_at": resumed_at, "wall_s": round(wall, 3), "best": best,
                       "metric": cfg["val"]["metric"], "world_size": dist.world, "param_sha256": checks,
                       "device": str(self.device), "final_val": figures}
            with open(os.path.join(self.out, "summary.json"), "w") as f:
                json.dump(summary, f, indent=1)
            print(f"train: done, {it} iterations in {wall / 60:.1f} min; {self.out}/final.pt"
                  + (f", best {cfg['val']['metric']} {best:.4f} in best.pt" if math.isfinite(best) else ""),
                  file=sys.stderr)
        return 0

    def _validate_step(self, it: int, best: float, bar: Any) -> tuple[dict[str, float], float]:
        """Validate (rank 0), keep ``best.pt``; every rank gets the new best figure."""
        import torch
        import torch.distributed as tdist

        figures: dict[str, float] = {}
        if self.dist.main:
            figures = self.validate()
            m = figures[self.cfg["val"]["metric"]]
            if m > best:
                best = m
                self._save_model("best.pt", it, figures)
            _say(bar, f"iter {it}: " + ", ".join(f"{k[4:]} {v:.4f}" for k, v in figures.items()))
        if self.dist.world > 1:
            b = torch.tensor([best], dtype=torch.float64, device=self.device)
            tdist.broadcast(b, 0)
            best = float(b)
        return figures, best

    def _want_stop(self, stop: StopFlag, it: int, t_start: float) -> bool:
        a = self.args
        if stop.signum or (a.stop_at and it >= a.stop_at):
            return True
        return bool(a.time_limit and time.perf_counter() - t_start > 60 * a.time_limit)

    def _checksums(self) -> list[str]:
        """Every rank's parameter checksum (they must agree under DDP)."""
        import torch.distributed as tdist

        mine = param_checksum(self.net)
        if self.dist.world == 1:
            return [mine]
        sums: list[Any] = [None] * self.dist.world
        tdist.all_gather_object(sums, mine)
        if self.dist.main and len(set(sums)) != 1:
            print("train: warning: the ranks' weights differ at the end (DDP went out of sync)", file=sys.stderr)
        return sums

    def _last_figures(self) -> dict[str, float]:
        path = os.path.join(self.out, "log.csv")
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get(self.cfg["val"]["metric"])]
        return {k: float(v) for k, v in rows[-1].items() if k.startswith("val_") and v} if rows else {}


def _config_dict(c: Any) -> Any:
    if hasattr(c, "to_dict"):
        return c.to_dict()
    return dataclasses.asdict(c) if dataclasses.is_dataclass(c) else c


def _say(bar: Any, text: str) -> None:
    if bar is not None and not bar.disable:
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


def _progress(total: int, start: int, task: str) -> Any:
    from pipelines.common import progress

    bar = progress(total, f"train {task}", unit="it")
    bar.n = start
    bar.refresh()
    return bar


def _tensorboard(out: str, mode: Any) -> Any:
    if mode is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if mode is True:
            print("train: warning: log.tensorboard is true but tensorboard is not installed (pip install "
                  "tensorboard); logging to log.csv only", file=sys.stderr)
        return None
    return SummaryWriter(os.path.join(out, "tb"))


# ------------------------------------------------------------------------------------------ entry


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML config (pipelines/configs/)")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (a fresh start when absent)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--stop-at", type=int, default=0, metavar="ITER",
                   help="stop after iteration ITER, save last.pt and exit 0 (as if interrupted)")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="MIN",
                   help="stop after MIN minutes of training, save last.pt and exit 0")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and the data, print the run's size, train nothing")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides, e.g. optim.lr=5e-4")
    return p


def _dist_env() -> Dist:
    return Dist(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                int(os.environ.get("LOCAL_RANK", "0")))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    dist = _dist_env()
    initialised = False
    try:
        import torch

        from pycodec.models.fpenv import flushed_denormals

        cfg = load_config(args.config, args.overrides)
        out = args.out or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
        if not args.resume and os.path.exists(os.path.join(out, "last.pt")):
            raise ConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose "
                              "another --out")
        if dist.world > 1:
            import torch.distributed as tdist

            use_cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
            tdist.init_process_group("nccl" if use_cuda else "gloo")
            initialised = True
        trainer = Trainer(cfg, out, args, dist)
        if args.dry_run:
            if dist.main:
                print(trainer.describe())
            return 0
        if dist.main:
            os.makedirs(out, exist_ok=True)
            import yaml

            with open(os.path.join(out, "config.yaml"), "w") as f:
                yaml.safe_dump(cfg, f, sort_keys=False)
        if dist.world > 1:
            torch.distributed.barrier()
        with flushed_denormals():
            return trainer.run()
    except ConfigError as exc:
        print(f"train: error: {exc}" + (f" (rank {dist.rank})" if dist.world > 1 else ""), file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if dist.main:
            print("train: aborted (second signal); the last saved last.pt is intact", file=sys.stderr)
        return 130
    finally:
        if initialised:
            import torch.distributed as tdist

            with contextlib.suppress(Exception):
                tdist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
