"""Dataset-building pieces on their own: MFCC against an independent implementation and its frame
alignment, face tracking, crops, settings, slicing, splits, source discovery, the step runner."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from pipelines import audio, common, encode, face, plan


class TestMfcc:
    def test_matches_python_speech_features(self):
        import python_speech_features as psf  # an independent implementation (requirements.txt)

        rng = np.random.default_rng(0)
        t = np.arange(16000 * 2) / 16000
        for x in (rng.normal(0, 0.1, t.size), 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t)):
            ours = audio.mfcc(x.astype(np.float32))
            ref = psf.mfcc(x.astype(np.float32), 16000, winfunc=np.hamming)
            assert ours.shape == ref.shape == (199, 13)
            np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)

    def test_frame_alignment_follows_a_burst(self):
        # a tone between 1.00 s and 1.40 s: the frames whose 40 ms window lies inside are loud
        sr, fps = 16000, 25
        x = np.random.default_rng(1).normal(0, 1e-3, 3 * sr)
        x[sr:int(1.4 * sr)] += 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(0.4 * sr)) / sr)
        feats = audio.frame_mfcc(x, np.arange(75) / fps)
        assert feats.shape == (75, 4, 13)
        loud = feats[:, :, 0].min(1) > -4
        assert np.flatnonzero(loud).tolist() == list(range(26, 35))

    def test_steps_clip_at_the_ends(self):
        idx = audio.frame_steps(np.array([0.0, 10.0]), 50)
        # t = 0: the 4 steps centred on 0 s are -3..0 (centres -17.5..12.5 ms), clipped to step 0
        assert idx[0].tolist() == [0, 0, 0, 0] and idx[1].tolist() == [49] * 4
        assert audio.frame_steps(np.array([0.1]), 50)[0].tolist() == [7, 8, 9, 10]  # centres 82.5..112.5 ms

    def test_wav_roundtrip(self, tmp_path):
        x = np.linspace(-0.5, 0.5, 1000).astype(np.float32)
        audio.write_wav(str(tmp_path / "a.wav"), x)
        y, sr = audio.read_wav(str(tmp_path / "a.wav"))
        assert sr == 16000 and np.abs(y - x).max() <= 1 / 32768


def _box(cx, cy, s):
    return np.array([[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2, 1.0]])


class TestTrack:
    def test_interpolates_gaps_and_holds_the_size(self):
        dets = [_box(100 + t, 80, 60) if t % 3 else np.zeros((0, 5)) for t in range(30)]
        fb, cb = face.track(dets, 25.0, face.TrackSettings(smooth_s=0.0))
        np.testing.assert_allclose((fb[:, 0] + fb[:, 2]) / 2, 100 + np.clip(np.arange(30), 1, 29))
        np.testing.assert_allclose(cb[:, 2] - cb[:, 0], 60 * 1.8)

    def test_a_cut_is_not_smoothed_across(self):
        dets = [_box(100, 80, 60) if t < 20 else _box(300, 200, 90) for t in range(40)]
        assert face.segments(face.choose_faces(dets), 0.3) == [(0, 20), (20, 40)]
        fb, _ = face.track(dets, 25.0, face.TrackSettings(smooth_s=0.5))
        np.testing.assert_allclose(fb[19, :2], [70, 50])
        np.testing.assert_allclose(fb[20, :2], [255, 155])

    def test_follows_the_same_face_when_another_appears(self):
        dets = [_box(100, 80, 60) if t < 10 else np.concatenate([_box(400, 80, 120), _box(102, 80, 60)])
                for t in range(20)]
        chosen = face.choose_faces(dets)
        assert np.all(np.abs((chosen[:, 0] + chosen[:, 2]) / 2 - 101) <= 1)

    def test_no_face(self):
        with pytest.raises(common.StepFailure) as e:
            face.track([np.zeros((0, 5))] * 10 + [_box(50, 50, 40)], 25.0, face.TrackSettings())
        assert e.value.reason == "no-face"


class TestCrop:
    def test_inside_and_padded(self):
        img = np.arange(20 * 30 * 3).reshape(20, 30, 3)
        np.testing.assert_array_equal(face.crop_square(img, np.array([5, 4, 15, 14])), img[4:14, 5:15])
        out = face.crop_square(img, np.array([-3, -2, 7, 8]))
        assert out.shape == (10, 10, 3)
        np.testing.assert_array_equal(out[0, 0], img[0, 0])  # edge repeated
        np.testing.assert_array_equal(out[2:, 3:], img[:8, :7])

    def test_crop_coordinates(self):
        box = np.array([10.0, 20.0, 110.0, 120.0])  # 100 px square -> 50 px crop
        pts = np.array([[10.0, 20.0], [109.0, 119.0], [59.5, 69.5]])
        np.testing.assert_allclose(face.to_crop_coords(pts, box, 50), [[-0.25, -0.25], [49.25, 49.25], [24.5, 24.5]])

    def test_model_files_are_found_without_importing_the_package(self):
        import sys

        p = face.model_path()
        assert os.path.getsize(p) > 90e6 and "face_recognition_models" not in sys.modules


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
