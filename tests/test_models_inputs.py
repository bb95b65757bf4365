"""pycodec.models.inputs on samples of real tiny extracted clips read through CodecWindowDataset:
shapes and values against the HDF5 file, motion fields against block_flow and the POC rule of
models.md 1.3, crops consistent with the whole frame, back-projection data, HEVC (8 and 10 bit),
dtype/device moves and errors."""

from __future__ import annotations

import h5py
import models_helpers as MH
import numpy as np
import pytest
import torch
from models_helpers import DEVICES, one_thread  # noqa: F401 (one_thread: autouse fixture of every test here)

from pycodec import transform as T
from pycodec.models import BPData, MDVDInputs, dataset_kwargs, make_inputs, target_planes
from pycodec.models import fields as FL
from pycodec.models.inputs import NEIGHBOURS
from pycodec.nn import CodecWindowDataset, block_flow, chroma_downsample, chroma_upsample, collate, warp


@pytest.fixture(scope="module")
def shards(store, hevc_store, tmp_path_factory):
    out = {n: MH.h264_shard(store, tmp_path_factory, n) for n in ("main_b", "crop_100x62", "high_temporal")}
    out.update({n: MH.hevc_shard(hevc_store, tmp_path_factory, n) for n in ("noloop", "main10")})
    return out


def dataset(path, codec="h264", crop=None, seed=0):
    return CodecWindowDataset(path, **dataset_kwargs(codec, train=crop is not None, crop=crop), seed=seed)


def batch(path, idx, codec="h264", crop=None, seed=0):
    ds = dataset(path, codec, crop, seed)
    return collate([ds[i] for i in idx])


class TestDatasetKwargs:
    def test_fields_windows_and_no_flips(self, shards):
        kw = dataset_kwargs("h264", train=True, crop=(48, 64))
        assert kw["fields"] == FL.window_fields() and kw["center_fields"] == FL.center_fields("h264", target=True)
        assert kw["n"] == 2 and kw["windows"] == {"audio/mfcc": 10} and kw["hflip"] == kw["vflip"] == 0.0
        assert kw["crop"] == (48, 64) and kw["random_crop"]
        assert "crop" not in dataset_kwargs("hevc", train=False) and not dataset_kwargs("hevc", False)["random_crop"]
        s = dataset(shards["main_b"], crop=(48, 64))[4]
        assert s["decoded/y"].shape == (5, 48, 64) and s["decoded/u"].shape == (5, 24, 32)
        assert s["audio/mfcc"].shape == (21, 4, 13) and s["frame/poc"].shape == (5,)
        assert s["coeffs/y"].shape == (48, 64) and s["h264/dc_qmul"].shape == (3, 4, 3) and s["gt/v"].shape == (24, 32)
        with pytest.raises(ValueError, match="codec"):
            dataset_kwargs("vp9", True)


