"""`pycodec restore` / `pycodec.restore()`: end to end on tiny generated face crops with sound
(frames, timestamps, frame rate and audio packets kept; .mkv, .mp4, .y4m; a crop of another size
than the model's; HEVC with audio the MP4 cannot hold), the samples the model sees (equal to the
dataset's), every refusal (one line, exit code 2, nothing left behind) and SIGTERM.

The model is a tiny MDVD-Net saved with ``pycodec.models.save_checkpoint`` (random weights whose
last layer is perturbed a little, so that it changes the frames), passed with ``--checkpoint``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, one_error_line, run

import pycodec
from pycodec.samples import TalkingHead, make_talking_sample

FPS = 25
SIZE = 96  # the crop's side: not the model's 256, so the scaling path is used


# ---------------------------------------------------------------------- inputs


def write_clip(path: Path, frames: list[np.ndarray], codec: str = "libx264", audio: str | None = "aac",
               crf: int = 35, fmt: str | None = None) -> Path:
    """RGB frames -> ``codec`` at a low rate (+ ``audio``: tone bursts at 44.1 kHz) in ``path``."""
    import av

    from pipelines.synthetic import AUDIO_RATE, bursts_audio

    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(codec, rate=FPS)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        key = "x265-params" if codec == "libx265" else "x264-params"
        v.options = {"crf": str(crf), "preset": "fast", key: "log-level=error:pools=1" if codec == "libx265"
                     else "threads=1"}
        a = None
        if audio:
            a = out.add_stream(audio, rate=AUDIO_RATE if audio == "aac" else 8000)
            a.layout = "stereo" if audio == "aac" else "mono"
        for t, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, FPS)
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            rate = a.codec_context.sample_rate
            sound = bursts_audio(len(frames) / FPS, [(0.1, 0.3)], rate)
            if audio != "aac":
                sound = sound[:1]
            for i in range(0, sound.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, i:i + 1024]), format="fltp",
                                                layout=a.layout.name)
                af.sample_rate, af.pts, af.time_base = rate, i, Fraction(1, rate)
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


def face_frames(size: int | tuple[int, int], n: int, seed: int = 0) -> list[np.ndarray]:
    w, h = (size, size) if isinstance(size, int) else size
    scene = TalkingHead(w, h, FPS, seed)
    return [scene.frame(t) for t in range(n)]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("restore-media")
    m = {"clip": write_clip(d / "clip.mp4", face_frames(SIZE, 12))}
    # HEVC with mu-law audio in MOV (which MP4 cannot hold: the audio is re-encoded there)
    m["hevc"] = write_clip(d / "hevc.mov", face_frames(SIZE, 8, seed=2), codec="libx265", audio="pcm_mulaw")
    # the model's own size, no audio: the speech features are those of silence
    m["native"] = write_clip(d / "native.mp4", face_frames(256, 6, seed=3), audio=None, crf=30)
    m["long"] = write_clip(d / "long.mp4", face_frames(SIZE, 40, seed=4), audio=None)
    ys, xs = np.mgrid[0:48, 0:64]
    m["noface"] = write_clip(d / "noface.mp4", [np.stack([(xs + 3 * t) % 256, (ys + 2 * t) % 256,
                                                          np.full_like(xs, 128)], -1).astype(np.uint8)
                                                for t in range(6)])
    small = []
    for img in face_frames(288, 5, seed=5):  # a face far smaller than the frame: a full frame
        big = np.full((512, 512, 3), 90, np.uint8)
        big[100:388, 150:438] = img
        small.append(big)
    m["small_face"] = write_clip(d / "small_face.mp4", small, audio=None)
    m["mpeg4"] = Path(make_talking_sample(d / "mpeg4.mp4", 64, 64, 4, codec="mpeg4"))
    (d / "notes.txt").write_text("not a video\n")
    m["not_video"] = d / "notes.txt"
    (d / "truncated.mp4").write_bytes(m["clip"].read_bytes()[:3000])
    m["truncated"] = d / "truncated.mp4"
    (d / "folder.mp4").mkdir()
    m["directory"] = d / "folder.mp4"
    return m


def _checkpoint(path: Path, change: float) -> Path:
    import torch

    from pycodec.models import MDVDConfig, MDVDNet, save_checkpoint

    torch.manual_seed(0)
    cfg = MDVDConfig.preset("realtime", channels=8, deform_groups=2, lstm_hidden=8, lstm_layers=1, landmarks="raw")
    net = MDVDNet(cfg)
    if change:
        with torch.no_grad():  # the last layer starts at zero (output = input): make it change things
            for p in net.unet.tail.parameters():
                p.normal_(0, change)
    return save_checkpoint(path, net, meta={"codec": "h264", "note": "test model"})


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two spinning threads run ~10x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("restore-ckpt")
    (d / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    return {"model": _checkpoint(d / "tiny.pt", 0.01), "identity": _checkpoint(d / "identity.pt", 0.0),
            "garbage": d / "garbage.pt"}


# ---------------------------------------------------------------------- reading outputs back


def probe(path: Path) -> dict:
    """Frames (pts, seconds), rate, time base, codecs and audio packets (bytes, seconds) via PyAV."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [(f.pts, float(f.pts * f.time_base)) for f in c.decode(v)]
        out = {"frames": frames, "rate": v.average_rate, "time_base": v.time_base, "vcodec": v.codec_context.name,
               "acodec": None, "audio": []}
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            out["acodec"] = a.codec_context.name
            out["audio"] = [(bytes(p), float(p.pts * p.time_base)) for p in c.demux(a) if p.size]
    return out


