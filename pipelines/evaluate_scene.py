"""Face-region gain of ``pycodec restore`` per face size, on people the model never saw: each clip's
frames scaled so the face is W pixels wide and placed as a webcam inset in a screen-like frame (the
ground truth, lossless), encoded with x264, restored (scene mode: window, model, paste-back), and
scored with ``pycodec compare`` against the ground truth in the face region (1.8 x the face box)
and over the whole frame.

    python -m pipelines.evaluate_scene --clips ../shared/data/talking-heads/clips \\
        --videos lp_d14,mead_m030,w2lgfpgan_kim,xportrait_driving --widths 48,64,96,142 \\
        --frames 40 --setting crf30 --out runs/eval-scene/NAME

Writes ``OUT/rows.csv`` (per clip and width) and ``OUT/summary.md`` (mean per width). The clip's
audio is muxed into the encode (the speech branch hears it); the work files stay in ``OUT/work``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from pipelines.common import main_guard
from pipelines.encode import encode, parse_setting
from pipelines.synthetic import screen_background

MARGIN = 24  # the inset's distance from the frame's bottom-right corner


def clip_frames(path: str, n: int) -> tuple[list[np.ndarray], Fraction]:
    """The first ``n`` RGB frames of ``path`` and its frame rate."""
    import av

    out = []
    with av.open(path) as c:
        st = c.streams.video[0]
        rate = Fraction(st.average_rate or st.guessed_rate or 25).limit_denominator(1001)
        for f in c.decode(st):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out, rate


def face_side(rgb: np.ndarray) -> float:
    """The clip's face width (HOG at 2x on the first frame, the CNN if HOG finds none)."""
    from pycodec import facedet as D

    g = (rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)
    for find in (D.hog, D.cnn):
        d = find(D.scaled(g, 2.0))
        if len(d):
            return float(np.max(d[:, 2] - d[:, 0])) / 2.0
    raise RuntimeError("no face on the clip's first frame")


