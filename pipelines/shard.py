"""Step 2, per (source video, codec, setting): encode the crop, extract it with pycodec, find the
landmarks on the decoded frames, and write one HDF5 training shard.

    python -m pipelines.shard WORKDIR SHARD.h5 --codec h264 --setting 80k [--gop 0] [--preset medium]

The shard is a ``pycodec/1`` file (every field ``pycodec extract`` writes) plus the groups in
docs/schema.md "Dataset shards": ``gt/{y,u,v}``, ``landmarks/{gt,decoded}``, ``face/{box,detected}``,
``audio/mfcc``, ``crop/box``, ``keyframes/iframe`` and the encoding's attributes.  It appears only
when complete (written to a temporary name, then renamed); the status goes to ``SHARD.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from pipelines import audio, face
from pipelines.common import StepFailure, atomic_path, main_guard, progress, read_json, run_step
from pipelines.encode import EncodeSetting, encode, parse_setting

SHARD_SCHEMA = "pycodec-dataset/1"


def _gt_planes(path: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lossless crop's frames as (N, H, W), (N, H/2, W/2) x 2 uint8 planes."""
    import av

    with av.open(path) as c:
        st = c.streams.video[0]
        st.codec_context.thread_count = 1
        h, w = st.height, st.width
        y = np.empty((n, h, w), np.uint8)
        u = np.empty((n, h // 2, w // 2), np.uint8)
        v = np.empty_like(u)
        k = 0
        for fr in c.decode(st):
            if k == n:
                break
            a = fr.to_ndarray()  # yuv420p: (3H/2, W)
            y[k] = a[:h]
            u[k] = a[h:h + h // 4].reshape(h // 2, w // 2)
            v[k] = a[h + h // 4:].reshape(h // 2, w // 2)
            k += 1
    if k != n:
        raise RuntimeError(f"{path}: {k} frames, expected {n}")
    return y, u, v


def _like(f: h5py.File, name: str, data: np.ndarray, ref: str) -> None:
    """Create ``name`` with the chunking and compression of dataset ``ref`` (same layout as decoded/)."""
    r = f[ref]
    f.create_dataset(name, data=data, chunks=r.chunks, compression=r.compression,
                     compression_opts=r.compression_opts, shuffle=r.shuffle)


def _small(f: h5py.File, name: str, data: np.ndarray, **attrs: Any) -> None:
    ds = f.create_dataset(name, data=data, compression="gzip", compression_opts=4, shuffle=True)
    for k, v in attrs.items():
        ds.attrs[k] = v


def build_shard(work: str, out: str, s: EncodeSetting, fields: str, quiet: bool = False) -> dict[str, Any]:
    """Run step 2 (module docstring); return the facts recorded in the status file."""
    import pycodec.cli

    prep = read_json(os.path.join(work, "prep.json"))
    vid = prep.get("video", os.path.basename(work))
    if prep["status"] != "ok":
        raise StepFailure(prep["reason"], f"not encoded: preparing the source failed ({prep['message']})",
                          upstream=True)
    tr = np.load(os.path.join(work, "track.npz"))
    n = int(prep["frames"])
    mp4 = os.path.join(work, s.name + ".mp4")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:  # seconds per sub-step, for `make bench`
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 4)
        t0 = now

    enc = encode(os.path.join(work, "crop.mkv"), mp4, s, quiet, vid)
    lap("encode")
    if enc["frames"] != n:
        raise RuntimeError(f"{mp4}: encoded {enc['frames']} frames, the crop has {n}")
    with atomic_path(out, ".h5") as tmp:
        argv = ["extract", mp4, tmp, "--quiet", "--writer-thread", "off", "--decode-ahead", "0"]  # parallel: make -j
        if fields != "all":
            argv += ["--fields", fields]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = pycodec.cli.main(argv)
        if rc > 128:  # stopped by a signal (SIGINT, SIGTERM, SIGHUP): this step stops too, nothing kept
            raise KeyboardInterrupt
        if rc != 0:
            raise RuntimeError(f"pycodec extract {mp4} failed: {err.getvalue().strip()}")
        lap("extract")
        with h5py.File(tmp, "a") as f:
            if f["frame/pts"].shape[0] != n:
                raise RuntimeError(f"{mp4}: pycodec decoded {f['frame/pts'].shape[0]} frames, expected {n}")
            dec_y = f["decoded/y"][:]
            boxes = tr["face_box_crop"]
            lm_dec = np.zeros((n, 68, 2), np.float32)
            bar = progress(n, f"{vid}: {s.name} landmarks", quiet)
            for t in range(n):
                lm_dec[t] = face.landmarks(dec_y[t], boxes[t])
                bar.update(1)
            bar.close()
            lap("landmarks")
            gy, gu, gv = _gt_planes(os.path.join(work, "crop.mkv"), n)
            for name, plane in (("y", gy), ("u", gu), ("v", gv)):
                _like(f, f"gt/{name}", plane, f"decoded/{name}")
            xy = "x, y in pixels of the crop (pixel centres at integers), 68-point iBUG order"
            _small(f, "landmarks/gt", tr["landmarks"], description="dlib on gt/y; " + xy)
            _small(f, "landmarks/decoded", lm_dec, description="dlib on decoded/y, same face box; " + xy)
            _small(f, "face/box", boxes, description="x0, y0, x1, y1 in crop pixels: the tracked face "
                   "rectangle given to the landmark predictor")
            _small(f, "face/detected", tr["detected"], description="the detector found the face in this "
                   "frame (else the box is interpolated)")
            _small(f, "crop/box", tr["crop_box"], description="x0, y0, x1, y1 in source pixels of the square "
                   "cut before resizing to the crop size (outside the frame: edge pixels repeated)")
            _small(f, "audio/mfcc", tr["mfcc"], **{k: v for k, v in audio.MfccSettings().attrs().items()})
            iframes_mask = f["frame/type"][:] == ord("I")
            iframes = int(iframes_mask.sum())
            _small(f, "keyframes/iframe", iframes_mask,
                   description="frame/type is I: the reference frames Keyframes-GAN takes")
            _small(f, "frame/time", tr["times"].astype(np.float64), description="seconds after the first frame")
            attrs = {
                "dataset_schema": SHARD_SCHEMA, "video_id": vid, "identity": prep.get("identity", vid),
                "source_video": prep.get("source", ""), "setting": s.name, "rate_mode": s.mode,
                "rate_value": s.value, "bitrate_kbps": enc["bitrate_kbps"], "gop": enc["gop"],
                "preset": s.preset, "encoder": enc["encoder"],
                "encoder_options": json.dumps(enc["encoder_options"], sort_keys=True),
                "crop_size": int(prep["size"]), "fps": np.asarray(prep["fps"], np.int64),
                "track": json.dumps(prep["track"], sort_keys=True),
                # "stream": audio/mfcc is the clip's sound; "silence": it had none (features of silence)
                "audio": prep.get("audio", "stream"), "speech": bool(prep.get("speech", True)),
            }
            if s.mode == "cbr":
                attrs["bitrate_target_kbps"] = s.value
            for k, v in attrs.items():
                f.attrs[k] = v
    lap("assemble")
    return {"timings": timings, "shard": os.path.abspath(out), "frames": n, "setting": s.name, "codec": s.codec,
            "mode": s.mode, "value": s.value, "bitrate_kbps": enc["bitrate_kbps"], "gop": enc["gop"],
            "iframes": iframes,
            "bytes": os.path.getsize(out)}


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.shard", description=__doc__.split("\n\n")[0])
    p.add_argument("work", help="work directory written by pipelines.prepare")
    p.add_argument("out", help="shard .h5 to write")
    p.add_argument("--codec", choices=["h264", "hevc"], default="h264")
    p.add_argument("--setting", required=True, help="CBR rate such as 80k, or crf32")
    p.add_argument("--gop", type=int, default=0, help="frames between I-frames (0: one second)")
    p.add_argument("--preset", default="medium")
    p.add_argument("--fields", default="all", help="pycodec extract fields (default all)")
    p.add_argument("--status", default=None, help="status file (default: OUT with .json)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    s = parse_setting(a.codec, a.setting, a.gop, a.preset)
    if not os.path.isfile(os.path.join(a.work, "prep.json")):
        print(f"error: {a.work}: no prep.json; run pipelines.prepare on the source first", file=sys.stderr)
        return 2
    prep = read_json(os.path.join(a.work, "prep.json"))
    status = a.status or os.path.splitext(a.out)[0] + ".json"
    ctx = {"video": prep.get("video"), "identity": prep.get("identity"), "setting": s.name, "codec": s.codec}
    return run_step("shard", status, lambda: build_shard(a.work, a.out, s, a.fields, a.quiet), ctx,
                    lambda r: f"{r['setting']}: {r['frames']} frames, {r['bitrate_kbps']:.1f} kbit/s, "
                              f"{r['iframes']} I-frames, {r['bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
