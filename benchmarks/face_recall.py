"""Face detection recall and speed (docs/faces.md): on the shared clips as they are, and with their
frames shrunk so the face is a given width and placed into a larger frame (a webcam inset in a
screencast, a lecture hall).

Ground truth for a shrunk frame is the face box found on the clip's own frame (HOG at 2x, the CNN
where HOG finds nothing), scaled and moved with it. Compared: the old dataset search (the frame
shrunk to 640 px, HOG at 1x), ``pycodec.facedet.search_frame`` (HOG at the scale ``min_face``
needs), and the CNN detector on the same scaled frame (a few frames only: it is slow).

    .venv/bin/python benchmarks/face_recall.py ../shared/data/talking-heads/clips --frames 4
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pipelines.synthetic import screen_background
from pycodec import facedet as D
from pycodec.face import iou


def sample_frames(path: str, k: int) -> list[np.ndarray]:
    """``k`` grey frames spread evenly over the clip."""
    import av

    with av.open(path) as c:
        st = c.streams.video[0]
        n = st.frames or 0
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    n = len(frames) or n
    idx = np.linspace(0, n - 1, k + 2)[1:-1].round().astype(int)
    return [frames[i] for i in idx]


def truth_box(gray: np.ndarray) -> np.ndarray | None:
    """The clip's own face: the largest HOG detection at 2x, else the CNN's."""
    for find in (lambda g: D.hog(D.scaled(g, 2.0)), lambda g: D.cnn(D.scaled(g, 2.0))):
        d = find(gray)
        if len(d):
            d[:, :4] /= 2.0
            return d[int(np.argmax(d[:, 2] - d[:, 0])), :4]
    return None


def place(gray: np.ndarray, box: np.ndarray, face_w: float, canvas: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``gray`` scaled so ``box`` is ``face_w`` wide, pasted at a random place of ``canvas``."""
    import cv2

    k = face_w / (box[2] - box[0])
    pic = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    h, w = canvas.shape
    ph, pw = min(pic.shape[0], h), min(pic.shape[1], w)
    oy, ox = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    out = canvas.copy()
    out[oy:oy + ph, ox:ox + pw] = pic[:ph, :pw]
    return out, box * k + [ox, oy, ox, oy]


def old_search(gray: np.ndarray) -> np.ndarray:
    """The dataset search before: the frame shrunk to at most 640 px, HOG at 1x."""
    k = min(1.0, 640 / max(gray.shape))
    d = D.hog(D.scaled(gray, k))
    d[:, :4] /= k
    return d


def score(dets: np.ndarray, truth: np.ndarray) -> tuple[bool, int]:
    """(found, false positives)."""
    hits = [iou(truth, d[:4]) >= 0.4 for d in dets]
    return any(hits), len(hits) - int(any(hits))


def clip_frames(path: str, k: int) -> list[np.ndarray]:
    """The first ``k`` grey frames of a clip."""
    import av

    out = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="gray"))
            if len(out) == k:
                break
    return out


