"""Multi-frame HDF5 chunks for block maps and codec extras (store.chunk_frames, _core.ChunkStager).

One frame per chunk is the default. With ``max_chunk_frames`` > 1 (``extract --chunk-frames N``)
picture planes stay one frame per chunk and smaller per-frame datasets hold several frames per chunk,
gathered by the writer until the chunk is full. These tests hold what that must not change: the
values (every frame, also at the end of a file whose length is no multiple of the chunk, with the
frame count known, unknown, under- or overestimated), zeros for missing and late arrays, no output on
any failure, identical files with and without the writer thread, cheap random access.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
from test_store import INFO  # the same 64x48 H.264 stream description

import pycodec
from pycodec import _core, cli, store
from pycodec.samples import SyntheticFrame, make_talking_sample, synthetic_frames

GROUPS = "frame,decoded,residual,block,h264"


def attrs(fields=("frame", "decoded", "residual", "block", "h264")):
    return store.root_attrs(INFO, fields, source="/data/in.mp4", source_sha256="ef" * 32)


def frames_of(n: int, seed: int = 0, groups: str = GROUPS) -> list[SyntheticFrame]:
    return list(synthetic_frames(64, 48, n=n, groups=groups, seed=seed))


def check_file(path: Path, frames: list[SyntheticFrame], nb_frames: int = 0, **kw) -> None:
    """Every dataset of ``path`` holds the frames' arrays, chunked as chunk_frames says."""
    with h5py.File(path, "r") as f:
        assert f.attrs["nb_frames"] == len(frames)
        for name, arr in frames[0].arrays.items():
            d = f[name]
            k = store.chunk_frames(name, arr.nbytes, nb_frames, kw.get("chunk_bytes", store.CHUNK_BYTES),
                                   kw.get("max_chunk_frames", store.MAX_CHUNK_FRAMES))
            assert d.shape == (len(frames), *arr.shape) and d.dtype == arr.dtype, name
            assert d.chunks == (k, *arr.shape) and d.maxshape == (None, *arr.shape), name
            np.testing.assert_array_equal(d[:], np.stack([fr[name] for fr in frames]), err_msg=name)
        assert f["frame/pts"][:].tolist() == [fr.pts for fr in frames]


def test_chunk_frames():
    assert store.chunk_frames("block/qp_y", 4096) == store.chunk_frames("hevc/counts", 8) == 1  # default
    assert store.chunk_frames("decoded/y", 100, max_frames=64) == 1  # planes: always one frame per chunk
    assert store.chunk_frames("coeffs/u", 10, 1000, max_frames=64) == 1
    assert store.chunk_frames("block/qp_y", 4096, max_frames=64) == store.CHUNK_BYTES // 4096
    assert store.chunk_frames("block/mv_l0", store.CHUNK_BYTES * 3, max_frames=64) == 1  # big maps: one frame
    assert store.chunk_frames("hevc/counts", 8, max_frames=64) == 64
    assert store.chunk_frames("block/qp_y", 4096, nb_frames=5, max_frames=64) == 5  # capped by a known count
    assert store.chunk_frames("block/qp_y", 4096, chunk_bytes=1 << 20, max_frames=1000) == 256


@pytest.mark.parametrize("compression", store.COMPRESSIONS)
@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("nb_frames", [0, 7, 23, 40])  # unknown, under, exact, over (trimmed)
def test_partial_last_chunk_round_trip(tmp_path, compression, pipeline, nb_frames):
    frames = frames_of(23, seed=1)  # 23: no multiple of any chunk size used here
    out = tmp_path / "x.h5"
    kw = {"chunk_bytes": 700, "max_chunk_frames": 5}  # 64x48: block maps of 192 B -> 3 frames/chunk, ...
    store.write_frames(out, frames, attrs(), compression=compression, nb_frames=nb_frames, pipeline=pipeline, **kw)
    assert sorted(os.listdir(tmp_path)) == ["x.h5"]
    check_file(out, frames, nb_frames, **kw)
    with h5py.File(out) as f:
        ks = {f[n].chunks[0] for n in frames[0].arrays}
        assert 1 in ks and max(ks) > 1  # planes and multi-frame chunks in one file


