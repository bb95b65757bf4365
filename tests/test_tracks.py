"""pycodec.tracks: the multi-face tracker on scripted detections (search pattern, matching, misses,
new and ended tracks, filling and smoothing) and on real frames (two moving faces in a 1080p frame),
and the streaming landmark filter against a known signal."""

from __future__ import annotations

import numpy as np
import pytest

from pycodec import facedet as D
from pycodec import tracks as T


def _det(x, y, side, score=1.0):
    return np.array([x, y, x + side, y + side, score], np.float64)


class Scripted:
    """Replaces the detector: frame t's faces are ``faces(t)`` (list of (5,) detections); records
    which searches ran."""

    def __init__(self, monkeypatch, faces):
        self.faces, self.calls = faces, []
        monkeypatch.setattr(D, "search_frame", self.frame)
        monkeypatch.setattr(D, "search_near", self.near)

    def frame(self, gray, s=None):
        t = int(gray[0, 0])
        self.calls.append(("frame", t))
        return np.array(self.faces(t), np.float64).reshape(-1, 5)

    def near(self, gray, box, s=None, use_cnn=False):
        t = int(gray[0, 0])
        self.calls.append(("cnn" if use_cnn else "near", t))
        x0, y0, x1, y1 = D.near_region(gray.shape, box)
        d = [f for f in self.faces(t) if x0 <= (f[0] + f[2]) / 2 <= x1 and y0 <= (f[1] + f[3]) / 2 <= y1]
        return np.array(d, np.float64).reshape(-1, 5)


def _run(n, settings, shape=(200, 300), fps=25.0, detect=None):
    tr = T.FaceTracks(detect or D.DetectSettings(), settings)
    out = [tr.add(np.full(shape, t, np.uint8)) for t in range(n)]
    return tr, out, tr.finish(fps)


class TestFaceTracksScripted:
    def test_search_pattern(self, monkeypatch):
        s = Scripted(monkeypatch, lambda t: [_det(50 + t, 40, 30)])
        tr, out, tracks = _run(12, T.TrackerSettings(every=3, scan_every=6))
        assert [c for c in s.calls if c[0] == "frame"] == [("frame", 0), ("frame", 6)]
        assert [c[1] for c in s.calls if c[0] == "near"] == [3, 9]
        assert tr.searched == [t % 3 == 0 for t in range(12)]
        assert [len(o) for o in out] == [1 if t % 3 == 0 else 0 for t in range(12)]
        (k,) = tracks
        assert (k.start, k.end) == (0, 12) and k.detected.tolist() == [t % 3 == 0 for t in range(12)]
        assert np.isnan(k.scores[1]) and k.scores[0] == 1.0

    def test_two_faces_two_tracks_and_filling(self, monkeypatch):
        Scripted(monkeypatch, lambda t: [_det(20 + 2 * t, 40, 30), _det(200, 100 - t, 40, 2.0)])
        _, _, tracks = _run(21, T.TrackerSettings(every=5, scan_every=10, smooth_s=0.0))
        assert len(tracks) == 2 and {k.id for k in tracks} == {0, 1}
        a, b = sorted(tracks, key=lambda k: k.id)
        # between searches the centre and size are interpolated; with no smoothing they are exact
        for t in range(21):
            np.testing.assert_allclose(a.box(t), _det(20 + 2 * t, 40, 30)[:4], atol=1e-9)
            np.testing.assert_allclose(b.box(t), _det(200, 100 - t, 40)[:4], atol=1e-9)
        assert a.face_side == pytest.approx(30)

    def test_lost_face_ends_its_track_and_a_new_one_starts(self, monkeypatch):
        # a face until frame 10, nothing until 30, then a face elsewhere
        s = Scripted(monkeypatch, lambda t: [_det(30, 30, 40)] if t <= 10 else ([_det(220, 120, 40)] if t >= 30 else []))
        _, _, tracks = _run(50, T.TrackerSettings(every=2, scan_every=10, max_missed=2, smooth_s=0.0))
        first, second = sorted(tracks, key=lambda k: k.start)
        # searches at 12, 14, 16 miss: the third miss (> max_missed) ends it; the track stops where
        # the first missing search was
        assert (first.start, first.end) == (0, 12)
        assert (second.start, second.end) == (30, 50) and second.id == 1
        assert ("cnn", 12) in s.calls  # HOG missed: the CNN was asked before counting a miss
        assert not any(c[1] > 16 and c[0] != "frame" for c in s.calls if c[1] < 30)

    def test_single_hits_are_dropped(self, monkeypatch):
        Scripted(monkeypatch, lambda t: [_det(50, 50, 30)] if t == 0 else [])
        _, _, tracks = _run(20, T.TrackerSettings(every=5, scan_every=5))
        assert tracks == []

    def test_a_late_single_hit_is_kept(self, monkeypatch):
        # found at the last search of the video: nothing could confirm it, so it stays
        Scripted(monkeypatch, lambda t: [_det(50, 50, 30)] if t == 10 else [])
        _, _, tracks = _run(12, T.TrackerSettings(every=5, scan_every=5))
        assert [(k.start, k.end) for k in tracks] == [(10, 12)]

    def test_no_cnn_when_switched_off(self, monkeypatch):
        s = Scripted(monkeypatch, lambda t: [_det(50, 50, 30)] if t < 5 else [])
        _run(15, T.TrackerSettings(every=5, scan_every=10), detect=D.DetectSettings(cnn_fallback=False))
        assert not any(c[0] == "cnn" for c in s.calls)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="every"):
            T.TrackerSettings(every=0)
        with pytest.raises(ValueError, match="max_missed"):
            T.TrackerSettings(max_missed=-1)


