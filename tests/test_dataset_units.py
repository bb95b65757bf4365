"""Dataset-building pieces on their own: settings, slicing, splits, source discovery, the step
runner (MFCC, face tracking and crops: tests/test_audio.py, tests/test_face.py)."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from pipelines import audio, common, encode, face, plan


class TestMoved:
    """MFCC, face tracking and crops live in pycodec.audio / pycodec.face (tests/test_audio.py,
    tests/test_face.py); the pipeline modules re-export them."""

    def test_pipelines_use_the_package_code(self):
        import pycodec.audio
        import pycodec.face

        assert audio.mfcc is pycodec.audio.mfcc and audio.frame_mfcc is pycodec.audio.frame_mfcc
        assert face.crop_square is pycodec.face.crop_square and face.TrackSettings is pycodec.face.TrackSettings

    def test_no_face_is_a_step_failure(self):
        with pytest.raises(common.StepFailure) as e:
            face.track([np.zeros((0, 5))] * 10, 25.0, face.TrackSettings())
        assert e.value.reason == "no-face"


class TestSettings:
    def test_parse(self):
        s = encode.parse_setting("h264", "80k", 25)
        assert (s.mode, s.value, s.name, s.spec) == ("cbr", 80.0, "h264-cbr80k", "80k")
        codec, opts = s.params(25)
        assert codec == "libx264" and "nal-hrd=cbr" in opts["x264-params"] and "keyint=25" in opts["x264-params"]
        h = encode.parse_setting("hevc", "crf42")
        assert h.name == "hevc-crf42" and "crf=42" in h.params(30)[1]["x265-params"]
        assert "keyint=30:min-keyint=30" in h.params(30)[1]["x265-params"]  # GOP 0 = one second
        with pytest.raises(argparse.ArgumentTypeError):
            encode.parse_setting("h264", "fast")

    def test_shard_slices_partition_the_sources(self):
        assert common.parse_shard("1/4") == (1, 4) and common.parse_shard(None) is None
        for bad in ("4/4", "1/0", "a/b", "-1/3"):
            with pytest.raises(argparse.ArgumentTypeError):
                common.parse_shard(bad)
        slices = [[k for k in range(23) if common.in_shard(k, (i, 4))] for i in range(4)]
        assert sorted(k for sl in slices for k in sl) == list(range(23))

    def test_split_is_deterministic_and_proportional(self):
        ids = [f"id{k:05d}" for k in range(4000)]
        a = [plan.split_of(i, (0.8, 0.1, 0.1)) for i in ids]
        assert a == [plan.split_of(i, (0.8, 0.1, 0.1)) for i in ids]
        assert abs(a.count("train") / 4000 - 0.8) < 0.03 and abs(a.count("test") / 4000 - 0.1) < 0.02


class TestSources:
    def test_identities_and_ids(self, tmp_path):
        for rel in ("id001/vidA/00001.mp4", "id001/vidA/00002.mp4", "id002/x y.avi", "solo.mkv", "solo.mp4",
                    "notes.txt", ".hidden.mp4"):
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
        got = [(v, i) for v, i, _ in plan.find_sources(str(tmp_path))]
        assert got == [("id001__vidA__00001", "id001"), ("id001__vidA__00002", "id001"),
                       ("id002__x_y", "id002"), ("solo", "solo"), ("solo_mp4", "solo_mp4")]


def open_text(path) -> str:
    with open(path) as f:
        return f.read()


class TestRunStep:
    def test_ok_failure_and_crash(self, tmp_path, capsys):
        st = str(tmp_path / "s.json")
        assert common.run_step("t", st, lambda: {"frames": 3}, {"video": "v"}) == 0
        assert json.loads(open_text(st))["status"] == "ok"

        def fails():
            raise common.StepFailure("no-face", "nothing there")
        assert common.run_step("t", st, fails, {"video": "v"}) == 0
        assert json.loads(open_text(st))["reason"] == "no-face"
        os.unlink(st)

        def crashes():
            raise RuntimeError("disk on fire")
        assert common.run_step("t", st, crashes, {"video": "v"}) == 2
        assert not os.path.exists(st) and "disk on fire" in open_text(tmp_path / "s.log")
        assert "error on v: RuntimeError: disk on fire" in capsys.readouterr().err

    def test_atomic_path_leaves_nothing_on_error(self, tmp_path):
        target = tmp_path / "out.bin"
        with pytest.raises(ValueError), common.atomic_path(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("partial")
            raise ValueError
        assert os.listdir(tmp_path) == []
