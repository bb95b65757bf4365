"""The inference engine behind ``pycodec restore``: restore the faces of a compressed video with a
model of :mod:`pycodec.models` and write the result as video, with the input's audio.

The input is decoded twice with pycodec's own decoder, in memory (nothing is extracted to disk):

1. luma only: every face is followed (:class:`pycodec.tracks.FaceTracks`, searched around every
   ``detect_every`` frames); one face spanning a quarter of the frame in most of the video makes
   it a *face crop*, restored whole (below); otherwise each face is restored in a window and
   pasted back (*scene mode*, :mod:`pycodec.scene`); a video without a face is refused here;
2. every field the model reads (:mod:`pycodec.models.fields`): for each frame t a *sample* is built
   exactly as :class:`pycodec.nn.CodecWindowDataset` returns it from a ``make dataset`` shard
   (windows of frames t-2..t+2 and MFCC steps t-10..t+10 with the edges replicated, the centre
   frame's codec data, ``landmarks/decoded`` found on the decoded frame, ``offset``); samples are
   batched with :func:`pycodec.nn.collate`, turned into the model's inputs
   (:func:`pycodec.models.make_inputs`) and restored.

The models work on ``cfg.frame_size`` (256) pixel crops, as the dataset's are.  A crop of another
size is scaled to that for the model (frames, prediction, residual, motion fields scaled per axis,
landmarks, block maps) and the restored picture scaled back; back-projection then runs at the
native size with the native coefficients, since it needs the codec's own block grid.

The output's extension picks its format (:data:`FORMATS`); the video has the input's frame count,
order, frame rate and timestamps, and the input's audio packets are copied unchanged where the
container can hold them (else re-encoded, and the summary says so).  The file is written under a
temporary name in the output's directory and renamed when complete; any error or signal removes it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

import pycodec

from . import face as F
from . import facedet as D
from . import scene as SC
from . import tracks as TR
from ._optional import require
from .errors import PycodecError
from .models import fields as FL

MODELS = ("mdvd", "keyframes")
POLICIES = ("lfu", "maxdist")
DEVICES = ("cpu", "cuda")
# output extension -> (what it is, FFmpeg muxer, video encoder, encoder options)
FORMATS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    ".mkv": ("FFV1 lossless in Matroska", "matroska", "ffv1", {"level": "3", "g": "1", "slicecrc": "1"}),
    ".mp4": ("H.264 CRF 12 in MP4", "mp4", "libx264", {"crf": "12", "preset": "medium"}),
    ".y4m": ("raw YUV4MPEG2, video only", "yuv4mpegpipe", "rawvideo", {}),
}
MIN_FACE_FRAC = 0.5   # a face in fewer of the searched frames than this: not a face crop
MIN_FACE_SIZE = 0.25  # detected face side / frame's larger side below this: not a face crop (~0.55 in crops)
DETECT_EVERY = 5
SCAN_EVERY = 25       # frames between whole-frame face searches (new faces)
BATCH_SIZE = 4


class RestoreError(PycodecError):
    """A restoration that cannot be done; one line "<path>: <what is wrong>; <what to do>"."""


@dataclass(frozen=True)
class RestoreSummary:
    """What :func:`restore` did: frames restored, wall time, speed, and the mean absolute change it
    made to the luma (8-bit levels, over every pixel of every frame)."""

    source: str
    output: str
    frames: int
    seconds: float
    mean_abs_change_y: float
    codec: str = ""
    size: tuple[int, int] = (0, 0)  # width, height
    model: str = ""
    device: str = "cpu"
    bp: bool = True
    audio: str = ""
    face_found: float = 0.0  # crop mode: fraction of the searched frames with a face
    format: str = ""
    mode: str = "crop"       # 'crop' (the video is a face crop) or 'scene' (faces pasted back)
    faces: int = 1           # face tracks restored
    face_frames: int = 0     # frames with at least one face restored (the others are as decoded)
    keyframes: tuple[dict[str, Any], ...] = ()  # model 'keyframes': each face's KeyframeBank.stats()

    @property
    def frames_per_s(self) -> float:
        """Frames restored per second of wall time (decoding, faces and writing included)."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        """The one-line summary ``pycodec restore`` prints."""
        return (f"pycodec restore: {self.source} -> {self.output}: {self.frames} frames, "
                f"{self.frames_per_s:.2f} frames/s ({self.seconds:.1f} s), mean change in Y "
                f"{self.mean_abs_change_y:.2f} (8-bit levels), model {self.model} on {self.device}"
                f"{'' if self.bp else ', no back-projection'}, audio {self.audio}"
                + ("" if self.mode == "crop" else
                   f"; {self.faces} face track(s) restored in {self.face_frames} frames, pasted back")
                + "".join(f"; face {i} keyframes: {k['added']} I-frames taken, {k['used']} used, chosen "
                          + ", ".join(f"{f}:{c}" for f, c in sorted(k["chosen"].items()) if c)
                          for i, k in enumerate(self.keyframes)))


# ---------------------------------------------------------------------- checks


def _check_output(src: str, dst: str, overwrite: bool) -> str:
    """The output's extension after the path checks of ``pycodec extract`` (RestoreError)."""
    from .store import StoreError, check_replaceable, same_file

    if dst.endswith(("/", os.sep)):
        raise RestoreError(f"{dst}: names a directory (ends with '/'); give a file name such as {dst}restored.mkv")
    ext = os.path.splitext(dst)[1].lower()
    if ext not in FORMATS:
        kinds = ", ".join(f"{e} ({FORMATS[e][0]})" for e in FORMATS)
        raise RestoreError(f"{dst}: unknown output extension {ext or '(none)'!r}; end the name with one of {kinds}")
    if os.path.lexists(dst) and not overwrite:
        raise RestoreError(f"{dst}: already exists; pass --overwrite to replace it")
    if not os.path.lexists(src):
        raise RestoreError(f"{src}: no such file; check the path")
    if os.path.isdir(src):
        raise RestoreError(f"{src}: is a directory; give a video file")
    if same_file(src, dst):
        raise RestoreError(f"{dst}: is the input file; give another output path (the input is never overwritten)")
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise RestoreError(f"{dst}: directory {folder} does not exist; create it first")
    try:
        check_replaceable(dst)
    except StoreError as exc:
        raise RestoreError(str(exc)) from None
    return ext


