"""Tests of the reader layer: pycodec._core and pycodec.open/info/Frame on small real streams."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
import pycodec
from pycodec import _core

N_FRAMES = 10


def encode(path: Path, width: int, height: int, n: int = N_FRAMES, codec: str = "libx264",
           pix_fmt: str = "yuv420p", params: str = "bframes=2:keyint=5", container_options=None) -> Path:
    """Encode n frames of moving noise to path with PyAV."""
    out = av.open(str(path), "w", options=container_options or {})
    st = out.add_stream(codec, rate=25)
    st.width, st.height, st.pix_fmt = width, height, pix_fmt
    if codec == "libx264":
        st.options = {"preset": "fast", "crf": "28", "x264-params": params}
    rng = np.random.default_rng(width * 1000 + height)
    base = rng.integers(0, 256, (height + 2 * n, width + 3 * n, 3), dtype=np.uint8)
    for i in range(n):
        img = np.ascontiguousarray(base[i:i + height, 3 * i:3 * i + width])
        for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(pkt)
    for pkt in st.encode():
        out.mux(pkt)
    out.close()
    return path


def pyav_planes(path: Path) -> list[list[np.ndarray]]:
    """Every frame's planes as decoded by PyAV (its own FFmpeg), in display order."""
    frames = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            dtype = np.dtype("<u2") if f.format.components[0].bits > 8 else np.uint8
            planes = []
            for p in f.planes:
                a = np.frombuffer(memoryview(p), dtype=np.uint8).reshape(p.height, p.line_size)
                planes.append(a.view(dtype)[:, :p.width])
            frames.append(planes)
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "64x48": encode(d / "a.mp4", 64, 48),
        "66x50": encode(d / "b.mp4", 66, 50),
        "long": encode(d / "c.mp4", 64, 48, n=30, params="bframes=0:keyint=30",
                       container_options={"movflags": "faststart"}),
    }


@pytest.mark.parametrize("name", ["64x48", "66x50"])
def test_decoded_planes_equal_pyav(videos, name):
    ref = pyav_planes(videos[name])
    with pycodec.open(videos[name], fields="frame,decoded") as r:
        frames = list(r)
    assert len(frames) == len(ref) == N_FRAMES
    for f, planes in zip(frames, ref):
        for key, want in zip(("decoded/y", "decoded/u", "decoded/v"), planes):
            got = f[key]
            assert got.dtype == np.uint8 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
        assert f["decoded/y"].shape == tuple(map(int, reversed(name.split("x"))))


def test_info(videos):
    i = pycodec.info(videos["66x50"])
    assert i["codec"] == "h264" and i["profile"] == "High"
    assert (i["width"], i["height"]) == (66, 50)
    assert (i["coded_width"], i["coded_height"]) == (80, 64)
    assert i["crop"] == (0, 14, 0, 14)
    assert (i["bit_depth"], i["chroma_format"], i["pix_fmt"]) == (8, "420", "yuv420p")
    assert i["frame_rate"] == (25, 1)
    assert i["nb_frames"] == N_FRAMES
    assert i["duration_s"] == pytest.approx(N_FRAMES / 25, rel=0.05)
    assert i["ffmpeg"] == _core.ffmpeg_version() and i["ffmpeg"].startswith("5.1")
    assert i["source"] == str(videos["66x50"])
    j = pycodec.info(videos["64x48"])
    assert (j["coded_width"], j["coded_height"], j["crop"]) == (64, 48, (0, 0, 0, 0))


def test_display_order_and_metadata(videos):
    with pycodec.open(videos["64x48"], fields="frame") as r:
        frames = list(r)
    assert [f.index for f in frames] == list(range(N_FRAMES))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert sorted(f.decode_index for f in frames) == list(range(N_FRAMES))
    assert any(f.decode_index != f.index for f in frames)  # B-frames reorder
    assert frames[0].key and frames[0].type == "I"
    assert {f.type for f in frames} <= {"I", "P", "B"} and "B" in {f.type for f in frames}
    assert all(f.pkt_bytes > 0 for f in frames)
    assert all(f.arrays == {} for f in frames)
    assert all(isinstance(f.flags, pycodec.FrameFlag) and f.flags == 0 for f in frames)
    assert frames[3]["frame/decode_index"] == frames[3].decode_index