def track_run(clips: list[str], k: int, face_w: int, canvas: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Every frame of each clip's first ``k``: the reference face (HOG at 2x, else the CNN) on the
    clip's frame, and :class:`pycodec.tracks.FaceTracks` (every 5, whole frame every 25) on the frame
    placed at one spot of the large canvas with its face ``face_w`` wide."""
    from pycodec.tracks import FaceTracks

    hog_found = cnn_rescued = total = 0
    hits = ref_frames = 0
    secs = 0.0
    cnn_calls = 0
    for clip in clips:
        frames = clip_frames(clip, k)
        refs = []
        for g in frames:
            d = D.hog(D.scaled(g, 2.0))
            if len(d):
                hog_found += 1
                d[:, :4] /= 2.0
                refs.append(d[int(np.argmax(d[:, 2] - d[:, 0])), :4])
            else:
                c = D.cnn(D.scaled(g, 2.0))
                c[:, :4] /= 2.0
                cnn_rescued += bool(len(c))
                refs.append(c[int(np.argmax(c[:, 2] - c[:, 0])), :4] if len(c) else None)
            total += 1
        sides = [r[2] - r[0] for r in refs if r is not None]
        if not sides:
            continue
        kk = face_w / float(np.median(sides))
        import cv2

        h, w = canvas.shape
        first = cv2.resize(frames[0], None, fx=kk, fy=kk, interpolation=cv2.INTER_AREA)
        ph, pw = min(first.shape[0], h), min(first.shape[1], w)
        oy, ox = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        tracker = FaceTracks()
        t0 = time.perf_counter()
        for g in frames:
            img = canvas.copy()
            pic = cv2.resize(g, (first.shape[1], first.shape[0]), interpolation=cv2.INTER_AREA)
            img[oy:oy + ph, ox:ox + pw] = pic[:ph, :pw]
            tracker.add(img)
        tracks = tracker.finish(25.0)
        secs += time.perf_counter() - t0
        cnn_calls += tracker.cnn_calls
        for t, r in enumerate(refs):
            if r is None:
                continue
            ref_frames += 1
            rb = r * kk + [ox, oy, ox, oy]
            hits += any(tr.covers(t) and iou(tr.box(t), rb) >= 0.4 for tr in tracks)
    return [(f"Poses (every frame of the first {k} of each clip, HOG at 2x on the clip itself): HOG finds the face in "
            f"{hog_found / total:.1%} of {total} frames; the CNN finds it in {cnn_rescued} of the "
            f"{total - hog_found} others."),
            "",
            (f"Tracker (`FaceTracks`, defaults) on those frames placed in the {canvas.shape[1]}x{canvas.shape[0]} "
            f"frame with the face {face_w} px wide: the track box overlaps the reference (IoU >= 0.4) in "
            f"{hits / max(ref_frames, 1):.1%} of {ref_frames} frames with a reference; {1000 * secs / max(total, 1):.0f} ms "
            f"per frame ({cnn_calls} CNN region searches).")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("clips", help="folder of clips (*.mp4)")
    p.add_argument("--frames", type=int, default=4, help="frames per clip")
    p.add_argument("--widths", default="40,60,80,120", help="face widths (px) in the large frame")
    p.add_argument("--frame-size", default="1920x1080")
    p.add_argument("--cnn-frames", type=int, default=6, help="frames the CNN is timed and scored on")
    p.add_argument("--track-frames", type=int, default=100, help="frames per clip for the tracker and pose runs")
    p.add_argument("--track-width", type=int, default=60, help="face width (px) in the tracker run")
    p.add_argument("--out", default=None, help="write the markdown here too")
    a = p.parse_args()
    import cv2

    cv2.setNumThreads(1)
    fw, fh = (int(v) for v in a.frame_size.split("x"))
    widths = [int(w) for w in a.widths.split(",")]
    clips = sorted(glob.glob(os.path.join(a.clips, "*.mp4")))
    rng = np.random.default_rng(0)
    canvas = screen_background(fw, fh, 1)
    lines = []
    native = {"old": [], "new": []}
    rows: dict[tuple[str, int], list] = {}
    t_native: dict[str, float] = {"old": 0.0, "new": 0.0}
    n_native = 0
    cnn_budget = a.cnn_frames
    cnn_rows: dict[int, list] = {}
    no_truth = 0
    for clip in clips:
        for g in sample_frames(clip, a.frames):
            box = truth_box(g)
            for name, fn in (("old", old_search), ("new", D.search_frame)):
                t0 = time.perf_counter()
                d = fn(g)
                t_native[name] += time.perf_counter() - t0
                native[name].append(len(d) > 0)
            n_native += 1
            if box is None:
                no_truth += 1
                continue
            for w in widths:
                img, tb = place(g, box, w, canvas, rng)
                for name, fn in (("old", old_search), ("new", D.search_frame)):
                    t0 = time.perf_counter()
                    d = fn(img)
                    dt = time.perf_counter() - t0
                    rows.setdefault((name, w), []).append((*score(d, tb), dt))
                if cnn_budget > 0 and w == widths[0]:  # a 640x360 frame: the CNN takes seconds
                    img, tb = place(g, box, w, canvas[:360, :640], rng)
                    k = D.frame_scale(img.shape, D.DetectSettings())
                    t0 = time.perf_counter()
                    d = D.cnn(D.scaled(img, k))
                    dt = time.perf_counter() - t0
                    d[:, :4] /= k
                    cnn_rows.setdefault(w, []).append((*score(d, tb), dt))
            if cnn_budget > 0:
                cnn_budget -= 1
        print(f"{os.path.basename(clip)} done", file=sys.stderr)
    # a region search around a known face (what the tracker does between full searches)
    img, tb = place(sample_frames(clips[0], 1)[0], truth_box(sample_frames(clips[0], 1)[0]), widths[0], canvas, rng)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        D.search_near(img, tb)
    t_near = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    D.search_near(img, tb, use_cnn=True)
    t_near_cnn = time.perf_counter() - t0

    lines.append(f"`.venv/bin/python benchmarks/face_recall.py {a.clips} --frames {a.frames} --widths {a.widths} "
                 f"--frame-size {a.frame_size} --cnn-frames {a.cnn_frames}` on {time.strftime('%Y-%m-%d')}, "
                 f"{platform.machine()}, one thread, load average {os.getloadavg()[0]:.1f} at the end; "
                 f"{len(clips)} clips, {n_native} frames ({no_truth} without a reference box).")
    lines.append("")
    lines.append("Native frames (a face in every frame of these clips): share of frames with a face found, ms per frame")
    lines.append("")
    lines.append("| search | found | ms/frame |")
    lines.append("|---|---|---|")
    for name, label in (("old", "old: shrunk to 640 px, HOG 1x"), ("new", "facedet.search_frame (min_face 40)")):
        lines.append(f"| {label} | {np.mean(native[name]):.1%} | {1000 * t_native[name] / n_native:.0f} |")
    lines.append(f"| reference box (HOG 2x, else CNN 2x) | {1 - no_truth / n_native:.1%} | |")
    lines.append("")
    lines.append(f"Faces placed in a {fw}x{fh} screen-like frame: recall (IoU >= 0.4 with the placed box), "
                 "false positives per frame, ms per frame")
    lines.append("")
    lines.append("| face width (px) | old: recall | old: FP/frame | search_frame: recall | search_frame: FP/frame | search_frame ms/frame |")
    lines.append("|---|---|---|---|---|---|")
    for w in widths:
        o, n = np.array(rows[("old", w)]), np.array(rows[("new", w)])
        lines.append(f"| {w} | {o[:, 0].mean():.1%} | {o[:, 1].mean():.2f} | {n[:, 0].mean():.1%} | "
                     f"{n[:, 1].mean():.2f} | {1000 * n[:, 2].mean():.0f} |")
    for w, r in cnn_rows.items():
        r = np.array(r)
        lines.append("")
        lines.append(f"CNN (mmod) at the same scale (2x) on a 640x360 frame, {len(r)} frames with {w}-px faces: recall "
                     f"{r[:, 0].mean():.1%}, FP/frame {r[:, 1].mean():.2f}, {r[:, 2].mean():.1f} s per frame.")
    lines.append("")
    lines.append(f"Region search around a known {widths[0]}-px face: HOG {1000 * t_near:.1f} ms, "
                 f"CNN {1000 * t_near_cnn:.0f} ms.")
    lines += ["", *track_run(clips, a.track_frames, a.track_width, canvas, rng)]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