def test_chunking_of_real_sizes(tmp_path):
    """By default one frame per chunk everywhere; with max_chunk_frames=64, 256x256 block maps hold
    several frames per chunk, about CHUNK_BYTES each, and planes still one."""
    frames = list(synthetic_frames(256, 256, n=3, groups="frame,decoded,block", seed=2))
    out = tmp_path / "b.h5"
    store.write_frames(out, frames, attrs(("frame", "decoded", "block")))
    with h5py.File(out) as f:
        for name in frames[0].arrays:
            assert f[name].chunks == (1, *frames[0][name].shape), name
    check_file(out, frames)
    out = tmp_path / "m.h5"
    store.write_frames(out, frames, attrs(("frame", "decoded", "block")), max_chunk_frames=64)
    with h5py.File(out) as f:
        assert f["decoded/y"].chunks == (1, 256, 256)
        assert f["block/mv_l0"].chunks == (store.CHUNK_BYTES // (64 * 64 * 4), 64, 64, 2)
        assert f["block/qp_y"].chunks == (store.CHUNK_BYTES // (64 * 64), 64, 64)
        for name in ("block/mv_l0", "block/qp_y", "frame/pts"):
            assert f[name].shape[0] == 3
    check_file(out, frames, max_chunk_frames=64)


def test_missing_and_late_arrays_inside_a_chunk(tmp_path):
    rng = np.random.default_rng(3)
    qp = [rng.integers(1, 50, (4, 4)).astype(np.int8) for _ in range(9)]
    mv = [rng.integers(-9, 9, (4, 4, 2)).astype(np.int16) for _ in range(9)]
    frames = []
    for i in range(9):
        arrays = {"block/qp_y": qp[i]}
        if i >= 5:  # appears mid-chunk (chunks of 4 frames: frame 5 is the 2nd of chunk 1)
            arrays["block/mv_l0"] = mv[i]
        if i in (2, 6):  # NO_EXPORT-like frames without arrays
            arrays = {}
        frames.append(SyntheticFrame(i, i, i, i, "P", False, 1, 0, arrays))
    out = tmp_path / "m.h5"
    store.write_frames(out, frames, attrs(("frame", "block")), max_chunk_frames=4)
    with h5py.File(out) as f:
        assert f["block/qp_y"].chunks[0] == 4 and f["block/mv_l0"].chunks[0] == 4
        got_qp, got_mv = f["block/qp_y"][:], f["block/mv_l0"][:]
    for i in range(9):
        np.testing.assert_array_equal(got_qp[i], 0 if i in (2, 6) else qp[i])
        np.testing.assert_array_equal(got_mv[i], mv[i] if i >= 5 and i != 6 else 0)


def test_all_zero_chunks_are_not_stored(tmp_path):
    frames = [
        SyntheticFrame(i, i, i, i, "P", False, 1, 0, {"block/mv_l1": np.full((4, 4, 2), i // 4 == 1, np.int16)})
        for i in range(12)
    ]  # chunk 1 (frames 4-7) non-zero, chunks 0 and 2 zero
    for compression in ("lzf", "gzip"):
        out = tmp_path / f"z-{compression}.h5"
        store.write_frames(out, frames, attrs(("frame", "block")), max_chunk_frames=4, compression=compression)
        with h5py.File(out) as f:
            d = f["block/mv_l1"]
            assert d.id.get_num_chunks() == 1
            np.testing.assert_array_equal(d[:], np.stack([fr["block/mv_l1"] for fr in frames]))
        store.write_frames(out, frames, attrs(("frame", "block")), max_chunk_frames=4, compression=compression,
                           skip_zero=False, overwrite=True)
        with h5py.File(out) as f:
            assert f["block/mv_l1"].id.get_num_chunks() == 3


@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("change", ["shape", "dtype"])
def test_block_map_change_mid_chunk_fails_cleanly(tmp_path, pipeline, change):
    frames = frames_of(6, seed=4, groups="frame,block")
    bad = frames[4].arrays["block/qp_y"]
    frames[4].arrays["block/qp_y"] = bad[:, :2].copy() if change == "shape" else bad.astype(np.int16)
    with pytest.raises(store.StoreError, match="block/qp_y is .*change size or format"):
        store.write_frames(tmp_path / "s.h5", frames, attrs(("frame", "block")), pipeline=pipeline)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("limit", [0, 3, "close"])  # first chunk, mid-file, the last (partial) chunks at close
def test_disk_full_while_writing_chunks_leaves_nothing(tmp_path, monkeypatch, pipeline, limit):
    frames = frames_of(11, seed=5, groups="frame,block")
    kw = {"chunk_bytes": 700, "max_chunk_frames": 5}
    real_write = store._write_direct_chunk
    calls = {"n": 0, "limit": limit}

    def full_after(*a):
        calls["n"] += 1
        if calls["n"] > calls["limit"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*a)

    monkeypatch.setattr(store, "_write_direct_chunk", full_after)
    if limit == "close":  # count the chunks written before close(), then fail at the first one after
        calls["limit"] = 1 << 30
        w = store.H5Writer(tmp_path / "dry.h5", attrs(("frame", "block")), **kw)
        for f in frames:
            w.append(f)
        w.abort()
        ks = [store.chunk_frames(n, a.nbytes, 0, 700, 5) for n, a in frames[0].arrays.items()]
        assert any(11 % k for k in ks)  # there are partial chunks left for close()
        calls["n"], calls["limit"] = 0, calls["n"]
    with pytest.raises(store.StoreError, match="no space left on device"):
        store.write_frames(tmp_path / "f.h5", frames, attrs(("frame", "block")), pipeline=pipeline, **kw)
    assert calls["n"] == calls["limit"] + 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("pipeline", [False, True])
def test_failure_with_a_chunk_pending_leaves_nothing(tmp_path, pipeline):
    def frames():
        yield from frames_of(7, seed=6)  # the last chunk of block maps is half full
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.write_frames(tmp_path / "f.h5", frames(), attrs(), pipeline=pipeline, max_chunk_frames=4)
    assert os.listdir(tmp_path) == []


def test_deferred_open(tmp_path, monkeypatch):
    out = tmp_path / "d.h5"
    w = store.H5Writer(out, attrs(), defer_open=True)
    (part,) = os.listdir(tmp_path)  # the temporary file is there (checks done early), still empty
    assert part.startswith(".d.h5.") and os.path.getsize(tmp_path / part) == 0
    for f in frames_of(3, seed=7):
        w.append(f)
    w.close()
    assert os.listdir(tmp_path) == ["d.h5"]
    # in a writer thread: a failure to create the file is the caller's one-line StoreError
    real = h5py.File

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py, "File", no_space)
    w = store.PipelinedWriter(store.H5Writer(tmp_path / "e.h5", attrs(), defer_open=True))
    with pytest.raises(store.StoreError, match="e.h5: no space left on device"):
        for f in frames_of(5, seed=8):
            w.append(f)
        w.close()
    w.abort()
    monkeypatch.setattr(h5py, "File", real)
    assert os.listdir(tmp_path) == ["d.h5"]


def test_files_are_identical_with_and_without_writer_thread(tmp_path):
    frames = frames_of(30, seed=9)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    store.write_frames(a, frames, attrs(), nb_frames=30)
    store.write_frames(b, frames, attrs(), nb_frames=30, pipeline=True)
    assert a.read_bytes() == b.read_bytes()


def test_chunk_stager():
    st = _core.ChunkStager()
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    i = st.add([3, 4], _core.buffer_format(a), a.nbytes, 3, row=8, skip=1)
    assert i == 0 and st.count(0) == 1
    assert st.put([a]) == [] and st.put([None]) == [0] and st.count(0) == 3
    assert np.frombuffer(st.take(0), np.int16).reshape(3, 3, 4).tolist() == [np.zeros((3, 4)).tolist(), a.tolist(),
                                                                             np.zeros((3, 4)).tolist()]
    assert st.count(0) == 0
    for bad in (a.T, a.astype(np.uint16), a[:2]):
        with pytest.raises(ValueError, match="series 0"):
            st.put([bad])
    assert st.count(0) == 0  # nothing was copied
    st.put([a])
    st.put([a[::-1]])  # not contiguous: copied through numpy
    assert st.pack(0, True) == _core.pack_frames([a, a[::-1].copy()], a.nbytes, 3, True, 8)
    assert st.count(0) == 0 and st.pack(0, True) is None  # an empty (all zero) chunk
    st.put([np.zeros_like(a)])
    assert st.pack(0, False) is None


def test_pack_frames_reads_back_with_h5py(tmp_path):
    rng = np.random.default_rng(10)
    frames = [np.repeat(rng.integers(0, 9, (6, 5)).astype(np.int32), 4, axis=0) for _ in range(4)]
    frames[1] = None
    with h5py.File(tmp_path / "p.h5", "w") as f:
        d = f.create_dataset("x", shape=(10, 24, 5), dtype=np.int32, chunks=(5, 24, 5), compression="lzf")
        for start, items in ((0, frames), (5, frames[:2])):  # a partial chunk: the rest is zero
            data, mask = _core.pack_frames(items, 24 * 5 * 4, 5, True, 20)
            assert mask == 0 and isinstance(data, bytes)
            d.id.write_direct_chunk((start, 0, 0), data, mask)
    with h5py.File(tmp_path / "p.h5") as f:
        got = f["x"][:]
    zero = np.zeros((24, 5), np.int32)
    expect = [zero if a is None else a for a in frames] + [zero] + [frames[0], zero, zero, zero, zero]
    np.testing.assert_array_equal(got, np.stack(expect))
    assert _core.pack_frames([None, None], 8, 3, True) is None
    with pytest.raises(ValueError, match="bytes, expected"):
        _core.pack_frames([np.zeros(3, np.int8)], 8, 1, True)


# ---------------------------------------------------------------------- extract: real streams


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return Path(make_talking_sample(tmp_path_factory.mktemp("chunks") / "s.mp4", 96, 64, 37, seed=12))


def raw_h264(src: Path, dst: Path) -> Path:
    """The stream of src as a raw Annex B file (no container: the frame count is unknown)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="h264") as o:
        ost = o.add_stream_from_template(i.streams.video[0])
        for pkt in i.demux(video=0):
            if pkt.size:
                pkt.stream = ost
                o.mux(pkt)
    return dst


@pytest.mark.parametrize("source", ["mp4", "raw"])
@pytest.mark.parametrize("frames", [None, "5:30"])
def test_extract_frame_t_equals_reader_frame_t(tmp_path, sample, source, frames):
    src = sample if source == "mp4" else raw_h264(sample, tmp_path / "s.h264")
    if source == "raw":
        assert not pycodec.info(src).get("nb_frames")
    out = tmp_path / "o.h5"
    argv = ["extract", str(src), str(out), "--fields", "block,h264,frame", "-q", "--chunk-frames", "64"]
    assert cli.main(argv + (["--frames", frames] if frames else [])) == 0
    sel = cli.parse_frames(frames)
    with pycodec.open(src, fields="block,h264", frames=sel) as r:
        ref = list(r)
    assert len(ref) == (25 if frames else 37)
    with store.open_h5(out) as f:
        assert len(f) == len(ref)
        assert f["block/qp_y"].chunks[0] > 1
        order = np.random.default_rng(0).permutation(len(ref))  # random access
        for t in order:
            got = f.frame(int(t))
            for name, arr in ref[t].arrays.items():
                np.testing.assert_array_equal(got[name], arr, err_msg=f"{name} frame {t}")
        window = f["block/mv_l0"][[3, 4, 5, 6, 7]]  # a +-2 window (CodecWindowDataset)
        np.testing.assert_array_equal(window, np.stack([ref[t]["block/mv_l0"] for t in range(3, 8)]))


def test_extract_is_deterministic(tmp_path, sample):
    """The same bytes whichever threads decode and write, and from run to run."""
    outs = []
    for i, (thread, ahead) in enumerate((("on", "0"), ("off", "0"), ("on", "0"), ("off", "3"), ("on", "auto"))):
        outs.append(tmp_path / f"{i}.h5")
        argv = ["extract", str(sample), str(outs[-1]), "--fields", "block,frame", "-q"]
        assert cli.main(argv + ["--writer-thread", thread, "--decode-ahead", ahead]) == 0
    data = [p.read_bytes() for p in outs]
    assert all(d == data[0] for d in data[1:])


def test_callable_attributes_are_evaluated_when_the_file_is_created(tmp_path):
    import threading

    seen = []

    def digest():
        seen.append(threading.current_thread().name)
        return "12" * 32

    for pipeline in (False, True):
        out = tmp_path / f"c{pipeline}.h5"
        w = store.H5Writer(out, dict(attrs(), source_sha256=digest), defer_open=pipeline)
        with store.PipelinedWriter(w) if pipeline else w as ww:
            for f in frames_of(2, seed=11):
                ww.append(f)
        with h5py.File(out) as f:
            assert f.attrs["source_sha256"] == "12" * 32
    assert seen == ["MainThread", "pycodec-h5-writer"]


@pytest.mark.parametrize("nb_frames", [0, 20, 40])
def test_pipeline_batches_and_statistics_hook(tmp_path, nb_frames):
    """Frames are handed to the thread in batches; on_frame sees every frame once, in order."""
    frames = frames_of(40, seed=12, groups="frame,block")
    seen = []
    w = store.PipelinedWriter(store.H5Writer(tmp_path / "p.h5", attrs(("frame", "block")), nb_frames=nb_frames),
                              hand_bytes=5000, on_frame=lambda f: seen.append(f.index))
    for f in frames:
        w.append(f)
    w.close()
    assert seen == list(range(40))
    check_file(tmp_path / "p.h5", frames, nb_frames)


def test_attributes_are_written_as_h5py_writes_them(tmp_path):
    values = dict(attrs(), crop=np.array([0, 8, 0, 0], np.int32), scale=0.5, big=np.int64(1) << 40,
                  flag=True, names=["a", "b"], empty="")
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        for k, v in values.items():
            f.attrs[k] = v
    with h5py.File(tmp_path / "ours.h5", "w") as f:
        for k, v in values.items():
            store._set_attr(f, k, v)
        store._set_attr(f, "scale", 0.25)  # replacing an attribute
    with h5py.File(tmp_path / "ref.h5") as a, h5py.File(tmp_path / "ours.h5") as b:
        assert sorted(a.attrs) == sorted(b.attrs)
        for k in a.attrs:
            ia, ib = a.attrs.get_id(k), b.attrs.get_id(k)
            assert ia.get_type().equal(ib.get_type()) and ia.shape == ib.shape, k
            if k != "scale":
                np.testing.assert_array_equal(a.attrs[k], b.attrs[k])
                assert type(a.attrs[k]) is type(b.attrs[k]), k
        assert b.attrs["scale"] == 0.25


def test_chunk_stager_lzf_series_round_trip(tmp_path):
    """LZF series: each frame compressed as it arrives; incompressible chunks stored raw (mask 1)."""
    rng = np.random.default_rng(13)
    cases = {
        "block": np.repeat(np.repeat(rng.integers(0, 5, (6, 8)).astype(np.int8), 4, 0), 4, 1),
        "noise": rng.integers(0, 256, (24, 32), dtype=np.uint8),
    }
    frames_of_case = {
        name: [b, None, b * 0, b[::-1].copy(), b, b, None] for name, b in cases.items()
    }
    masks = {}
    with h5py.File(tmp_path / "s.h5", "w") as f:
        for name, base in cases.items():
            for k in (1, 3, 5):
                st = _core.ChunkStager()
                st.add(list(base.shape), _core.buffer_format(base), base.nbytes, k, base.shape[1], 0, True)
                seq = frames_of_case[name]
                d = f.create_dataset(f"{name}{k}", shape=(len(seq), *base.shape), dtype=base.dtype,
                                     chunks=(k, *base.shape), compression="lzf")
                start, got = 0, []
                for fr in seq:
                    for _, packed in st.put([fr], True):
                        if packed is not None:
                            d.id.write_direct_chunk((start, 0, 0), packed[0], packed[1])
                            got.append(packed[1])
                        start += k
                if st.count(0):
                    packed = st.pack(0)
                    if packed is not None:
                        d.id.write_direct_chunk((start, 0, 0), packed[0], packed[1])
                        got.append(packed[1])
                masks[name, k] = got
    assert set(masks["block", 3]) == {0} and 1 in masks["noise", 1] and 1 in masks["noise", 3]
    with h5py.File(tmp_path / "s.h5") as f:
        for name, base in cases.items():
            expect = np.stack([np.zeros_like(base) if x is None else x for x in frames_of_case[name]])
            for k in (1, 3, 5):
                np.testing.assert_array_equal(f[f"{name}{k}"][:], expect, err_msg=f"{name} k={k}")
    st = _core.ChunkStager()  # take() decodes an LZF series' frames
    b = cases["block"]
    st.add(list(b.shape), _core.buffer_format(b), b.nbytes, 4, 8, 1, True)
    st.put([b])
    st.put([None])
    np.testing.assert_array_equal(np.frombuffer(st.take(0), b.dtype).reshape(3, *b.shape), np.stack([b * 0, b, b * 0]))


def test_lzf_long_runs_read_back_with_h5py(tmp_path):
    """Matches longer than LZF's maximum (264 bytes) are continued at the same offset."""
    rng = np.random.default_rng(14)
    cases = [np.full(5000, 7, np.uint8), np.tile(rng.integers(0, 255, 37, dtype=np.uint8), 300)]
    for tail in (0, 1, 2, 3, 4, 263, 264, 265):
        a = np.full(264 * 3 + tail, 5, np.uint8)
        a[0] = 1
        cases.append(a)
    rows = np.repeat(rng.integers(0, 9, (3, 400)).astype(np.int16), 50, axis=0)  # long runs of equal rows
    cases.append(rows)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        for i, a in enumerate(cases):
            d = f.create_dataset(str(i), shape=(1, *a.shape), dtype=a.dtype, chunks=(1, *a.shape), compression="lzf")
            data, mask = _core.pack_frames([a], a.nbytes, 1, True, a.nbytes // a.shape[0] if a.ndim > 1 else 0)
            assert mask == 0 and len(data) < a.nbytes // 20
            d.id.write_direct_chunk((0,) * (a.ndim + 1), data, mask)
    with h5py.File(tmp_path / "r.h5") as f:
        for i, a in enumerate(cases):
            np.testing.assert_array_equal(f[str(i)][0], a, err_msg=str(i))


@pytest.mark.parametrize("pipeline", [False, True])
def test_attributes_set_after_construction(tmp_path, pipeline):
    """H5Writer(attrs=None) + set_attrs() before the first frame: the same file as attrs up front."""
    frames = frames_of(9, seed=15)
    ref = tmp_path / "ref.h5"
    store.write_frames(ref, frames, attrs(), nb_frames=9, pipeline=pipeline)
    out = tmp_path / "late.h5"
    w = store.H5Writer(out, None, defer_open=True)
    with store.PipelinedWriter(w) if pipeline else w as ww:
        if pipeline:  # the thread creates the file meanwhile: let it, before the attributes are known
            for _ in range(200):
                if ww.writer._h5 is not None:
                    break
                time.sleep(0.005)
        ww.set_attrs(attrs(), nb_frames=9)
        for f in frames:
            ww.append(f)
        with pytest.raises(store.StoreError, match="after the first frame"):
            ww.set_attrs(attrs())
    assert out.read_bytes() == ref.read_bytes()


def test_missing_attributes_leave_nothing(tmp_path):
    w = store.H5Writer(tmp_path / "n.h5", None)
    with pytest.raises(store.StoreError, match="no root attributes"):
        w.append(frames_of(1)[0])
    assert os.listdir(tmp_path) == []
    w = store.H5Writer(tmp_path / "m.h5", None, defer_open=True)
    with pytest.raises(store.StoreError, match="no root attributes"):
        w.close()
    assert os.listdir(tmp_path) == []