def planes(path: Path) -> list[np.ndarray]:
    """The luma of every frame, decoded by PyAV."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p")[: f.height] for f in c.decode(video=0)]


def assert_same_timing(src: dict, got: dict, tol: float = 0.0) -> None:
    assert len(got["frames"]) == len(src["frames"])
    np.testing.assert_allclose([s for _, s in got["frames"]], [s for _, s in src["frames"]], atol=tol + 1e-9)
    assert got["rate"] == src["rate"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


# ---------------------------------------------------------------------- end to end


def test_mkv_keeps_frames_timestamps_and_audio(media, ckpt, tmp_path, capsys):
    out = tmp_path / "restored.mkv"
    rc, so, se = run(capsys, "restore", media["clip"], out, "--checkpoint", ckpt["model"])
    assert rc == 0, se
    line = so.strip()
    assert line.startswith(f"pycodec restore: {media['clip']} -> {out}: 12 frames,") and "frames/s" in line
    assert "mean change in Y" in line and "audio copied (aac)" in line, line
    src, got = probe(media["clip"]), probe(out)
    assert got["vcodec"] == "ffv1" and got["acodec"] == "aac"
    assert_same_timing(src, got, tol=0.0005)  # Matroska keeps milliseconds
    assert [b for b, _ in got["audio"]] == [b for b, _ in src["audio"]]  # packets copied, not re-encoded
    np.testing.assert_allclose([s for _, s in got["audio"]], [s for _, s in src["audio"]], atol=0.0005)
    # frames in order: each restored frame is closest to its own decoded frame, and changed a little
    dec, res = planes(media["clip"]), planes(out)
    err = np.array([[np.abs(r.astype(int) - d).mean() for d in dec] for r in res])
    assert (err.argmin(1) == np.arange(len(res))).all()
    assert 0.2 < float(np.diag(err).mean()) < 12
    assert leftovers(tmp_path) == []


def test_mp4_and_y4m(media, ckpt, tmp_path, capsys):
    src = probe(media["clip"])
    mp4 = tmp_path / "restored.mp4"
    summary = pycodec.restore(media["clip"], mp4, checkpoint=ckpt["model"], progress=False)
    assert isinstance(summary, pycodec.RestoreSummary) and summary.frames == 12 and summary.codec == "h264"
    assert summary.size == (SIZE, SIZE) and summary.mean_abs_change_y > 0 and summary.frames_per_s > 0
    got = probe(mp4)
    assert got["vcodec"] == "h264" and got["time_base"] == src["time_base"]
    assert [p for p, _ in got["frames"]] == [p for p, _ in src["frames"]]  # the input's own timestamps
    assert_same_timing(src, got)
    assert got["audio"] == src["audio"]

    y4m = tmp_path / "restored.y4m"
    rc, so, se = run(capsys, "restore", media["clip"], y4m, "--checkpoint", ckpt["model"], "--no-bp")
    assert rc == 0, se
    assert "no back-projection" in so and "audio left out (.y4m holds video only" in so
    assert y4m.read_bytes().startswith(b"YUV4MPEG2 W96 H96 F25:1 ")
    got = probe(y4m)
    assert len(got["frames"]) == 12 and got["rate"] == 25 and got["audio"] == []
    assert leftovers(tmp_path) == []


def test_hevc_and_audio_the_container_cannot_hold(media, ckpt, tmp_path, capsys):
    out = tmp_path / "hevc.mp4"
    rc, so, se = run(capsys, "restore", media["hevc"], out, "--checkpoint", ckpt["model"], "--quiet")
    assert rc == 0 and so == "", se
    assert "warning: the checkpoint was trained on h264, the input is hevc" in se
    src, got = probe(media["hevc"]), probe(out)
    assert src["vcodec"] == "hevc" and src["acodec"] == "pcm_mulaw"
    assert got["acodec"] == "aac"  # MP4 cannot hold mu-law: re-encoded
    assert_same_timing(src, got)
    summary = pycodec.restore(media["hevc"], tmp_path / "again.mp4", checkpoint=ckpt["model"], progress=False)
    assert summary.audio == "re-encoded to AAC (.mp4 cannot hold pcm_mulaw)" and summary.frames == 8
    assert summary.codec == "hevc" and summary.size == (SIZE, SIZE)


def test_model_size_input_without_audio_untouched_by_an_identity_model(media, ckpt, tmp_path, capsys):
    # at the model's own size nothing is rescaled: an untrained MDVD-Net (output = its input) gives
    # back the decoded luma exactly when back-projection is off
    out = tmp_path / "same.y4m"
    summary = pycodec.restore(media["native"], out, checkpoint=ckpt["identity"], bp=False, progress=False)
    assert summary.mean_abs_change_y == 0.0 and summary.audio == "none (the input has none)"
    for a, b in zip(planes(out), planes(media["native"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_samples_are_the_datasets(media, tmp_path):
    """What the model reads per frame equals what CodecWindowDataset reads from an extracted file
    holding the same landmarks and MFCCs (every field, dtype and shape)."""
    import h5py

    import pycodec.restore as R
    from pycodec import cli
    from pycodec.audio import video_mfcc
    from pycodec.models import dataset_kwargs
    from pycodec.models import fields as FL
    from pycodec.nn import CodecWindowDataset

    src = str(media["clip"])
    h5 = tmp_path / "clip.h5"
    assert cli.main(["extract", src, str(h5), "-q"]) == 0
    info = R._probe(src)

    class Bar:
        def update(self, n: int) -> None:
            pass

    scan = R._scan(src, info, 5, Bar(), lambda: None)
    mfcc, where = video_mfcc(src, scan.times, FPS)
    assert where == "stream" and mfcc.shape == (12, 4, 13)
    n = len(scan.pts)
    builder = R.SampleBuilder(src, "h264", n, info, mfcc, scan.track, (256, 256))
    keep = [k for k in FL.window_fields() + FL.center_fields("h264") if k.split("/")[0] not in
            ("frame", "audio", "landmarks")]
    samples = []
    with pycodec.open(src, fields=R.codec_groups("h264")) as reader:
        for fr in reader:
            samples += builder.push(R._Frame(fr, keep))
    samples += builder.finish()
    assert [s["frame"] for s in samples] == list(range(n))
    with h5py.File(h5, "a") as f:
        f["audio/mfcc"] = mfcc
        f["landmarks/decoded"] = np.stack([s["landmarks/decoded"] for s in samples])
    kw = dataset_kwargs("h264", train=False)
    kw["center_fields"] = FL.center_fields("h264")  # no ground truth in a plain extraction
    ds = CodecWindowDataset(str(h5), **kw)
    for t in range(n):
        want, got = ds[t], samples[t]
        assert set(want) == set(got)
        for k, v in want.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == got[k].dtype and v.shape == got[k].shape, k
                np.testing.assert_array_equal(v, got[k], err_msg=f"frame {t} {k}")
            elif k != "file":
                assert v == got[k], k
    # landmarks lie on the face: inside its tracked box, spread over it
    lm = samples[5]["landmarks/decoded"]
    x0, y0, x1, y1 = scan.track.boxes[5]
    assert ((lm[:, 0] > x0 - 8) & (lm[:, 0] < x1 + 8) & (lm[:, 1] > y0 - 8) & (lm[:, 1] < y1 + 12)).all()


# ---------------------------------------------------------------------- refusals


def _refused(capsys, folder: Path, *argv: object, needles: tuple[str, ...] = ()) -> str:
    before = sorted(os.listdir(folder))
    rc, so, se = run(capsys, "restore", *argv)
    assert rc == 2, (rc, so, se)
    line = one_error_line(se, *needles)
    assert sorted(os.listdir(folder)) == before, "something was left behind"
    return line


@pytest.mark.parametrize(("case", "needles"), [
    ("missing", ("missing.mp4", "no such file")),
    ("directory", ("folder.mp4", "is a directory", "output directory")),
    ("not_video", ("notes.txt",)),
    ("truncated", ("truncated.mp4",)),
    ("mpeg4", ("mpeg4.mp4", "H.264 and HEVC")),
    ("noface", ("noface.mp4", "no face was found", "nothing to restore")),
])
def test_bad_inputs(media, ckpt, tmp_path, capsys, case, needles):
    src = media[case] if case != "missing" else tmp_path.parent / "missing.mp4"
    _refused(capsys, tmp_path, src, tmp_path / "out.mkv", "--checkpoint", ckpt["model"], needles=needles)


def test_a_small_face_is_restored_in_a_window_and_pasted_back(media, ckpt, tmp_path, capsys):
    """A 512x512 frame whose face is ~95 px: restored in a grid-aligned window around the face and
    pasted back; every pixel outside the feathered crop square is exactly the decoded one."""
    from pycodec import restore as R

    out = tmp_path / "scene.mkv"
    rc, so, se = run(capsys, "restore", media["small_face"], out, "--checkpoint", ckpt["model"])
    assert rc == 0, se
    assert "1 face track(s) restored in 5 frames, pasted back" in so, so
    dec, res = planes(media["small_face"]), planes(out)
    assert len(res) == len(dec) == 5 and res[0].shape == dec[0].shape == (512, 512)
    scan = R._scan(str(media["small_face"]), R._probe(str(media["small_face"])), R.DETECT_EVERY,
                   type("Bar", (), {"update": lambda self, n: None})(), lambda: None)
    assert scan.mode == "scene" and len(scan.tracks) == 1
    (track,) = scan.tracks
    for t in range(5):
        diff = res[t].astype(int) - dec[t]
        box = track.box(t)
        side = (box[2] - box[0]) * 1.8  # the crop square the model was trained on
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        ys, xs = np.nonzero(diff)
        assert len(ys) > 100, "the model changed nothing"
        assert (np.abs(xs - cx) <= side / 2 + 1).all() and (np.abs(ys - cy) <= side / 2 + 1).all()


def test_reports(media, ckpt, tmp_path, capsys):
    """--report: an HTML page with the summary, the tracks and the picture inside, or the PNG alone."""
    import base64
    import re

    rc, _, se = run(capsys, "restore", media["small_face"], tmp_path / "o.mkv", "--checkpoint", ckpt["model"],
                     "--report", tmp_path / "r.html")
    assert rc == 0, se
    page = (tmp_path / "r.html").read_text()
    assert "pasted back" in page and "mode: scene" in page and "track 0: frames 0-4" in page
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", page).group(1))
    assert png[:4] == b"\x89PNG" and len(png) > 20_000
    rc, _, se = run(capsys, "restore", media["clip"], tmp_path / "c.mkv", "--checkpoint", ckpt["model"],
                     "--report", tmp_path / "r.png", "--quiet")
    assert rc == 0 and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    for bad, needles in (("r.pdf", (".html or .png",)), ("no/r.html", ("does not exist",))):
        _refused(capsys, tmp_path, media["clip"], tmp_path / "x.mkv", "--checkpoint", ckpt["model"],
                 "--report", tmp_path / bad, needles=needles)
    assert not (tmp_path / "x.mkv").exists()


def test_bad_outputs_and_options(media, ckpt, tmp_path, capsys, monkeypatch):
    from pycodec import models

    clip, ck = media["clip"], ckpt["model"]
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path / "no-weights")  # as if none were shipped
    (tmp_path / "exists.mkv").write_bytes(b"keep me")
    _refused(capsys, tmp_path, clip, tmp_path / "exists.mkv", "--checkpoint", ck,
             needles=("exists.mkv", "already exists", "--overwrite"))
    assert (tmp_path / "exists.mkv").read_bytes() == b"keep me"
    _refused(capsys, tmp_path, clip, tmp_path / "out.avi", "--checkpoint", ck, needles=("out.avi", ".mkv", ".mp4", ".y4m"))
    _refused(capsys, tmp_path, clip, clip, "--checkpoint", ck, "--overwrite", needles=("is the input file",))
    os.mkfifo(tmp_path / "fifo.mkv")
    _refused(capsys, tmp_path, clip, tmp_path / "fifo.mkv", "--checkpoint", ck, "--overwrite",
             needles=("fifo.mkv", "FIFO"))
    _refused(capsys, tmp_path, clip, tmp_path / "no" / "out.mkv", "--checkpoint", ck, needles=("does not exist",))
    _refused(capsys, tmp_path, clip, tmp_path / "out.mkv", "--checkpoint", tmp_path / "none.pt",
             needles=("none.pt", "no such checkpoint file"))
    _refused(capsys, tmp_path, clip, tmp_path / "out.mkv", "--checkpoint", ckpt["garbage"],
             needles=("garbage.pt", "unreadable checkpoint"))
    _refused(capsys, tmp_path, clip, tmp_path / "out.mkv", needles=("mdvd-h264", "--checkpoint PATH"))
    _refused(capsys, tmp_path, clip, tmp_path / "out.mkv", "--model", "edvr", needles=("edvr",))
    import torch

    if not torch.cuda.is_available():
        _refused(capsys, tmp_path, clip, tmp_path / "out.mkv", "--checkpoint", ck, "--device", "cuda",
                 needles=("--device cuda", "CUDA is not available", "--device cpu"))


def test_shipped_checkpoint_is_used_by_default(media, ckpt, tmp_path, monkeypatch):
    """Without --checkpoint, `pycodec/weights/mdvd-<codec>.pt` is loaded (here a stand-in folder)."""
    import shutil

    from pycodec import models

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(ckpt["model"], weights / "mdvd-h264.pt")
    monkeypatch.setattr(models, "WEIGHTS_DIR", weights)
    s = pycodec.restore(media["clip"], tmp_path / "o.y4m", progress=False)
    assert s.model == "mdvd-h264" and s.frames == 12


def test_a_failure_midway_leaves_nothing(media, ckpt, tmp_path, monkeypatch):
    import pycodec.restore as R

    calls = []
    real = R.Restorer.__call__

    def flaky(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise R.RestoreError("boom; stop")
        return real(self, batch)

    monkeypatch.setattr(R.Restorer, "__call__", flaky)
    with pytest.raises(R.RestoreError, match="boom"):
        pycodec.restore(media["clip"], tmp_path / "out.mp4", checkpoint=ckpt["model"], progress=False)
    assert os.listdir(tmp_path) == []


def test_missing_model_packages_are_named(media, ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib were not installed
    line = _refused(capsys, tmp_path, media["clip"], tmp_path / "out.mkv", "--checkpoint", ckpt["model"],
                    needles=("dlib-bin", "pip install .[models]"))
    assert "not installed" in line


def test_imports_stay_light_and_extract_needs_no_models(media, tmp_path):
    code = ("import sys, pycodec, pycodec.cli, pycodec.restore, pycodec.face, pycodec.audio\n"
            "assert callable(pycodec.restore)\n"
            f"assert pycodec.cli.main(['extract', {str(media['clip'])!r}, {str(tmp_path / 'x.h5')!r}, '-q']) == 0\n"
            "print(sorted(m for m in ('torch', 'dlib', 'python_speech_features', 'scipy', 'av') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_sigterm_removes_the_temporary_file(media, ckpt, tmp_path):
    out = tmp_path / "out.mkv"
    p = subprocess.Popen([sys.executable, "-m", "pycodec", "restore", str(media["long"]), str(out), "--checkpoint",
                          str(ckpt["model"]), "--batch-size", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 90
        while not leftovers(tmp_path) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert leftovers(tmp_path), "the restoration never started writing"
        p.send_signal(signal.SIGTERM)
        _, se = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + signal.SIGTERM, se
    assert se.strip().splitlines()[-1] == "pycodec: error: terminated (SIGTERM); nothing was written"
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def folder(media, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("batch-in")
    (d / "nested").mkdir()
    (d / "a.mp4").write_bytes(media["clip"].read_bytes())
    (d / "nested" / "b.mov").write_bytes(media["hevc"].read_bytes())
    (d / "noface.mp4").write_bytes(media["noface"].read_bytes())
    (d / "readme.txt").write_text("not a video\n")  # not a video extension: not an input
    (d / ".hidden.mp4").write_bytes(b"")
    return d


def _report(path: Path) -> dict[str, list[str]]:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0] == ["source", "output", "status", "frames", "seconds", "faces", "mode", "message"]
    return {os.path.basename(r[0]): r for r in rows[1:]}


def test_a_folder_goes_on_past_a_bad_video_and_reports_it(folder, ckpt, tmp_path, capsys):
    out = tmp_path / "restored"
    rc, so, se = run(capsys, "restore", folder, out, "--checkpoint", ckpt["model"], "--format", "mkv")
    assert rc == 1, se  # one input failed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mkv")) == ["a.mkv", "nested/b.mkv"]
    rep = _report(out / "restore-report.tsv")
    assert {k: v[2] for k, v in rep.items()} == {"a.mp4": "ok", "b.mov": "ok", "noface.mp4": "failed"}
    assert rep["a.mp4"][3] == "12" and "no face was found" in rep["noface.mp4"][7]
    assert "3 videos: 2 restored" in so and "1 failed" in so and "failed: " in so and "noface.mp4" in so
    assert len(planes(out / "a.mkv")) == 12 and not leftovers(out) and not leftovers(out / "nested")
    # a rerun keeps what exists and retries only the failure
    rc, so, _ = run(capsys, "restore", folder, out, "--checkpoint", ckpt["model"])
    assert rc == 1 and "0 restored" in so and "2 kept" in so


def test_shards_partition_a_list(folder, ckpt, tmp_path, capsys):
    lst = tmp_path / "videos.txt"
    lst.write_text(f"# two of them\n{folder / 'a.mp4'}\n\n{os.path.relpath(folder / 'nested' / 'b.mov', tmp_path)}\n")
    outs = []
    for i in range(2):
        out = tmp_path / "out"
        rc, so, se = run(capsys, "restore", lst, out, "--checkpoint", ckpt["model"], "--shard", f"{i}/2",
                         "--format", "y4m", "--quiet")
        assert rc == 0 and so == "", se
        outs.append(sorted(_report(out / f"restore-report.{i}-of-2.tsv")))
    assert outs == [["a.mp4"], ["b.mov"]]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.y4m")) == ["a.y4m", "b.y4m"]


def test_batch_refusals(folder, ckpt, tmp_path, capsys):
    _refused(capsys, tmp_path, folder, tmp_path / "one.mkv", "--checkpoint", ckpt["model"],
             needles=("is a directory", "output directory"))
    _refused(capsys, tmp_path, folder / "a.mp4", tmp_path / "x.mkv", "--shard", "0/2", "--checkpoint", ckpt["model"],
             needles=("--shard", "folder or list"))
    _refused(capsys, tmp_path, folder, tmp_path / "o", "--shard", "2/2", "--checkpoint", ckpt["model"],
             needles=("--shard", "0 <= i < N"))
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(capsys, tmp_path, empty, tmp_path / "o", "--checkpoint", ckpt["model"], needles=("no video files found",))


# ---------------------------------------------------------------------- Keyframes-GAN


def _keyframes_checkpoint(path: Path, change: float) -> Path:
    import torch

    from pycodec.models import KeyframesConfig, KeyframesGenerator, save_checkpoint

    torch.manual_seed(0)
    net = KeyframesGenerator(KeyframesConfig.preset("tiny", backbone="mnv3_small"))
    if change:
        with torch.no_grad():  # the head's last conv starts at zero (output = input): make it change things
            net.head[-1].weight.normal_(0, change)
    return save_checkpoint(path, net, meta={"codec": "h264", "note": "test model"}, arch="keyframes")


@pytest.fixture(scope="module")
def kckpt(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keyframes-ckpt")
    return {"model": _keyframes_checkpoint(d / "kf.pt", 0.02), "identity": _keyframes_checkpoint(d / "kf0.pt", 0.0)}


def test_keyframes_streams_the_i_frames(media, kckpt, tmp_path, capsys):
    """--model keyframes: the bank takes the stream's I-frames (the clip has one, frame 0), every
    frame chooses it, and the summary says so; an identity generator leaves every frame as decoded."""
    rc, so, se = run(capsys, "restore", media["clip"], tmp_path / "k.mkv", "--model", "keyframes",
                     "--checkpoint", kckpt["model"], "--max-keyframes", "3")
    assert rc == 0, se
    assert "face 0 keyframes: 1 I-frames taken, 1 used, chosen 0:12" in so, so
    dec, res = planes(media["clip"]), planes(tmp_path / "k.mkv")
    assert len(res) == 12 and any((r != d).any() for r, d in zip(res, dec))
    s = pycodec.restore(media["small_face"], tmp_path / "k0.mkv", model="keyframes", checkpoint=kckpt["identity"],
                        progress=False, keyframe_policy="maxdist")
    assert s.mode == "scene" and s.keyframes[0]["policy"] == "maxdist"
    for r, d in zip(planes(tmp_path / "k0.mkv"), planes(media["small_face"])):
        np.testing.assert_array_equal(r, d)


def test_keyframes_refusals(media, ckpt, kckpt, tmp_path, capsys):
    _refused(capsys, tmp_path, media["clip"], tmp_path / "o.mkv", "--model", "keyframes", "--checkpoint", ckpt["model"],
             needles=("a mdvd checkpoint, not a keyframes one", "--model mdvd"))
    _refused(capsys, tmp_path, media["clip"], tmp_path / "o.mkv", "--checkpoint", kckpt["model"],
             needles=("a keyframes checkpoint", "--model keyframes"))
    _refused(capsys, tmp_path, media["clip"], tmp_path / "o.mkv", "--model", "keyframes", "--checkpoint",
             kckpt["model"], "--max-keyframes", "0", needles=("--max-keyframes 0",))
