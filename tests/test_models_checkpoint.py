"""pycodec.models checkpoints: save/load round trips (float32, fp16, optimizer state), atomic
writes, every way a checkpoint can be wrong (always CheckpointError, never a random model), the
shipped-name resolution of pycodec.models.load and the lazy package import."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import models_helpers as MH
import pytest
import torch
from models_helpers import one_thread  # noqa: F401 (one_thread: autouse fixture of every test here)

import pycodec.models as PM
from pycodec.models import (
    CheckpointError,
    MDVDConfig,
    MDVDNet,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from pycodec.models.blocks import he_init
from pycodec.models.checkpoint import FORMAT


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    m = MDVDNet(MH.tiny_config(8, **kw))
    he_init(m.unet.tail, scale=0.1)  # a non-trivial output for the comparisons
    return m.eval()


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "; " in msg, msg
    return msg


META = {"iterations": 1200, "data_sha256": "ab" * 32, "val": {"psnr_y": 31.25, "rates": [60, 90]}, "note": None}


class TestSaveLoad:
    def test_round_trip(self, tmp_path):
        m = _model()
        p = save_checkpoint(tmp_path / "ck" / "m.pt", m, meta=META)
        assert p.is_file() and [q.name for q in p.parent.iterdir()] == ["m.pt"]  # no temporary left
        m2, meta = load_checkpoint(p)
        assert meta == META and isinstance(m2, MDVDNet) and m2.cfg == m.cfg and not m2.training
        sd, sd2 = m.state_dict(), m2.state_dict()
        assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
        x, _ = MH.synthetic_inputs(1, 32, 32)
        with torch.no_grad():
            assert torch.equal(m(x).prebp, m2(x).prebp)
        raw = read_checkpoint(p)
        assert raw["format"] == FORMAT and raw["arch"] == "mdvd" and raw["config"] == m.cfg.to_dict()
        assert "optimizer" not in raw

    def test_fp16_and_optimizer_state(self, tmp_path):
        m = _model(1)
        opt = torch.optim.Adam(m.trainable_parameters(), 1e-4)
        x, tgt = MH.synthetic_inputs(1, 16, 16)
        PM.mdvd_loss(m.train()(x), tgt, m.cfg).backward()
        opt.step()
        full = save_checkpoint(tmp_path / "full.pt", m, m.cfg, {"it": 1})
        half = save_checkpoint(tmp_path / "half.pt", m, meta={"it": 1}, optimizer=opt, fp16=True)
        opt_only = save_checkpoint(tmp_path / "o.pt", m, meta={}, optimizer=opt)
        assert os.path.getsize(half) < 0.75 * os.path.getsize(opt_only)
        assert os.path.getsize(full) < os.path.getsize(opt_only)
        m2, _ = load_checkpoint(half)
        for k, v in m.state_dict().items():
            w = m2.state_dict()[k]
            assert w.dtype == v.dtype, k
            torch.testing.assert_close(w, v.half().to(v.dtype), rtol=0, atol=0)
        raw = read_checkpoint(half)
        assert raw["dtype"] == "float16" and raw["state_dict"]["unet.tail.weight"].dtype == torch.float16
        opt2 = torch.optim.Adam(m2.trainable_parameters(), 1e-4)
        opt2.load_state_dict(raw["optimizer"])
        assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]

    def test_atomic_write_keeps_the_old_file_on_failure(self, tmp_path, monkeypatch):
        p = save_checkpoint(tmp_path / "m.pt", _model(), meta={"v": 1})
        before = p.read_bytes()

        def boom(*a, **k):
            raise OSError("disk full")

        monkeypatch.setattr(torch, "save", boom)
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(p, _model(2), meta={"v": 2})
        assert p.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.pt"]
        monkeypatch.undo()
        with pytest.raises(TypeError, match="plain data"):
            save_checkpoint(p, _model(), meta={"t": torch.zeros(1)})
        with pytest.raises(ValueError, match="config"):
            save_checkpoint(p, torch.nn.Linear(2, 2), meta={})
        with pytest.raises(ValueError, match="arch"):
            save_checkpoint(p, _model(), arch="gan")
        assert p.read_bytes() == before

    @pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA"))])
    def test_device(self, tmp_path, device):
        p = save_checkpoint(tmp_path / "m.pt", _model(), meta={})
        m, _ = load_checkpoint(p, device)
        assert next(m.parameters()).device.type == device


class TestCheckpointErrors:
    @pytest.fixture
    def good(self, tmp_path):
        return save_checkpoint(tmp_path / "good.pt", _model(), meta={"it": 3})

    def test_is_a_value_error(self):
        assert issubclass(CheckpointError, ValueError)

    def test_missing_file(self, tmp_path):
        with pytest.raises(CheckpointError, match="no such checkpoint file") as e:
            load_checkpoint(tmp_path / "nope.pt")
        _one_line(e, tmp_path / "nope.pt")

    @pytest.mark.parametrize("cut", [0, 16, 0.5, -10])
    def test_truncated(self, good, tmp_path, cut):
        data = good.read_bytes()
        n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
        bad = tmp_path / "bad.pt"
        bad.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
            load_checkpoint(bad)
        _one_line(e, bad)

    def test_garbage(self, tmp_path):
        bad = tmp_path / "bad.pt"
        bad.write_bytes(os.urandom(4096))
        with pytest.raises(CheckpointError, match="unreadable") as e:
            load_checkpoint(bad)
        _one_line(e, bad)

    def test_wrong_format(self, tmp_path, good):
        plain = tmp_path / "plain.pt"
        torch.save(_model().state_dict(), plain)  # a bare state_dict is not a checkpoint
        with pytest.raises(CheckpointError, match="format is None") as e:
            load_checkpoint(plain)
        _one_line(e, plain)
        raw = read_checkpoint(good)
        for key, value, msg in (("format", "pycodec-checkpoint/0", "format is"), ("arch", "gan", "architecture"),
                                ("config", "no", "valid 'config'"), ("meta", [1], "valid 'meta'")):
            bad = tmp_path / f"bad_{key}.pt"
            torch.save({**raw, key: value}, bad)
            with pytest.raises(CheckpointError, match=msg) as e:
                load_checkpoint(bad)
            _one_line(e, bad)
        bad = tmp_path / "pickle.pt"
        torch.save({"format": FORMAT, "obj": MDVDConfig()}, bad)  # not loadable with weights_only
        with pytest.raises(CheckpointError, match="unreadable"):
            load_checkpoint(bad)

    def test_config_and_weights_that_do_not_fit(self, tmp_path, good):
        raw = read_checkpoint(good)
        cases = {
            "unknown_key": ({**raw, "config": {**raw["config"], "chanels": 8}}, "invalid model config"),
            "bad_value": ({**raw, "config": {**raw["config"], "landmarks": "dlib"}}, "invalid model config"),
            "missing": ({**raw, "state_dict": {k: v for k, v in raw["state_dict"].items() if "unet" not in k}},
                        "do not fit"),
            "unexpected": ({**raw, "state_dict": {**raw["state_dict"], "extra.weight": torch.zeros(1)}}, "unexpected"),
            "shape": ({**raw, "state_dict": {**raw["state_dict"], "unet.tail.bias": torch.zeros(7)}}, "has shape"),
            "nan": ({**raw, "state_dict": {**raw["state_dict"], "unet.tail.bias": torch.full_like(
                raw["state_dict"]["unet.tail.bias"], float("nan"))}}, "NaN"),
        }
        for name, (obj, msg) in cases.items():
            bad = tmp_path / f"{name}.pt"
            torch.save(obj, bad)
            with pytest.raises(CheckpointError, match=msg) as e:
                load_checkpoint(bad)
            _one_line(e, bad)
        # a checkpoint of another configuration does not load into a different one's weights
        other = save_checkpoint(tmp_path / "other.pt", MDVDNet(replace(MH.tiny_config(8), channels=16)), meta={})
        obj = read_checkpoint(other)
        obj["config"] = raw["config"]
        torch.save(obj, tmp_path / "mixed.pt")
        with pytest.raises(CheckpointError, match="has shape"):
            load_checkpoint(tmp_path / "mixed.pt")


class TestLoadByName:
    def test_names_paths_and_available(self, tmp_path):
        wd = tmp_path / "weights"
        assert PM.available(wd) == []
        with pytest.raises(CheckpointError, match="no shipped checkpoint named 'mdvd-h264'.*available: none yet"):
            PM.load("mdvd-h264", weights_dir=wd)
        wd.mkdir()
        m = _model()
        save_checkpoint(wd / "mdvd-hevc.pt", m, meta={"codec": "hevc"})
        save_checkpoint(wd / "mdvd-h264-compact.pt", m, meta={"codec": "h264"})
        assert PM.available(wd) == ["mdvd-h264-compact", "mdvd-hevc"]
        with pytest.raises(CheckpointError, match="available: mdvd-h264-compact, mdvd-hevc"):
            PM.load("mdvd-h264", weights_dir=wd)
        m2, meta = PM.load("mdvd-hevc", weights_dir=wd)
        assert meta == {"codec": "hevc"} and isinstance(m2, MDVDNet)
        _, meta3 = PM.load(str(wd / "mdvd-h264-compact.pt"))
        assert meta3 == {"codec": "h264"}
        with pytest.raises(CheckpointError, match="no such checkpoint file"):
            PM.load(tmp_path / "absent.pt")
        assert isinstance(PM.available(), list)  # the package's own weights folder (may be empty)

    def test_lazy_package_import(self):
        code = ("import sys, pycodec.models as m, pycodec.models.fields; assert 'torch' not in sys.modules; "
                "m.available(); assert 'torch' not in sys.modules; m.MDVDNet; assert 'torch' in sys.modules")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           check=False)
        assert r.returncode == 0, r.stderr
        with pytest.raises(AttributeError):
            PM.NoSuchThing  # noqa: B018
