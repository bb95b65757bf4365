"""Restoration speed: frames/s of MDVD-Net at 256x256 for each size (paper, compact, realtime), the
model alone (a batch built from a real x264 clip, with and without back-projection) and
``pycodec restore`` end to end (decode, extract, faces, MFCC, model, back-projection, FFV1 write).

Usage: .venv/bin/python benchmarks/bench_restore.py [--threads 2] [--frames 50] [--device cpu]
       [--out docs/benchmarks.md]

The figures go into docs/benchmarks.md between the ``restore`` markers (the rest of the file is
``benchmarks/bench.py``'s).  Weights are random (speed does not depend on them); each figure is the
median of ``--reps`` timed runs after a warm-up, on a machine that may be shared (load printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEGIN, END = "<!-- restore: benchmarks/bench_restore.py -->", "<!-- /restore -->"
SIZES = ("paper", "compact", "realtime")


def clip(path: str, frames: int, size: int = 256, kbps: int = 60) -> str:
    """A talking-face crop (pycodec.samples.TalkingHead) at ``size``, x264 CBR ``kbps``, AAC speech."""
    import av

    from pipelines.synthetic import bursts_audio
    from pycodec.samples import TalkingHead

    scene = TalkingHead(size * 2, size * 2, 25, 0)
    sound = bursts_audio(frames / 25, ((0.4, 0.9),))
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        v.options = {"b": f"{kbps}k", "maxrate": f"{kbps}k", "bufsize": f"{kbps}k", "preset": "medium",
                     "x264-params": "threads=1:nal-hrd=cbr"}
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for t in range(frames):
            img = scene.frame(t)
            h, w = img.shape[:2]
            img = img[h // 4:h // 4 + size, w // 2 - size // 2:w // 2 + size // 2]  # the face, as a crop
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = t
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        for i in range(0, sound.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, i:i + 1024]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, i
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path


def model_batch(path: str, batch: int, tmp: str) -> tuple[dict, str]:
    """A collated batch of ``batch`` whole frames of ``path``, as the model reads them (the fields of
    pycodec.models.fields; MFCCs and landmarks zero: their values do not change the speed)."""
    import h5py

    from pycodec import cli
    from pycodec.models import dataset_kwargs
    from pycodec.models import fields as FL
    from pycodec.nn import CodecWindowDataset, collate

    h5 = os.path.join(tmp, "in.h5")
    if cli.main(["extract", path, h5, "-q", "--overwrite"]) != 0:
        raise RuntimeError(f"pycodec extract {path} failed")
    with h5py.File(h5, "a") as f:
        n = f["frame/pts"].shape[0]
        f["audio/mfcc"] = np.zeros((n, 4, 13), np.float32)
        f["landmarks/decoded"] = np.full((n, 68, 2), 128, np.float32)
    kw = dataset_kwargs("h264", train=False)
    kw["center_fields"] = FL.center_fields("h264")
    ds = CodecWindowDataset(h5, **kw)
    return collate([ds[t] for t in range(n // 2, n // 2 + batch)]), "h264"


def timed(fn, reps: int) -> float:
    fn()  # warm-up (allocations, plans)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=50, help="frames of the end-to-end clip")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", nargs="+", default=list(SIZES))
    p.add_argument("--model-only", nargs="*", default=["paper"],
                   help="sizes timed on the model alone, one run (the paper size takes seconds per frame on a CPU)")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    a = p.parse_args(argv)

    import torch

    from pycodec.models import MDVDConfig, MDVDNet, make_inputs, save_checkpoint
    from pycodec.restore import restore

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # a process of its own; restore() flushes too
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = clip(os.path.join(tmp, "in.mp4"), a.frames)
        batch, codec = model_batch(src, a.batch, tmp)
        for size in a.sizes:
            cfg = MDVDConfig.preset(size)
            net = MDVDNet(cfg).eval().to(a.device)
            x = make_inputs(batch, codec, bp=True).to(a.device, torch.float32)

            def fwd(with_bp: bool, net=net, x=x) -> None:
                with torch.inference_mode():
                    net(x if with_bp else replace(x, bp=None), clamp=False)
                if a.device == "cuda":
                    torch.cuda.synchronize()

            reps = a.reps if size not in a.model_only else 1
            t_nobp = timed(lambda: fwd(False), reps)
            t_bp = timed(lambda: fwd(True), reps)
            e2e_fps = float("nan")
            if size not in a.model_only:
                ck = save_checkpoint(os.path.join(tmp, f"{size}.pt"), net, cfg, meta={"codec": codec})
                t0 = time.perf_counter()
                s = restore(src, os.path.join(tmp, f"out-{size}.mkv"), checkpoint=ck, device=a.device,
                            progress=False, overwrite=True, batch_size=a.batch)
                e2e_fps = s.frames / (time.perf_counter() - t0)
            params = sum(p.numel() for p in net.parameters())
            rows.append((size, params, a.batch / t_nobp, a.batch / t_bp, e2e_fps))
            print(f"{size}: {params / 1e6:.2f} M parameters, model {a.batch / t_nobp:.2f} frames/s, with BP "
                  f"{a.batch / t_bp:.2f}, pycodec restore end to end {e2e_fps:.1f} frames/s", flush=True)
    load = os.getloadavg()
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"{platform.processor() or platform.machine()}, " \
        f"{a.threads} threads (torch {torch.__version__})"
    text = [BEGIN, "", f"## Restoration speed (MDVD-Net, 256x256, {a.device})", "",
            (f"`.venv/bin/python benchmarks/bench_restore.py --threads {a.threads} --device {a.device}` on "
            f"{dt.date.today()}, {dev}; load average {load[0]:.1f} at the end. Model: batches of {a.batch} whole "
            f"frames built from a real x264 60 kbit/s clip, median of {a.reps} runs; end to end: `pycodec "
            f"restore` of a {a.frames}-frame 256x256 clip with audio to FFV1 (decoding, extraction, face "
            "tracking, MFCC, model, back-projection, writing). Random weights (speed does not depend on them)."),
            "", "| size | parameters | model frames/s | model + back-projection | pycodec restore end to end |",
            "|---|---|---|---|---|"]
    text += [f"| {s} | {p / 1e6:.2f} M | {f1:.2f} | {f2:.2f} | {'not run' if math.isnan(f3) else f'{f3:.1f}'} |"
             for s, p, f1, f2, f3 in rows]
    text += ["", END]
    block = "\n".join(text) + "\n"
    out = Path(a.out)
    old = out.read_text() if out.exists() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    tmp_out = out.with_name("." + out.name + ".tmp")
    tmp_out.write_text(new)
    tmp_out.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