def composite(frames: list[np.ndarray], k: float, size: tuple[int, int]) -> list[np.ndarray]:
    """The frames scaled by ``k`` as an inset at the bottom right of a screen-like ``size`` frame
    (cut to the frame when larger)."""
    import cv2

    w, h = size
    screen = np.repeat(screen_background(w, h)[..., None], 3, -1)
    out = []
    for f in frames:
        pic = cv2.resize(f, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        ph, pw = min(pic.shape[0], h - 2 * MARGIN), min(pic.shape[1], w - 2 * MARGIN)
        oy, ox = (pic.shape[0] - ph) // 2, (pic.shape[1] - pw) // 2
        img = screen.copy()
        img[h - MARGIN - ph:h - MARGIN, w - MARGIN - pw:w - MARGIN] = pic[oy:oy + ph, ox:ox + pw]
        out.append(img)
    return out


def write_lossless(path: str, frames: list[np.ndarray], rate: Fraction) -> str:
    """FFV1 yuv420p in Matroska (the ground truth)."""
    import av

    with av.open(path, "w", format="matroska") as out:
        st = out.add_stream("ffv1", rate=rate)
        st.height, st.width = frames[0].shape[:2]
        st.pix_fmt = "yuv420p"
        for t, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = t, 1 / rate
            for p in st.encode(vf):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path


def add_audio(video: str, source: str, out: str, seconds: float) -> bool:
    """``video``'s stream with ``source``'s first audio stream (packets copied, up to ``seconds``)
    in the MP4 ``out``; False (``video`` copied as is) when the source has no audio MP4 holds."""
    import av

    with av.open(video) as v, av.open(source) as s, av.open(out, "w", format="mp4") as o:
        vs = o.add_stream_from_template(v.streams.video[0])
        a_in = s.streams.audio[0] if s.streams.audio else None
        ok = a_in is not None and a_in.codec_context.name in ("aac", "mp3", "opus")
        a_out = o.add_stream_from_template(a_in) if ok else None
        for p in v.demux(v.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                o.mux(p)
        if ok:
            for p in s.demux(a_in):
                if p.dts is None or p.pts is None:
                    continue
                if float(p.pts * p.time_base) > seconds:
                    break
                p.stream = a_out
                o.mux(p)
    return ok


def evaluate(clip: str, width: int, n: int, setting: str, size: tuple[int, int], work: str,
             checkpoint: str | None) -> dict[str, Any]:
    """One clip at one face width (module docstring)."""
    from pycodec import restore
    from pycodec.compare import compare

    os.makedirs(work, exist_ok=True)
    frames, rate = clip_frames(clip, n)
    k = width / face_side(frames[0])
    gt = write_lossless(os.path.join(work, "gt.mkv"), composite(frames, k, size), rate)
    s = parse_setting("h264", setting)
    raw = os.path.join(work, "video.mp4")
    info = encode(gt, raw, s, quiet=True)
    enc = os.path.join(work, "enc.mp4")
    audio = add_audio(raw, clip, enc, len(frames) / float(rate))
    res = os.path.join(work, "restored.mkv")
    t0 = time.perf_counter()
    summary = restore(enc, res, checkpoint=checkpoint, overwrite=True, progress=False)
    secs = time.perf_counter() - t0
    cmp = compare(enc, res, reference=gt, progress=False)
    fa, fb = cmp.sides["A"].figures(), cmp.sides["B"].figures()
    return {"video": os.path.splitext(os.path.basename(clip))[0], "face_px": width, "frames": len(frames),
            "mode": summary.mode, "tracks": summary.faces, "face_frames": cmp.face_frames,
            "audio": "stream" if audio else "none", "kbps": info["bitrate_kbps"],
            "decoded_face_psnr": fa["face_y_psnr"], "restored_face_psnr": fb["face_y_psnr"],
            "face_gain": fb["face_y_psnr"] - fa["face_y_psnr"], "face_ssim_gain": fb["face_y_ssim"] - fa["face_y_ssim"],
            "frame_gain": fb["y_psnr"] - fa["y_psnr"], "restore_fps": len(frames) / secs}


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [(f"Face-region Y-PSNR gain of `pycodec restore` (scene mode) per face width; x264 {args.setting}, "
             f"{args.frame_size} screen-like frame, first {args.frames} frames of {len({r['video'] for r in rows})} "
             f"clips; model {args.checkpoint or 'shipped mdvd-h264'}."), "",
             ("| face width (px) | clips | decoded face Y-PSNR | restored | face gain (dB) | min | face SSIM gain | "
             "whole-frame gain | restore frames/s |"), "|---|---|---|---|---|---|---|---|---|"]
    for w in sorted({r["face_px"] for r in rows}):
        rs = [r for r in rows if r["face_px"] == w]
        g = [r["face_gain"] for r in rs]
        lines.append(f"| {w} | {len(rs)} | {np.mean([r['decoded_face_psnr'] for r in rs]):.3f} | "
                     f"{np.mean([r['restored_face_psnr'] for r in rs]):.3f} | {np.mean(g):+.3f} | {min(g):+.3f} | "
                     f"{np.mean([r['face_ssim_gain'] for r in rs]):+.4f} | {np.mean([r['frame_gain'] for r in rs]):+.3f} | "
                     f"{np.mean([r['restore_fps'] for r in rs]):.2f} |")
    lines += ["", "| clip | face px | mode | tracks | audio | kbit/s | decoded | restored | gain |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['video']} | {r['face_px']} | {r['mode']} | {r['tracks']} | {r['audio']} | {r['kbps']:.0f} | "
                     f"{r['decoded_face_psnr']:.3f} | {r['restored_face_psnr']:.3f} | {r['face_gain']:+.3f} |")
    return "\n".join(lines) + "\n"


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.evaluate_scene", description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", required=True, help="folder of the clips")
    p.add_argument("--videos", required=True, help="comma-separated clip names (people the model never saw)")
    p.add_argument("--widths", default="48,64,96,142", help="face widths in pixels (142: the training crops' own)")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--setting", default="crf30", help="x264 setting (80k: CBR, crf30: CRF)")
    p.add_argument("--frame-size", default="1280x720")
    p.add_argument("--checkpoint", default=None, help="default: the shipped mdvd-h264")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    size = tuple(int(v) for v in a.frame_size.split("x"))
    rows = []
    from tqdm import tqdm

    jobs = [(v, int(w)) for v in a.videos.split(",") for w in a.widths.split(",")]
    for v, w in tqdm(jobs, desc="scene eval", unit="run"):
        clip = os.path.join(a.clips, v if os.path.splitext(v)[1] else f"{v}.mp4")
        rows.append(evaluate(clip, w, a.frames, a.setting, size, os.path.join(a.out, "work", f"{v}-{w}"), a.checkpoint))
        print(f"{v} {w}px: face gain {rows[-1]['face_gain']:+.3f} dB", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "rows.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    text = markdown(rows, a)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
