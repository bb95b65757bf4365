"""pycodec.facedet: full-frame search at the scale the smallest wanted face needs, region search
around a known face, the CNN detector; on a real face photo (the astronaut) placed at known sizes and
places in larger frames."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from pycodec import facedet as D
from pycodec.face import iou
from pycodec.samples import TalkingHead


def _grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)


_FACE = _grey(TalkingHead(256, 256, 25, 0).frame(0))
_FACE_BOX = D.hog(_FACE)[0, :4]  # the detector's box on the 256-pixel picture


def scene(width: int, height: int, faces: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """A textured ``width`` x ``height`` frame with the face picture pasted so its face box is
    ``side`` pixels at (x, y) for each (x, y, side); returns the frame and the true boxes (K, 4)."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (height, width), dtype=np.uint8), (0, 0), 3)
    boxes = []
    fs = _FACE_BOX[2] - _FACE_BOX[0]
    for x, y, side in faces:
        k = side / fs
        pic = cv2.resize(_FACE, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        ox, oy = round(x - _FACE_BOX[0] * k), round(y - _FACE_BOX[1] * k)
        ys, xs = slice(max(oy, 0), min(oy + pic.shape[0], height)), slice(max(ox, 0), min(ox + pic.shape[1], width))
        img[ys, xs] = pic[ys.start - oy:ys.stop - oy, xs.start - ox:xs.stop - ox]
        boxes.append([ox + _FACE_BOX[0] * k, oy + _FACE_BOX[1] * k, ox + _FACE_BOX[2] * k, oy + _FACE_BOX[3] * k])
    return img, np.array(boxes)


def _found(dets: np.ndarray, truth: np.ndarray, min_iou: float = 0.4) -> list[bool]:
    return [any(iou(t, d[:4]) >= min_iou for d in dets) for t in truth]


class TestSettings:
    def test_scale_follows_the_smallest_face(self):
        assert D.frame_scale((720, 1280), D.DetectSettings(min_face=40)) == 2.0
        assert D.frame_scale((1080, 1920), D.DetectSettings(min_face=160)) == 0.5
        assert D.frame_scale((96, 96), D.DetectSettings(min_face=40)) == pytest.approx(80 / 19.2)  # a fifth of 96
        # a 4K frame at 2x would be 33 M pixels: allowed; 8K is capped at max_pixels
        assert D.frame_scale((2160, 3840), D.DetectSettings(min_face=40)) == 2.0
        k = D.frame_scale((4320, 7680), D.DetectSettings(min_face=40))
        assert k < 2.0 and 4320 * 7680 * k * k == pytest.approx(36e6)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="min_face"):
            D.DetectSettings(min_face=4)
        with pytest.raises(ValueError, match="max_pixels"):
            D.DetectSettings(max_pixels=100)

    def test_missing_opencv_is_named(self, monkeypatch):
        from pycodec._optional import MissingDependency

        monkeypatch.setitem(sys.modules, "cv2", None)
        with pytest.raises(MissingDependency, match=r"opencv-python-headless.*pip install \.\[models\]"):
            D.scaled(np.zeros((8, 8), np.uint8), 2.0)


class TestSearchFrame:
    def test_small_faces_in_a_large_frame(self):
        img, truth = scene(1280, 720, [(200, 300, 44), (900, 150, 75), (600, 450, 140)])
        d = D.search_frame(img, D.DetectSettings(min_face=40))
        assert _found(d, truth) == [True, True, True]
        assert len(d) == 3  # and nothing in the texture

    def test_min_face_decides_what_is_found(self):
        # the scale is what matters: searched for faces of 80 px and up, the 44-px face is missed
        img, truth = scene(1280, 720, [(200, 300, 44), (600, 400, 140)])
        assert _found(D.search_frame(img, D.DetectSettings(min_face=80)), truth) == [False, True]

    def test_boxes_are_in_frame_pixels(self):
        img, truth = scene(640, 360, [(300.0, 120.0, 60.0)])
        d = D.search_frame(img)
        assert iou(d[0, :4], truth[0]) > 0.6 and d[0, 4] > 0

    def test_blank_frame(self):
        d = D.search_frame(np.full((300, 400), 128, np.uint8))
        assert d.shape == (0, 5)


class TestSearchNear:
    def test_finds_the_face_around_its_box_only(self):
        img, truth = scene(3840, 2160, [(2000, 1000, 48), (400, 300, 48)])
        near = D.search_near(img, truth[0] + [6, -4, 6, -4])  # the face moved a little since
        assert _found(near, truth) == [True, False]

    def test_region_stays_inside_the_frame(self):
        x0, y0, x1, y1 = D.near_region((100, 200), np.array([-20.0, 80.0, 20.0, 120.0]))
        assert (x0, y0) == (0, 50) and x1 == 50 and y1 == 100

    def test_cnn_finds_the_face_too(self):
        img, truth = scene(640, 480, [(250, 150, 90)])
        d = D.search_near(img, truth[0], use_cnn=True)
        assert _found(d, truth) == [True] and d[0, 4] > 0