class TestFaceTracksReal:
    def test_two_small_faces_in_1080p(self):
        from tests.test_facedet import scene

        tr = T.FaceTracks(settings=T.TrackerSettings(every=2, scan_every=8))
        truth = []
        for t in range(12):
            img, boxes = scene(1920, 1080, [(300 + 4 * t, 500, 50), (1400, 200 + 3 * t, 70)])
            tr.add(img)
            truth.append(boxes)
        tracks = tr.finish(25.0)
        assert len(tracks) == 2
        for k in tracks:
            assert (k.start, k.end) == (0, 12)
            who = int(np.argmin([abs(k.box(0)[0] - b[0]) for b in truth[0]]))
            ious = [T.iou(k.box(t), truth[t][who]) for t in range(12)]
            assert min(ious) > 0.5, ious


class TestLandmarkFilter:
    def test_still_points_lose_their_jitter(self):
        rng = np.random.default_rng(0)
        f = T.LandmarkFilter(25.0)
        base = rng.uniform(0, 100, (68, 2))
        out = np.array([f(base + rng.normal(0, 1.0, base.shape), 100.0) for _ in range(200)])
        assert np.std(out[50:] - base) < 0.75  # the input's is 1.0 (measured 0.61 with the defaults)

    def test_follows_motion_with_small_lag(self):
        f = T.LandmarkFilter(25.0)
        # a face moving 1 face side per second: after a second the lag is under 5% of the side
        out = [f(np.array([[4.0 * t, 0.0]]), 100.0) for t in range(25)]
        assert abs(out[-1][0, 0] - 4.0 * 24) < 5.0

    def test_reset_and_first_frame(self):
        f = T.LandmarkFilter(30.0)
        p = np.array([[1.0, 2.0]])
        np.testing.assert_array_equal(f(p, 10), p)
        f(p + 5, 10)
        f.reset()
        np.testing.assert_array_equal(f(p + 50, 10), p + 50)

    def test_exceptions(self):
        with pytest.raises(ValueError):
            T.LandmarkFilter(0.0)
        with pytest.raises(ValueError):
            T.LandmarkFilter(25.0, beta=-1)
