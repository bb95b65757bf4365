"""Evaluate restorations of the shards of a ``make dataset`` manifest (MDVD-Net's protocol, models.md 1.6).

    python -m pipelines.evaluate --manifest DATA/manifest.jsonl --split test --settings h264-cbr60k \\
        --method decoded --method spp=6:8 --method model:runs/mdvd/best.pt --out runs/eval/NAME

Methods: ``decoded`` (the input as decoded), ``model:PATH`` (a checkpoint of :mod:`pycodec.models`;
``model:mdvd-h264`` names a shipped one; ``model-nobp:`` without back-projection), or an FFmpeg
filter chain (``spp=6:8``, ``pp7=qp={qscale}``, ``hqdn3d``, ``nlmeans``, ...: the post filters a
user would try, run by the ``ffmpeg`` program (``make peers`` installs it) on the decoded frames;
FFmpeg 5.1's filters cannot read H.264 QP tables, so ``{qp}`` / ``{qscale}`` put the shard's mean
QP (or QP >> 2, the MPEG-style scale FFmpeg used for H.264 tables) into the chain).  Per frame: Y-PSNR and Y-SSIM (peak 255, SSIM
with an 11-tap Gaussian, sigma 1.5), RGB PSNR and SSIM (BT.601 limited range, chroma upsampled by
swscale for the reference and the restoration alike), Y-PSNR of the upper and lower half of the
crop (Table 2); per video the mean over frames; per method the mean over videos, and its gain over
``decoded``.  Several settings (a rate sweep, Table 4) add a rate-distortion plot.

Writes ``OUT/frames.csv`` (per frame), ``OUT/videos.csv`` (per video and method), ``OUT/summary.md``
(the tables), ``OUT/summary.json`` and ``OUT/rd.png`` (several settings).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from pipelines.common import atomic_path, main_guard, progress
from pycodec.metrics import psnr, ssim

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]  # y (N,H,W), u, v (N,H/2,W/2) uint8


# ---------------------------------------------------------------------------- metrics
def to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One yuv420p frame (BT.601, limited range, as the dataset crops are) -> RGB uint8 (H, W, 3)."""
    import av

    h, w = y.shape
    buf = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(buf, format="yuv420p").to_ndarray(format="rgb24")


def frame_metrics(ref: Planes, out: Planes, t: int) -> dict[str, float]:
    """Every per-frame figure of :mod:`pipelines.evaluate` for frame ``t``."""
    ry, oy = ref[0][t], out[0][t]
    half = ry.shape[0] // 2
    rr, orr = to_rgb(ref[0][t], ref[1][t], ref[2][t]), to_rgb(out[0][t], out[1][t], out[2][t])
    return {"y_psnr": psnr(ry, oy), "y_ssim": ssim(ry, oy), "rgb_psnr": psnr(rr, orr),
            "rgb_ssim": ssim(rr, orr, channel_axis=2), "upper_psnr": psnr(ry[:half], oy[:half]),
            "lower_psnr": psnr(ry[half:], oy[half:]),
            "yuv_psnr": psnr(np.concatenate([ref[0][t].ravel(), ref[1][t].ravel(), ref[2][t].ravel()]),
                             np.concatenate([out[0][t].ravel(), out[1][t].ravel(), out[2][t].ravel()]))}


METRICS = ("y_psnr", "y_ssim", "rgb_psnr", "rgb_ssim", "upper_psnr", "lower_psnr", "yuv_psnr")


# ---------------------------------------------------------------------------- methods
def read_planes(f: h5py.File, group: str) -> Planes:
    return f[f"{group}/y"][:], f[f"{group}/u"][:], f[f"{group}/v"][:]