def test_frames_selection(videos):
    with pycodec.open(videos["64x48"], fields="decoded") as r:
        full = list(r)
    with pycodec.open(videos["64x48"], fields="decoded", frames=slice(2, 5)) as r:
        part = list(r)
        assert r.closed  # stopped early, decoder freed
    assert [f.index for f in part] == [2, 3, 4]
    for f in part:
        np.testing.assert_array_equal(f["decoded/y"], full[f.index]["decoded/y"])
        assert f.pts == full[f.index].pts
    with pycodec.open(videos["64x48"], fields="frame", frames=(7, None)) as r:
        assert [f.index for f in r] == [7, 8, 9]
    with pycodec.open(videos["64x48"], fields="frame", frames=slice(None, None, 4)) as r:
        assert [f.index for f in r] == [0, 4, 8]
    with pycodec.open(videos["64x48"], fields="frame", frames=(20, 30)) as r:
        assert list(r) == []
    with pytest.raises(ValueError):
        pycodec.open(videos["64x48"], frames=slice(-3, None))


def test_fields_validation(videos):
    with pytest.raises(ValueError) as e:
        pycodec.open(videos["64x48"], fields="decoded,motion")
    assert "'motion'" in str(e.value) and "prediction" in str(e.value) and "h264" in str(e.value)
    with pytest.raises(ValueError):
        pycodec.open(videos["64x48"], fields=["frame", "bogus"])
    with pycodec.open(videos["64x48"], fields=["decoded"]) as r:
        assert r.fields == ("frame", "decoded") and r.export_flags == 0
        assert sorted(next(r).arrays) == ["decoded/u", "decoded/v", "decoded/y"]
    with pycodec.open(videos["64x48"], fields="block , frame") as r:
        assert r.fields == ("frame", "block")
        assert r.export_flags == _core.EXPORT_MV | _core.EXPORT_PART | _core.EXPORT_QP
        assert set(next(r).arrays) == set(pycodec.FIELD_GROUPS["block"])
    assert pycodec.open(videos["64x48"], fields="all").fields == tuple(g for g in pycodec.FIELD_GROUPS if g != "hevc")
    with pytest.raises(pycodec.InputError, match="field group 'hevc' holds hevc extras but the video is h264"):
        pycodec.open(videos["64x48"], fields="frame,hevc")


def test_field_groups_match_core():
    core = {}
    for name, group in _core.schema_arrays():
        core.setdefault(group, []).append(name)
    assert list(pycodec.FIELD_GROUPS) == _core.group_names()
    for group, names in core.items():
        assert tuple(names) == pycodec.FIELD_GROUPS[group]
    for flag in pycodec.FrameFlag:
        assert getattr(_core, f"FLAG_{flag.name}") == flag.value


