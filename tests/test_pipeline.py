"""The pipelined HDF5 writer (store.PipelinedWriter, `extract --writer-thread`) and the row-aware LZF.

The writer thread must not change the file (same datasets, same bytes once read back), and must keep
H5Writer's guarantees: a failure in the thread surfaces as the same one-line StoreError in the calling
thread and leaves no file behind.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycodec import _core, cli, store
from pycodec.samples import ALL_GROUPS, make_talking_sample, synthetic_frames

INFO = {
    "codec": "h264",
    "width": 48,
    "height": 32,
    "coded_width": 48,
    "coded_height": 32,
    "bit_depth": 8,
    "chroma_format": "420",
    "frame_rate": (30, 1),
    "time_base": (1, 15360),
    "ffmpeg": "5.1.9",
}


def attrs():
    return store.root_attrs(INFO, ALL_GROUPS, source="/data/in.mp4", source_sha256="cd" * 32)


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a file, read back whole."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        out["@attrs"] = np.array(sorted((k, str(v)) for k, v in f.attrs.items()))
    return out


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pycodec-h5-writer"]


@pytest.mark.parametrize("compression", store.COMPRESSIONS)
def test_pipeline_writes_the_same_file(tmp_path, compression):
    frames = list(synthetic_frames(48, 32, n=9, groups="frame,decoded,block,coeffs,residual,h264", seed=21))
    a, b = tmp_path / "plain.h5", tmp_path / "pipe.h5"
    assert store.write_frames(a, frames, attrs(), compression=compression) == 9
    assert store.write_frames(b, frames, attrs(), compression=compression, pipeline=True) == 9
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)
    assert sorted(os.listdir(tmp_path)) == ["pipe.h5", "plain.h5"]
    assert not writer_threads()


def test_pipeline_queue_is_bounded(tmp_path):
    """append() blocks while `depth` frames wait: the thread holds at most depth + 1 frames."""
    gate = threading.Event()
    real_append = store.H5Writer.append
    frames = list(synthetic_frames(32, 32, n=6, groups="frame,block", seed=2))

    class Slow(store.H5Writer):
        def append(self, frame):
            gate.wait(10)
            real_append(self, frame)

    w = store.PipelinedWriter(Slow(tmp_path / "q.h5", attrs()), depth=2)
    done = []

    def feed():
        for f in frames:
            w.append(f)
            done.append(f)

    t = threading.Thread(target=feed)
    t.start()
    t.join(0.5)
    assert t.is_alive() and len(done) <= 3  # 1 taken by the thread + 2 queued
    gate.set()
    t.join(10)
    assert len(done) == 6 and w.n == 6
    w.close()
    with h5py.File(tmp_path / "q.h5") as f:
        assert f["frame/pts"].shape == (6,)


@pytest.mark.parametrize("where", ["append", "close"])
def test_failure_in_writer_thread_is_the_same_store_error(tmp_path, monkeypatch, where):
    out = tmp_path / "full.h5"
    frames = list(synthetic_frames(32, 32, n=8, groups="frame,decoded,block", seed=6))
    calls = {"n": 0}
    real_write = store._write_direct_chunk

    def full_after_a_while(*a, **k):
        calls["n"] += 1
        if calls["n"] > 20:
            assert threading.current_thread().name == "pycodec-h5-writer"
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*a, **k)

    monkeypatch.setattr(store, "_write_direct_chunk", full_after_a_while)
    w = store.PipelinedWriter(store.H5Writer(out, attrs()))
    with pytest.raises(store.StoreError) as info:
        for f in frames:
            w.append(f)
        if where == "close":
            w.close()
        else:  # the failure surfaces at a later append (frames are handed over in batches)
            for _ in range(100):
                for f in frames:
                    w.append(f)
    msg = str(info.value)
    assert msg.startswith(str(out)) and "no space left on device; free some space" in msg
    assert "\n" not in msg
    w.abort()
    assert os.listdir(tmp_path) == []
    assert not writer_threads()


def test_size_change_in_writer_thread_fails_cleanly(tmp_path):
    frames = list(synthetic_frames(32, 32, n=4, groups="frame,decoded", seed=4))
    frames[3].arrays["decoded/y"] = np.zeros((16, 16), np.uint8)
    with pytest.raises(store.StoreError, match="change size"):
        store.write_frames(tmp_path / "s.h5", frames, attrs(), pipeline=True)
    assert os.listdir(tmp_path) == []
    assert not writer_threads()


def test_producer_failure_stops_the_thread_and_leaves_nothing(tmp_path):
    def frames():
        yield from synthetic_frames(32, 32, n=5, groups="frame,decoded,block", seed=5)
        raise RuntimeError("decoder exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        store.write_frames(tmp_path / "f.h5", frames(), attrs(), pipeline=True)
    assert os.listdir(tmp_path) == []
    assert not writer_threads()


def test_closed_pipeline_refuses_frames(tmp_path):
    frames = list(synthetic_frames(32, 32, n=2, groups="frame,block", seed=1))
    w = store.PipelinedWriter(store.H5Writer(tmp_path / "c.h5", attrs()))
    w.append(frames[0])
    assert w.close() == str(tmp_path / "c.h5")
    with pytest.raises(store.StoreError, match="closed"):
        w.append(frames[1])


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return Path(make_talking_sample(tmp_path_factory.mktemp("pipe") / "s.mp4", 96, 64, 14, seed=11))


@pytest.mark.parametrize("fields", ["block,frame", "all"])
def test_cli_threads_give_the_same_datasets(tmp_path, sample, fields):
    """Writer thread on or off, decoder ahead in its thread or not: the same datasets (and bytes)."""
    outs = {}
    for mode, ahead in (("off", "0"), ("on", "0"), ("off", "2"), ("on", "5")):
        out = outs[mode, ahead] = tmp_path / f"{mode}{ahead}.h5"
        argv = ["extract", str(sample), str(out), "--fields", fields, "-q"]
        assert cli.main(argv + ["--writer-thread", mode, "--decode-ahead", ahead]) == 0
    ref = datasets(outs["off", "0"])
    assert "block/mv_l0" in ref
    for key, out in outs.items():
        got = datasets(out)
        assert got.keys() == ref.keys(), key
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{k} {key}")
        assert out.read_bytes() == outs["off", "0"].read_bytes(), key


@pytest.mark.parametrize("threads", [["--writer-thread", "on"], ["--writer-thread", "off", "--decode-ahead", "4"]])
def test_cli_disk_full_with_threads(capsys, tmp_path, sample, monkeypatch, threads):
    out = tmp_path / "o.h5"

    def full(*a, **k):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(store, "_write_direct_chunk", full)
    rc = cli.main(["extract", str(sample), str(out), "--fields", "block", *threads])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pycodec: error: ") and str(out) in lines[0]
    assert "file too large" in lines[0]
    assert os.listdir(tmp_path) == []
    assert not writer_threads()


def _row_cases():
    rng = np.random.default_rng(17)
    mb = rng.integers(0, 4, (9, 20)).astype(np.uint8)  # per-MB values
    yield np.repeat(np.repeat(mb, 4, axis=0), 4, axis=1)  # a u8 block map: rows repeat
    mv = rng.integers(-40, 40, (9, 20, 2)).astype(np.int16)
    yield np.repeat(np.repeat(mv, 4, axis=0), 4, axis=1)  # an mv map
    yield np.repeat(rng.integers(0, 9, (3, 3000)).astype(np.int32), 2, axis=0)  # row > 8192 bytes
    yield np.repeat(rng.integers(0, 2, (700, 1)).astype(np.uint8), 3, axis=0)  # 1-byte rows
    yield np.tile(rng.integers(0, 255, (1, 5)).astype(np.uint8), (400, 1))  # 5-byte rows
    yield rng.integers(0, 3, (50, 37)).astype(np.uint8)  # rows that do not repeat


def test_row_aware_lzf_round_trips_through_h5py(tmp_path):
    path = tmp_path / "rows.h5"
    cases = list(_row_cases())
    with h5py.File(path, "w") as f:
        for i, a in enumerate(cases):
            d = f.create_dataset(str(i), shape=(1, *a.shape), dtype=a.dtype, chunks=(1, *a.shape), compression="lzf")
            data, mask = _core.pack_chunk(a, True)
            assert mask == 0 and len(data) < a.nbytes
            d.id.write_direct_chunk((0,) * (a.ndim + 1), data, mask)
    with h5py.File(path, "r") as f:
        for i, a in enumerate(cases):
            np.testing.assert_array_equal(f[str(i)][0], a)
    # deterministic: the same input gives the same bytes
    assert _core.pack_chunk(cases[0], True)[0] == _core.pack_chunk(cases[0].copy(), True)[0]


def test_pipeline_queue_is_bounded_in_bytes(tmp_path):
    """Big frames: fewer of them wait (max_bytes), but one frame always fits."""
    gate = threading.Event()
    real_append = store.H5Writer.append
    frames = list(synthetic_frames(64, 64, n=4, groups="frame,decoded", seed=3))
    size = sum(a.nbytes for a in frames[0].arrays.values())

    class Slow(store.H5Writer):
        def append(self, frame):
            gate.wait(10)
            real_append(self, frame)

    w = store.PipelinedWriter(Slow(tmp_path / "b.h5", attrs()), depth=10, max_bytes=size + 1)
    done = []
    t = threading.Thread(target=lambda: [w.append(f) or done.append(f) for f in frames])
    t.start()
    t.join(0.5)
    assert t.is_alive() and len(done) == 1
    gate.set()
    t.join(10)
    w.close()
    assert len(done) == 4 and w.n == 4
