"""pipelines/table1.py: the Table 1 rows trained one after another, an interrupted row resumed,
the corrector trained first for the rows that need it, then one evaluation of every row."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import train_data
import yaml
from conftest import ROOT

from pipelines import table1, train

TINY = {"preset": "realtime", "channels": 8, "deform_groups": 2, "lstm_hidden": 8, "lstm_layers": 1, "a_blocks": 1}


@pytest.fixture(scope="module")
def manifest(store, tmp_path_factory) -> Path:
    return train_data.build(tmp_path_factory.mktemp("t1_ds"), store.path("main_b"))


def write(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def configs(d: Path) -> Path:
    """Tiny stand-ins of pipelines/configs: the corrector, row 0 and row 6 (corrected landmarks)."""
    d.mkdir()
    common = {"seed": 3, "data": {"settings": ["h264-cbr60k"], "crop": 32, "batch_size": 4, "workers": 0},
              "optim": {"lr": 2.0e-3, "total_iters": 4}, "val": {"every": 0, "frames": 2, "batch_size": 2},
              "checkpoint": {"every": 1}, "log": {"every": 1}}
    write(d / "landmarks.yaml", {**common, "task": "landmarks", "model": {},
                                 "data": {"settings": [], "batch_size": 8, "workers": 0}, "optim": {"total_iters": 2}})
    write(d / "table1-row0-cnn.yaml", {**common, "model": {**TINY, "table1_row": 0, "landmarks": "raw"}})
    write(d / "table1-row6-flwc.yaml", {**common, "model": {**TINY, "table1_row": 6}})
    return d


def iters(run: Path) -> list[int]:
    with open(run / "log.csv", newline="") as f:
        return [int(r["iter"]) for r in csv.DictReader(f) if r["loss"]]


def test_rows_resume_then_one_evaluation(tmp_path, manifest, capsys):
    cfgs = configs(tmp_path / "configs")
    runs = tmp_path / "runs"
    # row 0 was interrupted after 2 of its 4 steps in an earlier session
    assert train.main(["--config", str(cfgs / "table1-row0-cnn.yaml"), "--out", str(runs / "row0"), "--stop-at", "2",
                       f"data.manifest={manifest}"]) == 0
    assert table1.state(str(runs / "row0")) == "partial"
    argv = ["--manifest", str(manifest), "--configs", str(cfgs), "--runs", str(runs), "--rows", "0", "6",
            "--split", "val", "--frame-step", "5"]
    assert table1.main(argv) == 0
    out = capsys.readouterr().out
    assert all(table1.state(str(runs / r)) == "done" for r in ("landmarks", "row0", "row6"))
    assert iters(runs / "row0") == [1, 2, 3, 4]  # resumed at step 3, not started again
    assert "--resume" in next(ln for ln in out.splitlines() if "row0" in ln and "pipelines.train" in ln)
    row6 = yaml.safe_load((runs / "row6" / "config.yaml").read_text())
    assert row6["model"]["corrector"] == str(runs / "landmarks" / "final.pt")  # trained here (no validation: final)
    md = (runs / "table1.md").read_text()
    assert "| row0-cnn |" in md and "| row6-flwc |" in md and "val split, h264-cbr60k" in md
    # a second call trains nothing and evaluates again
    assert table1.main(argv) == 0
    out = capsys.readouterr().out
    assert "pipelines.train" not in out and out.count(": done") == 3


def test_errors_are_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipelines.table1", "--manifest", str(tmp_path / "none.jsonl")],
                       cwd=str(ROOT), capture_output=True, text=True, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such manifest" in r.stderr
    (tmp_path / "m.jsonl").write_text("")
    r = subprocess.run([sys.executable, "-m", "pipelines.table1", "--manifest", str(tmp_path / "m.jsonl"),
                        "--configs", str(tmp_path), "--rows", "3"], cwd=str(ROOT), capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "table1-row3-*.yaml" in r.stderr


def test_shipped_rows_each_have_one_config():
    assert [table1.label(table1.row_config(r)) for r in table1.ROWS][:2] == ["row0-cnn", "row1-vpb"]