def test_export_arrays_shapes_and_flags(videos):
    """All groups: every schema array is present with its shape and dtype; NO_EXPORT iff no export."""
    info = pycodec.info(videos["66x50"])
    ref = pyav_planes(videos["66x50"])
    dtypes = {"prediction": "u1", "residual": "i2", "recon": "u1", "coeffs": "i4", "levels": "i4",
              "qstep": "f4"}
    with pycodec.open(videos["66x50"]) as r:
        frames = list(r)
    assert len(frames) == N_FRAMES
    for f, planes in zip(frames, ref, strict=True):
        np.testing.assert_array_equal(f["decoded/y"], planes[0])  # export on: output unchanged
        np.testing.assert_array_equal(f["decoded/v"], planes[2])
        names = {n for g, ns in pycodec.FIELD_GROUPS.items() if g not in ("frame", "hevc") for n in ns}
        assert set(f.arrays) == names
        for group, kind in dtypes.items():
            display = group in ("prediction", "residual", "recon")
            h, w = (50, 66) if display else (64, 80)
            assert f[f"{group}/y"].shape == (h, w) and f[f"{group}/y"].dtype.str[1:] == kind
            assert f[f"{group}/u"].shape == ((h + 1) // 2, (w + 1) // 2)
        assert f["block/mv_l0"].shape == (16, 20, 2) and f["block/mv_l0"].dtype == np.int16
        assert f["block/ref_poc_l1"].dtype == np.int32 and f["block/qp_y"].dtype == np.int8
        assert f["h264/mb_type"].shape == (4, 5) and f["h264/sub_mb_type"].shape == (8, 10)
        assert f["h264/dc_qmul"].shape == (4, 5, 3)
        assert bool(f.flags & pycodec.FrameFlag.NO_EXPORT) == (not info["export_supported"])
        if f.flags & pycodec.FrameFlag.NO_EXPORT:
            assert all(not a.any() for k, a in f.arrays.items() if not k.startswith("decoded/"))
        else:
            np.testing.assert_array_equal(f["recon/y"].astype(int),
                                          np.clip(f["prediction/y"].astype(int) + f["residual/y"], 0, 255))


def test_missing_file(tmp_path):
    with pytest.raises(pycodec.InputError) as e:
        pycodec.open(tmp_path / "nope.mp4")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "nope.mp4") + ": ") and "not found" in msg and "\n" not in msg
    with pytest.raises(pycodec.InputError):
        pycodec.info(tmp_path / "nope.mp4")
    with pytest.raises(pycodec.InputError, match="directory"):
        pycodec.open(tmp_path)


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(pycodec.InputError) as e:
        pycodec.open(p)
    assert "not a video" in str(e.value) and "; " in str(e.value)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(pycodec.InputError, match="empty"):
        pycodec.info(tmp_path / "empty.mp4")
    assert issubclass(pycodec.InputError, pycodec.PycodecError)


def test_unsupported_codec(tmp_path):
    p = encode(tmp_path / "m4v.mp4", 64, 48, n=3, codec="mpeg4")
    with pytest.raises(pycodec.InputError) as e:
        pycodec.open(p)
    assert "codec 'mpeg4' is not supported (pycodec decodes H.264 and HEVC)" in str(e.value)
    with pytest.raises(pycodec.InputError, match="mpeg4"):
        pycodec.info(p)


def test_no_video_stream(tmp_path):
    p = tmp_path / "audio.mp4"
    with av.open(str(p), "w") as out:
        st = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for pkt in [*st.encode(frame), *st.encode()]:
            out.mux(pkt)
    with pytest.raises(pycodec.InputError, match="no video stream"):
        pycodec.open(p)


def test_unexportable_pixel_formats(tmp_path):
    p444 = encode(tmp_path / "444.mp4", 64, 48, n=4, pix_fmt="yuv444p")
    with pytest.raises(pycodec.InputError, match="8-bit 4:2:0"):
        pycodec.open(p444, fields="frame,block")
    with pycodec.open(p444, fields="frame,decoded") as r:
        frames = list(r)
    for f, planes in zip(frames, pyav_planes(p444), strict=True):
        for key, want in zip(("decoded/y", "decoded/u", "decoded/v"), planes):
            np.testing.assert_array_equal(f[key], want)
        assert f["decoded/u"].shape == (48, 64)

    p10 = encode(tmp_path / "10bit.mp4", 64, 48, n=4, pix_fmt="yuv420p10le")
    assert pycodec.info(p10)["bit_depth"] == 10
    with pytest.raises(pycodec.InputError, match="yuv420p10le"):
        pycodec.open(p10)
    with pycodec.open(p10, fields="decoded") as r:
        frames = list(r)
    for f, planes in zip(frames, pyav_planes(p10), strict=True):
        assert f["decoded/y"].dtype == np.uint16
        for key, want in zip(("decoded/y", "decoded/u", "decoded/v"), planes):
            np.testing.assert_array_equal(f[key], want)