def ffmpeg_filter(planes: Planes, chain: str, fps: tuple[int, int] = (25, 1), stream: str | None = None) -> Planes:
    """Run an FFmpeg filter chain with the ``ffmpeg`` program (GPL filters such as spp and pp7 are not
    in PyAV's LGPL FFmpeg); same frame count out as in.  ``stream``: the encoded file the planes were
    decoded from; the filter then runs on FFmpeg's own decode of it with the decoder's QP table
    exported (``-export_side_data venc_params``), which spp/pp7/fspp use to set their strength
    (FFmpeg 5.1 takes only MPEG-2 QP tables, so with H.264 this fails).  Else the planes are piped in
    raw, as :func:`make_method` does: no QP table, so give pp7/fspp a strength (``{qscale}``)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("the ffmpeg program is not installed; run `make peers` (Debian: apt-get install ffmpeg)")
    y, u, v = planes
    n, h, w = y.shape
    head = [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", "1"]
    tail = ["-vf", chain, "-threads", "1", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]
    if stream is not None:
        cmd = [*head, "-export_side_data", "venc_params", "-i", stream, "-an", *tail]
        raw = b""
    else:
        cmd = [*head, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", f"{fps[0]}/{fps[1]}",
               "-i", "pipe:0", *tail]
        raw = b"".join(y[t].tobytes() + u[t].tobytes() + v[t].tobytes() for t in range(n))
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errs: list[bytes] = []

    def feed() -> None:
        assert p.stdin is not None
        try:
            p.stdin.write(raw)
        except BrokenPipeError:
            pass
        finally:
            p.stdin.close()

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    assert p.stdout is not None and p.stderr is not None
    data = p.stdout.read()
    errs.append(p.stderr.read())
    th.join()
    if p.wait() != 0:
        raise RuntimeError(f"ffmpeg -vf {chain!r} failed: {b''.join(errs).decode(errors='replace').strip()}")
    fs = h * w * 3 // 2
    if len(data) != n * fs:
        raise RuntimeError(f"ffmpeg -vf {chain!r} gave {len(data) // fs} frames for {n}")
    a = np.frombuffer(data, np.uint8).reshape(n, fs)
    return (a[:, :h * w].reshape(n, h, w), a[:, h * w:h * w + fs // 6].reshape(n, h // 2, w // 2),
            a[:, h * w + fs // 6:].reshape(n, h // 2, w // 2))


@dataclass
class Method:
    """A named way to restore a shard: ``run(shard_path, frames) -> planes`` of every frame; a
    model restores only the ``frames`` that are scored (the rest stay decoded), filters run on all."""

    name: str
    run: Callable[[str, Sequence[int]], Planes]  # (shard, frames scored) -> planes of every frame
    kind: str
    info: dict[str, Any] = field(default_factory=dict)


def model_method(spec: str, device: str = "cpu", batch: int = 4, bp: bool = True) -> Method:
    """``model:PATH`` or ``model:NAME`` (a shipped checkpoint) run on every frame of a shard."""
    import torch

    from pycodec import models
    from pycodec.models.fpenv import flushed_denormals
    from pycodec.models.inputs import dataset_kwargs, make_inputs
    from pycodec.nn import CodecWindowDataset, collate

    ref = spec.split(":", 1)[1]
    model, meta = models.load(ref, device=device)
    model.eval()

    def run(path: str, frames: Sequence[int]) -> Planes:
        with h5py.File(path, "r") as f:
            codec = f.attrs["codec"]
            codec = codec.decode() if isinstance(codec, bytes) else str(codec)
            out = read_planes(f, "decoded")  # frames not scored stay as decoded
        kw = dataset_kwargs(codec, train=False)
        ds = CodecWindowDataset(path, **kw)  # whole frames, no flips, no random crops; neighbours from the shard
        todo = list(frames)
        with torch.inference_mode(), flushed_denormals(torch.device(device).type == "cpu"):
            for i in range(0, len(todo), batch):
                idx = todo[i:i + batch]
                b = collate([ds[j] for j in idx])
                x = make_inputs(b, codec, bp=bp).to(device, torch.float32)
                o = model(x)
                for plane, k in zip(out, "yuv"):
                    plane[idx] = (o.planes[k].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        ds.close()
        return out

    name = os.path.splitext(os.path.basename(ref))[0] if os.path.sep in ref or ref.endswith(".pt") else ref
    return Method(f"model:{name}" + ("" if bp else "-nobp"), run, "model",
                  {"checkpoint": ref, "meta": meta, "bp": bp})


def make_method(spec: str, device: str = "cpu", batch: int = 4) -> Method:
    if spec == "decoded":
        return Method("decoded", lambda p, _frames: _read(p, "decoded"), "input")
    if spec.startswith("model:"):
        return model_method(spec, device, batch)
    if spec.startswith("model-nobp:"):
        return model_method("model:" + spec.split(":", 1)[1], device, batch, bp=False)

    def run(path: str, _frames: Sequence[int]) -> Planes:
        with h5py.File(path, "r") as f:
            fps = tuple(int(x) for x in f.attrs.get("fps", (25, 1)))
            planes = read_planes(f, "decoded")
            qp = round(float(np.mean(f["block/qp_y"][:]))) if "block/qp_y" in f else 26
        chain = spec.replace("{qp}", str(qp)).replace("{qscale}", str(max(1, qp >> 2)))
        return ffmpeg_filter(planes, chain, fps)  # type: ignore[arg-type]

    return Method(spec, run, "ffmpeg")


def _read(path: str, group: str) -> Planes:
    with h5py.File(path, "r") as f:
        return read_planes(f, group)


# ---------------------------------------------------------------------------- the run
def select(manifest: str, split: str, settings: Sequence[str], videos: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Manifest rows of ``split`` and ``settings`` (and ``videos`` when given), in manifest order."""
    if not os.path.isfile(manifest):
        raise FileNotFoundError(f"{manifest}: no such manifest; build the dataset with `make dataset`")
    root = os.path.dirname(os.path.abspath(manifest))
    rows = []
    with open(manifest) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r["split"] == split and r["setting"] in settings and (not videos or r["video"] in videos):
                r["path"] = os.path.join(root, r["shard"])
                rows.append(r)
    return rows


