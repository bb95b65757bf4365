"""pycodec.nn.keyframes_data: Keyframes-GAN samples from tiny hand-written dataset shards
(docs/schema.md "Dataset shards": gt/, decoded/, landmarks/, keyframes/iframe, frame/type)."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch

from pycodec.models.keyframes import landmark_image
from pycodec.models.mls import mls_warp
from pycodec.nn import keyframes_data as KD
from pycodec.nn.keyframes_data import KeyframesDataset, yuv420_to_rgb

H = W = 48
N = 12


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _smooth(rng, n, h, w, lo, hi, cell=6):
    """n frames of smooth random uint8 planes (bilinear upsampled noise plus a little grain)."""
    g = rng.uniform(lo, hi, (n, 1, h // cell + 2, w // cell + 2))
    up = torch.nn.functional.interpolate(torch.from_numpy(g), size=(h, w), mode="bilinear", align_corners=False)
    return np.clip(up.numpy()[:, 0] + rng.normal(0, 2, (n, h, w)), 0, 255).round().astype(np.uint8)


def write_shard(path, n=N, h=H, w=W, seed=0, iframes=(0, 6), static=False, drop=(), nan_frames=()):
    """A minimal dataset shard: 4:2:0 ``decoded/*`` and ``gt/*``, drifting 68-point landmarks
    (``landmarks/gt``; ``landmarks/decoded`` = those plus noise), ``keyframes/iframe`` and
    ``frame/type`` from ``iframes``.  ``static``: every frame the same picture, decoded == gt and
    the same landmarks everywhere (so reference, degraded and target coincide)."""
    rng = np.random.default_rng(seed)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    gt = {"y": _smooth(rng, n, h, w, 30, 220), "u": _smooth(rng, n, ch, cw, 60, 200, 4),
          "v": _smooth(rng, n, ch, cw, 60, 200, 4)}
    base = rng.uniform([0.25 * w, 0.25 * h], [0.75 * w, 0.75 * h], (68, 2))
    lm_gt = (base[None] + np.arange(n)[:, None, None] * np.array([0.4, -0.3])).astype(np.float32)
    if static:
        gt = {k: np.repeat(v[:1], n, 0) for k, v in gt.items()}
        lm_gt = np.repeat(lm_gt[:1], n, 0)
        dec, lm_dec = gt, lm_gt.copy()
    else:
        dec = {k: np.clip(v.astype(np.int16) + rng.integers(-6, 7, v.shape), 0, 255).astype(np.uint8)
               for k, v in gt.items()}
        lm_dec = (lm_gt + rng.normal(0, 0.7, lm_gt.shape)).astype(np.float32)
    for t in nan_frames:
        lm_dec[t] = np.nan
    iframe = np.zeros(n, bool)
    iframe[[i for i in iframes if i < n]] = True
    fields = {f"gt/{k}": v for k, v in gt.items()} | {f"decoded/{k}": v for k, v in dec.items()}
    fields |= {"landmarks/gt": lm_gt, "landmarks/decoded": lm_dec, "keyframes/iframe": iframe,
               "frame/type": np.where(iframe, ord("I"), ord("P")).astype(np.uint8),
               "frame/pts": np.arange(n, dtype=np.int64)}
    with h5py.File(path, "w") as f:
        for name, a in fields.items():
            if name in drop:
                continue
            chunks = (1, *a.shape[1:]) if a.ndim > 1 else None
            f.create_dataset(name, data=a, chunks=chunks, compression="lzf" if chunks else None)
        f.attrs.update({"schema": "pycodec/1", "dataset_schema": "pycodec-dataset/1", "codec": "h264",
                        "width": w, "height": h, "bit_depth": 8, "crop_size": w})
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("kf_shards")
    return {"a": write_shard(d / "a.h5", seed=1), "b": write_shard(d / "b.h5", n=8, seed=2, iframes=(3,)),
            "static": write_shard(d / "static.h5", seed=3, static=True)}


def _rgb(path, group, t):
    with h5py.File(path, "r") as f:
        return yuv420_to_rgb(*(f[f"{group}/{k}"][t] for k in "yuv"))


def _sws(y, u, v, accurate=True):
    """swscale (PyAV) yuv420p -> rgb24: with ``accurate`` full-chroma bilinear interpolation and
    accurate rounding; else PyAV's default flags (swscale's unscaled path: chroma replicated)."""
    import av
    from av.video.reformatter import Interpolation as I

    h, w = y.shape
    buf = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    kw = {"interpolation": I.BILINEAR.value | I.FULL_CHR_H_INT.value | I.ACCURATE_RND.value} if accurate else {}
    return av.VideoFrame.from_ndarray(buf, format="yuv420p").to_ndarray(format="rgb24", **kw)


# ---------------------------------------------------------------------------------- samples


def test_gt_offset_samples(shards):
    ds = KeyframesDataset([shards["a"], shards["b"]], augment=False)
    got = [(s, t, r) for s, t, r in ds.index]
    assert got == [(0, 5, 0), (0, 10, 5), (1, 5, 0)]
    assert len(ds) == 3
    s = ds[1]
    assert (s["file"], s["frame"], s["ref_frame"]) == (str(shards["a"]), 10, 5)
    np.testing.assert_array_equal(s["degraded"].numpy(), _rgb(shards["a"], "decoded", 10))
    np.testing.assert_array_equal(s["target"].numpy(), _rgb(shards["a"], "gt", 10))
    np.testing.assert_array_equal(s["reference"].numpy(), _rgb(shards["a"], "gt", 5))
    with h5py.File(shards["a"], "r") as f:
        np.testing.assert_array_equal(s["landmarks"].numpy(), f["landmarks/decoded"][10])
        np.testing.assert_array_equal(s["ref_landmarks"].numpy(), f["landmarks/gt"][5])
    assert [(t, r) for _, t, r in KeyframesDataset(shards["a"], every=2, offset=3, augment=False).index] == \
        [(4, 1), (6, 3), (8, 5), (10, 7)]
    assert ds[-1]["frame"] == 5 and ds[-1]["file"] == str(shards["b"])
    with pytest.raises(IndexError):
        ds[3]


def test_decoded_prev_iframe_samples(shards):
    ds = KeyframesDataset([shards["a"], shards["b"]], train_ref="decoded_prev_iframe", augment=False)
    # a: I-frames 0, 6 -> t 0 (itself), 5 -> 0, 10 -> 6; b: I-frame 3 -> t 0 left out, 5 -> 3
    assert ds.index == [(0, 0, 0), (0, 5, 0), (0, 10, 6), (1, 5, 3)]
    s = ds[2]
    assert (s["frame"], s["ref_frame"]) == (10, 6)
    np.testing.assert_array_equal(s["reference"].numpy(), _rgb(shards["a"], "decoded", 6))
    with h5py.File(shards["a"], "r") as f:
        np.testing.assert_array_equal(s["ref_landmarks"].numpy(), f["landmarks/decoded"][6])


def test_frame_type_fallback_and_nan_landmarks(tmp_path):
    p = write_shard(tmp_path / "old.h5", iframes=(2, 7), drop=("keyframes/iframe",), nan_frames=(10,))
    ds = KeyframesDataset(p, train_ref="decoded_prev_iframe", augment=False)
    assert ds.index == [(0, 5, 2)] and ds.skipped == 1  # t 0: no I-frame yet; t 10: no landmarks
    ds = KeyframesDataset(p, augment=False)
    assert ds.index == [(0, 5, 0)] and ds.skipped == 1


# ---------------------------------------------------------------------------------- colour


def test_rgb_matches_swscale(shards):
    """Every image of a sample against swscale (full-chroma bilinear, accurate rounding)."""
    ds = KeyframesDataset(shards["a"], augment=False)
    s = ds[0]
    with h5py.File(shards["a"], "r") as f:
        planes = {(g, t): [f[f"{g}/{k}"][t] for k in "yuv"] for g, t in (("decoded", 5), ("gt", 5), ("gt", 0))}
    for key, name in ((("decoded", 5), "degraded"), (("gt", 5), "target"), (("gt", 0), "reference")):
        ref = _sws(*planes[key]).astype(np.float64)
        got = s[name].numpy().transpose(1, 2, 0) * 255.0
        assert np.abs(got - ref).max() <= 1.0, name


def test_rgb_random_chroma_and_default_swscale():
    rng = np.random.default_rng(5)
    y = rng.integers(16, 236, (16, 24)).astype(np.uint8)
    u, v = (rng.integers(16, 241, (8, 12)).astype(np.uint8) for _ in range(2))
    got = yuv420_to_rgb(y, u, v).transpose(1, 2, 0) * 255.0
    assert got.dtype == np.float32 and got.min() >= 0 and got.max() <= 255
    assert np.abs(got - _sws(y, u, v)).max() <= 1.0
    # swscale's default path replicates chroma: equal only where the chroma is flat
    u[:], v[:] = 100, 170
    flat = yuv420_to_rgb(y, u, v).transpose(1, 2, 0) * 255.0
    assert np.abs(flat - _sws(y, u, v, accurate=False)).max() <= 3.0


def test_rgb_odd_sizes_match_torch_color():
    """Odd sizes (chroma ceil(H/2)) against pycodec.nn.color on F.interpolate-upsampled chroma."""
    from pycodec.nn.color import ycbcr_to_rgb

    rng = np.random.default_rng(6)
    y = rng.integers(0, 256, (7, 9)).astype(np.uint8)
    u, v = (rng.integers(0, 256, (4, 5)).astype(np.uint8) for _ in range(2))
    c = torch.from_numpy(np.stack([u, v]).astype(np.float64))[None]
    # scale_factor=2 reads chroma (i + 0.5) / 2 - 0.5 (centred siting); the extra row/column is cut
    up = torch.nn.functional.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False)[0, :, :7, :9]
    ref = ycbcr_to_rgb(torch.cat([torch.from_numpy(y.astype(np.float64))[None], up])).clamp(0, 1).numpy()
    np.testing.assert_allclose(yuv420_to_rgb(y, u, v), ref, atol=1e-5)
    full = yuv420_to_rgb(y, u, v, full_range=True, matrix="bt709")
    ref = ycbcr_to_rgb(torch.cat([torch.from_numpy(y.astype(np.float64))[None], up]), "bt709", True).clamp(0, 1)
    np.testing.assert_allclose(full, ref.numpy(), atol=1e-5)


# ---------------------------------------------------------------------------------- guide


def test_guide_is_mls_warp_of_reference(shards):
    ds = KeyframesDataset(shards["a"], augment=False)
    for i in range(len(ds)):
        s = ds[i]
        want = mls_warp(s["reference"][None], s["landmarks"][None], s["ref_landmarks"][None])[0]
        torch.testing.assert_close(s["guide"], want, atol=1e-6, rtol=0)
        assert s["guide"].shape == (3, H, W) and s["guide"].dtype == torch.float32
        assert not torch.equal(s["guide"], s["reference"])


def test_guide_in_crop_window_is_cropped_full_warp(shards):
    ds = KeyframesDataset(shards["a"], augment=False, size=(32, 24))
    s = ds[0]
    y0, x0 = s["crop"].tolist()
    assert (y0, x0) == ((H - 32) // 2, (W - 24) // 2)
    ref = torch.from_numpy(_rgb(shards["a"], "gt", 0))
    with h5py.File(shards["a"], "r") as f:
        lm, rl = (torch.from_numpy(f[k][i]) for k, i in (("landmarks/decoded", 5), ("landmarks/gt", 0)))
    full = mls_warp(ref[None], lm[None], rl[None])[0]
    torch.testing.assert_close(s["guide"], full[:, y0:y0 + 32, x0:x0 + 24], atol=1e-5, rtol=0)
    torch.testing.assert_close(s["landmarks"], lm - torch.tensor([x0, y0], dtype=torch.float32))


def test_identity_warp_when_landmarks_coincide(shards):
    ds = KeyframesDataset(shards["static"], augment=False)
    s = ds[0]
    torch.testing.assert_close(s["landmarks"], s["ref_landmarks"])
    torch.testing.assert_close(s["guide"], s["reference"], atol=2e-4, rtol=0)
    assert torch.equal(s["degraded"], s["target"]) and torch.equal(s["degraded"], s["reference"])


# ---------------------------------------------------------------------------------- augmentation


def _inside(lm, h, w):
    p = np.floor(lm + 0.5)
    return (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)


def _expected_limg(lm, hole, h, w, before=None):
    """Landmark image of points (x, y), points outside the picture (or, given ``before``, outside
    it before the augmentation: I_L is shifted as an image) left out, the hole zeroed."""
    ok = _inside(lm, h, w) if before is None else _inside(lm, h, w) & before
    img = landmark_image(torch.from_numpy(lm[ok])[None], h, w)[0].numpy()
    top, left, side = hole
    img[:, top:top + side, left:left + side] = 0
    return img


def _replay(img, aug):
    """Independent re-implementation of the recorded augmentation on (C, H, W)."""
    dy, dx, k, top, left, side = aug.tolist()
    x = torch.as_tensor(img)
    if dy or dx:
        h, w = x.shape[-2:]
        x = torch.roll(x, (dy, dx), (-2, -1))
        rows, cols = torch.arange(h), torch.arange(w)
        keep = ((rows - dy >= 0) & (rows - dy < h))[:, None] & ((cols - dx >= 0) & (cols - dx < w))[None]
        x = x * keep
    if k:
        x = torch.rot90(x, k, (-2, -1))
    if side:
        x = x.clone()
        x[..., top:top + side, left:left + side] = 0
    return x


def test_augmentation_deterministic(shards):
    ds = KeyframesDataset([shards["a"], shards["b"]], seed=7, size=(32, 32))
    a = [ds[i] for i in range(len(ds))]
    again = KeyframesDataset([shards["a"], shards["b"]], seed=7, size=(32, 32))
    for x, y in zip(a, [again[i] for i in range(len(ds))]):
        for k in ("degraded", "target", "guide", "landmark_image", "landmarks", "crop", "aug"):
            assert torch.equal(x[k], y[k]), k
    ds.set_epoch(1)
    b = [ds[i] for i in range(len(ds))]
    assert any(not torch.equal(x["crop"], y["crop"]) or not torch.equal(x["aug"], y["aug"]) for x, y in zip(a, b))
    ds.set_epoch(0)
    assert torch.equal(ds[1]["degraded"], a[1]["degraded"])


def test_augmentation_geometry(shards):
    """Static shard: degraded == target == reference, guide = identity warp; over many epochs every
    op occurs, all images get the same transform (replayed independently), and the landmark image's
    ones sit at the moved landmarks."""
    ds = KeyframesDataset(shards["static"], seed=3)
    plain = KeyframesDataset(shards["static"], augment=False)[0]
    base = plain["degraded"]
    seen = {"shift": 0, "rot": set(), "cut": 0}
    for epoch in range(60):
        ds.set_epoch(epoch)
        s = ds[0]
        dy, dx, k, top, left, side = s["aug"].tolist()
        seen["shift"] += bool(dy or dx)
        if k:
            seen["rot"].add(k)
        seen["cut"] += bool(side)
        assert torch.equal(s["degraded"], s["target"]) and torch.equal(s["degraded"], s["reference"])
        torch.testing.assert_close(s["guide"], s["degraded"], atol=2e-4, rtol=0)
        assert torch.equal(s["degraded"], _replay(base, s["aug"]))
        assert torch.equal(s["landmark_image"], _replay(plain["landmark_image"], s["aug"]))
        np.testing.assert_array_equal(s["landmark_image"].numpy(),
                                      _expected_limg(s["landmarks"].numpy(), (top, left, side), H, W))
        # landmarks moved by hand: shift, then k quarter turns counter-clockwise
        lm = plain["landmarks"].numpy() + np.array([dx, dy], np.float32)
        for _ in range(k):
            lm = np.stack([lm[:, 1], (W - 1) - lm[:, 0]], -1)
        np.testing.assert_allclose(s["landmarks"].numpy(), lm, atol=1e-5)
        torch.testing.assert_close(s["ref_landmarks"], s["landmarks"])
    assert seen["shift"] and seen["rot"] == {1, 2, 3} and seen["cut"]


def test_augment_bounds():
    """Shift within 13% of the side, hole of 16..64 px inside the picture, non-square turns by 2."""
    img = np.ones((1, 40, 100), np.float32)
    for i in range(200):
        out, _, rec = KD.augment([img], [np.zeros((68, 2), np.float32)], np.random.default_rng(i))
        dy, dx, k, top, left, side = rec.tolist()
        assert abs(dy) <= 5 and abs(dx) <= 13 and k in (0, 2)
        assert out[0].shape == img.shape
        if side:
            assert 16 <= side <= 40 and 0 <= top <= 40 - side and 0 <= left <= 100 - side
            assert not out[0][:, top:top + side, left:left + side].any()


def test_crop_size(shards):
    """Random windows: every image is the window of the whole unaugmented sample, then the same
    augmentation (replayed independently); landmarks shifted, points outside left out of I_L."""
    files = [shards["a"], shards["b"]]
    whole = KeyframesDataset(files, augment=False)
    ds = KeyframesDataset(files, size=(24, 40), seed=1)
    offsets, augmented = set(), 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s, f = ds[i], whole[i]
            y0, x0 = s["crop"].tolist()
            offsets.add((y0, x0))
            augmented += bool(s["aug"].any())
            for k in ("degraded", "target", "reference", "guide"):
                assert s[k].shape == (3, 24, 40) and s[k].dtype == torch.float32
                assert 0 <= s[k].min() and s[k].max() <= 1
                want = _replay(f[k][:, y0:y0 + 24, x0:x0 + 40], s["aug"])
                torch.testing.assert_close(s[k], want, atol=1e-5 if k == "guide" else 0, rtol=0)
            assert s["landmark_image"].shape == (1, 24, 40) and s["landmarks"].shape == (68, 2)
            dy, dx, k, top, left, side = s["aug"].tolist()
            lm = f["landmarks"].numpy() - np.array([x0 - dx, y0 - dy], np.float32)
            cw, ch = 40, 24
            for _ in range(k):  # each quarter turn uses the width before it
                lm = np.stack([lm[:, 1], (cw - 1) - lm[:, 0]], -1)
                cw, ch = ch, cw
            assert k in (0, 2)  # non-square: half turns only
            np.testing.assert_allclose(s["landmarks"].numpy(), lm, atol=1e-5)
            before = _inside(f["landmarks"].numpy() - np.array([x0, y0], np.float32), 24, 40)
            np.testing.assert_array_equal(s["landmark_image"].numpy(),
                                          _expected_limg(s["landmarks"].numpy(), (top, left, side), 24, 40, before))
    assert len(offsets) > 3 and augmented
    assert all(0 <= y <= H - 24 and 0 <= x <= W - 40 for y, x in offsets)
    with pytest.raises(ValueError, match="does not fit"):
        KeyframesDataset(shards["a"], size=(64, 32))


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("field,ref", [("landmarks/gt", "gt_offset"), ("gt/u", "gt_offset"),
                                       ("decoded/y", "decoded_prev_iframe"), ("landmarks/decoded", "gt_offset")])
def test_missing_field(tmp_path, field, ref):
    p = write_shard(tmp_path / "s.h5", n=6, drop=(field,))
    with pytest.raises(KeyError, match="make dataset") as e:
        KeyframesDataset(p, train_ref=ref)
    assert str(p) in str(e.value) and repr(field) in str(e.value)


def test_missing_iframes_and_other_errors(tmp_path, shards):
    p = write_shard(tmp_path / "s.h5", n=6, drop=("keyframes/iframe", "frame/type", "landmarks/gt"))
    with pytest.raises(KeyError, match="keyframes/iframe.*frame/type"):
        KeyframesDataset(p, train_ref="decoded_prev_iframe")
    with pytest.raises(KeyError, match="landmarks/gt"):
        KeyframesDataset(p)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        KeyframesDataset(bad)
    with pytest.raises(FileNotFoundError):
        KeyframesDataset(tmp_path / "none.h5")
    with pytest.raises(ValueError, match="train_ref"):
        KeyframesDataset(shards["a"], train_ref="gt")
    with pytest.raises(ValueError, match="no samples"):
        KeyframesDataset(shards["a"], offset=20)
    with h5py.File(tmp_path / "s.h5", "a") as f:  # 4:4:4 chroma
        del f["gt/u"]
        f.create_dataset("gt/u", data=np.zeros((6, H, W), np.uint8))
    with pytest.raises(ValueError, match="'gt/u' has shape"):
        KeyframesDataset(tmp_path / "s.h5", train_ref="decoded_prev_iframe")


# ---------------------------------------------------------------------------------- loading


def test_dataloader_and_pickling(tmp_path, shards):
    ds = KeyframesDataset([shards["a"], shards["b"]], train_ref="decoded_prev_iframe", size=(32, 32))
    batches = list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0))
    assert len(batches) == 2
    b = batches[0]
    assert b["degraded"].shape == (2, 3, 32, 32) and b["landmark_image"].shape == (2, 1, 32, 32)
    assert b["landmarks"].shape == (2, 68, 2) and b["frame"].tolist() == [0, 5] and b["ref_frame"].tolist() == [0, 0]
    assert b["file"] == [str(shards["a"])] * 2
    # a worker gets a copy without the parent's handles and opens its own
    assert ds._handles
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {} and clone._pid == -1
    assert torch.equal(clone[3]["degraded"], ds[3]["degraded"])
    clone.close()
    ds.close()
    assert ds._handles == {}
    # handles are per file: a moved copy of the shard list still reads
    shutil.copy(shards["b"], tmp_path / "b2.h5")
    assert len(KeyframesDataset(tmp_path / "b2.h5", train_ref="decoded_prev_iframe")) == 1
