"""pycodec.keyrestore: the RGB -> YUV change matrix (BT.601 limited range, exact math), zero stays
zero, chroma at half size, and model sizes on the 16-pixel grid."""

from __future__ import annotations

import numpy as np
import pytest

from pycodec import keyrestore as KR


class TestRgbChangeToYuv:
    def test_grey_changes_luma_only(self):
        d = np.full((4, 6, 3), 0.1, np.float32)
        out = KR.rgb_change_to_yuv(d)
        np.testing.assert_allclose(out["y"], 0.1 * 219 / 255, rtol=1e-6)
        np.testing.assert_allclose(out["u"], 0.0, atol=1e-7)
        np.testing.assert_allclose(out["v"], 0.0, atol=1e-7)
        assert out["u"].shape == out["v"].shape == (2, 3)

    def test_primaries(self):
        red = np.zeros((2, 2, 3), np.float32)
        red[..., 0] = 1.0
        out = KR.rgb_change_to_yuv(red)
        assert out["y"][0, 0] == pytest.approx(0.299 * 219 / 255, rel=1e-6)
        assert out["u"][0, 0] == pytest.approx(-0.168736 * 224 / 255, rel=1e-6)
        assert out["v"][0, 0] == pytest.approx(0.5 * 224 / 255, rel=1e-6)

    def test_zero_is_zero_and_chroma_is_averaged(self):
        z = KR.rgb_change_to_yuv(np.zeros((8, 8, 3), np.float32))
        assert all(not v.any() for v in z.values())
        d = np.zeros((2, 2, 3), np.float32)
        d[0, 0, 2] = 1.0  # one blue pixel of the 2x2 block
        assert KR.rgb_change_to_yuv(d)["u"][0, 0] == pytest.approx(0.5 * 224 / 255 / 4, rel=1e-6)


def test_model_side_is_on_the_grid():
    assert KR.model_side((96, 96), 256 / 96) == (256, 256)
    assert KR.model_side((150, 100), 1.0) == (144, 96)
    assert KR.model_side((10, 10), 1.0) == (32, 32)


def test_swscale_and_matrix_agree():
    """The matrix is the inverse of the YUV -> RGB conversion the engine reads frames with (the
    training data's, pycodec.nn.keyframes_data)."""
    rng = np.random.default_rng(0)
    y = rng.integers(60, 180, (16, 16), dtype=np.uint8)
    u = rng.integers(100, 156, (8, 8), dtype=np.uint8)
    v = rng.integers(100, 156, (8, 8), dtype=np.uint8)
    a = KR.yuv_to_rgb(y, u, v)
    b = KR.yuv_to_rgb(np.clip(y.astype(int) + 20, 0, 255).astype(np.uint8), u, v)
    dy = KR.rgb_change_to_yuv(b - a)["y"] * 255
    assert abs(float(dy.mean()) - 20) < 0.05  # no rounding on the way (clipping aside)
