"""pycodec.nn.CodecWindowDataset and collate on extracted files of generated streams (H.264 and HEVC,
including flips of coefficient images); the oracle
is pycodec's own decode of the same stream (independent of HDF5 and of the dataset code)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pycodec import cli
from pycodec import transform as T
from pycodec.nn import BackProjection, CodecWindowDataset, collate
from pycodec.transform import layout as LY


@pytest.fixture(scope="module")
def extracted(store, tmp_path_factory):
    """{name: (h5 path, decoded frames)} for two generated streams (one with cropping)."""
    d = tmp_path_factory.mktemp("nnds")
    out = {}
    for name in ("main_b", "crop_100x62"):
        path = d / f"{name}.h5"
        assert cli.main(["extract", str(store.path(name)), str(path)]) == 0
        out[name] = (path, store.decode(name)[1], store.path(name))
    return out


class TestCodecWindowDataset:
    def test_smoke_windows_replicate_edges(self, extracted):
        path, frames, _ = extracted["main_b"]
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
        path, frames, _ = extracted["crop_100x62"]
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
        path, _, _ = extracted["main_b"]
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
        path, _, _ = extracted["main_b"]
        with pytest.raises(FileNotFoundError, match="no such file"):
            CodecWindowDataset(tmp_path / "nope.h5")
        with pytest.raises(KeyError, match="re-extract"):
            CodecWindowDataset(path, fields=("decoded/y", "hevc/ctu"))
        with pytest.raises(ValueError, match="multiples of the codec grid"):
            CodecWindowDataset(path, crop=(24, 32))
        with pytest.raises(ValueError, match="fits"):
            CodecWindowDataset(path, crop=(112, 128))
        with pytest.raises(ValueError, match="needs a crop"):  # display 100x62 inside a 112x64 coded frame
            CodecWindowDataset(extracted["crop_100x62"][0], fields=("coeffs/y",), hflip=0.5)
        CodecWindowDataset(path, fields=("coeffs/y",), hflip=0.5)  # display == coded: fine
        thin = tmp_path / "thin.h5"
        assert cli.main(["extract", "--fields", "decoded,coeffs", str(extracted["main_b"][2]), str(thin)]) == 0
        with pytest.raises(KeyError, match="layout"):
            CodecWindowDataset(thin, fields=("coeffs/y",), vflip=1.0)
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


# ----------------------------------------------------------------------------------- coefficient flips

PLANES = ("y", "u", "v")


def _flip_np(a, hf, vf):
    if hf:
        a = np.flip(a, -1)
    if vf:
        a = np.flip(a, -2)
    return a


def _h264_qstep_image(lay, qp_cells):
    """The qstep image a flat-matrix H.264 frame must have: per block h264_qstep(QP, n) laid out
    in natural orientation, 0 at the DCs of DC-path blocks and in FREE blocks (independent oracle)."""
    h, w = 4 * np.array(lay.family.shape)
    y, x = np.mgrid[0:h, 0:w]
    qp = np.repeat(np.repeat(qp_cells.astype(np.int64), 4, 0), 4, 1)
    out = np.zeros((h, w))
    for lg in (2, 3):
        n = 1 << lg
        tab = T.h264_qstep(qp, n)  # (h, w, n, n)
        q = tab[y, x, y % n, x % n]
        out = np.where(np.repeat(np.repeat(lay.log2 == lg, 4, 0), 4, 1), q, out)
    dcpos = np.repeat(np.repeat(lay.dc > 0, 4, 0), 4, 1) & (y % 4 == 0) & (x % 4 == 0)
    return np.where(dcpos | np.repeat(np.repeat(lay.family == LY.FREE, 4, 0), 4, 1), 0, out)


@pytest.fixture(scope="module")
def hevc_extracted(hevc_store, tmp_path_factory):
    """tskip: HEVC with DST, luma and chroma transform skip, SDH (all groups extracted)."""
    path = tmp_path_factory.mktemp("nnds_hevc") / "tskip.h5"
    assert cli.main(["extract", str(hevc_store.path("tskip")), str(path)]) == 0
    return path


def _bp_check(a, b, lays_a, lays_b, hf, vf, steps_of, exclude=None, seed=0):
    """BackProjection of the flipped sample == flip of BackProjection of the unflipped sample (float64)."""
    bp = BackProjection()
    rng = np.random.default_rng(seed)
    for k in PLANES:
        pred = a[f"prediction/{k}"].astype(np.float64)
        rest = pred + a[f"residual/{k}"] + rng.normal(0, 5, pred.shape)
        out = bp(torch.tensor(rest), torch.tensor(pred), torch.tensor(a[f"coeffs/{k}"]),
                 torch.tensor(steps_of(a, lays_a, k)), lays_a[k]).numpy()
        fout = bp(torch.tensor(_flip_np(rest, hf, vf).copy()), torch.tensor(b[f"prediction/{k}"].astype(np.float64)),
                  torch.tensor(b[f"coeffs/{k}"]), torch.tensor(steps_of(b, lays_b, k)), lays_b[k]).numpy()
        exp = _flip_np(out, hf, vf)
        keep = np.ones(exp.shape, bool) if exclude is None else ~exclude(lays_b[k])
        assert np.allclose(fout[..., keep], exp[..., keep], atol=1e-9, rtol=0), k
        assert not np.allclose(out, rest)  # the projection did move samples
        if exclude is not None:  # unconstrained blocks pass through
            ex = exclude(lays_b[k])
            assert np.allclose(fout[..., ex], _flip_np(rest, hf, vf)[..., ex], atol=1e-9)


class TestCoefficientFlips:
    H264_FIELDS = tuple(f"{g}/{k}" for g in ("coeffs", "levels", "qstep", "prediction", "residual") for k in PLANES) + (
        "block/tkind", "block/mode", "block/pu_w", "block/qp_y", "block/qp_cb", "block/qp_cr", "h264/dc_qmul")

    @pytest.mark.parametrize("hf,vf", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
    def test_h264_flipped_coefficients_describe_the_flipped_residual(self, extracted, hf, vf):
        path, _, _ = extracted["main_b"]
        kw = {"center_fields": self.H264_FIELDS, "n": 0, "crop": (64, 96), "seed": 4}
        plain, flipped = CodecWindowDataset(path, **kw), CodecWindowDataset(path, hflip=hf, vflip=vf, **kw)
        nonzero = {"y": 0, "u": 0, "v": 0}
        for i in range(0, len(plain), 3):
            a, b = plain[i], flipped[i]
            assert np.array_equal(a["offset"], b["offset"]) and (b["hflip"], b["vflip"]) == (bool(hf), bool(vf))
            la = T.h264_frame_layouts(a)
            lb = T.h264_frame_layouts(b)  # from the flipped block maps
            for k in PLANES:
                assert np.array_equal(lb[k].family, _flip_np(la[k].family, hf, vf))
                ga = T.plane_inverse(a[f"coeffs/{k}"], la[k], dc_domain=False)
                gb = T.plane_inverse(b[f"coeffs/{k}"], lb[k], dc_domain=False)
                assert np.array_equal(gb, _flip_np(ga, hf, vf))  # G(flipped C) == flip(G(C)), exactly
                qp = b["block/qp_y"] if k == "y" else b[f"block/qp_{'cb' if k == 'u' else 'cr'}"][::2, ::2]
                assert np.allclose(b[f"qstep/{k}"], _h264_qstep_image(lb[k], qp), rtol=1e-6, atol=0)
                # the Hadamard-domain DC levels follow their mirrored Hadamard coefficients
                z = T.to_dc_domain(b[f"coeffs/{k}"], lb[k])[::4, ::4]
                step = T.h264_plane_steps(np.zeros(b[f"qstep/{k}"].shape), b["h264/dc_qmul"], lb[k], k)[::4, ::4]
                lv = b[f"levels/{k}"][::4, ::4]
                sel = (lb[k].dc > 0) & (step > 0)
                assert np.abs(z[sel] - lv[sel] * step[sel]).max(initial=0) <= (0.5 if k == "y" else 1.0)
                nonzero[k] += int(np.count_nonzero(sel & (lv != 0)))
            _bp_check(a, b, la, lb, hf, vf, lambda s, lays, k: T.h264_plane_steps(s[f"qstep/{k}"], s["h264/dc_qmul"], lays[k], k))
        assert min(nonzero.values()) > 0  # intra 16x16 and chroma DC levels were exercised

    def test_hevc_records_layouts_and_flipped_coefficients(self, hevc_extracted):
        fields = tuple(f"{g}/{k}" for g in ("coeffs", "levels", "qstep", "prediction", "residual") for k in PLANES) + (
            "hevc/tu", "hevc/cu", "hevc/counts", "block/mode")
        kw = {"center_fields": fields, "n": 0, "crop": (64, 64), "seed": 2}
        plain = CodecWindowDataset(hevc_extracted, **kw)
        flipped = CodecWindowDataset(hevc_extracted, hflip=1.0, vflip=1.0, **kw)
        full = CodecWindowDataset(hevc_extracted, center_fields=fields, n=0)
        seen_dst = seen_ts = 0
        for i in range(len(plain)):
            a, b, c = plain[i], flipped[i], full[i]
            oy, ox = a["offset"].tolist()
            lfull = T.hevc_frame_layouts(c, 8)
            la, lb = T.hevc_frame_layouts(a, 8), T.hevc_frame_layouts(b, 8)  # from the windowed records
            for k, s in (("y", 4), ("u", 8), ("v", 8)):
                crop = lfull[k].map(lambda m, s=s, oy=oy, ox=ox: m[oy // s:(oy + 64) // s, ox // s:(ox + 64) // s])
                for fld in ("family", "log2", "coded"):
                    assert np.array_equal(getattr(la[k], fld), getattr(crop, fld)), (i, k, fld)
                    assert np.array_equal(getattr(lb[k], fld), _flip_np(getattr(crop, fld), 1, 1)), (i, k, fld)
                dst = np.repeat(np.repeat(lb[k].family == LY.HEVC_DST, 4, 0), 4, 1)
                ga = T.plane_inverse(a[f"coeffs/{k}"], la[k])
                gb = T.plane_inverse(b[f"coeffs/{k}"], lb[k])
                assert np.array_equal(gb[~dst], _flip_np(ga, 1, 1)[~dst])  # exact outside DST blocks
                assert np.abs(gb[dst] - _flip_np(ga, 1, 1)[dst]).max(initial=0) <= 0.06  # DST: rounded
                assert np.all(b[f"qstep/{k}"][dst] == 0) and np.all(b[f"levels/{k}"][dst] == 0)
                seen_dst += int(dst.sum())
                seen_ts += int(np.count_nonzero(lb[k].family == LY.HEVC_SKIP))
            assert b["hevc/counts"][1] == a["hevc/counts"][1] == int((a["hevc/tu"][:, 2] > 0).sum())

            def unconstrained(lay):
                return np.repeat(np.repeat(lay.family == LY.HEVC_DST, 4, 0), 4, 1)

            _bp_check(a, b, la, lb, 1, 1, lambda s, lays, k: s[f"qstep/{k}"].astype(np.float64), unconstrained, seed=i)
        assert seen_dst > 0 and seen_ts > 0
