"""`make dataset` end to end, on a real talking-face clip with sound (Megamind.avi from Debian's
opencv-doc, fetched by scripts/fetch_samples.sh and cached in build/samples) and on a generated
one (the astronaut photo moving and zooming, tone bursts as speech), next to inputs that must be
reported and skipped: corrupted, faceless, soundless, too short; and a screencast whose speaker is
a small webcam inset (the face ~75 px of 1280x720).

One build with -j 1 and -k; a second, into another folder, as two Slurm-style slices (SHARD=0/2,
1/2) with -j 2 and a final run for the manifest: both must give the same shards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import ROOT

SIZE = 128
ARGS = ["CODECS=h264 hevc", "RATES=80k", f"SIZE={SIZE}"]
SAMPLES = os.environ.get("PYCODEC_SAMPLES", str(ROOT / "build" / "samples"))
BAD = {"bad__corrupt": "unreadable", "bad__noface": "no-face", "bad__short": "too-short"}
# mute__: no audio stream; cast__: a 1280x720 screencast whose webcam inset has a ~75-px face
GOOD = ("cast__screencast", "gen__astronaut", "megamind__Megamind", "mute__Megamind_bugy")
BURSTS = ((1.0, 1.4), (2.0, 2.4))
PATHLIKE = {"source", "source_video"}  # attributes that name files (differ between two folders)


def make(*args: str, cwd: str = str(ROOT)) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


def _sample(name: str) -> str:
    p = os.path.join(SAMPLES, name)
    if not os.path.exists(p):  # fetch (apt-get download opencv-doc) and cache
        subprocess.run([str(ROOT / "scripts" / "fetch_samples.sh"), SAMPLES], check=True, capture_output=True)
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from pipelines.synthetic import face_clip, faceless_clip, screencast_clip

    src = tmp_path_factory.mktemp("src")
    for d in ("megamind", "gen", "bad", "mute", "cast"):
        (src / d).mkdir()
    screencast_clip(src / "cast" / "screencast.mp4", frames=40)
    shutil.copy(_sample("Megamind.avi"), src / "megamind" / "Megamind.avi")
    shutil.copy(_sample("Megamind_bugy.avi"), src / "mute" / "Megamind_bugy.avi")
    face_clip(src / "gen" / "astronaut.mp4", frames=75, bursts=BURSTS)
    face_clip(src / "bad" / "short.mp4", frames=10)
    faceless_clip(src / "bad" / "noface.mp4")
    (src / "bad" / "corrupt.mp4").write_bytes(np.random.default_rng(3).bytes(50_000))
    out1 = tmp_path_factory.mktemp("out_j1")
    r1 = make("-k", "-j1", "dataset", f"SRC={src}", f"OUT={out1}", *ARGS)
    return {"src": src, "out": out1, "run": r1}


def shards(out) -> list[str]:
    with open(os.path.join(out, "manifest.jsonl")) as f:
        return [os.path.join(out, json.loads(line)["shard"]) for line in f]


def test_manifest_failures_and_summary(built):
    r = built["run"]
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (built["out"] / "manifest.jsonl").read_text().splitlines()]
    assert sorted((x["video"], x["setting"]) for x in rows) == sorted(
        (v, s) for v in GOOD for s in ("h264-cbr80k", "hevc-cbr80k"))
    assert all(x["identity"] == x["video"].split("__")[0] for x in rows)
    lines = (built["out"] / "failures.tsv").read_text().splitlines()[1:]
    fails = {line.split("\t")[0]: line.split("\t")[2] for line in lines if line.split("\t")[1] == "-"}
    assert fails == BAD
    # progress per video and the closing table
    assert "prepare megamind__Megamind: 270 frames" in r.stderr
    assert "shard gen__astronaut: hevc-cbr80k: 75 frames" in r.stderr
    for v in (*GOOD, *BAD):
        assert v in r.stdout
    assert "2 videos" not in r.stdout and "7 videos, 8 shards" in r.stdout
    assert not list(built["out"].rglob(".*.tmp")) and not list(built["out"].rglob("*.log"))


def test_a_small_webcam_face_in_a_screencast_gives_a_shard(built):
    """The face (about 75 px in 1280x720) is found in every frame and the crop is around the inset."""
    work = built["out"] / "work" / "cast__screencast"
    prep = json.loads((work / "prep.json").read_text())
    assert prep["status"] == "ok" and prep["face_frac"] == 1.0 and prep["source_width"] == 1280
    box = np.load(work / "track.npz")["face_box"]
    side = box[:, 2] - box[:, 0]
    assert 60 < side.min() and side.max() < 95  # the inset is 224 px, the face a third of it
    inset = (1280 - 224 - 24, 720 - 224 - 24, 1280 - 24, 720 - 24)
    assert (box[:, 0] > inset[0]).all() and (box[:, 1] > inset[1]).all()
    assert (box[:, 2] < inset[2]).all() and (box[:, 3] < inset[3]).all()


@pytest.fixture(scope="module")
def opened(built):
    files = {os.path.relpath(p, built["out"]): h5py.File(p, "r") for p in shards(built["out"])}
    yield files
    for f in files.values():
        f.close()


def test_shards_are_pycodec_files_with_aligned_extras(opened):
    import pycodec.store

    for name, f in opened.items():
        n = f["frame/pts"].shape[0]
        assert f.attrs["schema"] == "pycodec/1" and f.attrs["dataset_schema"] == "pycodec-dataset/1"
        assert f.attrs["codec"] == name.split("/")[2].split("-")[0]
        assert n == (270 if "Megamind" in name else 40 if "screencast" in name else 75)
        assert f["gt/y"].shape == f["decoded/y"].shape == (n, SIZE, SIZE)
        assert f["gt/u"].shape == f["decoded/u"].shape == (n, SIZE // 2, SIZE // 2)
        for k, shape in (("landmarks/gt", (n, 68, 2)), ("landmarks/decoded", (n, 68, 2)), ("audio/mfcc", (n, 4, 13)),
                         ("crop/box", (n, 4)), ("face/box", (n, 4)), ("face/detected", (n,)),
                         ("keyframes/iframe", (n,)), ("frame/time", (n,))):
            assert f[k].shape == shape, k
        # ground truth and decoded frames are the same pictures, in the same order
        gt, dec = f["gt/y"][:].astype(float), f["decoded/y"][:].astype(float)
        same = np.median([((gt[t] - dec[t]) ** 2).mean() for t in range(n)])
        shifted = np.median([((gt[t] - dec[t + 2]) ** 2).mean() for t in range(n - 2)])
        assert 10 * np.log10(255 ** 2 / same) > 25 and shifted > 3 * same, name
        # I-frames every GOP (one second) frames, as the flags say
        iframes = np.flatnonzero(f["keyframes/iframe"][:])
        assert iframes.tolist() == list(range(0, n, int(f.attrs["gop"])))
        np.testing.assert_array_equal(f["keyframes/iframe"][:], f["frame/type"][:] == ord("I"))
        with pycodec.store.open_h5(f.filename) as h:  # the toolkit reads it like any extracted file
            assert len(h) == n and "decoded" in h.groups
        frame = pycodec.store.read_frame(f.filename, n // 2, ["decoded/y", "gt/y"])
        np.testing.assert_array_equal(frame["decoded/y"], f["decoded/y"][n // 2])


def test_cbr_bitrate_within_15_percent(opened):
    for name, f in opened.items():
        target, got = f.attrs["bitrate_target_kbps"], f.attrs["bitrate_kbps"]
        assert abs(got - target) <= 0.15 * target, (name, got)
        # the same figure from the decoder's own packet sizes
        fps = f.attrs["fps"][0] / f.attrs["fps"][1]
        from_packets = f["frame/pkt_bytes"][:].sum() * 8 / (f["frame/pts"].shape[0] / fps) / 1000
        assert abs(from_packets - got) <= 0.01 * got, name


def test_landmarks_land_on_the_generated_face(opened):
    from skimage import data

    from pipelines import face
    from pycodec.samples import TalkingHead

    grey = (data.astronaut() @ [0.299, 0.587, 0.114]).astype(np.uint8)
    ref = face.landmarks(grey, face.detect(grey, 1)[0])  # on the still photo
    scene = TalkingHead(480, 272, 25, 0)
    f = opened["shards/gen__astronaut/h264-cbr80k.h5"]
    box, lm = f["crop/box"][:], f["landmarks/gt"][:]
    err = np.stack([np.linalg.norm(face.to_crop_coords(scene.to_frame(ref, t), box[t], SIZE) - lm[t], axis=1)
                    for t in range(len(lm))])
    assert np.median(err) < 2.0 and err.mean(1).max() < 3.0, (np.median(err), err.mean(1).max())
    assert f["face/detected"][:].all()


def test_landmarks_on_megamind(opened):
    f = opened["shards/megamind__Megamind/h264-cbr80k.h5"]
    det = f["face/detected"][:]
    assert det.mean() > 0.9
    gt, dec = f["landmarks/gt"][:][det], f["landmarks/decoded"][:][det]
    assert gt.min() > -SIZE * 0.1 and gt.max() < SIZE * 1.1  # on the crop
    centre = gt.mean(1)
    assert np.all(np.abs(centre - SIZE / 2) < SIZE * 0.2)  # the crop is centred on the face
    d = np.linalg.norm(gt - dec, axis=2)
    assert 0 < d.mean() < 3.0  # compression moves them a little, not away


def test_mfcc_follows_the_generated_speech(opened):
    c0 = opened["shards/gen__astronaut/hevc-cbr80k.h5"]["audio/mfcc"][:, :, 0]
    loud = np.flatnonzero(c0.min(1) > (c0.max() + c0.min()) / 2)
    # frames whose 4 MFCC steps (40 ms around the frame time) lie inside a burst: through AAC,
    # 44.1 kHz stereo resampling and the encoder's priming delay
    assert loud.tolist() == list(range(26, 35)) + list(range(51, 60))


def test_a_clip_without_audio_trains_on_silence(opened):
    mute = opened["shards/mute__Megamind_bugy/h264-cbr80k.h5"]
    loud = opened["shards/megamind__Megamind/h264-cbr80k.h5"]
    assert (mute.attrs["audio"], bool(mute.attrs["speech"])) == ("silence", False)
    assert loud.attrs["audio"] == "stream" and bool(loud.attrs["speech"])
    c = mute["audio/mfcc"][:]
    assert np.isfinite(c).all() and np.ptp(c, axis=(0, 1)).max() == 0  # the same vector every step
    assert np.ptp(loud["audio/mfcc"][:, :, 0]) > 1


def test_rerun_does_nothing(built):
    before = {p: os.stat(p).st_mtime_ns for p in shards(built["out"])}
    r = make("dataset", f"SRC={built['src']}", f"OUT={built['out']}", *ARGS)
    assert r.returncode == 0
    assert "prepare " not in r.stderr and "shard " not in r.stderr
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
    # dropping a codec from the list rebuilds nothing either: only the manifest changes
    r = make("dataset", f"SRC={built['src']}", f"OUT={built['out']}", "CODECS=h264", *ARGS[1:])
    assert r.returncode == 0 and "shard " not in r.stderr and "prepare " not in r.stderr
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
    assert {json.loads(x)["codec"] for x in (built["out"] / "manifest.jsonl").read_text().splitlines()} == {"h264"}
    r = make("dataset", f"SRC={built['src']}", f"OUT={built['out']}", *ARGS)  # and back, for the tests below
    assert r.returncode == 0 and "shard " not in r.stderr
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
    assert make("-q", "-f", str(built["out"] / "dataset.mk"), "all").returncode == 0


def _same_h5(a: str, b: str) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert names_a == names_b
        for k in names_a:
            if isinstance(fa[k], h5py.Dataset):
                np.testing.assert_array_equal(fa[k][()], fb[k][()], err_msg=k)
        skip = PATHLIKE
        assert {k: str(v) for k, v in fa.attrs.items() if k not in skip} == \
            {k: str(v) for k, v in fb.attrs.items() if k not in skip}


def test_slices_with_j2_give_the_same_shards(built, tmp_path_factory):
    out2 = tmp_path_factory.mktemp("out_slices")
    for s in ("0/2", "1/2"):
        r = make("-j2", "dataset", f"SRC={built['src']}", f"OUT={out2}", f"SHARD={s}", *ARGS)
        assert r.returncode == 0, r.stderr[-2000:]
        assert not (out2 / "manifest.jsonl").exists()  # a slice writes no manifest
    r = make("-j2", "dataset", f"SRC={built['src']}", f"OUT={out2}", *ARGS)
    assert r.returncode == 0 and "prepare " not in r.stderr and "shard " not in r.stderr  # all built by the slices
    def rows(out):  # file sizes differ by the length of the path attributes
        return [{k: v for k, v in json.loads(line).items() if k != "bytes"} for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert rows(out2) == rows(built["out"])
    for p in shards(built["out"]):
        _same_h5(p, str(out2 / os.path.relpath(p, built["out"])))
    # a missing shard is rebuilt alone
    gone = out2 / "shards" / "gen__astronaut" / "hevc-cbr80k.json"
    gone.unlink()
    r = make("-j2", "dataset", f"SRC={built['src']}", f"OUT={out2}", *ARGS)
    assert r.returncode == 0 and r.stderr.count("shard ") == 1 and "prepare " not in r.stderr


def test_torch_dataset_reads_the_shards(built):
    import torch

    from pycodec.nn import MIRROR_68, CodecWindowDataset, collate, shards_from_manifest

    paths = shards_from_manifest(built["out"] / "manifest.jsonl", codec="h264")
    assert len(paths) == len(GOOD)
    fields = ("decoded/y", "gt/y", "audio/mfcc", "block/mv_l0", "prediction/y")
    center = ("landmarks/decoded", "landmarks/gt", "keyframes/iframe")
    plain = CodecWindowDataset(paths, fields=fields, center_fields=center, n=2, windows={"audio/mfcc": 10})
    flipped = CodecWindowDataset(paths, fields=fields, center_fields=center, n=2, windows={"audio/mfcc": 10},
                                 hflip=1.0)
    s, m = plain[100], flipped[100]
    assert s["decoded/y"].shape == (5, SIZE, SIZE) and s["audio/mfcc"].shape == (21, 4, 13)
    with h5py.File(s["file"], "r") as f:
        np.testing.assert_array_equal(s["audio/mfcc"], f["audio/mfcc"][s["frame"] - 10:s["frame"] + 11])
        np.testing.assert_array_equal(s["landmarks/gt"], f["landmarks/gt"][s["frame"]])
    np.testing.assert_array_equal(m["gt/y"], s["gt/y"][..., ::-1])
    lm, lf = s["landmarks/gt"], m["landmarks/gt"]
    np.testing.assert_allclose(lf[:, 0], SIZE - 1 - lm[MIRROR_68, 0])
    np.testing.assert_allclose(lf[:, 1], lm[MIRROR_68, 1])
    assert lf[36:42, 0].mean() < lf[42:48, 0].mean()  # the subject's right eye stays on the image left
    batch = collate([plain[i] for i in range(3)])
    assert batch["audio/mfcc"].shape == (3, 21, 4, 13) and batch["gt/y"].dtype == torch.uint8
    # crops move the points with the picture
    cropped = CodecWindowDataset(paths[:1], fields=("gt/y",), center_fields=("landmarks/gt",), crop=(64, 64),
                                 random_crop=False)
    c = cropped[5]
    y0, x0 = c["offset"]
    with h5py.File(paths[0], "r") as f:
        np.testing.assert_allclose(c["landmarks/gt"], f["landmarks/gt"][5] - [x0, y0])
        np.testing.assert_array_equal(c["gt/y"][2], f["gt/y"][5, y0:y0 + 64, x0:x0 + 64])


def test_evaluate_scores_the_shards_against_their_ground_truth(built, tmp_path):
    """pipelines.evaluate on real shards: the decoded input scores what the metrics give directly,
    FFmpeg's own decode of the encoded stream equals the shard's decoded planes, a filter peer runs."""
    from pipelines import evaluate as ev

    rows = [json.loads(x) for x in (built["out"] / "manifest.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["video"] == "gen__astronaut" and r["setting"] == "h264-cbr80k")
    import torch

    from pycodec.models import MDVDConfig, MDVDNet, save_checkpoint

    torch.manual_seed(0)  # an untrained MDVD-Net: its output is the decoded frame (last layer at zero)
    cfg = MDVDConfig.preset("realtime", channels=8, deform_groups=2, lstm_hidden=8, lstm_layers=1, landmarks="raw")
    ck = save_checkpoint(tmp_path / "untrained.pt", MDVDNet(cfg), meta={"codec": "h264"})
    out = tmp_path / "eval"
    argv = ["--manifest", str(built["out"] / "manifest.jsonl"), "--split", row["split"], "--settings", "h264-cbr80k",
            "--videos", "gen__astronaut", "--method", "hqdn3d", "--method", f"model-nobp:{ck}",
            "--method", f"model:{ck}", "--frame-step", "5", "--out", str(out), "--quiet"]
    assert ev.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    table = summary["table"]["h264-cbr80k"]
    assert table["model:untrained-nobp"]["y_psnr"] == table["decoded"]["y_psnr"]  # identity, exactly
    # back-projecting the decoded frame moves it only where the loop filter moved it from the recon
    assert abs(table["model:untrained"]["y_psnr"] - table["decoded"]["y_psnr"]) < 1.0
    path = str(built["out"] / row["shard"])
    with h5py.File(path, "r") as f:
        gt, dec = ev.read_planes(f, "gt"), ev.read_planes(f, "decoded")
        src = f.attrs["source"]
    want = np.mean([ev.psnr(gt[0][t], dec[0][t]) for t in range(0, len(gt[0]), 5)])
    assert table["decoded"]["y_psnr"] == pytest.approx(want, abs=1e-9)
    assert table["decoded"]["y_psnr_gain"] == 0 and "hqdn3d" in table
    assert table["hqdn3d"]["y_psnr"] != table["decoded"]["y_psnr"]
    assert (out / "summary.md").read_text().count("gen__astronaut") == 1
    ffm = ev.ffmpeg_filter(dec, "null", stream=src)  # Debian's FFmpeg decoding the shard's stream
    assert all(np.array_equal(a, b) for a, b in zip(ffm, dec))
    # a model restores only the scored frames, each as a run over every frame restores it (other
    # batches: float rounding may move a sample by one level at a .5 boundary, nothing more)
    net = MDVDNet(cfg)
    with torch.no_grad():
        for prm in net.parameters():
            if not prm.any():  # the zero-initialised heads: give the net something to change
                prm.normal_(0, 0.05)
    moved = ev.make_method(f"model:{save_checkpoint(tmp_path / 'moved.pt', net, meta={'codec': 'h264'})}")
    n = len(dec[0])
    full, some = moved.run(path, range(n)), moved.run(path, range(1, n, 4))
    for k in range(3):
        diff = np.abs(some[k][1::4].astype(int) - full[k][1::4])
        assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 10000, (diff.max(), np.count_nonzero(diff))
        kept = np.setdiff1d(np.arange(n), np.arange(1, n, 4))
        np.testing.assert_array_equal(some[k][kept], dec[k][kept])
    assert not np.array_equal(full[0], dec[0])
    # a missing manifest: one line, exit 2
    r = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "--manifest", str(tmp_path / "none.jsonl"),
                        "--settings", "h264-cbr80k", "--out", str(tmp_path / "x")], check=False, cwd=str(ROOT),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no such manifest" in r.stderr and not (tmp_path / "x").exists()