def evaluate(rows: list[dict[str, Any]], methods: list[Method], frame_step: int = 1,
             quiet: bool = False) -> Iterator[dict[str, Any]]:
    """Per (shard, method): per-frame metrics against ``gt/`` (every ``frame_step``-th frame)."""
    for r in rows:
        with h5py.File(r["path"], "r") as f:
            gt = read_planes(f, "gt")
            frames = int(f["frame/pts"].shape[0])
        ts = range(0, frames, frame_step)
        for m in methods:
            t0 = time.perf_counter()
            out = m.run(r["path"], ts)
            secs = time.perf_counter() - t0
            if out[0].shape != gt[0].shape:
                raise RuntimeError(f"{m.name} on {r['path']}: {out[0].shape} frames, ground truth {gt[0].shape}")
            ran = len(ts) if m.kind == "model" else frames
            bar = progress(len(ts), f"{r['video']} {r['setting']}: {m.name}", quiet)
            per = []
            for t in ts:
                per.append(frame_metrics(gt, out, t))
                bar.update(1)
            bar.close()
            yield {"video": r["video"], "identity": r["identity"], "setting": r["setting"],
                   "kbps": r.get("bitrate_kbps"), "method": m.name, "frames": frames, "restored": ran, "seconds": secs,
                   "per_frame": per}


def setting_key(setting: str) -> tuple[Any, ...]:
    """Settings in rate order: ``h264-cbr40k`` before ``h264-cbr100k`` (numbers compare as numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", setting))


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per video means, then per (setting, method) means over videos and gains over ``decoded``."""
    videos = []
    for r in results:
        v = {k: r[k] for k in ("video", "identity", "setting", "kbps", "method", "frames", "seconds")}
        v["fps"] = r.get("restored", r["frames"]) / r["seconds"] if r["seconds"] > 0 else float("inf")
        for m in METRICS:
            v[m] = float(np.mean([p[m] for p in r["per_frame"]]))
        videos.append(v)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for s in sorted({v["setting"] for v in videos}, key=setting_key):
        table[s] = {}
        base = {v["video"]: v for v in videos if v["setting"] == s and v["method"] == "decoded"}
        for m in dict.fromkeys(v["method"] for v in videos if v["setting"] == s):
            vs = [v for v in videos if v["setting"] == s and v["method"] == m]
            row = {k: float(np.mean([v[k] for v in vs])) for k in (*METRICS, "fps", "kbps") if vs[0].get(k) is not None}
            if base:
                for k in ("y_psnr", "rgb_psnr", "upper_psnr", "lower_psnr", "y_ssim"):
                    gains = [v[k] - base[v["video"]][k] for v in vs if v["video"] in base]
                    row[f"{k}_gain"] = float(np.mean(gains))
                    if k == "y_psnr":
                        row["y_psnr_gain_min"] = float(np.min(gains))
                        row["videos_better"] = int(sum(g > 0 for g in gains))
            row["videos"] = len(vs)
            table[s][m] = row
    return {"videos": videos, "table": table}


