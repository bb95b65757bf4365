"""pipelines.ship: a training checkpoint becomes a shipped fp16 one only when it is better."""

from __future__ import annotations

import json

import pytest
import torch

from pipelines import ship


def _trained(path, val_gain: float):
    from pycodec.models import MDVDConfig, MDVDNet, save_checkpoint

    torch.manual_seed(0)
    cfg = MDVDConfig.preset("realtime", channels=8, deform_groups=2, lstm_hidden=8, lstm_layers=1, landmarks="raw")
    meta = {"iteration": 10, "val": {"val_y_gain": val_gain}, "data_sha256": "ab" * 32, "config": {"seed": 0}}
    return save_checkpoint(path, MDVDNet(cfg), meta=meta)


def _summary(path, gain: float):
    rows = {"decoded": {"y_psnr": 30.0, "y_psnr_gain": 0.0, "videos": 2},
            "spp=6:8": {"y_psnr": 30.1, "y_psnr_gain": 0.1, "videos": 2},
            "model:best": {"y_psnr": 30 + gain, "y_psnr_gain": gain, "y_psnr_gain_min": gain / 2,
                           "rgb_psnr_gain": gain, "y_ssim_gain": 0.001, "videos_better": 2, "videos": 2}}
    videos = [{"video": v, "setting": "h264-cbr60k", "method": "model:best", "y_psnr": 30 + gain} for v in "ab"]
    path.write_text(json.dumps({"run": {"split": "test"}, "table": {"h264-cbr60k": rows}, "videos": videos}))
    return path


class TestShip:
    def test_ships_fp16_with_its_card_and_loads(self, tmp_path):
        from pycodec import models

        w = tmp_path / "weights"
        src = _trained(tmp_path / "best.pt", 0.2)
        ev = _summary(tmp_path / "summary.json", 0.3)
        assert ship.main([str(src), "mdvd-h264", "--eval", str(ev), "--weights-dir", str(w)]) == 0
        assert models.available(w) == ["mdvd-h264"]
        net, meta = models.load("mdvd-h264", weights_dir=w)
        assert not net.training and net.cfg.channels == 8
        raw = torch.load(w / "mdvd-h264.pt", weights_only=False)
        assert raw["dtype"] == "float16" and all(v.dtype == torch.float16 for v in raw["state_dict"].values()
                                                  if v.is_floating_point())
        assert meta["evaluation"]["y_psnr_gain"] == 0.3 and meta["evaluation"]["peers_y_psnr_gain"]["spp=6:8"] == 0.1
        assert meta["data_sha256"] == "ab" * 32 and meta["training_config"] == {"seed": 0}
        card = json.loads((w / "mdvd-h264.json").read_text())
        assert card["iteration"] == 10 and card["bytes"] == (w / "mdvd-h264.pt").stat().st_size

    def test_a_worse_checkpoint_is_not_shipped(self, tmp_path, capsys):
        w = tmp_path / "weights"
        good = _trained(tmp_path / "good.pt", 0.2)
        assert ship.main([str(good), "m", "--eval", str(_summary(tmp_path / "a.json", 0.3)), "--weights-dir", str(w)]) == 0
        before = (w / "m.pt").read_bytes()
        worse = _trained(tmp_path / "worse.pt", 0.5)
        rc = ship.main([str(worse), "m", "--eval", str(_summary(tmp_path / "b.json", 0.25)), "--weights-dir", str(w)])
        assert rc == 1 and "not better" in capsys.readouterr().err and (w / "m.pt").read_bytes() == before
        assert ship.main([str(worse), "m", "--eval", str(_summary(tmp_path / "c.json", 0.4)), "--weights-dir", str(w)]) == 0
        assert (w / "m.pt").read_bytes() != before and not list(w.glob(".*"))

    def test_unreadable_checkpoint_is_one_line(self, tmp_path, capsys):
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"not a checkpoint")
        with pytest.raises(SystemExit) as e:
            ship.main([str(bad), "m", "--weights-dir", str(tmp_path / "w")])
        assert e.value.code == 2 and "bad.pt" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_steps_total_counts_the_shipped_run_a_training_continued(tmp_path):
    from pipelines.ship import steps_total

    card = tmp_path / "mdvd-h264.json"
    card.write_text(json.dumps({"iteration": 2914}))
    cont = {"iteration": 4522, "training_config": {"model": {"init": "mdvd-h264"}}}
    assert steps_total(cont, "mdvd-h264", card) == 7436
    card.write_text(json.dumps({"iteration": 4522, "steps_total": 7436}))
    assert steps_total({**cont, "iteration": 100}, "mdvd-h264", card) == 7536  # a third leg
    assert steps_total({"iteration": 50, "training_config": {"model": {"init": None}}}, "mdvd-h264", card) == 50
    assert steps_total(cont, "mdvd-h264", tmp_path / "none.json") is None  # lineage unknown, not guessed
