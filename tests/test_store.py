"""HDF5 writer/reader of schema pycodec/1: round trip, layout, crash safety, overwrite, reader helper."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycodec import store
from pycodec.samples import ALL_GROUPS, SyntheticFrame, synthetic_frames

INFO = {
    "codec": "h264",
    "width": 64,
    "height": 48,
    "coded_width": 64,
    "coded_height": 48,
    "bit_depth": 8,
    "chroma_format": "420",
    "frame_rate": (30, 1),
    "time_base": (1, 15360),
    "ffmpeg": "5.1.9",
    "crop": (0, 0, 0, 0),
    "profile": "High",
    "pix_fmt": "yuv420p",
}


def attrs(fields=ALL_GROUPS):
    return store.root_attrs(INFO, fields, source="/data/in.mp4", source_sha256="ab" * 32)


def leftovers(folder: Path) -> list[str]:
    """Files in ``folder`` (temp files included: they start with a dot)."""
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("nb_frames", [0, 5, 40])  # unknown, underestimated, overestimated (trimmed)
def test_round_trip_values_dtypes_chunks(tmp_path, nb_frames):
    frames = list(synthetic_frames(64, 48, n=11, seed=1))
    out = tmp_path / "x.h5"
    with store.H5Writer(out, attrs(), nb_frames=nb_frames, max_batch=4) as w:
        for f in frames:
            w.append(f)
    assert leftovers(tmp_path) == ["x.h5"]
    with h5py.File(out) as h:
        assert h.attrs["schema"] == "pycodec/1"
        assert h.attrs["codec"] == "h264"
        assert list(h.attrs["frame_rate"]) == [30, 1] and list(h.attrs["time_base"]) == [1, 15360]
        assert h.attrs["fields"] == ",".join(ALL_GROUPS)
        assert h.attrs["source_sha256"] == "ab" * 32
        assert h.attrs["nb_frames"] == 11
        for name, arr in frames[0].arrays.items():
            d = h[name]
            assert d.dtype == arr.dtype, name
            assert d.shape == (11, *arr.shape), name
            # one frame per chunk (the default), whatever the frame count
            k = store.chunk_frames(name, arr.nbytes, nb_frames)
            assert d.chunks == (k, *arr.shape) and k == 1, name
            assert d.maxshape == (None, *arr.shape), name
            assert d.compression == "lzf", name
            got = d[:]
            for i, f in enumerate(frames):
                np.testing.assert_array_equal(got[i], f.arrays[name], err_msg=name)
        meta = {k: h[f"frame/{k}"][:] for k in store.FRAME_META}
        for k, dt in store.FRAME_META.items():
            assert meta[k].dtype == np.dtype(dt) and meta[k].shape == (11,)
        assert bytes(meta["type"]).decode() == "".join(f.type for f in frames)
        assert meta["key"].tolist() == [f.key for f in frames]
        assert meta["pts"].tolist() == [f.pts for f in frames]
        assert meta["poc"].tolist() == [f.poc for f in frames]
        assert meta["pkt_bytes"].tolist() == [f.pkt_bytes for f in frames]
        assert meta["decode_index"].tolist() == [f.decode_index for f in frames]


@pytest.mark.parametrize(
    ("compression", "expect"),
    [("lzf", "lzf"), ("gzip", "gzip"), ("none", None)],
)
def test_compression(tmp_path, compression, expect):
    frames = list(synthetic_frames(32, 32, n=3, groups="frame,decoded,residual,block", seed=2))
    out = tmp_path / "c.h5"
    store.write_frames(out, frames, attrs(), compression=compression)
    with h5py.File(out) as h:
        assert h["residual/y"].compression == expect
        assert h["frame/pts"].compression == expect
        assert h["decoded/y"].compression == expect
        np.testing.assert_array_equal(h["decoded/v"][1], frames[1]["decoded/v"])
        np.testing.assert_array_equal(h["block/mv_l1"][2], frames[2]["block/mv_l1"])


def test_unknown_compression_refused(tmp_path):
    with pytest.raises(store.StoreError, match="unknown compression"):
        store.H5Writer(tmp_path / "c.h5", attrs(), compression="zstd")
    assert leftovers(tmp_path) == []


def test_missing_arrays_are_zero_and_late_arrays_are_backfilled(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (4, 6), dtype=np.uint8)
    frames = [
        SyntheticFrame(0, 0, 0, 0, "I", True, 10, 0, {"decoded/y": a}),
        SyntheticFrame(1, 1, 1, 2, "P", False, 10, 32, {}),  # NO_EXPORT frame without arrays
        SyntheticFrame(
            2, 2, None, 4, "P", False, 10, 0, {"decoded/y": a, "block/qp_y": np.ones((1, 2), np.int8)}
        ),
    ]
    out = tmp_path / "m.h5"
    store.write_frames(out, frames, attrs(["frame", "decoded", "block"]), max_batch=2)
    with store.open_h5(out) as f:
        assert len(f) == 3
        np.testing.assert_array_equal(f.frame(1)["decoded/y"], 0)
        np.testing.assert_array_equal(f.frame(2)["decoded/y"], a)
        assert f.frame(0)["block/qp_y"].tolist() == [[0, 0]]
        assert f.frame(2)["block/qp_y"].tolist() == [[1, 1]]
        assert f.frame(1)["flags"] == 32
        assert f.frame(2)["pts"] == store.NOPTS


def test_size_change_mid_stream_fails_cleanly(tmp_path):
    frames = list(synthetic_frames(32, 32, n=3, groups="frame,decoded", seed=4))
    frames[2].arrays["decoded/y"] = np.zeros((16, 16), np.uint8)
    with pytest.raises(store.StoreError, match="change size"):
        store.write_frames(tmp_path / "s.h5", frames, attrs())
    assert leftovers(tmp_path) == []


def test_failure_mid_stream_leaves_nothing(tmp_path):
    def frames():
        yield from synthetic_frames(32, 32, n=4, groups="frame,decoded,block", seed=5)
        raise RuntimeError("decoder exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        store.write_frames(tmp_path / "f.h5", frames(), attrs())
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(
            "Can't write data (file write failed: time = now, errno = 28, error message = 'No space left on device')"
        ),
    ],
)
@pytest.mark.parametrize("where", ["append", "close"])
def test_disk_full_leaves_nothing(tmp_path, monkeypatch, exc, where):
    out = tmp_path / "full.h5"
    w = store.H5Writer(out, attrs(), max_batch=2)
    frames = list(synthetic_frames(32, 32, n=3, groups="frame,decoded", seed=6))
    if where == "append":
        w.append(frames[0])

        def boom(*a, **k):
            raise exc

        monkeypatch.setattr(h5py.Dataset, "__setitem__", boom)
        monkeypatch.setattr(store, "_write_direct_chunk", boom)  # the direct chunk writes (lzf, none)
        with pytest.raises(store.StoreError, match="no space left on device; free some space"):
            w.append(frames[1])  # the batch of 2 is flushed here
    else:
        for f in frames:
            w.append(f)
        real_close = h5py.File.close

        def close_full(self):
            real_close(self)
            raise exc

        monkeypatch.setattr(h5py.File, "close", close_full)
        with pytest.raises(store.StoreError, match="no space left on device"):
            w.close()
    assert leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"precious")
    with pytest.raises(store.StoreError, match="already exists; pass --overwrite"):
        store.H5Writer(out, attrs())
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == ["o.h5"]
    # A failing overwrite keeps the old file; a successful one replaces it.
    with pytest.raises(RuntimeError), store.H5Writer(out, attrs(), overwrite=True) as w:
        w.append(next(synthetic_frames(16, 16, n=1, groups="frame")))
        raise RuntimeError("stop")
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == ["o.h5"]
    store.write_frames(out, synthetic_frames(16, 16, n=2, groups="frame"), attrs(), overwrite=True)
    assert len(store.open_h5(out)) == 2
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the private mode of the temp file


def test_output_directory_must_exist(tmp_path):
    with pytest.raises(store.StoreError, match="does not exist; create it first"):
        store.H5Writer(tmp_path / "nope" / "o.h5", attrs())


def test_metadata_across_chunk_boundaries(tmp_path):
    n = store.META_CHUNK * 2 + 37
    frames = (
        SyntheticFrame(i, i, 3 * i, 2 * i, "IPB"[i % 3], i % 3 == 0, i % 1000, i % 7, {}) for i in range(n)
    )
    out = tmp_path / "long.h5"
    store.write_frames(out, frames, attrs(["frame"]), nb_frames=100)
    with h5py.File(out) as h:
        assert h["frame/pts"].shape == (n,)
        assert h["frame/pts"].chunks == (store.META_CHUNK,)
        np.testing.assert_array_equal(h["frame/pts"][:], 3 * np.arange(n))
        np.testing.assert_array_equal(h["frame/flags"][:], np.arange(n) % 7)
        assert bytes(h["frame/type"][-3:]).decode() == "".join("IPB"[i % 3] for i in range(n - 3, n))


def test_reader_helper(tmp_path):
    frames = list(synthetic_frames(64, 48, n=5, groups="frame,decoded,block,h264", seed=7))
    out = tmp_path / "r.h5"
    store.write_frames(out, frames, attrs(["frame", "decoded", "block", "h264"]))
    with store.open_h5(out) as f:
        assert f.groups == ["block", "decoded", "frame", "h264"]
        assert "decoded/y" in f.fields and "frame/pts" in f.fields and "block/mv_l0" in f.fields
        assert f.attrs["width"] == 64 and f.attrs["crop"] == [0, 0, 0, 0]
        d = f.frame(-1)
        assert d["index"] == 4 and d["type"] == frames[4].type and isinstance(d["key"], bool)
        np.testing.assert_array_equal(d["h264/mb_type"], frames[4]["h264/mb_type"])
        assert set(f.frame(0, fields=["block/qp_y"])) == {"index", *store.FRAME_META, "block/qp_y"}
        with pytest.raises(IndexError, match="out of range"):
            f.frame(5)
    d = store.read_frame(out, 2)
    np.testing.assert_array_equal(d["decoded/u"], frames[2]["decoded/u"])


def test_reader_refuses_foreign_files(tmp_path):
    with pytest.raises(store.StoreError, match="no such file"):
        store.open_h5(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(store.StoreError, match="not a readable HDF5 file"):
        store.open_h5(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h:
        h.attrs["schema"] = "something/else"
    with pytest.raises(store.StoreError, match="expected 'pycodec/1'"):
        store.open_h5(tmp_path / "other.h5")


def test_root_attrs_from_info():
    a = store.root_attrs(INFO, ["frame", "block"], source="/x.mp4", source_sha256="00", first_frame=3)
    for key in (
        "schema",
        "codec",
        "width",
        "height",
        "coded_width",
        "coded_height",
        "bit_depth",
        "chroma_format",
        "frame_rate",
        "time_base",
        "source",
        "source_sha256",
        "ffmpeg",
        "pycodec",
        "fields",
    ):
        assert key in a, key
    assert a["fields"] == "frame,block" and a["first_frame"] == 3 and a["pycodec"]


def test_sha256_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert store.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_all_zero_frames_are_not_stored_but_read_as_zero(tmp_path):
    rng = np.random.default_rng(8)
    nonzero = [1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1]
    frames = []
    for i, nz in enumerate(nonzero):
        a = rng.integers(-5, 6, (8, 8)).astype(np.int16) * nz
        a[0, 0] = nz  # never all zero when nz
        frames.append(SyntheticFrame(i, i, i, i, "P", False, 1, 0, {"residual/y": a}))
    out = tmp_path / "z.h5"
    store.write_frames(out, frames, attrs(["frame", "residual"]), max_batch=4)
    with h5py.File(out) as h:
        d = h["residual/y"]
        assert d.id.get_num_chunks() == sum(nonzero)
        np.testing.assert_array_equal(d[:], np.stack([f["residual/y"] for f in frames]))
    store.write_frames(
        out, frames, attrs(["frame", "residual"]), max_batch=4, skip_zero=False, overwrite=True
    )
    with h5py.File(out) as h:
        assert h["residual/y"].id.get_num_chunks() == len(nonzero)


def _lzf_cases():
    rng = np.random.default_rng(11)
    yield rng.integers(0, 256, 5000, dtype=np.uint8)  # incompressible: stored raw, filter skipped
    yield np.zeros((64, 64), np.uint8)
    yield np.arange(100_000, dtype=np.int32)
    yield rng.integers(-3, 4, (64, 64, 2)).astype(np.int16)
    yield np.array([7, 7, 7], np.uint8)
    for _ in range(60):
        n = int(rng.integers(1, 40_000))
        a = rng.integers(0, int(rng.integers(1, 256)), n, dtype=np.uint8)
        a[rng.random(n) < rng.random()] = 0
        yield a
    for f in synthetic_frames(48, 32, n=3, groups="frame,block,coef,residual", seed=3):
        yield from (np.ascontiguousarray(v) for v in f.arrays.values())


def test_pack_chunk_lzf_reads_back_with_h5py(tmp_path):
    """Chunks compressed by _core's LZF and written directly decode with h5py's own LZF filter."""
    from pycodec import _core

    path = tmp_path / "lzf.h5"
    cases = list(_lzf_cases())
    masks = []
    with h5py.File(path, "w") as f:
        for i, a in enumerate(cases):
            d = f.create_dataset(
                str(i), shape=(2, *a.shape), dtype=a.dtype, chunks=(1, *a.shape), compression="lzf"
            )
            packed = _core.pack_chunk(a, True)
            if packed is None:
                assert not a.any()
                packed = (a, 1)
            else:
                data, mask = packed
                assert mask in (0, 1) and (mask == 1) == (data is a)
                if mask == 0:
                    assert isinstance(data, bytes) and len(data) < a.nbytes
            masks.append(packed[1])
            d.id.write_direct_chunk((1,) + (0,) * a.ndim, packed[0], packed[1])
    assert 0 in masks and 1 in masks
    with h5py.File(path, "r") as f:
        for i, a in enumerate(cases):
            np.testing.assert_array_equal(f[str(i)][1], a)
            assert not f[str(i)][0].any()  # unwritten chunk: fill value
    assert _core.pack_chunk(np.zeros(10, np.int16), False) is None
    a = np.ones(10, np.int16)
    data, mask = _core.pack_chunk(a, False)
    assert data is a and mask == 0


@pytest.mark.parametrize("compression", store.COMPRESSIONS)
@pytest.mark.parametrize("skip_zero", [True, False])
def test_written_arrays_match_frames(tmp_path, compression, skip_zero):
    """Every compression (direct chunk writes for lzf/none, h5py for gzip) stores the exact arrays."""
    frames = list(synthetic_frames(48, 32, n=5, groups="frame,decoded,block,coef,residual", seed=8))
    out = tmp_path / f"{compression}.h5"
    store.write_frames(out, frames, attrs(), compression=compression, skip_zero=skip_zero)
    with h5py.File(out, "r") as f:
        for i, fr in enumerate(frames):
            for name, arr in fr.arrays.items():
                d = f[name]
                k = store.chunk_frames(name, arr.nbytes, 0)
                assert d.chunks == (k, *arr.shape) and d.dtype == arr.dtype
                np.testing.assert_array_equal(d[i], arr)
        if compression == "lzf":
            assert f["block/mv_l0"].compression == "lzf" and f["decoded/y"].compression == "lzf"
