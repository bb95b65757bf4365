"""pipelines.evaluate: metrics against independent oracles, the peer filter pipe, the summary maths."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import evaluate as ev


def _planes(seed: int, n: int = 3, h: int = 32, w: int = 48) -> ev.Planes:
    r = np.random.default_rng(seed)
    return (r.integers(16, 236, (n, h, w), dtype=np.uint8), r.integers(16, 240, (n, h // 2, w // 2), dtype=np.uint8),
            r.integers(16, 240, (n, h // 2, w // 2), dtype=np.uint8))


class TestMetrics:
    def test_psnr_matches_skimage(self):
        from skimage.metrics import peak_signal_noise_ratio

        a, b = _planes(0)[0][0], _planes(1)[0][0]
        assert ev.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-12)
        assert ev.psnr(a, a) == float("inf")

    def test_psnr_from_known_mse(self):
        a = np.zeros((8, 8), np.uint8)
        b = a.copy()
        b[0, :4] = 16  # MSE = 4 * 256 / 64 = 16
        assert ev.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 16))

    def test_ssim_bounds(self):
        a, b = _planes(0)[0][0], _planes(1)[0][0]
        assert ev.ssim(a, a) == pytest.approx(1.0)
        assert -1 <= ev.ssim(a, b) < 0.5

    def test_rgb_of_grey_is_grey(self):
        y = np.full((16, 16), 126, np.uint8)
        c = np.full((8, 8), 128, np.uint8)
        rgb = ev.to_rgb(y, c, c)
        assert rgb.shape == (16, 16, 3) and np.ptp(rgb) <= 1 and abs(int(rgb[0, 0, 0]) - round((126 - 16) * 255 / 219)) <= 1

    def test_regions_average_to_the_whole(self):
        ref, out = _planes(0), _planes(1)
        m = ev.frame_metrics(ref, out, 0)
        mse = lambda p: 255 ** 2 / 10 ** (p / 10)
        assert (mse(m["upper_psnr"]) + mse(m["lower_psnr"])) / 2 == pytest.approx(mse(m["y_psnr"]))


class TestFfmpegFilter:
    def test_null_chain_returns_the_frames(self):
        p = _planes(3, n=4)
        out = ev.ffmpeg_filter(p, "null")
        assert all(np.array_equal(a, b) for a, b in zip(p, out))

    def test_a_filter_changes_them(self):
        p = _planes(3, n=4)
        out = ev.ffmpeg_filter(p, "hqdn3d")
        assert out[0].shape == p[0].shape and not np.array_equal(out[0], p[0])

    def test_bad_chain_is_one_error(self):
        with pytest.raises(RuntimeError, match="no_such_filter"):
            ev.ffmpeg_filter(_planes(0), "no_such_filter")


class TestSummarise:
    def test_gains_are_per_video_differences(self):
        def res(video, method, y):
            pf = [{k: y if "psnr" in k else 0.9 for k in ev.METRICS}] * 2
            return {"video": video, "identity": video, "setting": "s", "kbps": 60.0, "method": method,
                    "frames": 2, "seconds": 1.0, "per_frame": pf}

        s = ev.summarise([res("a", "decoded", 30), res("b", "decoded", 32), res("a", "m", 30.5), res("b", "m", 31.9)])
        row = s["table"]["s"]["m"]
        assert row["y_psnr_gain"] == pytest.approx(0.2) and row["y_psnr_gain_min"] == pytest.approx(-0.1)
        assert row["videos_better"] == 1 and row["videos"] == 2 and s["table"]["s"]["decoded"]["y_psnr_gain"] == 0
        assert "| m |" in ev.markdown(s)


class TestRateSweep:
    def _res(self, setting, kbps, method, y):
        pf = [{k: y if "psnr" in k else 0.9 for k in ev.METRICS}]
        return {"video": "a", "identity": "a", "setting": setting, "kbps": kbps, "method": method,
                "frames": 1, "seconds": 1.0, "per_frame": pf}

    def test_settings_in_rate_order_and_plot(self, tmp_path):
        res = []
        for s, kbps in (("h264-cbr100k", 101.0), ("h264-cbr40k", 41.0), ("h264-cbr60k", 62.0)):
            res += [self._res(s, kbps, "decoded", kbps / 4), self._res(s, kbps, "m", kbps / 4 + 0.5)]
        s = ev.summarise(res)
        assert list(s["table"]) == ["h264-cbr40k", "h264-cbr60k", "h264-cbr100k"]
        assert ev.markdown(s).index("### h264-cbr40k") < ev.markdown(s).index("### h264-cbr100k")
        ev.rd_plot(s, str(tmp_path / "rd.png"))
        from PIL import Image

        with Image.open(tmp_path / "rd.png") as im:
            assert im.format == "PNG" and im.size[0] > im.size[1] > 100