def markdown(summary: dict[str, Any]) -> str:
    lines = []
    for s, rows in summary["table"].items():
        lines += [f"### {s}", "",
                  "| method | Y-PSNR | gain | min gain | better | Y-SSIM | RGB-PSNR | gain | upper gain | lower gain | frames/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for m, r in rows.items():
            g = (lambda k, r=r: f"{r[k]:+.3f}" if k in r else "")
            lines.append(f"| {m} | {r['y_psnr']:.3f} | {g('y_psnr_gain')} | {g('y_psnr_gain_min')} | "
                         f"{r.get('videos_better', '')}/{r['videos']} | {r['y_ssim']:.4f} | {r['rgb_psnr']:.3f} | "
                         f"{g('rgb_psnr_gain')} | {g('upper_psnr_gain')} | {g('lower_psnr_gain')} | {r['fps']:.1f} |")
        lines.append("")
    lines += ["### per video (Y-PSNR)", "", "| setting | video | " + " | ".join(
        dict.fromkeys(v["method"] for v in summary["videos"])) + " |"]
    methods = list(dict.fromkeys(v["method"] for v in summary["videos"]))
    lines.append("|---|---|" + "---|" * len(methods))
    keys = list(dict.fromkeys((v["setting"], v["video"]) for v in summary["videos"]))
    by = {(v["setting"], v["video"], v["method"]): v for v in summary["videos"]}
    for s, vid in keys:
        lines.append(f"| {s} | {vid} | " + " | ".join(
            f"{by[(s, vid, m)]['y_psnr']:.3f}" if (s, vid, m) in by else "" for m in methods) + " |")
    return "\n".join(lines) + "\n"


def rd_plot(summary: dict[str, Any], path: str) -> None:
    """Y-PSNR against achieved kbit/s, one line per method (Table 4 as a picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    methods = list(dict.fromkeys(m for rows in summary["table"].values() for m in rows))
    for ax, key, label in ((axes[0], "y_psnr", "Y-PSNR (dB)"), (axes[1], "y_psnr_gain", "Y-PSNR gain over the decoded input (dB)")):
        for m in methods:
            pts = sorted((rows[m]["kbps"], rows[m][key]) for rows in summary["table"].values()
                         if m in rows and "kbps" in rows[m] and key in rows[m])
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m)
        ax.set_xlabel("achieved bit rate (kbit/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True, help="manifest.jsonl of `make dataset`")
    p.add_argument("--split", default="test")
    p.add_argument("--settings", nargs="+", required=True, help="e.g. h264-cbr60k (several: a rate sweep)")
    p.add_argument("--method", action="append", default=[], help="decoded | model:PATH|NAME | model-nobp:... | "
                   "an FFmpeg filter chain on the decoded frames (spp=6:8, pp7=qp={qscale}, hqdn3d, nlmeans; "
                   "{qp}: the shard's mean H.264/HEVC QP, {qscale}: QP >> 2, FFmpeg's MPEG-style scale); repeatable")
    p.add_argument("--videos", nargs="*", default=[], help="only these video ids")
    p.add_argument("--frame-step", type=int, default=1, help="score every k-th frame; models restore only those (neighbours still come from the clip), filters run on all")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    specs = a.method or ["decoded"]
    if "decoded" not in specs:
        specs = ["decoded", *specs]  # gains are over the decoded input
    if a.frame_step < 1:
        p.error("--frame-step must be >= 1")
    try:
        rows = select(a.manifest, a.split, a.settings, a.videos)
    except FileNotFoundError as exc:
        p.error(str(exc))
    if not rows:
        p.error(f"{a.manifest}: no shard of split {a.split!r} with settings {a.settings}")
    methods = [make_method(s, a.device, a.batch) for s in specs]
    os.makedirs(a.out, exist_ok=True)
    results = list(evaluate(rows, methods, a.frame_step, a.quiet))
    summary = summarise(results)
    with atomic_path(os.path.join(a.out, "frames.csv"), ".csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "setting", "method", "frame", *METRICS])
        for r in results:
            for i, pf in enumerate(r["per_frame"]):
                w.writerow([r["video"], r["setting"], r["method"], i * a.frame_step, *(f"{pf[m]:.4f}" for m in METRICS)])
    with atomic_path(os.path.join(a.out, "videos.csv"), ".csv") as tmp, open(tmp, "w", newline="") as f:
        keys = ["video", "identity", "setting", "kbps", "method", "frames", "seconds", "fps", *METRICS]
        w = csv.DictWriter(f, keys)
        w.writeheader()
        for v in summary["videos"]:
            w.writerow({k: v.get(k) for k in keys})
    info = {"manifest": os.path.abspath(a.manifest), "split": a.split, "settings": a.settings,
            "methods": [{"name": m.name, "kind": m.kind, **{k: v for k, v in m.info.items() if k != "meta"}}
                        for m in methods], "frame_step": a.frame_step}
    with atomic_path(os.path.join(a.out, "summary.json"), ".json") as tmp, open(tmp, "w") as f:
        json.dump({"run": info, "table": summary["table"], "videos": summary["videos"]}, f, indent=1, default=float)
    text = markdown(summary)
    with atomic_path(os.path.join(a.out, "summary.md"), ".md") as tmp, open(tmp, "w") as f:
        f.write(text)
    if len(a.settings) > 1:
        rd_plot(summary, os.path.join(a.out, "rd.png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
