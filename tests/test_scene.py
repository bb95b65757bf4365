"""pycodec.scene: windows on the codec grid, the feathered mask, compositing several faces with
back-projection per window, and the samples of a window equal to CodecWindowDataset's crop of the
same window from an extraction (the oracle: what the models were trained on)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycodec import scene as SC
from pycodec.tracks import Track


def _track(boxes, start=0):
    boxes = np.asarray(boxes, np.float64)
    return Track(0, start, boxes, np.ones(len(boxes), bool), np.ones(len(boxes)))


class TestWindows:
    def test_size_holds_the_largest_crop_on_the_grid(self):
        geo = SC.Geometry(720, 1280, grid=16)
        tr = _track([[100, 100, 170, 170], [100, 100, 180, 180]])  # faces 70 and 80 px
        h, w = SC.window_size(tr, geo)
        assert h == w == 16 * int(np.ceil(80 * 1.8 / 16)) + 16 and h % 16 == 0
        assert SC.window_size(_track([[0, 0, 900, 900]]), geo) == (720, 1280)  # at most the frame

    def test_position_is_grid_aligned_in_the_coded_plane_and_inside(self):
        geo = SC.Geometry(1080, 1920, top=8, left=0, grid=16)  # display starts 8 rows into the coded plane
        for cx, cy in ((960.0, 540.0), (5.0, 5.0), (1915.0, 1075.0), (333.3, 777.7)):
            y0, x0, h, w = SC.window_at(np.array([cx - 40, cy - 40, cx + 40, cy + 40]), (176, 176), geo)
            assert (y0 + 8) % 16 == 0 and x0 % 16 == 0
            assert 0 <= y0 and y0 + h <= 1080 and 0 <= x0 and x0 + w <= 1920
            if 176 / 2 + 16 < cx < 1920 - 176 / 2 - 16 and 176 / 2 + 16 < cy < 1080 - 176 / 2 - 16:
                assert abs(x0 + w / 2 - cx) <= 8 and abs(y0 + h / 2 - cy) <= 8

    def test_the_crop_square_fits_in_the_window(self):
        geo = SC.Geometry(720, 1280)
        rng = np.random.default_rng(0)
        for _ in range(50):
            side = rng.uniform(30, 150)
            cx, cy = rng.uniform(200, 1080), rng.uniform(200, 520)
            box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
            y0, x0, h, w = SC.window_at(box, SC.window_size(_track([box]), geo), geo)
            half = side * 1.8 / 2
            assert x0 <= cx - half and cx + half <= x0 + w and y0 <= cy - half and cy + half <= y0 + h

    def test_exceptions(self):
        with pytest.raises(ValueError, match="fits"):
            SC.window_at(np.array([0, 0, 10, 10]), (64, 64), SC.Geometry(32, 32))


class TestMask:
    def test_one_inside_zero_outside_smooth_between(self):
        win = (0, 0, 192, 192)
        box = np.array([60.0, 60.0, 130.0, 130.0])  # crop square of 126 px centred at 95
        m = SC.feather_mask(win, box)
        assert m.dtype == np.float32 and m.shape == (192, 192)
        assert m[95, 95] == pytest.approx(1.0) and m.min() == 0.0 and m.max() <= 1.0 + 1e-6
        half = 70 * 1.8 / 2
        ys, xs = np.nonzero(m)
        assert (np.abs(xs - 95) <= half + 1).all() and (np.abs(ys - 95) <= half + 1).all()
        assert 0.05 < m[95, round(95 + half - 5)] < 0.95  # the edge is soft
        assert m[95, round(95 + half - 20)] == pytest.approx(1.0)
        assert SC.chroma_mask(m).shape == (96, 96)


class TestComposite:
    def _decoded(self):
        rng = np.random.default_rng(1)
        return {"y": rng.integers(0, 256, (64, 96), dtype=np.uint8), "u": rng.integers(0, 256, (32, 48), dtype=np.uint8),
                "v": rng.integers(0, 256, (32, 48), dtype=np.uint8)}

    def test_no_face_is_the_decoded_frame(self):
        dec = self._decoded()
        out = SC.Composite(dec).finish()
        for k in dec:
            np.testing.assert_array_equal(out[k], dec[k])

    def test_changes_are_masked_averaged_and_projected_per_window(self):
        dec = self._decoded()
        c = SC.Composite(dec)
        ones = {"y": np.full((32, 32), 4 / 255, np.float32), "u": np.zeros((16, 16), np.float32),
                "v": np.zeros((16, 16), np.float32)}
        mask = np.zeros((32, 32), np.float32)
        mask[8:24, 8:24] = 1.0
        calls = []

        def project(planes):
            calls.append({k: v.copy() for k, v in planes.items()})
            return planes

        c.add((0, 0, 32, 32), ones, mask, project)
        c.add((0, 8, 32, 32), {k: 2 * v for k, v in ones.items()}, mask, project)  # masks overlap at x 16..24
        out = c.finish()
        y = out["y"].astype(int) - dec["y"]
        for (a, b), level in (((8, 16), 4), ((16, 24), 6), ((24, 32), 8)):  # the mean change where both reach
            d = dec["y"][8:24, a:b].astype(int)
            np.testing.assert_array_equal(y[8:24, a:b], np.clip(d + level, 0, 255) - d)
        assert (y[:8] == 0).all() and (y[:, 40:] == 0).all()  # outside every mask: exactly decoded
        assert len(calls) == 2 and calls[0]["y"].shape == (32, 32) and calls[1]["u"].shape == (16, 16)


def test_window_samples_are_the_datasets_crops(tmp_path):
    """A window's sample (every codec field) equals CodecWindowDataset's centred crop of the same
    window from an extraction of the stream."""
    import pycodec
    from pycodec import cli
    from pycodec.models import dataset_kwargs
    from pycodec.models import fields as FL
    from pycodec.nn import CodecWindowDataset
    from pycodec.restore import _Frame, codec_groups
    from pycodec.samples import make_talking_sample

    src = make_talking_sample(tmp_path / "s.mp4", 192, 128, 8)
    h5 = tmp_path / "s.h5"
    assert cli.main(["extract", str(src), str(h5), "-q"]) == 0
    size = (96, 96)
    kw = dataset_kwargs("h264", train=False)
    kw.update(center_fields=[k for k in FL.center_fields("h264") if k != "landmarks/decoded"],
              fields=[k for k in kw["fields"] if k != "audio/mfcc"], crop=size, random_crop=False, windows={})
    ds = CodecWindowDataset(str(h5), **kw)
    first = ds[0]
    y0, x0 = (int(v) for v in first["offset"])
    geo = SC.Geometry(128, 192, grid=16)
    box = np.array([x0 + 28.0, y0 + 28.0, x0 + 68.0, y0 + 68.0])  # centred in that window
    assert SC.window_at(box, size, geo) == (y0, x0, 96, 96)
    tr = Track(0, 0, np.repeat(box[None], 8, 0), np.ones(8, bool), np.ones(8))
    wf = {k: v for k, v in FL.WINDOW_FIELDS.items() if k != "audio/mfcc"}
    builder = SC.SceneSamples(str(src), "h264", 8, np.zeros((8, 4, 13), np.float32), [tr], geo, 256, 25.0,
                              wf, tuple(kw["center_fields"]), FL.N_FRAMES)
    keep = [k for k in FL.window_fields() + FL.center_fields("h264") if k.split("/")[0] not in
            ("frame", "audio", "landmarks")]
    got = []
    with pycodec.open(str(src), fields=codec_groups("h264")) as reader:
        for fr in reader:
            got += builder.push(_Frame(fr, keep))
    got += builder.finish()
    assert [t for t, _, _ in got] == list(range(8))
    for t, faces, _ in got:
        (face,) = faces
        want, have = ds[t], face.sample
        assert face.window == (y0, x0, 96, 96)
        for k, v in want.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, have[k], err_msg=f"frame {t} {k}")
    with h5py.File(h5) as f:
        assert f["decoded/y"].shape[1:] == (128, 192)