class TestMakeInputs:
    def test_shapes_and_values_against_the_file(self, shards):
        path = shards["main_b"]
        b = batch(path, (0, 6, 13), crop=(48, 64), seed=3)
        x = make_inputs(b, "h264")
        assert isinstance(x, MDVDInputs) and isinstance(x.bp, BPData)
        shapes = {"frames": (3, 5, 3, 48, 64), "mfcc": (3, 21, 52), "landmarks": (3, 68, 2), "mv": (3, 4, 3, 48, 64),
                  "pred": (3, 3, 48, 64), "resid": (3, 3, 48, 64), "tu": (3, 2, 48, 64), "qp": (3, 1, 48, 64)}
        for k, shp in shapes.items():
            t = getattr(x, k)
            assert tuple(t.shape) == shp and t.dtype == torch.float32, k
        assert float(x.frames.min()) >= 0 and float(x.frames.max()) <= 1
        with h5py.File(path, "r") as f:
            for i in range(3):
                t = int(b["frame"][i])
                oy, ox = b["offset"][i].tolist()
                win = np.s_[oy:oy + 48, ox:ox + 64]
                cwin = np.s_[oy // 2:oy // 2 + 24, ox // 2:ox // 2 + 32]
                fr = [min(max(t + k, 0), f["frame/pts"].shape[0] - 1) for k in range(-2, 3)]
                for j, ft in enumerate(fr):
                    np.testing.assert_allclose(x.frames[i, j, 0].numpy(), f["decoded/y"][ft][win] / 255.0, atol=1e-7)
                u = torch.tensor(f["decoded/u"][t][cwin] / 255.0, dtype=torch.float32)
                torch.testing.assert_close(x.frames[i, 2, 1], chroma_upsample(u, (48, 64)))
                torch.testing.assert_close(x.decoded["u"][i], u)
                # why the model adds its residual to these planes: upsample + 2x2 average blurs chroma
                assert not torch.equal(chroma_downsample(x.frames[i, 2, 1]), u)
                np.testing.assert_allclose(x.resid[i, 0].numpy(), f["residual/y"][t][win] / 255.0, atol=1e-7)
                np.testing.assert_allclose(x.pred[i, 0].numpy(), f["prediction/y"][t][win] / 255.0, atol=1e-7)
                mf = f["audio/mfcc"][:][[min(max(t + k, 0), 19) for k in range(-10, 11)]].reshape(21, 52)
                np.testing.assert_array_equal(x.mfcc[i].numpy(), mf)
                np.testing.assert_allclose(x.landmarks[i].numpy(), f["landmarks/decoded"][t] - [ox, oy], atol=1e-4)
                qp = f["block/qp_y"][t][oy // 4:oy // 4 + 12, ox // 4:ox // 4 + 16]
                np.testing.assert_allclose(x.qp[i, 0, ::4, ::4].numpy(), qp / 51.0, atol=1e-6)
                lg = f["block/tu_log2"][t][oy // 4:oy // 4 + 12, ox // 4:ox // 4 + 16]
                np.testing.assert_allclose(x.tu[i, 1, 2::4, 1::4].numpy(), lg / 5.0, atol=1e-6)
        assert torch.equal(x.origin, b["offset"])
        # boundary map: 1 on both sides of every transform-block edge, on the 4-sample grid at least
        assert torch.all(x.tu[:, 0, ::4, :] == 1) and torch.all(x.tu[:, 0, 3::4, :] == 1)
        assert torch.all(x.tu[:, 0, :, ::4] == 1)
        lay = T.h264_frame_layouts({k: b[k].numpy() for k in ("block/tkind", "block/mode", "block/pu_w")})["y"]
        t8 = np.repeat(np.repeat(lay.log2 == 3, 4, -1), 4, -2)  # 8x8 transforms: no edge inside them
        inner = np.zeros((48, 64), bool)
        inner[np.ix_(np.arange(48) % 8 == 4, np.arange(64) % 8 == 4)] = True
        got = x.tu[:, 0].numpy()
        assert np.all(got[t8 & inner] == 0) and np.all(got[~t8 & inner] == 1)
        torch.testing.assert_close(target_planes(b)["v"], b["gt/v"].float() / 255)

    def test_boundary_map_of_8x8_transforms(self, shards):
        b = batch(shards["high_temporal"], (0, 1, 4, 9))
        x = make_inputs(b, "h264", bp=False)
        lay = T.h264_frame_layouts({k: b[k].numpy() for k in ("block/tkind", "block/mode", "block/pu_w")})["y"]
        t8 = np.repeat(np.repeat(lay.log2 == 3, 4, -1), 4, -2)
        assert t8.any() and (~t8).any()
        h, w = x.frames.shape[-2:]
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        size = np.where(t8, 8, 4)
        want = (yy % size == 0) | (yy % size == size - 1) | (xx % size == 0) | (xx % size == size - 1)
        np.testing.assert_array_equal(x.tu[:, 0].numpy(), want.astype(np.float32))

    def test_motion_fields_follow_block_flow_and_the_poc_rule(self, shards):
        path = shards["main_b"]
        b = batch(path, (5, 8, 16), crop=(48, 64), seed=1)
        x = make_inputs(b, "h264")
        with h5py.File(path, "r") as f:
            names = ("mv_l0", "mv_l1", "ref_l0", "ref_l1", "ref_poc_l0", "ref_poc_l1", "mode")
            checked = valid_seen = 0
            for i in range(3):
                t = int(b["frame"][i])
                oy, ox = (v // 4 for v in b["offset"][i].tolist())
                a = {n: f[f"block/{n}"][t] for n in names}
                poc = f["frame/poc"][:]
                for n, k in enumerate(NEIGHBOURS):
                    tn = min(max(t + k - 2, 0), len(poc) - 1)
                    mv, valid = block_flow(*(torch.as_tensor(a[n_]) for n_ in names), poc=int(poc[t]),
                                           target_poc=int(poc[tn]))
                    rng = np.random.default_rng(i * 10 + n)
                    for by, bx in zip(rng.integers(0, 12, 6), rng.integers(0, 16, 6), strict=True):
                        cy, cx = oy + by, ox + bx
                        cell = x.mv[i, n, :, 4 * by:4 * by + 4, 4 * bx:4 * bx + 4]
                        want = torch.cat([mv[cy, cx] / 4, valid[cy, cx].float().view(1)])
                        assert torch.all(cell == want.view(3, 1, 1)), (i, n, by, bx)
                        # models.md 1.3 by hand: the list that references the neighbour, else scaled
                        mode, r0, r1 = int(a["mode"][cy, cx]), int(a["ref_l0"][cy, cx]), int(a["ref_l1"][cy, cx])
                        if mode in (0, 3, 4) or (r0 < 0 and r1 < 0):
                            exp, ok = np.zeros(2), 0.0
                        elif r0 >= 0 and a["ref_poc_l0"][cy, cx] == poc[tn]:
                            exp, ok = a["mv_l0"][cy, cx] / 4, 1.0
                        elif r1 >= 0 and a["ref_poc_l1"][cy, cx] == poc[tn]:
                            exp, ok = a["mv_l1"][cy, cx] / 4, 1.0
                        else:
                            lst = "l0" if r0 >= 0 else "l1"
                            den = int(a[f"ref_poc_{lst}"][cy, cx]) - int(poc[t])
                            s = (int(poc[tn]) - int(poc[t])) / den if den else 0.0
                            exp, ok = a[f"mv_{lst}"][cy, cx] / 4 * s, 1.0
                        np.testing.assert_allclose(cell[:2, 0, 0].numpy(), exp, rtol=1e-6, atol=1e-6)
                        assert float(cell[2, 0, 0]) == ok
                        checked += 1
                        valid_seen += int(ok)
        assert checked == 72 and valid_seen > 10

    def test_motion_fields_point_into_the_neighbours(self, shards):
        """Warping t-1 and t+1 by their fields brings them closer to frame t where MVs are valid."""
        b = batch(shards["main_b"], (6, 9, 14))
        x = make_inputs(b, "h264", bp=False)
        assert x.bp is None
        for n, j in ((1, 1), (2, 3)):
            nb, cur, f = x.frames[:, j, :1], x.frames[:, 2, :1], x.mv[:, n]
            ok = f[:, 2:3] > 0
            assert ok.float().mean() > 0.3
            before = (nb - cur).abs()[ok].mean()
            after = (warp(nb, f[:, :2]) - cur).abs()[ok].mean()
            assert after < 0.7 * before, (n, float(before), float(after))

    @pytest.mark.parametrize("name", ["main_b", "crop_100x62"])
    def test_crops_agree_with_the_whole_frame(self, shards, name):
        path = shards[name]
        crop = dataset(path, crop=(32, 48), seed=5)
        full = dataset(path)
        for idx in (2, 7):
            c, w = make_inputs(collate([crop[idx]]), "h264"), make_inputs(collate([full[idx]]), "h264")
            oy, ox = crop[idx]["offset"].tolist()
            win = np.s_[..., oy:oy + 32, ox:ox + 48]
            assert w.frames.shape[-2:] == (full.meta[0]["height"], full.meta[0]["width"])
            for k in ("mv", "tu", "qp"):
                assert torch.equal(getattr(c, k), getattr(w, k)[win]), (name, k)
            for k in ("pred", "resid"):  # luma exactly; chroma upsampling differs only at the crop border
                assert torch.equal(getattr(c, k)[:, 0], getattr(w, k)[win][:, 0]), (name, k)
                torch.testing.assert_close(getattr(c, k)[..., 2:-2, 2:-2], getattr(w, k)[win][..., 2:-2, 2:-2])
            assert torch.equal(c.frames[:, :, 0], w.frames[win][:, :, 0])
            torch.testing.assert_close(c.landmarks, w.landmarks - torch.tensor([ox, oy], dtype=torch.float32))
            for k, s in (("y", 1), ("u", 2), ("v", 2)):
                cwin = np.s_[..., oy // s:(oy + 32) // s, ox // s:(ox + 48) // s]
                assert torch.equal(c.decoded[k], w.decoded[k][cwin])
                assert torch.equal(c.bp.prediction[k], w.bp.prediction[k][cwin])
                assert torch.equal(c.bp.coeffs[k], w.bp.coeffs[k][cwin])  # coded plane: display offset is 0 here
                assert torch.equal(c.bp.steps[k], w.bp.steps[k][cwin])
                lwin = np.s_[..., oy // (4 * s):(oy + 32) // (4 * s), ox // (4 * s):(ox + 48) // (4 * s)]
                assert torch.equal(c.bp.layouts[k].log2, w.bp.layouts[k].log2[lwin])

    def test_back_projection_data(self, shards):
        b = batch(shards["main_b"], (3, 11), crop=(48, 64))
        x = make_inputs(b, "h264")
        lays = T.h264_frame_layouts({k: b[k].numpy() for k in ("block/tkind", "block/mode", "block/pu_w")})
        for k in "yuv":
            want = T.h264_plane_steps(b[f"qstep/{k}"].numpy(), b["h264/dc_qmul"].numpy(), lays[k], k)
            np.testing.assert_allclose(x.bp.steps[k].numpy(), want, rtol=1e-6)
            assert (x.bp.steps[k][..., ::4, ::4] > 0).any() and isinstance(x.bp.layouts[k].family, torch.Tensor)
            assert torch.equal(x.bp.prediction[k], b[f"prediction/{k}"].float())
        assert x.bp.peak == 255.0 and torch.equal(x.bp.offset, b["offset"])
        one = x.bp.select(1)
        assert one.coeffs["u"].shape == (1, 24, 32) and one.layouts["y"].family.shape == (1, 12, 16)
        d = x.bp.to(dtype=torch.float64)
        assert d.coeffs["y"].dtype == torch.float64 and d.offset.dtype == torch.int64

    @pytest.mark.parametrize(("name", "peak"), [("noloop", 255.0), ("main10", 1023.0)])
    def test_hevc(self, shards, name, peak):
        from pycodec.models import apply_back_projection

        b = batch(shards[name], (0, 3, 6), codec="hevc", crop=(64, 64))
        x = make_inputs(b, "hevc")
        assert x.bp.peak == peak and x.frames.shape == (3, 5, 3, 64, 64)
        assert 0.0 <= float(x.frames.min()) and float(x.frames.max()) <= 1.0
        assert float(x.tu[:, 1].max()) * 5 >= 4  # 16x16 or larger TUs
        pe = {k: (b[f"prediction/{k}"].double() + b[f"residual/{k}"].double()) / peak for k in "yuv"}
        out = apply_back_projection(pe, x.bp.to(dtype=torch.float64))
        for k in "yuv":
            assert float((out[k] - pe[k]).abs().max()) * peak < 0.5, k
        if name == "noloop":  # no deblocking, no SAO: the decoded frame is the reconstruction
            dec = {k: b[f"decoded/{k}"][:, 2].double() / peak for k in "yuv"}
            out = apply_back_projection(dec, x.bp.to(dtype=torch.float64))
            assert all(float((out[k] - dec[k]).abs().max()) * peak < 0.5 for k in "yuv")

    @pytest.mark.parametrize("device", DEVICES)
    def test_to_device_and_dtype(self, shards, device):
        x = make_inputs(batch(shards["main_b"], (1, 2), crop=(32, 32)), "h264")
        y = x.to(device, torch.float64)
        assert y.frames.dtype == torch.float64 and y.frames.device.type == device
        assert y.origin.dtype == torch.int64 and y.decoded["v"].dtype == torch.float64
        assert y.bp.steps["u"].dtype == torch.float64 and y.bp.layouts["y"].family.device.type == device
        assert x.frames.dtype == torch.float32  # a copy

    def test_exceptions(self, shards):
        b = batch(shards["main_b"], (1, 2), crop=(32, 32))
        with pytest.raises(ValueError, match="codec"):
            make_inputs(b, "av1")
        with pytest.raises(KeyError, match="dataset_kwargs"):
            make_inputs({k: v for k, v in b.items() if k != "block/mv_l0"}, "h264")
        with pytest.raises(KeyError, match="dc_qmul"):
            make_inputs({k: v for k, v in b.items() if k != "h264/dc_qmul"}, "h264")
        with pytest.raises(KeyError, match="gt/y"):
            target_planes({k: v for k, v in b.items() if not k.startswith("gt/")})
        one = dict(b)
        one["decoded/y"] = b["decoded/y"][:, 2]
        with pytest.raises(ValueError, match="window"):
            make_inputs(one, "h264")