def _check_report(path: str, src: str, dst: str) -> str:
    """A report path pycodec may write: .html or .png, in an existing folder, not the input or output."""
    from .report import REPORT_EXTS

    if not path.lower().endswith(REPORT_EXTS):
        raise RestoreError(f"{path}: a report is .html or .png; e.g. --report report.html")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RestoreError(f"{path}: directory {folder} does not exist; create it first")
    for other in (src, dst):
        if os.path.abspath(path) == os.path.abspath(other):
            raise RestoreError(f"{path}: the report would overwrite {other}; give the report another name")
    return path


def _check_device(device: str) -> Any:
    """The torch device for ``device`` ('cpu', 'cuda', 'cuda:N'); RestoreError when unusable."""
    torch = require("torch", "pycodec restore")
    name = str(device)
    if name.split(":")[0] not in DEVICES:
        raise RestoreError(f"--device {name}: unknown device; use cpu or cuda")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise RestoreError(f"--device {name}: CUDA is not available ({why}); use --device cpu")
        idx = int(name.split(":")[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise RestoreError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices; "
                               "use --device cuda or cuda:0")
    return torch.device(name)


def _probe(src: str) -> dict[str, Any]:
    """The input's stream information, refusing what the models cannot take (before the model
    loads: opening a reader checks that a frame decodes)."""
    info = dict(pycodec.info(src))
    codec = str(info.get("codec", "?"))
    if codec not in ("h264", "hevc"):
        raise RestoreError(f"{src}: video codec is {codec}, not H.264 or HEVC; re-encode it with libx264 or "
                           "libx265 (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
    if int(info.get("bit_depth", 8)) != 8 or str(info.get("chroma_format", "420")) != "420":
        raise RestoreError(f"{src}: {info.get('bit_depth')}-bit {info.get('chroma_format')} video; the restoration "
                           "models take 8-bit 4:2:0 for now: re-encode it (e.g. -pix_fmt yuv420p)")
    with pycodec.open(src, fields="frame"):
        pass
    return info


def load_model(model: str, checkpoint: str | os.PathLike | None, codec: str, device: Any) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, meta): ``checkpoint`` when given, else the shipped ``{model}-{codec}``;
    a checkpoint of another architecture than ``model`` is refused."""
    if model not in MODELS:
        raise RestoreError(f"--model {model}: unknown model; choose one of {', '.join(MODELS)}")
    require("torch", "pycodec restore")
    from . import models

    if checkpoint is not None:
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise RestoreError(f"{path}: no such checkpoint file; check the --checkpoint path")
        if not os.access(path, os.R_OK):
            raise RestoreError(f"{path}: checkpoint is not readable (permission denied); check its permissions")
        source = path if os.sep in path else os.path.join(".", path)
    else:
        source = f"{model}-{codec}"
        if source not in models.available():
            raise RestoreError(f"{source}: no trained {model} checkpoint for {codec} ships with this pycodec yet "
                               f"(pycodec/weights/{source}.pt); pass one with --checkpoint PATH (pipelines/train.py "
                               "writes them)")
    try:
        net, meta = models.load(source, device)
    except models.CheckpointError as exc:
        raise RestoreError(" ".join(str(exc).split())) from None
    arch = "keyframes" if type(net).__name__ == "KeyframesGenerator" else "mdvd"
    if arch != model:
        raise RestoreError(f"{source}: a {arch} checkpoint, not a {model} one; pass --model {arch} or another checkpoint")
    return net, meta


# ---------------------------------------------------------------------- pass 1: frame times and the face


@dataclass
class _Scan:
    """What the first pass learned: timestamps, frame times (s from the first), the faces; ``mode``
    'crop' (the video is a face crop: ``track`` follows it) or 'scene' (faces restored in windows
    and pasted back: ``tracks``)."""

    pts: list[int | None]
    times: np.ndarray
    tracks: list[TR.Track]
    mode: str
    track: F.FaceTrack | None
    size: tuple[int, int]


def _crop_track(tr: TR.Track, searched: np.ndarray, n: int, size: tuple[int, int]) -> F.FaceTrack:
    """A :class:`pycodec.tracks.Track` as the whole-video :class:`pycodec.face.FaceTrack` of the
    crop mode (boxes held before its start and after its end)."""
    idx = np.clip(np.arange(n) - tr.start, 0, len(tr.boxes) - 1)
    detected = np.zeros(n, bool)
    detected[tr.start:tr.end] = tr.detected
    return F.FaceTrack(tr.boxes[idx], searched.copy(), detected & searched, tr.face_side / max(size), size)


def _frame_rate(info: dict[str, Any]) -> Fraction:
    num, den = info.get("frame_rate") or (0, 1)
    return Fraction(int(num), int(den)) if num and den else Fraction(25)


def _scan(src: str, info: dict[str, Any], every: int, bar: Any, check: Callable[[], None],
          min_face: int = D.DetectSettings().min_face) -> _Scan:
    """Decode the luma, follow every face (:class:`pycodec.tracks.FaceTracks`), choose the mode."""
    tb = Fraction(*info.get("time_base", (1, 1)))
    fps = _frame_rate(info)
    tracker = TR.FaceTracks(D.DetectSettings(min_face=min_face),
                            TR.TrackerSettings(every=every, scan_every=max(every, SCAN_EVERY)))
    pts: list[int | None] = []
    size = None
    with pycodec.open(src, fields="decoded") as reader:
        for frame in reader:
            y = frame.arrays["decoded/y"]
            if size is None:
                size = y.shape
            if frame.flags & pycodec.FrameFlag.SIZE_CHANGED or y.shape != size:
                raise RestoreError(f"{src}: the picture size changes at frame {frame.index}; restore takes one size "
                                   "per video: cut the video there (e.g. pycodec extract --frames) and restore each part")
            p = frame.pts
            pts.append(None if p is None or p == np.iinfo(np.int64).min else int(p))
            tracker.add(y)
            bar.update(1)
            check()
    if not pts:
        raise RestoreError(f"{src}: no frame could be decoded (truncated or corrupted stream); check the file with "
                           "`pycodec info` or re-encode it")
    if any(p is None for p in pts):  # raw streams: times from the frame rate
        times = np.arange(len(pts)) / float(fps)
    else:
        t = np.array([float(p * tb) for p in pts])
        times = t - t[0]
    n = len(pts)
    tracks = tracker.finish(float(fps))
    searched = np.array(tracker.searched, bool)
    if not tracks:
        raise RestoreError(f"{src}: no face was found in the {int(searched.sum())} frames searched (faces from "
                           f"{min_face} pixels wide, frontal or moderately turned); nothing to restore")
    hw = (int(size[0]), int(size[1]))
    main = tracks[0]
    covered = len(main.boxes) / n
    if len(tracks) == 1 and covered >= MIN_FACE_FRAC and main.face_side / max(hw) >= MIN_FACE_SIZE:
        return _Scan(pts, times, tracks, "crop", _crop_track(main, searched, n, hw), hw)
    return _Scan(pts, times, tracks, "scene", None, hw)


# ---------------------------------------------------------------------- pass 2: samples


def codec_groups(codec: str) -> tuple[str, ...]:
    """The field groups the decoder must export for the samples of ``codec``."""
    names = FL.window_fields() + FL.center_fields(codec)
    skip = ("frame", "audio", "landmarks")
    return tuple(dict.fromkeys(n.split("/")[0] for n in names if n.split("/")[0] not in skip))


class SampleBuilder:
    """Turns decoded frames (in display order) into samples shaped as
    :class:`pycodec.nn.CodecWindowDataset` returns them for the fields of
    :mod:`pycodec.models.fields` (no crop, no flips, edges replicated), with the landmarks and
    MFCCs computed here.  :meth:`push` takes frame t and yields the samples that became complete.
    """

    def __init__(self, src: str, codec: str, n_frames: int, info: dict[str, Any], mfcc: np.ndarray,
                 track: F.FaceTrack, model_size: tuple[int, int]) -> None:
        self.src, self.codec, self.n = src, codec, n_frames
        self.window = {name: k for name, k in FL.WINDOW_FIELDS.items()}
        self.center = FL.center_fields(codec)
        crop = info.get("crop") or (0, 0, 0, 0)
        self.offset = np.array([int(crop[0]), int(crop[2])], np.int64)
        self.mfcc, self.track, self.model_size = mfcc, track, model_size
        self.frames: dict[int, Any] = {}
        self.next_t = 0
        self.last_lm: np.ndarray | None = None

    def _landmarks(self, t: int, y: np.ndarray) -> np.ndarray:
        """68 landmarks of frame t in its own pixels, found on the luma scaled to the model's size
        (what the dataset's landmarks are found on); a frame whose last face search missed reuses
        the previous frame's landmarks."""
        if self.last_lm is not None and self.track.missed(t):
            return self.last_lm
        size = y.shape[:2]
        g = F.resize(y, *self.model_size)
        box = F.rescale_boxes(self.track.boxes[t], size, self.model_size)
        lm = F.rescale_points(F.landmarks(g, box), self.model_size, size)
        self.last_lm = lm
        return lm

    def _sample(self, t: int) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.src, "frame": t, "hflip": False, "vflip": False,
                               "offset": self.offset.copy()}
        last = self.n - 1
        for name, k in self.window.items():
            idx = [min(max(t + j, 0), last) for j in range(-k, k + 1)]
            if name == "audio/mfcc":
                out[name] = self.mfcc[idx]
            elif name == "frame/poc":
                out[name] = np.array([self.frames[i].poc for i in idx], np.int32)
            else:
                out[name] = np.stack([self.frames[i].arrays[name] for i in idx])
        fr = self.frames[t]
        for name in self.center:
            if name == "landmarks/decoded":
                out[name] = fr.landmarks
            else:
                out[name] = np.ascontiguousarray(fr.arrays[name])
        return out

    def push(self, frame: Any) -> Iterator[dict[str, Any]]:
        """Add the next decoded frame; yield the samples whose window is now complete."""
        frame.landmarks = self._landmarks(frame.index, frame.arrays["decoded/y"])
        self.frames[frame.index] = frame
        yield from self._ready(frame.index)

    def finish(self) -> Iterator[dict[str, Any]]:
        """The samples left at the end (their windows replicate the last frame)."""
        yield from self._ready(self.n - 1 + FL.N_FRAMES)

    def _ready(self, have: int) -> Iterator[dict[str, Any]]:
        while self.next_t < self.n and min(self.next_t + FL.N_FRAMES, self.n - 1) <= have:
            t = self.next_t
            yield self._sample(t)
            self.next_t += 1
            for i in [i for i in self.frames if i < self.next_t - FL.N_FRAMES]:
                del self.frames[i]


class _Frame:
    """A decoded frame kept for the windows: index, POC, arrays, landmarks."""

    __slots__ = ("arrays", "index", "landmarks", "poc")

    def __init__(self, frame: Any, names: Sequence[str]) -> None:
        self.index, self.poc = frame.index, int(frame.poc)
        self.arrays = {k: frame.arrays[k] for k in names if k in frame.arrays}
        self.landmarks: np.ndarray | None = None


# ---------------------------------------------------------------------- the model


def _resize(x: Any, size: tuple[int, int], mode: str) -> Any:
    """(..., H, W) float tensor -> (..., *size); bilinear with antialiasing when shrinking."""
    import torch.nn.functional as tf

    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, h, w)
    if mode == "bilinear":
        y = tf.interpolate(flat, size=size, mode="bilinear", align_corners=False,
                           antialias=size[0] < h or size[1] < w)
    else:
        y = tf.interpolate(flat, size=size, mode="nearest-exact")
    return y.reshape(*lead, *size)


