"""Step 1, per source video: decode, track the face, crop and resize, keep a lossless copy, the
audio at 16 kHz, the ground-truth landmarks and the MFCCs.

    python -m pipelines.prepare SRC WORKDIR [--size 256] [--margin 1.8] ...

Writes into WORKDIR: ``crop.mkv`` (FFV1, yuv420p, the ground truth every encode starts from),
``audio.wav`` (16 kHz mono, sample 0 = first video frame), ``track.npz`` (frame times, crop and
face boxes, ground-truth landmarks, MFCCs) and ``prep.json`` (the status Make tracks).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from fractions import Fraction
from typing import Any

import numpy as np

from pipelines import audio, face
from pipelines.common import StepFailure, atomic_path, main_guard, progress, run_step

DEFAULTS = {"size": 256, "detect_every": 1, "scan_every": 25, "min_face": 40, "min_frames": 25}


def _open(src: str) -> Any:
    import av

    try:
        c = av.open(src)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise StepFailure("unreadable", f"{src}: cannot be opened as a video ({exc})") from exc
    if not c.streams.video:
        c.close()
        raise StepFailure("no-video", f"{src}: has no video stream")
    c.streams.video[0].thread_type = "NONE"
    c.streams.video[0].codec_context.thread_count = 1
    return c


def _frames(src: str, limit: int | None = None) -> Any:
    """Decoded video frames of ``src`` in display order; a decoding error ends the sequence
    (the frames before it are kept; the second pass stops at the same frame)."""
    import av

    c = _open(src)
    try:
        n = 0
        it = c.decode(video=0)
        while limit is None or n < limit:
            try:
                f = next(it)
            except StopIteration:
                return
            except (av.error.FFmpegError, ValueError) as exc:
                if n == 0:
                    raise StepFailure("unreadable", f"{src}: no frame could be decoded ({exc})") from exc
                return
            n += 1
            yield f
    finally:
        c.close()


def _probe(src: str) -> tuple[Fraction, bool]:
    """The frame rate of ``src`` and whether it has an audio stream; fails fast (before the slow
    passes) without a rate."""
    with _open(src) as c:
        st = c.streams.video[0]
        rate = st.average_rate or st.guessed_rate or st.base_rate
        has_audio = bool(c.streams.audio)
    if not rate or rate <= 0:
        raise StepFailure("unreadable", f"{src}: the frame rate is unknown")
    return Fraction(rate).limit_denominator(1001), has_audio


def prepare(src: str, work: str, size: int, settings: face.TrackSettings, detect_every: int,
            scan_every: int, min_face: int, min_frames: int, quiet: bool = False,
            label: str = "") -> dict[str, Any]:
    """Run step 1 (module docstring); return the facts recorded in ``prep.json``."""
    import av

    from pycodec.facedet import DetectSettings
    from pycodec.tracks import FaceTracks, TrackerSettings

    fps, has_audio = _probe(src)
    # pass 1: frame times and face detections (pycodec restore's tracker: faces of min_face pixels
    # and up at any frame size, searched around the known faces every detect_every frames)
    tracker = FaceTracks(DetectSettings(min_face=min_face), TrackerSettings(every=detect_every, scan_every=scan_every))
    times: list[float] = []
    dets: list[np.ndarray] = []
    attempted: list[bool] = []
    width = height = 0
    clock = {"t": time.perf_counter()}
    timings: dict[str, float] = {}

    def lap(name: str) -> None:  # seconds per sub-step, for `make bench`
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock["t"], 4)
        clock["t"] = now

    bar = progress(None, f"{label or os.path.basename(src)}: detect", quiet)
    for t, fr in enumerate(_frames(src)):
        width, height = fr.width, fr.height
        times.append(float(fr.pts * fr.time_base) if fr.pts is not None and fr.time_base else t / float(fps))
        dets.append(tracker.add(fr.to_ndarray(format="gray")))
        attempted.append(tracker.searched[-1])
        bar.update(1)
    bar.close()
    lap("decode+detect")
    n = len(times)
    if n < min_frames:
        raise StepFailure("too-short", f"{src}: {n} frames, fewer than the {min_frames} required (--min-frames)")
    # No audio stream, or one that decodes to nothing: silence of the video's length, so the clip
    # still trains (the speech branch sees silence features); prep.json says which.
    x = audio.read_audio(src, start=times[0]) if has_audio else None
    audio_source = "stream" if x is not None and len(x) else "silence"
    if audio_source == "silence":
        x = np.zeros(round((n / float(fps)) * audio.SAMPLE_RATE), np.float32)
    level_db = audio.level_db(x)
    lap("audio")
    face_box, crop_box = face.track(dets, float(fps), settings, np.array(attempted))
    rel = np.asarray(times) - times[0]

    # pass 2: crop, resize, lossless copy, ground-truth landmarks
    lm = np.zeros((n, 68, 2), np.float32)
    face_crop = np.stack([np.concatenate([face.to_crop_coords(face_box[t, :2], crop_box[t], size),
                                          face.to_crop_coords(face_box[t, 2:], crop_box[t], size)])
                          for t in range(n)]).astype(np.float32)
    mkv = os.path.join(work, "crop.mkv")
    bar = progress(n, f"{label or os.path.basename(src)}: crop", quiet)
    with atomic_path(mkv, ".mkv") as tmp, av.open(tmp, "w", format="matroska") as out:
        st = out.add_stream("ffv1", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        st.codec_context.thread_count = 1
        st.options = {"level": "3", "g": "1", "slicecrc": "1"}
        for t, fr in enumerate(_frames(src, n)):
            rgb = fr.to_ndarray(format="rgb24")
            sq = face.crop_square(rgb, crop_box[t])
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(sq), format="rgb24")
            vf = vf.reformat(width=size, height=size, format="yuv420p", interpolation="AREA")
            y = vf.to_ndarray()[:size]
            lm[t] = face.landmarks(y, face_crop[t])
            vf.pts, vf.time_base = t, 1 / fps
            for p in st.encode(vf):
                out.mux(p)
            bar.update(1)
        for p in st.encode():
            out.mux(p)
    bar.close()
    lap("crop+landmarks")
    feats = audio.frame_mfcc(x, rel)
    with atomic_path(os.path.join(work, "audio.wav"), ".wav") as tmp:
        audio.write_wav(tmp, x)
    with atomic_path(os.path.join(work, "track.npz"), ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, times=rel, crop_box=crop_box.astype(np.float32), face_box=face_box.astype(np.float32),
                 face_box_crop=face_crop, landmarks=lm, mfcc=feats,
                 detected=np.array([len(d) > 0 for d in dets]), attempted=np.array(attempted))
    lap("mfcc")
    found = sum(len(d) > 0 for d in dets)
    return {"frames": n, "fps": [fps.numerator, fps.denominator], "duration_s": n / float(fps),
            "source_width": width, "source_height": height, "size": size,
            "audio_s": round(len(x) / audio.SAMPLE_RATE, 3), "audio": audio_source,
            "audio_level_db": round(level_db, 1), "speech": bool(audio_source == "stream" and level_db > audio.AUDIBLE_DB),
            "face_frac": round(found / max(1, sum(attempted)), 4),
            "shots": len(face.segments(face.choose_faces(dets), settings.cut_iou)),
            "track": asdict(settings), "detect_every": detect_every, "scan_every": scan_every,
            "min_face": min_face, "timings": timings}


def add_args(p: argparse.ArgumentParser) -> None:
    d = face.TrackSettings()
    p.add_argument("--size", type=int, default=DEFAULTS["size"], help="crop side in pixels (even)")
    p.add_argument("--margin", type=float, default=d.margin, help="crop side / face box side")
    p.add_argument("--smooth", type=float, default=d.smooth_s, help="smoothing sigma of the crop, seconds")
    p.add_argument("--min-face-frac", type=float, default=d.min_face_frac)
    p.add_argument("--detect-every", type=int, default=DEFAULTS["detect_every"],
                   help="search around the faces found every K frames")
    p.add_argument("--scan-every", type=int, default=DEFAULTS["scan_every"],
                   help="search the whole frame (new faces, shot changes) every K frames")
    p.add_argument("--min-face", type=int, default=DEFAULTS["min_face"],
                   help="smallest face side (pixels of the source) the whole-frame search finds")
    p.add_argument("--min-frames", type=int, default=DEFAULTS["min_frames"])


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="source video (any container/codec FFmpeg reads)")
    p.add_argument("work", help="work directory of this video")
    p.add_argument("--video-id", default=None)
    p.add_argument("--identity", default=None)
    p.add_argument("--quiet", action="store_true")
    add_args(p)
    a = p.parse_args(argv)
    if a.size <= 0 or a.size % 2:
        p.error(f"--size {a.size}: must be a positive even number (4:2:0)")
    if a.detect_every < 1 or a.scan_every < 1:
        p.error("--detect-every and --scan-every must be >= 1")
    if a.min_face < 8:
        p.error(f"--min-face {a.min_face}: faces below 8 pixels cannot be found")
    os.makedirs(a.work, exist_ok=True)
    vid = a.video_id or os.path.splitext(os.path.basename(a.src))[0]
    settings = face.TrackSettings(margin=a.margin, smooth_s=a.smooth, min_face_frac=a.min_face_frac)
    ctx = {"video": vid, "identity": a.identity or vid, "source": os.path.abspath(a.src)}
    return run_step("prepare", os.path.join(a.work, "prep.json"),
                    lambda: prepare(a.src, a.work, a.size, settings, a.detect_every, a.scan_every,
                                    a.min_face, a.min_frames, a.quiet, vid), ctx,
                    lambda r: f"{r['frames']} frames ({r['duration_s']:.1f} s), face found in "
                              f"{r['face_frac']:.1%} of the frames searched, {r['shots']} shot(s)")


if __name__ == "__main__":
    sys.exit(main())
