"""pycodec.nn.CodecWindowDataset and collate on extracted files of generated streams; the oracle
is pycodec's own decode of the same stream (independent of HDF5 and of the dataset code)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pycodec import cli
from pycodec.nn import CodecWindowDataset, collate


@pytest.fixture(scope="module")
def extracted(store, tmp_path_factory):
    """{name: (h5 path, decoded frames)} for two generated streams (one with cropping)."""
    d = tmp_path_factory.mktemp("nnds")
    out = {}
    for name in ("main_b", "crop_100x62"):
        path = d / f"{name}.h5"
        assert cli.main(["extract", str(store.path(name)), str(path)]) == 0
        out[name] = (path, store.decode(name)[1])
    return out


class TestCodecWindowDataset:
    def test_smoke_windows_replicate_edges(self, extracted):
        path, frames = extracted["main_b"]
        ds = CodecWindowDataset(path, fields=("decoded/y", "block/mv_l0", "frame/poc"), center_fields=("coeffs/y",), n=2)
        assert len(ds) == len(frames)
        s = ds[0]
        assert s["decoded/y"].shape == (5, 96, 128) and s["block/mv_l0"].shape == (5, 24, 32, 2)
        assert s["coeffs/y"].shape == (96, 128)
        want = [0, 0, 0, 1, 2]  # t = 0: frames -2, -1 replicate frame 0
        for k, i in enumerate(want):
            assert np.array_equal(s["decoded/y"][k], frames[i].arrays["decoded/y"])
            assert s["frame/poc"][k] == frames[i].poc
        assert np.array_equal(s["coeffs/y"], frames[0].arrays["coeffs/y"])
        last = ds[len(ds) - 1]
        assert np.array_equal(last["decoded/y"][-1], frames[-1].arrays["decoded/y"])
        assert len(CodecWindowDataset(path, n=2, edge="skip")) == len(frames) - 4

    def test_grid_aligned_crops(self, extracted):
        path, frames = extracted["crop_100x62"]
        ds = CodecWindowDataset(path, fields=("decoded/u", "block/tkind", "qstep/y", "h264/mb_type"),
                                n=0, crop=(32, 48), seed=3)
        seen = set()
        for i in range(len(ds)):
            s = ds[i]
            oy, ox = s["offset"].tolist()
            assert oy % 16 == 0 and ox % 16 == 0 and oy + 32 <= 62 and ox + 48 <= 100
            seen.add((oy, ox))
            a = frames[s["frame"]].arrays
            assert np.array_equal(s["decoded/u"][0], a["decoded/u"][oy // 2:oy // 2 + 16, ox // 2:ox // 2 + 24])
            assert np.array_equal(s["block/tkind"][0], a["block/tkind"][oy // 4:oy // 4 + 8, ox // 4:ox // 4 + 12])
            assert np.array_equal(s["qstep/y"][0], a["qstep/y"][oy:oy + 32, ox:ox + 48])
            assert np.array_equal(s["h264/mb_type"][0], a["h264/mb_type"][oy // 16:oy // 16 + 2, ox // 16:ox // 16 + 3])
        assert len(seen) > 1  # random positions
        again = CodecWindowDataset(path, fields=("decoded/u",), n=0, crop=(32, 48), seed=3)
        assert np.array_equal(again[5]["offset"], ds[5]["offset"])  # seeded
        centred = CodecWindowDataset(path, n=0, crop=(32, 48), random_crop=False)
        assert len({tuple(centred[i]["offset"].tolist()) for i in range(4)}) == 1

    def test_flips_mirror_maps_and_negate_mvs(self, extracted):
        path, _ = extracted["main_b"]
        kw = {"fields": ("decoded/y", "block/mv_l0", "block/mode", "decoded/v"), "n": 1, "crop": (64, 96), "random_crop": False}
        plain = CodecWindowDataset(path, **kw)
        flipped = CodecWindowDataset(path, hflip=1.0, vflip=1.0, **kw)
        a, b = plain[7], flipped[7]
        assert b["hflip"] and b["vflip"] and not a["hflip"]
        assert np.array_equal(b["decoded/y"], a["decoded/y"][:, ::-1, ::-1])
        assert np.array_equal(b["decoded/v"], a["decoded/v"][:, ::-1, ::-1])
        assert np.array_equal(b["block/mode"], a["block/mode"][:, ::-1, ::-1])
        assert np.array_equal(b["block/mv_l0"], -a["block/mv_l0"][:, ::-1, ::-1])
        assert np.any(a["block/mv_l0"] != 0)

    def test_exceptions(self, extracted, tmp_path):
        path, _ = extracted["main_b"]
        with pytest.raises(FileNotFoundError, match="no such file"):
            CodecWindowDataset(tmp_path / "nope.h5")
        with pytest.raises(KeyError, match="re-extract"):
            CodecWindowDataset(path, fields=("decoded/y", "hevc/ctu"))
        with pytest.raises(ValueError, match="multiples of the codec grid"):
            CodecWindowDataset(path, crop=(24, 32))
        with pytest.raises(ValueError, match="fits"):
            CodecWindowDataset(path, crop=(112, 128))
        with pytest.raises(ValueError, match="coefficient images"):
            CodecWindowDataset(path, fields=("coeffs/y",), hflip=0.5)
        with pytest.raises(ValueError, match="no files"):
            CodecWindowDataset([])
        bad = tmp_path / "other.h5"
        with h5py.File(bad, "w") as f:
            f.attrs["schema"] = "something/else"
        with pytest.raises(ValueError, match="schema"):
            CodecWindowDataset(bad)
        with pytest.raises(IndexError):
            CodecWindowDataset(path)[10_000]

    def test_many_files_collate_and_workers(self, extracted):
        paths = [extracted["main_b"][0], extracted["crop_100x62"][0]]
        ds = CodecWindowDataset(paths, fields=("decoded/y", "block/mv_l1", "h264/mb_type"), n=1, crop=(32, 32), seed=1)
        assert len(ds) == len(extracted["main_b"][1]) + len(extracted["crop_100x62"][1])
        batch = collate([ds[0], ds[len(ds) - 1]])
        assert batch["decoded/y"].shape == (2, 3, 32, 32) and batch["decoded/y"].dtype == torch.uint8
        assert batch["h264/mb_type"].dtype == torch.int64 and batch["offset"].shape == (2, 2)
        assert batch["file"] == [str(paths[0]), str(paths[1])]
        loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
        got = [b["decoded/y"] for b in loader]
        ref = [collate([ds[i] for i in range(j, min(j + 4, len(ds)))])["decoded/y"] for j in range(0, len(ds), 4)]
        assert all(torch.equal(x, y) for x, y in zip(got, ref, strict=True))
        with pytest.raises(ValueError, match="empty"):
            collate([])