def to_model_size(x: Any, size: tuple[int, int]) -> Any:
    """MDVDInputs of whole frames of another size -> the model's ``size`` (height, width): frames,
    prediction and residual bilinear; motion fields (values scaled per axis), transform and QP maps
    nearest; landmarks per axis.  Back-projection data is left out (it runs at the native size)."""
    h, w = x.size
    ky, kx = size[0] / h, size[1] / w
    mv = x.mv
    if mv is not None:
        mv = _resize(mv, size, "nearest").clone()
        mv[:, :, 0] *= kx
        mv[:, :, 1] *= ky
    lm = x.landmarks
    if lm is not None:
        lm = (lm + 0.5) * lm.new_tensor([kx, ky]) - 0.5
    return replace(x, frames=_resize(x.frames, size, "bilinear"), mv=mv, landmarks=lm,
                   pred=None if x.pred is None else _resize(x.pred, size, "bilinear"),
                   resid=None if x.resid is None else _resize(x.resid, size, "bilinear"),
                   tu=None if x.tu is None else _resize(x.tu, size, "nearest"),
                   qp=None if x.qp is None else _resize(x.qp, size, "nearest"), bp=None, origin=None)


class Restorer:
    """Runs a model of :mod:`pycodec.models` on collated batches of whole frames of one size and
    returns the restored 8-bit planes at that size (back-projected there when ``bp``)."""

    def __init__(self, net: Any, codec: str, device: Any, bp: bool) -> None:
        self.net, self.codec, self.device, self.bp = net, codec, device, bp
        cfg = getattr(net, "cfg", None)
        side = int(getattr(cfg, "frame_size", 256))
        self.model_size = (side, side)

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        import torch

        from .models import make_inputs
        from .models.fpenv import flushed_denormals
        from .models.mdvd import apply_back_projection, yuv444_to_planes

        with torch.inference_mode(), flushed_denormals(self.device.type == "cpu"):
            inputs = make_inputs(batch, self.codec, bp=self.bp)
            bpd = inputs.bp
            x = replace(inputs, bp=None, origin=None)
            native = x.size
            if native != self.model_size:
                x = to_model_size(x, self.model_size)
            x = x.to(self.device)
            out = self.net(x, clamp=False)
            if native == self.model_size and out.prebp_planes is not None:
                planes = out.prebp_planes  # frame t's own 4:2:0 planes + the model's change
            else:
                # the model's change at the model's size, scaled back and 2x2-averaged for chroma,
                # on the native decoded planes (averaging a rescaled picture would blur its chroma)
                change = _resize(out.prebp - x.frames[:, x.frames.shape[1] // 2].to(out.prebp.dtype), native, "bilinear")
                d = yuv444_to_planes(change)
                planes = {k: inputs.decoded[k].to(self.device, d[k].dtype) + d[k] for k in d}
            if bpd is not None:
                planes = apply_back_projection(planes, bpd.to(self.device))
            return {k: (v.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy() for k, v in planes.items()}


    def window_changes(self, batch: dict[str, Any], k: float) -> tuple[dict[str, np.ndarray], Callable[[int], Any]]:
        """The model's change to windows of one size (collated), run at scale ``k``: planes
        'y' (B, h, w), 'u', 'v' (half size) float32 in [0, 1] units; and ``project(i)``, the
        back-projection of sample i's planes (None without ``bp``)."""
        import torch

        from .models import make_inputs
        from .models.fpenv import flushed_denormals
        from .models.mdvd import apply_back_projection, yuv444_to_planes

        with torch.inference_mode(), flushed_denormals(self.device.type == "cpu"):
            inputs = make_inputs(batch, self.codec, bp=self.bp)
            bpd = inputs.bp
            x = replace(inputs, bp=None, origin=None)
            native = x.size
            x = to_model_size(x, SC.scaled_size(native, k)).to(self.device)
            out = self.net(x, clamp=False)
            change = _resize(out.prebp - x.frames[:, x.frames.shape[1] // 2].to(out.prebp.dtype), native, "bilinear")
            d = {key: v.float().cpu().numpy() for key, v in yuv444_to_planes(change).items()}

        def project(i: int) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None:
            if bpd is None:
                return None
            one = bpd.select(slice(i, i + 1))

            def run(planes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                with torch.inference_mode():
                    t = {key: torch.from_numpy(np.ascontiguousarray(v))[None] for key, v in planes.items()}
                    return {key: v[0].numpy() for key, v in apply_back_projection(t, one).items()}
            return run

        return d, project


# ---------------------------------------------------------------------- output


class VideoWriter:
    """Writes the restored frames to ``path`` in the format of ``ext`` (:data:`FORMATS`) with the
    input's timestamps, and the input's audio: packets copied where the container takes the codec,
    else re-encoded (AAC), interleaved by time.  ``note`` says what happened to the audio."""

    def __init__(self, path: str, ext: str, src: str, info: dict[str, Any], width: int, height: int) -> None:
        import av

        self.av = av
        _, fmt, codec, opts = FORMATS[ext]
        self.raw = ext == ".y4m"
        self.tb = Fraction(*info.get("time_base", (1, 1)))
        self.rate = _frame_rate(info)
        self.width, self.height = width, height
        self.n = 0
        # Matroska cannot shift timestamps and keep them equal to the input's: keep negative ones
        # (audio priming) as they are instead.
        options = {"avoid_negative_ts": "disabled"} if fmt == "matroska" else {}
        self.out = av.open(path, "w", format=fmt, options=options)
        self.inp: Any = None
        self.audio_packets: Iterator[Any] | None = None
        self._head: Any = None  # the next audio packet, waiting for its time
        try:
            st = self.out.add_stream(codec, rate=self.rate)
            st.width, st.height, st.pix_fmt = width, height, "yuv420p"
            st.codec_context.thread_count = 1 if codec == "ffv1" else 0
            if not self.raw:
                st.time_base = self.tb
                st.codec_context.time_base = self.tb
            st.options = dict(opts)
            self.video = st
            self.note, self.audio_packets = self._audio(src, ext)
        except BaseException:
            self.out.close()
            if self.inp is not None:
                self.inp.close()
            raise

    def _audio(self, src: str, ext: str) -> tuple[str, Iterator[Any] | None]:
        """Open the input's audio for copying (or re-encoding); (note, packet iterator)."""
        av = self.av
        inp = av.open(src)
        if not inp.streams.audio:
            inp.close()
            return "none (the input has none)", None
        ia = inp.streams.audio[0]
        name = ia.codec_context.name
        if self.raw:
            inp.close()
            return f"left out ({ext} holds video only; write .mkv or .mp4 to keep it)", None
        self.inp = inp
        if name in self.out.supported_codecs:
            oa = self.out.add_stream_from_template(ia)
            return f"copied ({name})", self._copy(ia, oa)
        target = "aac"
        oa = self.out.add_stream(target, rate=ia.codec_context.sample_rate or 48000)
        with contextlib.suppress(AttributeError, ValueError):
            oa.layout = ia.codec_context.layout
        return f"re-encoded to AAC ({ext} cannot hold {name})", self._reencode(ia, oa)

    def _copy(self, ia: Any, oa: Any) -> Iterator[Any]:
        for p in self.inp.demux(ia):
            if p.size == 0:
                continue
            p.stream = oa
            yield p

    def _reencode(self, ia: Any, oa: Any) -> Iterator[Any]:
        for p in self.inp.demux(ia):
            try:
                frames = p.decode()
            except (self.av.error.FFmpegError, ValueError):
                continue
            for fr in frames:
                fr.pts = None  # the encoder counts samples
                yield from oa.encode(fr)
        yield from oa.encode(None)

    def _pending_audio(self, until: float | None) -> None:
        """Mux the audio packets up to time ``until`` (seconds; None: all)."""
        if self.audio_packets is None:
            return
        head = self._head
        while True:
            if head is None:
                head = next(self.audio_packets, None)
                if head is None:
                    self.audio_packets = None
                    break
            ts = head.dts if head.dts is not None else head.pts
            if until is not None and ts is not None and head.time_base is not None and float(ts * head.time_base) > until:
                break
            self.out.mux(head)
            head = None
        self._head = head

    def _mux_video(self, packets: Sequence[Any]) -> None:
        for p in packets:
            ts = p.dts if p.dts is not None else p.pts
            if ts is not None and p.time_base is not None:
                self._pending_audio(float(ts * p.time_base))
            self.out.mux(p)

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, pts: int | None) -> None:
        """One frame (8-bit planes) at input timestamp ``pts`` (None: from the frame rate)."""
        av = self.av
        vf = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, a in zip(vf.planes, (y, u, v)):
            buf = np.zeros((plane.height, plane.line_size), np.uint8)
            buf[: a.shape[0], : a.shape[1]] = a
            plane.update(buf)
        if self.raw:
            vf.pts, vf.time_base = self.n, 1 / self.rate
        else:
            vf.pts = pts if pts is not None else round(self.n / self.rate / self.tb)
            vf.time_base = self.tb
        self.n += 1
        self._mux_video(self.video.encode(vf))

    def close(self) -> None:
        """Flush the encoder and the rest of the audio, finish the file."""
        try:
            self._mux_video(self.video.encode(None))
            self._pending_audio(None)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the files (idempotent)."""
        out, inp = self.out, self.inp
        self.out = self.inp = None
        try:
            if out is not None:
                out.close()
        finally:
            if inp is not None:
                inp.close()


# ---------------------------------------------------------------------- restore()


def bound_heap() -> bool:
    """glibc only: serve every block of 1 MiB or more with its own mmap, returned on free.  glibc's
    default raises that threshold as big blocks are freed, after which freed frames stay in the heap
    and fragment it: a 720p scene restore grew from 1.07 to 1.74 GB over 300 frames, and stays at
    0.95 GB with this (docs/faces.md).  Process-wide and harmless elsewhere; False where unavailable."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, 1 << 20))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError, TypeError):
        return False


def _no_check() -> None:
    return None


def restore(src: str | os.PathLike, dst: str | os.PathLike, model: str = "mdvd",
            checkpoint: str | os.PathLike | None = None, device: str = "cpu", bp: bool = True,
            overwrite: bool = False, progress: bool = True, *, batch_size: int = BATCH_SIZE,
            detect_every: int = DETECT_EVERY, check: Callable[[], None] | None = None,
            report: str | os.PathLike | None = None, keyframe_policy: str = "lfu",
            max_keyframes: int = 10) -> RestoreSummary:
    """Restore the talking-face crop ``src`` (H.264 or HEVC) into ``dst`` (module docstring).

    ``model``: the architecture ('mdvd'); ``checkpoint``: a checkpoint file (default: the one
    shipped for the input's codec, ``mdvd-h264`` or ``mdvd-hevc``); ``device``: 'cpu' or 'cuda';
    ``bp``: back-project into the bitstream's quantization intervals; ``overwrite``: replace an
    existing (regular) ``dst``; ``progress``: tqdm bars on stderr (when it is a terminal);
    ``batch_size``: frames per model call; ``detect_every``: frames between face searches;
    ``check``: called after every frame (the command line raises a pending signal there);
    ``report``: also write a report (``.png``, or ``.html`` with the picture inside) of sample
    frames and the change per frame (:mod:`pycodec.report`); ``keyframe_policy`` ('lfu' or
    'maxdist') and ``max_keyframes``: the keyframe set of ``model='keyframes'`` (:mod:`pycodec.keyrestore`).
    Problems raise :class:`RestoreError` (or another :class:`pycodec.PycodecError`) with one line.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    check = check or _no_check
    bound_heap()
    if batch_size < 1 or detect_every < 1:
        raise ValueError("batch_size and detect_every must be >= 1")
    if keyframe_policy not in POLICIES:
        raise RestoreError(f"--keyframe-policy {keyframe_policy}: unknown; choose one of {', '.join(POLICIES)}")
    if max_keyframes < 1:
        raise RestoreError(f"--max-keyframes {max_keyframes}: a face needs at least 1 keyframe; e.g. --max-keyframes 10")
    t0 = time.perf_counter()
    ext = _check_output(src, dst, overwrite)
    if report is not None:
        report = _check_report(os.fspath(report), src, dst)
    dev = _check_device(device)
    info = _probe(src)
    codec = str(info["codec"])
    require("dlib", "face detection and landmarks")
    F.model_path()
    require("python_speech_features", "MFCC speech features")
    require("av", "writing video")
    net, meta = load_model(model, checkpoint, codec, dev)
    trained = meta.get("codec") if isinstance(meta, dict) else None
    if trained and trained != codec:
        print(f"pycodec: warning: the checkpoint was trained on {trained}, the input is {codec}", file=sys.stderr)
    runner = Restorer(net, codec, dev, bp) if model == "mdvd" else None

    from tqdm import tqdm

    from .audio import video_mfcc
    from .nn import collate

    total = int(info.get("nb_frames") or 0) or None
    bar = tqdm(total=total, unit="frame", desc="faces", file=sys.stderr, dynamic_ncols=True, leave=False,
               disable=None if progress else True)
    try:
        scan = _scan(src, info, detect_every, bar, check)
    finally:
        bar.close()
    n = len(scan.pts)
    mfcc, _ = video_mfcc(src, scan.times, float(_frame_rate(info)))
    check()
    keep = [k for k in FL.window_fields() + FL.center_fields(codec) if k.split("/")[0] not in
            ("frame", "audio", "landmarks")]
    width, height = int(info["width"]), int(info["height"])
    fps = float(_frame_rate(info))
    crop = info.get("crop") or (0, 0, 0, 0)
    geo = SC.Geometry(height, width, int(crop[0]), int(crop[2]), 16 if codec == "h264" else 64)
    builder: Any = None
    if runner is None:
        pass  # keyframes: frames one at a time (_keyframes_pass)
    elif scan.mode == "crop":
        builder = SampleBuilder(src, codec, n, info, mfcc, scan.track, runner.model_size)
    else:
        builder = SC.SceneSamples(src, codec, n, mfcc, scan.tracks, geo, runner.model_size[0], fps,
                                  dict(FL.WINDOW_FIELDS), FL.center_fields(codec), FL.N_FRAMES)
    face_frames = sum(any(t.covers(i) for t in scan.tracks) for i in range(n)) if scan.mode == "scene" else n
    rep = None
    if report is not None:
        from .report import RestoreReport

        if scan.mode == "crop":
            boxes = [lambda t, b=scan.track.boxes: b[t]]
        else:
            boxes = [lambda t, tr=tr: tr.box(t) if tr.covers(t) else None for tr in scan.tracks]
        rep = RestoreReport(n, boxes)

    # an output that is a symbolic link: the file it points to is replaced, the link stays (as extract)
    target = os.path.realpath(dst) if os.path.islink(dst) else dst
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=f".part{ext}", dir=folder)
    os.close(fd)
    writer: VideoWriter | None = None
    audio_note = ""
    change = 0.0
    kstats: list[dict[str, Any]] = []
    bar = tqdm(total=n, unit="frame", desc="restore", file=sys.stderr, dynamic_ncols=True, leave=False,
               disable=None if progress else True)
    try:
        writer = VideoWriter(tmp, ext, src, info, width, height)
        audio_note = writer.note
        pending: list[dict[str, Any]] = []

        def run(samples: list[dict[str, Any]]) -> None:
            nonlocal change
            planes = runner(collate(samples))
            for i, s in enumerate(samples):
                y = planes["y"][i]
                change += float(np.abs(y.astype(np.int16) - s["decoded/y"][FL.N_FRAMES]).mean())
                if rep is not None:
                    rep.add(s["frame"], {k: s[f"decoded/{k}"][FL.N_FRAMES] for k in "yuv"},
                            {k: planes[k][i] for k in "yuv"})
                writer.write(y, planes["u"][i], planes["v"][i], scan.pts[s["frame"]])
                bar.update(1)
            check()

        def run_scene(items: list[tuple[int, list[SC.FaceSample], dict[str, np.ndarray]]]) -> None:
            nonlocal change
            comps = {t: SC.Composite(decoded) for t, _, decoded in items}
            by_track: dict[int, list[tuple[int, SC.FaceSample]]] = {}
            for t, faces, _ in items:
                for f in faces:
                    by_track.setdefault(f.track, []).append((t, f))
            for i, lst in by_track.items():
                delta, project = runner.window_changes(collate([f.sample for _, f in lst]), builder.scales[i])
                for j, (t, f) in enumerate(lst):
                    comps[t].add(f.window, {k: delta[k][j] for k in "yuv"}, SC.feather_mask(f.window, f.box), project(j))
            for t, _, decoded in items:
                planes = comps[t].finish()
                change += float(np.abs(planes["y"].astype(np.int16) - decoded["y"]).mean())
                if rep is not None:
                    rep.add(t, decoded, planes)
                writer.write(planes["y"], planes["u"], planes["v"], scan.pts[t])
                bar.update(1)
            check()

        step = run if scan.mode == "crop" else run_scene
        ahead = 4 if (os.cpu_count() or 1) > 1 else 0
        pushed = 0
        if runner is None:
            pushed, change, kstats = _keyframes_pass(src, scan, net, dev, geo, keyframe_policy, max_keyframes,
                                                     writer, rep, bar, check)
            builder = _NoSamples()
        with contextlib.nullcontext([]) if runner is None else \
                pycodec.open(src, fields=codec_groups(codec), ahead=ahead) as reader:
            for frame in reader:
                if frame.index >= n:
                    break
                for s in builder.push(_Frame(frame, keep)):
                    pending.append(s)
                    if len(pending) == batch_size:
                        step(pending)
                        pending = []
                pushed += 1
                check()
        if pushed != n:
            raise RestoreError(f"{src}: the second decoding gave {pushed} frames, the first {n}; the file may be "
                               "damaged: check it with `pycodec info` or re-encode it")
        for s in builder.finish():
            pending.append(s)
            if len(pending) == batch_size:
                step(pending)
                pending = []
        if pending:
            step(pending)
        w, writer = writer, None
        w.close()
        check()
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, target)
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    summary = RestoreSummary(source=src, output=dst, frames=n, seconds=seconds,
                             mean_abs_change_y=change / max(n, 1), codec=codec, size=(width, height),
                             model=os.fspath(checkpoint) if checkpoint is not None else f"{model}-{codec}",
                             device=str(dev), bp=bp, audio=audio_note,
                             face_found=scan.track.found_frac if scan.track is not None else 0.0,
                             format=FORMATS[ext][0], mode=scan.mode, faces=len(scan.tracks), face_frames=face_frames,
                             keyframes=tuple(kstats))
    if rep is not None:
        rows = [f"track {tr.id}: frames {tr.start}-{tr.end - 1}, face {tr.face_side:.0f} px, found in "
                f"{int(tr.detected.sum())} searches" for tr in scan.tracks]
        rep.write(os.fspath(report), summary.line(), [f"mode: {scan.mode}", *rows])
    return summary


class _NoSamples:
    """The sample builder of a pass that wrote its frames itself."""

    def finish(self) -> Iterator[dict[str, Any]]:
        return iter(())


def _keyframes_pass(src: str, scan: _Scan, net: Any, dev: Any, geo: SC.Geometry, policy: str, max_keyframes: int,
                    writer: Any, rep: Any, bar: Any, check: Callable[[], None]) -> tuple[int, float, list[dict[str, Any]]]:
    """Keyframes-GAN over the video, frames in display order, one bank per face track
    (:mod:`pycodec.keyrestore`); returns (frames written, summed mean |change| in Y, bank stats)."""
    from . import keyrestore as KR

    side = int(getattr(net.cfg, "frame_size", 256)) if hasattr(net, "cfg") else 256
    faces = []
    for tr in scan.tracks if scan.mode == "scene" else [None]:
        if tr is None:  # a face crop: the whole frame is its window
            faces.append((None, (geo.height, geo.width), side / max(geo.height, geo.width)))
        else:
            faces.append((tr, SC.window_size(tr, geo), SC.model_scale(tr, side)))
    streams = [KR.FaceStream(net, dev, policy, max_keyframes) for _ in faces]
    change, n = 0.0, 0
    with pycodec.open(src, fields="decoded") as reader:
        for frame in reader:
            t = frame.index
            if t >= len(scan.pts):
                break
            decoded = {k: frame.arrays[f"decoded/{k}"] for k in "yuv"}
            comp = SC.Composite(decoded)
            for (tr, size, k), stream in zip(faces, streams):
                if tr is None:
                    win, box = (0, 0, geo.height, geo.width), scan.track.boxes[t]
                    mask = np.ones((geo.height, geo.width), np.float32)
                elif tr.covers(t):
                    box = tr.box(t)
                    win = SC.window_at(box, size, geo)
                    mask = SC.feather_mask(win, box)
                else:
                    continue
                d = KR.face_change(stream, t, bool(frame.key or frame.type == "I"), decoded, win, box, k, F.landmarks)
                if d is not None:
                    comp.add(win, d, mask)
            planes = comp.finish()
            change += float(np.abs(planes["y"].astype(np.int16) - decoded["y"]).mean())
            if rep is not None:
                rep.add(t, decoded, planes)
            writer.write(planes["y"], planes["u"], planes["v"], scan.pts[t])
            n += 1
            bar.update(1)
            check()
    return n, change, [s.bank.stats() for s in streams]


def _new_file_mode() -> int:
    """Permissions of a new file under the current umask (temporary files are created 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class _CallableModule(type(sys)):  # type: ignore[misc]
    """``pycodec.restore`` is this module, and calling it calls :func:`restore`
    (``pycodec.restore(src, dst)``): a package attribute cannot be both the function and the
    submodule of the same name, since importing the submodule rebinds it."""

    def __call__(self, *args: Any, **kwargs: Any) -> RestoreSummary:
        return restore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
