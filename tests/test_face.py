"""pycodec.face: following one face (gaps, cuts, a second face), crops, coordinates, detection on
small crops, landmarks against the generated face's known geometry, and the tracker that
``pycodec restore`` uses."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from pycodec import face
from pycodec.samples import TalkingHead


def _box(cx, cy, s):
    return np.array([[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2, 1.0]])


def _grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)


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
        with pytest.raises(face.NoFaceError) as e:
            face.track([np.zeros((0, 5))] * 10 + [_box(50, 50, 40)], 25.0, face.TrackSettings())
        assert e.value.reason == "no-face" and (e.value.found, e.value.tried) == (1, 11)

    def test_pipeline_reports_no_face_as_a_skipped_video(self):
        from pipelines import common
        from pipelines import face as pface

        with pytest.raises(common.StepFailure) as e:
            pface.track([np.zeros((0, 5))] * 10, 25.0, pface.TrackSettings())
        assert e.value.reason == "no-face"
        assert pface.detect is face.detect and pface.landmarks is face.landmarks  # one implementation


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

    def test_rescaling_is_per_axis_and_invertible(self):
        pts = np.array([[0.0, 0.0], [95.0, 63.0], [10.5, 20.25]], np.float32)
        up = face.rescale_points(pts, (64, 96), (256, 256))  # (height, width)
        np.testing.assert_allclose(up[0], [256 / 96 * 0.5 - 0.5, 256 / 64 * 0.5 - 0.5])
        np.testing.assert_allclose(up[1], [255.5 - 256 / 96 * 0.5, 255.5 - 256 / 64 * 0.5], rtol=1e-6)
        np.testing.assert_allclose(face.rescale_points(up, (256, 256), (64, 96)), pts, atol=1e-4)
        np.testing.assert_allclose(face.rescale_boxes(np.array([0, 0, 96, 64]), (64, 96), (256, 256)), [0, 0, 256, 256])

    def test_model_files_are_found_without_importing_the_package(self):
        p = face.model_path()
        assert os.path.getsize(p) > 90e6 and "face_recognition_models" not in sys.modules


class TestDetectAndLandmarks:
    def test_small_crops_are_searched_enlarged(self):
        for side in (64, 96):
            g = _grey(TalkingHead(side, side, 25).frame(0))
            d = face.detect_scaled(g)
            assert len(d) >= 1
            x0, y0, x1, y1 = d[0, :4]
            assert 0.2 * side < x1 - x0 < 0.6 * side and 0 <= x0 < x1 <= side and 0 <= y0 < y1 <= side

    def test_landmarks_land_on_the_generated_face(self):
        from skimage import data

        grey = _grey(data.astronaut())
        ref = face.landmarks(grey, face.detect(grey, 1)[0])  # on the still photo
        scene = TalkingHead(256, 256, 25, 0)
        errs = []
        for t in (0, 7, 14):
            g = _grey(scene.frame(t))
            lm = face.landmarks(g, face.detect_scaled(g)[0])
            errs.append(np.linalg.norm(scene.to_frame(ref, t) - lm, axis=1))
        assert np.median(errs) < 3.0, np.median(errs)

    def test_missed_searches(self):
        att = np.array([1, 0, 1, 0, 1, 0], bool)
        det = np.array([1, 0, 0, 0, 1, 0], bool)
        track = face.FaceTrack(np.zeros((6, 4)), att, det, 0.5)
        assert [track.missed(t) for t in range(6)] == [False, False, True, True, False, False]
        assert track.found_frac == pytest.approx(2 / 3)

    def test_missing_dlib_is_named(self, monkeypatch):
        from pycodec._optional import MissingDependency

        monkeypatch.setitem(sys.modules, "dlib", None)
        face._detector.cache_clear()
        try:
            with pytest.raises(MissingDependency, match=r"dlib-bin.*pip install \.\[models\]"):
                face.detect(np.zeros((64, 64), np.uint8))
        finally:
            face._detector.cache_clear()
