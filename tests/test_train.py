"""pipelines/train.py on a tiny generated dataset (tests/train_data.py: 128x96 frames, 20 per shard,
ground truth = decoded + a known offset, ground-truth landmarks = decoded ones + a known shift) with
a tiny MDVD-Net: a smoke run, bit-exact resume, SIGTERM, two-process DDP (gloo), config errors, the
shipped configs, and landmark-corrector pretraining used by an MDVD-Net run."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import train_data
import yaml
from conftest import ROOT

from pipelines import train
from pycodec.models.fpenv import denormals_are_flushed

# The smallest MDVD-Net with every branch but the corrector (quarter-resolution trunk, 8 channels).
TINY_MODEL = {"preset": "realtime", "channels": 8, "deform_groups": 2, "lstm_hidden": 8, "lstm_layers": 1,
              "a_blocks": 1, "landmarks": "raw"}


@pytest.fixture(scope="module")
def manifest(store, tmp_path_factory) -> Path:
    return train_data.build(tmp_path_factory.mktemp("train_ds"), store.path("main_b"))


def tiny_config(path: Path, manifest: Path | None, **sections) -> str:
    """A config file for a few-second run; ``sections`` update the defaults below section-wise
    (``model`` replaces the tiny model)."""
    cfg = {"seed": 5, "model": dict(TINY_MODEL),
           "data": {"manifest": str(manifest) if manifest else None, "settings": ["h264-cbr60k"], "crop": 32,
                    "batch_size": 4, "workers": 0},
           "optim": {"lr": 2.0e-3, "total_iters": 6},
           "val": {"every": 3, "frames": 2, "batch_size": 2},
           "checkpoint": {"every": 3}, "log": {"every": 1}}
    for k, v in sections.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) and k != "model" else v
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def main(capsys, *argv) -> tuple[int, str]:
    rc = train.main([str(a) for a in argv])
    # FTZ/DAZ is process-wide: a run that left it on broke later hypothesis tests in CI
    assert not denormals_are_flushed(), "train.main left denormals flushed"
    return rc, capsys.readouterr().err


def one_error(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("train: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)
    return lines[0]


def log_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ config


def test_config_errors_are_one_line_exit_2(tmp_path, manifest, capsys, monkeypatch):
    monkeypatch.delenv("PYCODEC_DATA", raising=False)
    cases = [
        ({"optim": {"lrr": 1.0}}, (), ("unknown key 'optim.lrr'", "known in this section")),
        ({"model": {**TINY_MODEL, "chanels": 8}}, (), ("unknown key 'chanels'", "MDVDConfig fields")),
        ({"data": {"manifest": None}}, (), ("data.manifest is not set", "PYCODEC_DATA")),
        ({"data": {"manifest": str(tmp_path / "nope.jsonl")}}, (), ("nope.jsonl: no such file", "make dataset")),
        ({}, ("data.settings=[h264-cbr99k]",), ("h264-cbr99k not in", "h264-cbr60k, h264-cbr80k")),
        ({}, ("optim.lr",), ("override 'optim.lr'", "section.key=value")),
        ({}, ("optim.schedule=linear",), ("optim.schedule must be one of",)),
        ({}, ("data.crop=40",), ("multiple of 16",)),
        ({}, ("model.landmarks=corrected",), ("model.corrector is not set", "landmarks.yaml")),
        ({}, ("model.landmarks=corrected", f"model.corrector={tmp_path / 'c.pt'}"), ("c.pt: no such file",)),
        ({}, ("optim.total_iters=ten",), ("'optim.total_iters' must be int",)),
    ]
    for i, (sections, overrides, needles) in enumerate(cases):
        cfg = tiny_config(tmp_path / f"c{i}.yaml", manifest, **sections)
        rc, err = main(capsys, "--config", cfg, "--out", tmp_path / f"run{i}", "--dry-run", *overrides)
        assert rc == 2, (i, err)
        one_error(err, *needles)
        assert not (tmp_path / f"run{i}").exists()
    rc, err = main(capsys, "--config", tmp_path / "missing.yaml")
    assert rc == 2 and one_error(err, "missing.yaml: no such config")
    # the data may come from the environment (a manifest or its folder)
    monkeypatch.setenv("PYCODEC_DATA", str(manifest.parent))
    cfg = tiny_config(tmp_path / "env.yaml", None)
    rc = train.main(["--config", cfg, "--out", str(tmp_path / "env"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "20 train samples" in out and "20 val frames" in out and "MDVDNet" in out


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\noptim: {lr: 3e-3, total_iters: 10}\ndata: {crop: 64}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\noptim: {total_iters: 20}\n")
    cfg = train.load_config(str(tmp_path / "b.yaml"), ["data.batch_size=16", "optim.betas=[0.5, 0.9]", "optim.amp=off"])
    assert cfg["seed"] == 1 and cfg["optim"]["lr"] == 3e-3 and cfg["optim"]["total_iters"] == 20
    assert cfg["data"]["crop"] == 64 and cfg["data"]["batch_size"] == 16 and cfg["optim"]["betas"] == [0.5, 0.9]
    assert cfg["optim"]["amp"] == "off" and cfg["val"]["every"] == train.DEFAULTS["val"]["every"]
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    with pytest.raises(train.ConfigError, match="loops"):
        train.load_config(str(tmp_path / "b.yaml"))


def test_lr_schedules():
    o = {**train.DEFAULTS["optim"], "lr": 1.0, "total_iters": 100}
    assert [train.lr_at(i, o) for i in (0, 79, 80, 99)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]
    o2 = {**o, "milestones": [30, 0.9], "gamma": 0.5, "warmup_iters": 10}
    assert train.lr_at(0, o2) == pytest.approx(0.1) and train.lr_at(29, o2) == 1.0
    assert train.lr_at(30, o2) == 0.5 and train.lr_at(95, o2) == 0.25
    o3 = {**o, "schedule": "cosine", "min_lr": 0.1}
    assert train.lr_at(0, o3) == 1.0 and train.lr_at(50, o3) == pytest.approx(0.55) and train.lr_at(100, o3) == 0.1


def test_shipped_configs():
    d = ROOT / "pipelines" / "configs"
    rows = {}
    for p in sorted(d.glob("*.yaml")):
        cfg = train.load_config(str(p))
        if p.stem.endswith("-base"):  # shared settings, not a run of its own
            continue
        if cfg["task"] == "landmarks":
            assert cfg["model"] == train.DEFAULTS["model"]  # MDVD-Net's corrector has the default sizes
            continue
        m = train.mdvd_config(cfg)
        if m.landmarks == "corrected":
            assert cfg["model"]["corrector"] == "runs/landmarks/best.pt", p.name
        else:
            assert cfg["model"]["corrector"] is None, p.name
        if p.name.startswith("table1-row"):
            row = int(p.name[len("table1-row")])
            assert cfg["model"]["table1_row"] == row
            rows[row] = {k: v for k, v in cfg.items() if k not in ("model", "description")}
    assert sorted(rows) == list(range(9))
    assert all(r == rows[0] for r in rows.values())  # one budget for every row
    assert train.mdvd_config(train.load_config(str(d / "mdvd-paper.yaml"))).channels == 64


# ------------------------------------------------------------------------------------------ runs


def test_smoke_and_exact_resume(tmp_path, manifest, capsys):
    """7 steps with accumulation over an epoch boundary (20 samples, 4 per step), validation and
    checkpoints; the same run stopped after step 5 and resumed ends bit-identical."""
    cfg = tiny_config(tmp_path / "c.yaml", manifest, optim={"lr": 2.0e-3, "total_iters": 7, "accum": 2},
                      val={"every": 4, "frames": 2, "batch_size": 2})
    a, b = tmp_path / "a", tmp_path / "b"
    rc, err = main(capsys, "--config", cfg, "--out", a)
    assert rc == 0, err
    rows = log_rows(a)
    assert [int(r["iter"]) for r in rows] == list(range(8))  # 0: the untrained model validated
    assert all(math.isfinite(float(r["loss"])) and float(r["samples_per_s"]) > 0 for r in rows[1:])
    assert [bool(r["val_y_gain"]) for r in rows] == [True, False, False, False, True, False, False, True]
    assert abs(float(rows[0]["val_y_gain"])) < 0.5  # zero-initialised output: about the decoded input
    assert rows[-1]["epoch"] == "1" and float(rows[-1]["lr"]) == pytest.approx(2e-4)  # x0.1 at 80%
    last = state(a / "last.pt")
    assert last["iteration"] == 7 and last["format"] == train.FORMAT and (last["epoch"], last["position"]) == (1, 8)
    from pycodec.models import MDVDNet, load_checkpoint

    model, meta = load_checkpoint(a / "best.pt")
    assert isinstance(model, MDVDNet) and meta["iteration"] in (0, 4, 7) and "val_y_gain" in meta["val"]
    gains = [float(r["val_y_gain"]) for r in rows if r["val_y_gain"]]
    assert meta["val"]["val_y_gain"] == pytest.approx(max(gains), abs=1e-4)
    final, fmeta = load_checkpoint(a / "final.pt")
    assert fmeta["iteration"] == 7 and same_tensors(final.state_dict(), last["model"])
    summary = json.loads((a / "summary.json").read_text())
    assert summary["iterations"] == 7 and len(summary["param_sha256"]) == 1
    assert (a / "config.yaml").exists() and not list(a.glob(".*"))

    rc, err = main(capsys, "--config", cfg, "--out", b, "--stop-at", 5)
    assert rc == 0 and "stopped (--stop-at) at iteration 5 of 7" in err
    mid = state(b / "last.pt")
    assert (mid["iteration"], mid["epoch"], mid["position"]) == (5, 0, 20)  # the epoch used up exactly
    assert log_rows(b)[-1]["iter"] == "5" and log_rows(b)[-1]["val_y_gain"]  # a planned stop validates
    rc, err = main(capsys, "--config", cfg, "--out", b)
    assert rc == 2 and one_error(err, "already holds a run", "--resume")
    rc, err = main(capsys, "--config", cfg, "--out", b, "--resume")
    assert rc == 0, err
    end = state(b / "last.pt")
    assert same_tensors(end["model"], last["model"])
    assert json.loads((b / "summary.json").read_text())["param_sha256"] == summary["param_sha256"]
    assert [r["loss"] for r in log_rows(b)] == [r["loss"] for r in rows]
    assert same_tensors(end["optimizer"]["state"][0], last["optimizer"]["state"][0])

    # fine-tuning from a finished model: model.init puts every weight in place before step 1
    c = tmp_path / "c2"
    rc, err = main(capsys, "--config", cfg, "--out", c, "--stop-at", 1, f"model.init={a / 'final.pt'}")
    assert rc == 0, err
    first = log_rows(c)[0]
    assert float(first["val_y_gain"]) == pytest.approx(float(rows[-1]["val_y_gain"]), abs=1e-6)
    rc, err = main(capsys, "--config", cfg, "--out", tmp_path / "c3", "model.init=no-such-model")
    assert rc == 2 and one_error(err, "model.init", "no-such-model")


def test_sigterm_saves_a_resumable_checkpoint(tmp_path, manifest, capsys):
    cfg = tiny_config(tmp_path / "c.yaml", manifest, optim={"total_iters": 500}, val={"every": 0},
                      checkpoint={"every": 1000})
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "pipelines.train", "--config", cfg, "--out", str(run)], cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if (run / "log.csv").exists() and len(log_rows(run)) >= 2:
                break
            time.sleep(0.2)
        assert p.poll() is None, p.communicate()[1]
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "stopped (signal 15)" in err and "Traceback" not in err
    k = state(run / "last.pt")["iteration"]
    assert 2 <= k < 500 and not list(run.glob(".*"))
    rc, err = main(capsys, "--config", cfg, "--out", run, "--resume", "--stop-at", k + 1)
    assert rc == 0, err
    assert state(run / "last.pt")["iteration"] == k + 1
    assert [int(r["iter"]) for r in log_rows(run)] == list(range(1, k + 2))


def test_ddp_two_processes_gloo(tmp_path, manifest):
    cfg = tiny_config(tmp_path / "c.yaml", manifest, optim={"lr": 3.0e-3, "total_iters": 8},
                      val={"every": 8, "frames": 4, "batch_size": 2})
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "pipelines.train", "--config", cfg, "--out", str(run), "--device", "cpu"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["world_size"] == 2 and len(s["param_sha256"]) == 2 and len(set(s["param_sha256"])) == 1
    rows = log_rows(run)
    assert [int(x["iter"]) for x in rows] == list(range(9))  # rank 0 alone writes
    losses = [float(x["loss"]) for x in rows[1:]]
    assert losses[0] > np.mean(losses[-3:])
    assert float(rows[-1]["val_y_gain"]) > 0.5  # the untrained model is exactly the decoded input (gain 0)
    assert state(run / "last.pt")["world_size"] == 2


def test_landmark_pretraining_then_mdvd_with_it(tmp_path, manifest, capsys):
    cfg = tiny_config(tmp_path / "lm.yaml", manifest, task="landmarks", model={},
                      data={"settings": [], "batch_size": 8}, optim={"lr": 1.0e-3, "total_iters": 3},
                      val={"every": 3, "frames": 16, "batch_size": 8})
    lm_run = tmp_path / "landmarks"
    rc, err = main(capsys, "--config", cfg, "--out", lm_run)
    assert rc == 0, err
    rows = log_rows(lm_run)
    shift = float(np.hypot(*train_data.LM_SHIFT))
    assert float(rows[-1]["val_err_in_px"]) == pytest.approx(shift, abs=1e-4)  # decoded vs ground truth
    assert all(math.isfinite(float(r["loss"])) for r in rows[1:])  # the frame without landmarks is masked
    best = torch.load(lm_run / "best.pt", weights_only=True)
    assert best["arch"] == "landmarks" and best["config"]["hidden"] == 128

    mcfg = tiny_config(tmp_path / "m.yaml", manifest, model={**TINY_MODEL, "landmarks": "corrected",
                                                             "corrector": str(lm_run / "best.pt")},
                       optim={"total_iters": 1}, val={"every": 0})
    rc, err = main(capsys, "--config", mcfg, "--out", tmp_path / "mdvd")
    assert rc == 0, err
    sd = state(tmp_path / "mdvd" / "last.pt")["model"]
    assert same_tensors({k[len("corrector."):]: v for k, v in sd.items() if k.startswith("corrector.")},
                        best["state_dict"])  # loaded, and frozen while MDVD-Net trained
