"""`pycodec extract | info | show`: outputs, one-line errors with exit code 2, no partial files."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import one_error_line, run

import pycodec
from pycodec import cli, demo, store
from pycodec.samples import make_talking_sample, synthetic_frames

W, H, N = 64, 64, 12


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """A small H.264 sample plus inputs that are wrong in one way each."""
    d = tmp_path_factory.mktemp("media")
    m = {"sample": Path(make_talking_sample(d / "sample.mp4", W, H, N, seed=3))}
    raw = Path(make_talking_sample(d / "raw.h264", W, H, N, seed=4))
    data = raw.read_bytes()
    (d / "truncated.h264").write_bytes(data[: len(data) * 2 // 3])
    m["truncated_h264"] = d / "truncated.h264"
    (d / "truncated.mp4").write_bytes(m["sample"].read_bytes()[:3000])
    m["truncated_mp4"] = d / "truncated.mp4"
    (d / "notes.txt").write_text("not a video\n")
    m["not_video"] = d / "notes.txt"
    (d / "empty.mp4").write_bytes(b"")
    m["empty"] = d / "empty.mp4"
    (d / "folder.mp4").mkdir()
    m["directory"] = d / "folder.mp4"
    m["mpeg4"] = Path(make_talking_sample(d / "mpeg4.mp4", W, H, 4, codec="mpeg4"))
    m["missing"] = d / "missing.mp4"
    return m


# ---------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (None, None),
        ("0:10", slice(0, 10)),
        ("5:", slice(5, None)),
        (":7", slice(0, 7)),
        ("3", slice(3, 4)),
        (" 2 : 4 ", slice(2, 4)),
    ],
)
def test_parse_frames(text, expect):
    assert cli.parse_frames(text) == expect


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("5:2", "is empty"),
        ("3:3", "is empty"),
        ("a:b", "not a frame range"),
        ("1:2:3", "not a frame range"),
        ("-1:4", "negative"),
        ("", "not a frame range"),
        ("1.5:3", "not a frame range"),
    ],
)
def test_parse_frames_errors(text, needle):
    with pytest.raises(cli.CliError, match=needle):
        cli.parse_frames(text)


def test_parse_fields():
    assert cli.parse_fields(None) == list(pycodec.FIELD_GROUPS)
    assert cli.parse_fields("all") == list(pycodec.FIELD_GROUPS)
    assert cli.parse_fields("block,frame") == ["frame", "block"]
    assert cli.parse_fields("h264, block,block") == ["frame", "block", "h264"]
    for bad, needle in (
        ("block,nope", "unknown group 'nope'"),
        (",", "empty list"),
        ("block,,frame", "empty group"),
    ):
        with pytest.raises(cli.CliError, match=needle):
            cli.parse_fields(bad)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], None),
        (["frobnicate"], "invalid choice"),
        (["extract"], "required"),
        (["extract", "a.mp4", "b.h5", "--frames", "9:1"], "--frames"),
        (["extract", "a.mp4", "b.h5", "--fields", "blocks"], "unknown group 'blocks'"),
        (["extract", "a.mp4", "b.h5", "--compression", "zstd"], "invalid choice"),
        (["extract", "a.mp4", "b.h5", "--decode-ahead", "-1"], "--decode-ahead -1: expected a number"),
        (["extract", "a.mp4", "b.h5", "--decode-ahead", "lots"], "--decode-ahead lots: expected a number"),
        (["extract", "a.mp4", "b.h5", "--chunk-frames", "0"], "--chunk-frames 0: expected a number"),
        (["extract", "a.mp4", "b.h5", "--chunk-frames", "many"], "--chunk-frames many: expected a number"),
        (["show", "x.h5", "--frame", "one", "-o", "x.png"], "invalid int"),
    ],
)
def test_usage_errors(capsys, tmp_path, argv, needle):
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    if needle:
        one_error_line(err, needle)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- extract with the real reader


def test_extract_all_fields_matches_reader(capsys, tmp_path, media):
    out = tmp_path / "all.h5"
    rc, stdout, err = run(capsys, "extract", media["sample"], out)
    assert rc == 0, err
    assert os.listdir(tmp_path) == ["all.h5"]
    assert (
        f"frames    {N} (" in stdout and "mean QP" in stdout and "written" in stdout and "frames/s" in stdout
    )
    with pycodec.open(media["sample"]) as reader:
        ref = list(reader)
    with store.open_h5(out) as f:
        assert len(f) == N == len(ref)
        a = f.attrs
        assert a["schema"] == "pycodec/1" and a["codec"] == "h264" and (a["width"], a["height"]) == (W, H)
        assert a["source_sha256"] == store.sha256_file(media["sample"])
        h264_groups = [g for g in pycodec.FIELD_GROUPS if g != "hevc"]
        assert a["fields"] == ",".join(h264_groups) and a["frame_rate"] == [30, 1]
        assert a["pycodec"] == pycodec.__version__ and a["first_frame"] == 0
        assert set(f.groups) == set(h264_groups) - (
            {"h264"} if "h264/mb_type" not in ref[0].arrays else set()
        )
        for fr in ref:
            got = f.frame(fr.index)
            assert (got["type"], got["poc"], got["pts"], got["decode_index"]) == (
                fr.type,
                fr.poc,
                fr.pts,
                fr.decode_index,
            )
            assert (got["key"], got["pkt_bytes"], got["flags"]) == (fr.key, fr.pkt_bytes, int(fr.flags))
            for name, arr in fr.arrays.items():
                k = store.chunk_frames(name, arr.nbytes, N)  # the container tells N
                assert f[name].dtype == arr.dtype and f[name].chunks == (k, *arr.shape)
                np.testing.assert_array_equal(got[name], arr, err_msg=name)
    qp = [fr["block/qp_y"].astype(float) for fr in ref if "block/qp_y" in fr.arrays]
    if qp:
        assert f"mean QP   {np.mean(np.stack(qp)):.2f}" in stdout


def test_extract_chunk_frames(capsys, tmp_path, media):
    """--chunk-frames N: block maps and extras in chunks of up to N frames, planes one per chunk; the
    same arrays as the default one chunk per frame."""
    one, many = tmp_path / "one.h5", tmp_path / "many.h5"
    for out, extra in ((one, ()), (many, ("--chunk-frames", "8"))):
        rc, _, err = run(capsys, "extract", media["sample"], out, "--fields", "block,h264,decoded", "--quiet", *extra)
        assert rc == 0, err
    with h5py.File(one) as a, h5py.File(many) as b:
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in names:
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
            if name.startswith(("block/", "h264/", "decoded/")):
                assert a[name].chunks[0] == 1, name
                k = store.chunk_frames(name, a[name][0].nbytes, len(a["frame/pts"]), max_frames=8)
                assert b[name].chunks[0] == k, name
        assert b["block/qp_y"].chunks[0] == 8 and b["decoded/y"].chunks[0] == 1


def test_extract_fields_frames_gzip(capsys, tmp_path, media):
    out = tmp_path / "sel.h5"
    rc, stdout, err = run(
        capsys,
        "extract",
        media["sample"],
        out,
        "--fields",
        "block",
        "--frames",
        "2:7",
        "--compression",
        "gzip",
        "--quiet",
    )
    assert rc == 0, err
    assert stdout == "" and err == ""
    with pycodec.open(media["sample"], fields="block", frames=slice(2, 7)) as reader:
        ref = list(reader)
    with store.open_h5(out) as f:
        assert f.groups == ["block", "frame"]
        assert len(f) == 5 and f.attrs["first_frame"] == 2 and f.attrs["fields"] == "frame,block"
        assert f["block/mv_l0"].compression == "gzip"
        assert f["frame/poc"][:].tolist() == [fr.poc for fr in ref]
        np.testing.assert_array_equal(f["block/qp_y"][4], ref[4]["block/qp_y"])


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing", "no such file"),
        ("directory", "directory"),
        ("not_video", "not a video"),
        ("empty", "empty"),
        ("mpeg4", "H.264"),
        ("truncated_mp4", "truncated.mp4"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, tmp_path, media, name, needle):
    rc, _stdout, err = run(capsys, "extract", media[name], tmp_path / "o.h5")
    assert rc == 2
    line = one_error_line(err, needle)
    assert str(media[name]) in line
    assert os.listdir(tmp_path) == []  # no partial HDF5, no temp file


def test_info_bad_input(capsys, media):
    for name in ("missing", "not_video", "empty"):
        rc, _, err = run(capsys, "info", media[name])
        assert rc == 2
        one_error_line(err, str(media[name]))


def test_corrupted_stream_is_extracted_and_flagged(capsys, tmp_path, media):
    out = tmp_path / "t.h5"
    rc, stdout, err = run(capsys, "extract", media["truncated_h264"], out, "--fields", "frame")
    assert rc == 0, err
    with h5py.File(out) as h:
        flagged = int(np.count_nonzero(h["frame/flags"][:]))
        assert 0 < h["frame/pts"].shape[0] <= N
    assert f"flagged   {flagged}" in stdout


def test_frames_past_the_end(capsys, tmp_path, media):
    rc, _, err = run(capsys, "extract", media["sample"], tmp_path / "o.h5", "--frames", f"{N + 5}:{N + 9}")
    assert rc == 2
    one_error_line(err, "starts after the last frame", f"has {N} frames")
    assert os.listdir(tmp_path) == []


def test_existing_output_and_overwrite(capsys, tmp_path, media):
    out = tmp_path / "o.h5"
    out.write_bytes(b"keep me")
    rc, _, err = run(capsys, "extract", media["sample"], out, "--fields", "frame")
    assert rc == 2
    one_error_line(err, str(out), "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    rc, _, err = run(capsys, "extract", media["sample"], out, "--fields", "frame", "--overwrite", "-q")
    assert rc == 0, err
    assert len(store.open_h5(out)) == N and os.listdir(tmp_path) == ["o.h5"]


def test_missing_output_directory(capsys, tmp_path, media):
    rc, _, err = run(capsys, "extract", media["sample"], tmp_path / "no" / "o.h5")
    assert rc == 2
    one_error_line(err, "does not exist", "create it first")


def test_disk_full(capsys, tmp_path, media, monkeypatch):
    out = tmp_path / "o.h5"
    out.write_bytes(b"old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)  # writes through h5py (gzip)
    monkeypatch.setattr(store, "_write_direct_chunk", full)  # the direct chunk writes (lzf, none)
    rc, _, err = run(capsys, "extract", media["sample"], out, "--fields", "block", "--overwrite")
    assert rc == 2
    one_error_line(err, str(out), "no space left on device", "free some space")
    assert os.listdir(tmp_path) == ["o.h5"] and out.read_bytes() == b"old"


# ---------------------------------------------------------------------- extract with a fake reader


class FakeReader:
    """Stand-in for pycodec.open(): yields synthetic frames, optionally failing after some."""

    def __init__(self, n: int, fail_after: int | None = None, flags: int = 0) -> None:
        self.frames = list(synthetic_frames(32, 32, n=n, groups="frame,decoded,block", seed=9))
        for f in self.frames[1::3]:
            f.flags = flags
        self.fail_after = fail_after

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __iter__(self):
        for i, f in enumerate(self.frames):
            if self.fail_after is not None and i == self.fail_after:
                raise pycodec.InputError("in.mp4: packet 4 cannot be read (I/O error); check the file")
            yield f


def fake(monkeypatch, tmp_path, codec="h264", **kw) -> Path:
    src = tmp_path / "in.mp4"
    src.write_bytes(b"fake video")
    info = {
        "codec": codec,
        "width": 32,
        "height": 32,
        "coded_width": 32,
        "coded_height": 32,
        "bit_depth": 8,
        "chroma_format": "420",
        "frame_rate": (25, 1),
        "time_base": (1, 25),
        "nb_frames": 7,
        "ffmpeg": "x",
    }
    monkeypatch.setattr(pycodec, "info", lambda p: dict(info, source=str(p)))
    monkeypatch.setattr(pycodec, "open", lambda p, fields=None, frames=None, copy=True, ahead=0: FakeReader(7, **kw))
    (tmp_path / "out").mkdir()
    return src


def test_fake_reader_summary_counts_types_and_flags(capsys, tmp_path, monkeypatch):
    src = fake(monkeypatch, tmp_path, flags=int(pycodec.FrameFlag.CORRUPT | pycodec.FrameFlag.INCOMPLETE))
    rc, stdout, err = run(capsys, "extract", src, tmp_path / "out" / "o.h5")
    assert rc == 0, err
    types = "".join(f.type for f in FakeReader(7).frames)
    expect = ", ".join(f"{t} {types.count(t)}" for t in "IPB" if t in types)
    assert f"frames    7 ({expect})" in stdout
    assert "flagged   2 (CORRUPT 2, INCOMPLETE 2)" in stdout
    qp = np.mean([f["block/qp_y"] for f in FakeReader(7).frames])
    assert f"mean QP   {qp:.2f}" in stdout


def test_reader_failure_mid_stream_leaves_nothing(capsys, tmp_path, monkeypatch):
    src = fake(monkeypatch, tmp_path, fail_after=4)
    rc, _, err = run(capsys, "extract", src, tmp_path / "out" / "o.h5")
    assert rc == 2
    one_error_line(err, "in.mp4: packet 4 cannot be read")
    assert os.listdir(tmp_path / "out") == []


def test_unsupported_codec_refused(capsys, tmp_path, monkeypatch):
    src = fake(monkeypatch, tmp_path, codec="vp9")
    rc, _, err = run(capsys, "extract", src, tmp_path / "out" / "o.h5")
    assert rc == 2
    one_error_line(err, "vp9, not H.264 or HEVC", "re-encode")
    assert os.listdir(tmp_path / "out") == []


def test_interrupt_leaves_nothing(capsys, tmp_path, monkeypatch):
    src = fake(monkeypatch, tmp_path)

    class Interrupted(FakeReader):
        def __iter__(self):
            yield self.frames[0]
            raise KeyboardInterrupt

    monkeypatch.setattr(pycodec, "open", lambda p, fields=None, frames=None, copy=True, ahead=0: Interrupted(3))
    rc, _, err = run(capsys, "extract", src, tmp_path / "out" / "o.h5")
    assert rc == 130 and "interrupted" in err
    assert os.listdir(tmp_path / "out") == []


# ---------------------------------------------------------------------- info, show, python -m, demo


def test_info_text_and_json(capsys, media):
    rc, out, err = run(capsys, "info", media["sample"], "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["codec"] == "h264" and d["width"] == W and d["frame_rate"] == [30, 1]
    rc, out, _ = run(capsys, "info", media["sample"])
    assert rc == 0 and "codec" in out and "h264" in out and "30/1" in out


def test_show(capsys, tmp_path, media):
    h5 = tmp_path / "s.h5"
    assert run(capsys, "extract", media["sample"], h5, "-q")[0] == 0
    png = tmp_path / "f.png"
    rc, _out, err = run(capsys, "show", h5, "--frame", "5", "-o", png)
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, _, err = run(capsys, "show", h5, "--frame", str(N), "-o", png)
    assert rc == 2
    one_error_line(err, "out of range", f"between 0 and {N - 1}")
    rc, _, err = run(capsys, "show", media["not_video"], "-o", png)
    assert rc == 2
    one_error_line(err, "not a readable HDF5 file")
    rc, _, err = run(capsys, "show", h5, "-o", tmp_path / "nodir" / "f.png")
    assert rc == 2
    one_error_line(err, "does not exist")


def test_python_dash_m(media):
    env = dict(os.environ, PYTHONPATH=str(Path(pycodec.__file__).parent.parent))
    p = subprocess.run(
        [sys.executable, "-m", "pycodec", "info", str(media["sample"]), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["codec"] == "h264"
    p = subprocess.run(
        [sys.executable, "-m", "pycodec", "extract", str(media["missing"]), "x.h5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2
    one_error_line(p.stderr, "no such file")


def test_demo(tmp_path, capsys):
    assert demo.main([str(tmp_path), "--size", "64x48", "--frames", "8"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "sample.mp4").exists() and (tmp_path / "sample.h5").exists()
    pngs = list(tmp_path.glob("frame_*.png"))
    assert len(pngs) == 1 and str(pngs[0]) in out


def test_real_write_failure_in_subprocess(tmp_path, media):
    """A real failing write (file size limit, EFBIG: the same HDF5 error path as a full disk)."""
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "from pycodec import cli\n"
        f"sys.exit(cli.main(['extract', {str(media['sample'])!r}, {str(tmp_path / 'o.h5')!r}]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(pycodec.__file__).parent.parent))
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert p.returncode == 2, (p.returncode, p.stderr)  # not a crash at close
    one_error_line(p.stderr, "file too large")
    assert os.listdir(tmp_path) == []


def test_extract_restores_the_garbage_collector(capsys, tmp_path, media):
    import gc

    assert gc.isenabled()
    rc, _, err = run(capsys, "extract", media["sample"], tmp_path / "g.h5", "--fields", "block", "-q")
    assert rc == 0, err
    assert gc.isenabled()
    gc.disable()
    try:
        rc, _, err = run(capsys, "extract", media["sample"], tmp_path / "h.h5", "--fields", "block", "-q")
        assert rc == 0, err
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()
    rc, _, _ = run(capsys, "extract", tmp_path / "missing.mp4", tmp_path / "i.h5")
    assert rc == 2 and gc.isenabled()