def test_truncated_file(tmp_path, videos):
    data = videos["long"].read_bytes()
    p = tmp_path / "truncated.mp4"
    p.write_bytes(data[: len(data) * 6 // 10])
    with pycodec.open(p, fields="frame,decoded") as r:
        frames = list(r)
    assert 0 < len(frames) < 30
    assert [f.index for f in frames] == list(range(len(frames)))


def test_truncated_raw_h264(tmp_path, videos):
    raw = tmp_path / "full.h264"
    with av.open(str(videos["long"])) as src, av.open(str(raw), "w", format="h264") as dst:
        ost = dst.add_stream_from_template(src.streams.video[0])
        for pkt in src.demux(video=0):
            if pkt.size:
                pkt.stream = ost
                dst.mux(pkt)
    data = raw.read_bytes()
    p = tmp_path / "truncated.h264"
    p.write_bytes(data[: len(data) * 7 // 10 + 3])  # cut inside a NAL unit
    frames = list(pycodec.open(p, fields="frame"))
    assert 0 < len(frames) < 30
    assert all(f.flags & ~pycodec.FrameFlag.CORRUPT == 0 for f in frames)


def test_garbage_in_the_middle(tmp_path, videos):
    """Random bytes over packet 15 of 30: that picture is lost, the next frame is CORRUPT, decoding goes on."""
    data = bytearray(videos["long"].read_bytes())
    with av.open(str(videos["long"])) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[15]
    data[pos:pos + size] = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    p = tmp_path / "garbage.mp4"
    p.write_bytes(bytes(data))
    with pycodec.open(p, fields="frame,decoded") as r:
        frames = list(r)
    assert len(frames) == 29
    corrupt = [f.decode_index for f in frames if f.flags & pycodec.FrameFlag.CORRUPT]
    assert corrupt == [16]
    assert frames[-1].decode_index == 29 and frames[-1]["decoded/y"].shape == (48, 64)


@pytest.mark.parametrize("first", ["av", "pycodec"])
def test_pyav_and_pycodec_in_one_process(tmp_path, first):
    """Both import orders: each library decodes with its own FFmpeg; the results agree."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import {first}
        import {"pycodec" if first == "av" else "av"}
        import av, pycodec
        from test_core_api import encode, pyav_planes
        p = encode(__import__("pathlib").Path({str(tmp_path / "x.mp4")!r}), 66, 50, n=6)
        ref = pyav_planes(p)
        got = [f["decoded/y"] for f in pycodec.open(p, fields="decoded")]
        assert len(got) == len(ref) == 6
        assert all(np.array_equal(g, r[0]) for g, r in zip(got, ref))
        assert pycodec.info(p)["ffmpeg"].startswith("5.1") and not av.library_versions["libavcodec"][0] == 59
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "ok"


def test_threads_decode_independently(videos):
    """Decoders in parallel threads (the GIL is released while decoding) give the sequential result."""
    from concurrent.futures import ThreadPoolExecutor

    def decode(name: str) -> list[tuple[int, int, bytes]]:
        with pycodec.open(videos[name], fields="decoded,block") as r:
            return [(f.decode_index, int(f.flags), f["decoded/y"].tobytes() + f["block/mv_l0"].tobytes()) for f in r]

    names = ["64x48", "66x50", "long"] * 2
    want = [decode(n) for n in names]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(decode, names)) == want


def test_metadata_same_with_and_without_export(videos):
    """frame-only reading still gets POC/type/decode index (header-only export); export adds nothing to them."""
    def meta(fields: str) -> list[tuple]:
        with pycodec.open(videos["64x48"], fields=fields) as r:
            return [(f.index, f.decode_index, f.pts, f.poc, f.type, f.key, f.pkt_bytes) for f in r]

    plain = meta("frame")
    assert plain == meta("frame,decoded") == meta("frame,block,recon")
    if pycodec.info(videos["64x48"])["export_supported"]:
        assert plain[0][3] != -1  # display order = POC order within each IDR period
        assert all(b[3] > a[3] for a, b in itertools.pairwise(plain) if not b[5])


def test_core_decoder_direct(videos):
    d = _core.Decoder(str(videos["64x48"]), 0, False, header=False)  # stock decoding: no POC
    assert d.info["codec"] == "h264" and not d.closed
    first = d.read()
    assert set(first) == {"pts", "decode_index", "pkt_bytes", "key", "type", "poc", "flags", "arrays"}
    assert first["arrays"] == {} and first["poc"] == -1 and first["type"] == "I"
    n = 1 + sum(1 for _ in iter(d.read, None))
    assert n == N_FRAMES and d.read() is None
    d.close()
    assert d.closed and d.read() is None


# ---------------------------------------------------------------- export blob -> arrays (synthetic blobs)

_SEC = np.dtype([("offset", "<u8"), ("type", "<u4"), ("ndim", "<u4"), ("dims", "<u4", (4,))])
_HDR = np.dtype([(k, "<u4") for k in ("magic", "version", "header_size", "codec", "exported", "frame_flags")]
                + [(k, "<i4") for k in ("coded_width", "coded_height", "log2_chroma_w", "log2_chroma_h",
                                        "bit_depth", "poc", "slice_type", "decode_index", "blocks_total",
                                        "blocks_done")]
                + [("reserved", "<i4", (8,)), ("sec", _SEC, (_core.BLOB_SECTIONS,))])
_TYPES = {"u1": 0, "i1": 1, "u2": 2, "i2": 3, "u4": 4, "i4": 5, "f4": 6}
# H.264-style synthetic blobs: the sections before MB_DONE, in section id order (HEVC extras follow MB_DONE).
_EXPORT_NAMES = [n for n, g in _core.schema_arrays() if g not in ("decoded", "hevc")]
_MB_DONE = len(_EXPORT_NAMES) + 1  # after H264_SLICE (internal, not written by these tests)


def _coded(name: str, w: int, h: int) -> tuple[tuple[int, ...], str]:
    """Coded shape and dtype of an export section (the layout of libavutil/codec_internals.h)."""
    group, key = name.split("/")
    plane = {"y": 0, "u": 1, "v": 1}.get(key, 0)
    if group in ("prediction", "residual", "recon", "coeffs", "levels", "qstep"):
        dt = {"prediction": "u1", "recon": "u1", "residual": "i2", "coeffs": "i4", "levels": "i4", "qstep": "f4"}
        return (h >> plane, w >> plane), dt[group]
    if group == "block":
        dt = {"mv": "i2", "ref": "i1", "qp": "i1"}.get(key.split("_")[0], "u1")
        dt = "i4" if key.startswith("ref_poc") else dt
        return ((h // 4, w // 4, 2) if key.startswith("mv") else (h // 4, w // 4)), dt
    mb = (h // 16, w // 16)
    return {"mb_type": (mb, "u4"), "cbp": (mb, "u1"), "chroma_pred_mode": (mb, "u1"),
            "sub_mb_type": ((2 * mb[0], 2 * mb[1]), "u4"), "dc_qmul": ((*mb, 3), "i4")}[key]


def make_blob(w: int, h: int, done: np.ndarray | None = None, frame_flags: int = 0, omit=(),
              **fields) -> tuple[bytes, dict[str, np.ndarray]]:
    """A blob with every section filled with non-zero values; returns it and the coded arrays."""
    hdr = np.zeros((), _HDR)
    for k, v in dict(magic=_core.BLOB_MAGIC, version=_core.BLOB_VERSION, header_size=_HDR.itemsize, coded_width=w, coded_height=h,
                     log2_chroma_w=1, log2_chroma_h=1, bit_depth=8, frame_flags=frame_flags, **fields).items():
        hdr[k] = v
    chunks, arrays, offset = [], {}, (_HDR.itemsize + 63) // 64 * 64
    sections = [(i, n, *_coded(n, w, h)) for i, n in enumerate(_EXPORT_NAMES) if n not in omit]
    if done is not None:
        sections.append((_MB_DONE, "mb_done", done.shape, "u1"))
    for i, name, shape, dt in sections:
        a = done.astype(np.uint8) if name == "mb_done" else (np.arange(np.prod(shape)) % 97 + 1).astype(dt).reshape(shape)
        arrays[name] = a
        hdr["sec"][i] = (offset, _TYPES[dt], len(shape), tuple(shape) + (1,) * (4 - len(shape)))
        chunks.append((offset, a.tobytes()))
        offset += (a.nbytes + 63) // 64 * 64
    buf = bytearray(offset)
    buf[:_HDR.itemsize] = hdr.tobytes()
    for off, b in chunks:
        buf[off:off + len(b)] = b
    return bytes(buf), arrays


ALL_BITS = sum(getattr(_core, f"EXPORT_{k}") for k in ("MV", "PART", "QP", "PRED", "RES", "RECON", "COEF", "LEVEL",
                                                        "QSTEP"))
EXPORT_GROUPS = [g for g in pycodec.FIELD_GROUPS if g not in ("frame", "decoded")]


def test_blob_layout_matches_header():
    assert _HDR.itemsize == _core.BLOB_HEADER_SIZE
    internal = 2  # MB_DONE and H264_SLICE (the MB's slice record, for the block map expansion)
    assert len(_EXPORT_NAMES) + internal + len(pycodec.FIELD_GROUPS["hevc"]) == _core.BLOB_SECTIONS


def test_blob_cropping_and_metadata():
    w, h, crop = 48, 32, (2, 4, 2, 4)  # top, bottom, left, right -> display 42x26
    blob, coded = make_blob(w, h, frame_flags=2 | 8, poc=6, slice_type=3, decode_index=4)
    flags, meta, arrays = _core._arrays_from_blob(blob, w, h, crop, EXPORT_GROUPS, ALL_BITS)
    assert meta == {"decode_index": 4, "poc": 6, "type": "B"}
    assert flags == pycodec.FrameFlag.LOSSLESS | pycodec.FrameFlag.PCM
    assert set(arrays) == set(_EXPORT_NAMES)
    for name in _EXPORT_NAMES:
        a, c = arrays[name], coded[name]
        assert a.dtype == c.dtype and a.flags.c_contiguous and a.flags.writeable
        if name.split("/")[0] in ("prediction", "residual", "recon"):
            s = 1 if name.endswith(("/u", "/v")) else 0
            np.testing.assert_array_equal(a, c[crop[0] >> s:(h - crop[1]) >> s, crop[2] >> s:(w - crop[3]) >> s])
            assert a.shape == ((26 >> s), (42 >> s))
        else:
            np.testing.assert_array_equal(a, c)


def test_blob_undone_units_are_zeroed():
    w, h, crop = 48, 32, (0, 2, 0, 4)
    done = np.ones((2, 3), np.uint8)
    done[1, 2] = 0
    blob, coded = make_blob(w, h, done=done)
    flags, _, arrays = _core._arrays_from_blob(blob, w, h, crop, EXPORT_GROUPS, ALL_BITS)
    assert flags == pycodec.FrameFlag.INCOMPLETE

    def expect(name: str, cells: int, display: bool = False, chroma: bool = False) -> None:
        c = coded[name].copy()
        c[cells:2 * cells, 2 * cells:3 * cells] = 0
        if display:
            s = int(chroma)
            c = c[:(h - crop[1]) >> s, :(w - crop[3]) >> s]
        np.testing.assert_array_equal(arrays[name], c)

    expect("prediction/y", 16, display=True)
    expect("residual/v", 8, display=True, chroma=True)
    expect("coeffs/y", 16)
    expect("qstep/u", 8)
    expect("block/mv_l1", 4)
    expect("block/intra_mode", 4)
    expect("h264/mb_type", 1)
    expect("h264/dc_qmul", 1)
    expect("h264/sub_mb_type", 2)


def test_blob_missing_unsupported_and_absent():
    w, h, crop = 32, 32, (0, 0, 0, 0)
    blob, coded = make_blob(w, h, omit=("h264/cbp",))
    flags, _, arrays = _core._arrays_from_blob(blob, w, h, crop, ["block", "h264"], ALL_BITS)
    assert flags == pycodec.FrameFlag.NO_EXPORT  # a requested section is missing
    assert set(arrays) == set(pycodec.FIELD_GROUPS["block"] + pycodec.FIELD_GROUPS["h264"])
    assert arrays["h264/cbp"].shape == (2, 2) and not arrays["h264/cbp"].any()
    np.testing.assert_array_equal(arrays["h264/mb_type"], coded["h264/mb_type"])

    blob, _ = make_blob(w, h, frame_flags=1)
    flags, _, arrays = _core._arrays_from_blob(blob, w, h, crop, ["recon", "block"], ALL_BITS)
    assert flags == pycodec.FrameFlag.UNSUPPORTED
    assert arrays["recon/u"].shape == (16, 16) and not any(a.any() for a in arrays.values())

    flags, meta, arrays = _core._arrays_from_blob(b"", w, h, crop, ["coeffs"], ALL_BITS)
    assert flags == pycodec.FrameFlag.NO_EXPORT and meta is None
    assert arrays["coeffs/y"].shape == (32, 32) and arrays["coeffs/y"].dtype == np.int32


def test_blob_malformed_is_an_error():
    w, h, crop = 32, 32, (0, 0, 0, 0)
    blob, _ = make_blob(w, h)
    with pytest.raises(RuntimeError, match="magic"):
        _core._arrays_from_blob(b"\0" * len(blob), w, h, crop, ["block"], ALL_BITS)
    with pytest.raises(RuntimeError, match="outside"):
        _core._arrays_from_blob(blob[:len(blob) // 2], w, h, crop, ["block"], ALL_BITS)
    with pytest.raises(RuntimeError, match="out of step"):
        _core._arrays_from_blob(blob, w, h + 16, crop, ["block"], ALL_BITS)
    taller, _ = make_blob(w, h + 16)
    hdr = np.frombuffer(taller[:_HDR.itemsize], _HDR).copy()
    hdr["coded_height"] = h
    with pytest.raises(RuntimeError, match="shape"):
        _core._arrays_from_blob(hdr.tobytes() + taller[_HDR.itemsize:], w, h, crop, ["block"], ALL_BITS)


# ---------------------------------------------------------------------- shared (zero-copy) arrays


def test_blob_shared_views_equal_copies():
    """share=True: arrays that need no cropping are read-only views of the blob; values unchanged."""
    import gc

    w, h = 48, 32
    for crop in ((0, 0, 0, 0), (0, 4, 0, 0), (2, 4, 2, 4)):  # none, bottom only (rows: contiguous), all sides
        blob, _ = make_blob(w, h)
        _, _, copies = _core._arrays_from_blob(blob, w, h, crop, EXPORT_GROUPS, ALL_BITS)
        _, _, views = _core._arrays_from_blob(blob, w, h, crop, EXPORT_GROUPS, ALL_BITS, share=True)
        gc.collect()  # the synthetic frame is gone: the views keep its buffer alive
        assert set(views) == set(copies)
        for name, c in copies.items():
            v = views[name]
            np.testing.assert_array_equal(v, c, err_msg=f"{name} {crop}")
            assert v.dtype == c.dtype and v.flags.c_contiguous
            cropped = name.split("/")[0] in ("prediction", "residual", "recon") and (crop[2] or crop[3])
            if cropped:  # columns cut: a copy, as without share
                assert v.base is None and v.flags.writeable, name
            else:
                assert v.base is not None and not v.flags.writeable, name
        assert all(c.base is None and c.flags.writeable for c in copies.values())


def test_blob_shared_undone_units_are_copies():
    """Frames with undecoded units are zeroed in copies, never in the shared buffer."""
    w, h = 48, 32
    done = np.ones((2, 3), np.uint8)
    done[0, 1] = 0
    blob, coded = make_blob(w, h, done=done)
    _, _, copies = _core._arrays_from_blob(blob, w, h, (0, 0, 0, 0), ["block", "coeffs"], ALL_BITS)
    _, _, views = _core._arrays_from_blob(blob, w, h, (0, 0, 0, 0), ["block", "coeffs"], ALL_BITS, share=True)
    for name, c in copies.items():
        np.testing.assert_array_equal(views[name], c)
        assert views[name].flags.writeable  # zeroed copy
    assert not views["block/mv_l0"][0:4, 4:8].any() and coded["block/mv_l0"][0:4, 4:8].any()


def test_reader_copy_false_gives_the_same_arrays(videos):
    with pycodec.open(videos["66x50"], copy=True) as a, pycodec.open(videos["66x50"], copy=False) as b:
        fa, fb = list(a), list(b)
    assert len(fa) == len(fb) == N_FRAMES
    shared = 0
    for x, y in zip(fa, fb, strict=True):
        assert x.arrays.keys() == y.arrays.keys()
        for name, arr in x.arrays.items():
            np.testing.assert_array_equal(y.arrays[name], arr, err_msg=name)
            assert arr.flags.writeable
            shared += y.arrays[name].base is not None
    assert shared  # block maps at least
    assert all(not f.arrays["block/qp_y"].flags.writeable for f in fb)


def _frames_as_tuples(reader) -> list[tuple]:
    """Every frame's metadata and the bytes of its arrays (order included)."""
    return [
        (f.index, f.decode_index, f.pts, f.poc, f.type, f.key, f.pkt_bytes, int(f.flags),
         [(k, a.dtype.str, a.shape, a.tobytes()) for k, a in f.arrays.items()])
        for f in reader
    ]


@pytest.mark.parametrize("frames", [None, slice(3, 20, 2), slice(25, None)])
def test_decode_ahead_gives_the_same_frames(videos, frames):
    """Decoding ahead in a thread changes who calls the decoder, not what it gives."""
    with pycodec.open(videos["long"], frames=frames) as r:
        want = _frames_as_tuples(r)
    assert want
    for ahead, copy in ((1, True), (3, False), (64, True)):
        with pycodec.open(videos["long"], frames=frames, copy=copy, ahead=ahead) as r:
            assert r._dec.ahead
            assert _frames_as_tuples(r) == want, (ahead, copy)


def test_decode_ahead_keeps_corruption_flags(tmp_path, videos):
    """Garbage over one packet: the same frames, flags and last error with and without the thread."""
    data = bytearray(videos["long"].read_bytes())
    with av.open(str(videos["long"])) as c:
        pos, size = [(p.pos, p.size) for p in c.demux(video=0) if p.size][15]
    data[pos:pos + size] = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    p = tmp_path / "garbage.mp4"
    p.write_bytes(bytes(data))
    results = []
    for ahead in (0, 4):
        dec = _core.Decoder(str(p), 0, True, ["frame", "decoded"], True, False, ahead)
        frames = []
        while (d := dec.read()) is not None:
            frames.append((d["decode_index"], d["flags"], d["arrays"]["decoded/y"].tobytes()))
        results.append((frames, re.sub(r" @ 0x[0-9a-f]+", "", dec.last_error)))  # minus the address
        dec.close()
    assert results[0] == results[1]
    assert [i for i, flags, _ in results[0][0] if flags & pycodec.FrameFlag.CORRUPT] == [16]
    assert results[0][1]  # FFmpeg's message for the damaged picture


def test_decode_ahead_stops_cleanly(videos):
    """Closing (or dropping) a reader whose thread waits for room in a full queue does not deadlock."""
    import gc
    import threading
    import time

    for close in (True, False):
        box = [pycodec.open(videos["long"], fields="frame,block", ahead=2)]
        assert next(box[0]).index == 0
        time.sleep(0.05)  # the decoding thread fills the queue and waits for room

        def finish(box=box, close=close):
            if close:
                box[0].close()
            box.clear()
            gc.collect()

        worker = threading.Thread(target=finish, daemon=True)
        worker.start()
        worker.join(60)  # a deadlock detector, not a speed check
        assert not worker.is_alive() and not box
    dec = _core.Decoder(str(videos["long"]), 0, True, ["frame"], True, False, 3)
    assert dec.skip() and dec.read()["decode_index"] >= 0
    dec.close()
    assert dec.read() is None and not dec.skip()


def test_decode_ahead_rejects_negative_counts(videos):
    with pytest.raises(ValueError, match="ahead=-1"):
        pycodec.open(videos["long"], ahead=-1)
