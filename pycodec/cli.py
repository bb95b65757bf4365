"""Command line: ``pycodec extract | info | show | restore | compare``; bad input gives one stderr line and exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import gc
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

import pycodec
from pycodec import store

PROG = "pycodec"
SUPPORTED_CODECS = ("h264", "hevc")
FLAG_NAMES = ("CORRUPT", "INCOMPLETE", "UNSUPPORTED", "LOSSLESS", "PCM", "NO_EXPORT", "SIZE_CHANGED")


class CliError(Exception):
    """A user-facing failure; the message is one line "<path>: <what is wrong>; <what to do>"."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors become one-line CliErrors instead of usage dumps."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{message}; see `{self.prog} --help`")


# ---------------------------------------------------------------------- argument parsing


def field_groups() -> tuple[str, ...]:
    """Known field group names, in schema order."""
    return tuple(pycodec.FIELD_GROUPS)


def parse_fields(text: str | None) -> list[str]:
    """Parse ``--fields`` ("block,frame", "all"); 'frame' is always included. Raises CliError."""
    known = field_groups()
    if text is None or text.strip().lower() == "all":
        return list(known)
    names = [t.strip() for t in text.split(",")]
    if not any(names):
        raise CliError(f"--fields: empty list; give groups such as block,frame (known: {', '.join(known)})")
    if "" in names:
        raise CliError(
            f"--fields: empty group name in {text!r}; separate groups by single commas, e.g. block,frame"
        )
    bad = [n for n in names if n not in known]
    if bad:
        raise CliError(
            f"--fields: unknown group {bad[0]!r}; choose from {', '.join(known)} (comma-separated) or all"
        )
    out = ["frame"] + [n for n in known if n in names and n != "frame"]
    return out


def parse_frames(text: str | None) -> slice | None:
    """Parse ``--frames`` "A:B" (half-open display range; A or B may be left out) or "N". Raises CliError."""
    if text is None:
        return None
    hint = "use A:B with 0 <= A < B, e.g. 0:100, 10: or :50"
    parts = text.split(":")
    try:
        if len(parts) == 1:
            a = int(parts[0])
            b: int | None = a + 1
        elif len(parts) == 2:
            a = int(parts[0]) if parts[0].strip() else 0
            b = int(parts[1]) if parts[1].strip() else None
        else:
            raise ValueError
    except ValueError:
        raise CliError(f"--frames: {text!r} is not a frame range; {hint}") from None
    if a < 0 or (b is not None and b < 0):
        raise CliError(f"--frames: {text!r} has a negative index; {hint}")
    if b is not None and b <= a:
        raise CliError(f"--frames: {text!r} is empty (B <= A); {hint}")
    return slice(a, b)


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser main() uses, built once per process (building it costs ~1 ms)."""
    return build_parser()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the extract, info, show and restore subcommands."""
    p = _Parser(prog=PROG, description="Extract codec internals of H.264 and HEVC video into HDF5 (schema pycodec/1); "
                "restore compressed talking-face video.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    e = sub.add_parser("extract", help="decode a video and write its internals to HDF5")
    e.add_argument("input", metavar="IN", help="input video (H.264 or HEVC in mp4/mkv/avi/ts, or raw .h264/.hevc)")
    e.add_argument("output", metavar="OUT.h5", help="HDF5 file to write")
    e.add_argument(
        "--fields",
        metavar="GROUPS",
        help=f"comma-separated groups (default all): {', '.join(field_groups())}",
    )
    e.add_argument("--frames", metavar="A:B", help="display-order range [A, B) to extract (default all)")
    e.add_argument(
        "--compression",
        choices=store.COMPRESSIONS,
        default="lzf",
        help="dataset compression (default lzf)",
    )
    e.add_argument(
        "--decode-ahead",
        default="auto",
        metavar="N|auto",
        help="decode up to N frames ahead in a second thread while this one compresses and writes "
        f"(default auto: {AHEAD_BLOCKS} when no picture planes are extracted, else {AHEAD_PLANES}; 0 when "
        "one CPU is available); 0: off",
    )
    e.add_argument(
        "--writer-thread",
        choices=("auto", "on", "off"),
        default="auto",
        help="compress and write in a background thread (default auto: on when at least 3 CPUs are "
        "available, so that decoding, reading and writing each get one)",
    )
    e.add_argument(
        "--chunk-frames",
        default="1",
        metavar="N",
        help="block maps and codec extras: up to N frames per HDF5 chunk of about 128 KiB (default 1: one "
        "chunk per frame, like picture planes; more writes faster on one CPU and reads runs of frames "
        "faster, single frames slower)",
    )
    e.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    e.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    e.set_defaults(func=cmd_extract)
    i = sub.add_parser("info", help="print stream information")
    i.add_argument("input", metavar="IN")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)
    s = sub.add_parser("show", help="draw one frame of an extracted file to PNG")
    s.add_argument("h5", metavar="OUT.h5")
    s.add_argument("--frame", type=int, default=0, metavar="N", help="frame index in the file (default 0)")
    s.add_argument("-o", "--output", required=True, metavar="out.png", help="PNG to write")
    s.set_defaults(func=cmd_show)
    r = sub.add_parser("restore", help="restore the faces of compressed videos with a trained model")
    r.add_argument("input", metavar="IN",
                   help="a compressed video (H.264 or HEVC), or a folder or list file (.txt, .lst, .jsonl) of them")
    r.add_argument("output", metavar="OUT",
                   help="restored video: .mkv (FFV1, lossless), .mp4 (H.264 CRF 12) or .y4m (raw, no audio); "
                        "for a folder or list: the output folder")
    r.add_argument("--format", default="mkv", choices=("mkv", "mp4", "y4m"),
                   help="batches: the outputs' format (default mkv)")
    r.add_argument("--report", default=None, metavar="REPORT.html",
                   help="also write a report (.html or .png): sample frames input | restored | difference, "
                        "the face tracks, the change per frame")
    r.add_argument("--shard", default=None, metavar="i/N",
                   help="batches: restore only the inputs whose index %% N == i (cluster array jobs)")
    r.add_argument("--model", default="mdvd", choices=("mdvd", "keyframes"),
                   help="model: mdvd (MDVD-Net, default) or keyframes (Keyframes-GAN with the stream's I-frames)")
    r.add_argument("--keyframe-policy", default="lfu", choices=("lfu", "maxdist"),
                   help="--model keyframes: how the keyframe set is kept (default lfu)")
    r.add_argument("--max-keyframes", type=int, default=10, metavar="K",
                   help="--model keyframes: keyframes kept per face (default 10)")
    r.add_argument("--checkpoint", metavar="PATH",
                   help="checkpoint file (default: the one shipped for the input's codec, mdvd-h264 or mdvd-hevc)")
    r.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default cpu)")
    r.add_argument("--no-bp", action="store_true",
                   help="no back-projection into the bitstream's quantization intervals")
    r.add_argument("--batch-size", type=int, default=4, metavar="N", help="frames per model call (default 4)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (a regular file only)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    r.set_defaults(func=cmd_restore)
    c = sub.add_parser("compare", help="how two versions of a video differ, whole frame and faces (PSNR, SSIM)")
    c.add_argument("a", metavar="A", help="a video (e.g. the decoded input)")
    c.add_argument("b", metavar="B", help="another version of it (e.g. the restored one)")
    c.add_argument("--reference", metavar="GT", help="the original: A and B are scored against it")
    c.add_argument("--plot", metavar="OUT.png", help="write the per-frame Y-PSNR plot (faces and whole frame)")
    c.add_argument("--json", action="store_true", help="print the figures as JSON")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_compare)
    return p


# ---------------------------------------------------------------------- helpers


# Exception types reported as one-line user errors.
USER_ERRORS = (CliError, store.StoreError, OSError, pycodec.PycodecError)


def describe_error(exc: BaseException, path: str | None = None) -> str:
    """One line "<path>: <what is wrong>; <what to do>" for any reported exception."""
    if isinstance(exc, OSError) and not isinstance(exc, store.StoreError) and exc.strerror:
        where = exc.filename or path or "?"
        hints = {
            errno.ENOENT: "check the path",
            errno.EACCES: "check the file permissions",
            errno.ENOSPC: "free some space or write to another directory",
            errno.EISDIR: "give a file, not a directory",
        }
        msg = f"{where}: {exc.strerror.lower()}; {hints.get(exc.errno or 0, 'check the file and try again')}"
    else:
        msg = str(exc) or type(exc).__name__
        if path and not msg.startswith(path) and ": " not in msg.split(";")[0]:
            msg = f"{path}: {msg}"
    return " ".join(msg.split())


class Interrupted(KeyboardInterrupt):
    """A signal that stops the command (SIGINT, SIGTERM, SIGHUP), raised in the main thread so that
    every ``with`` block on the way out cleans up (the temporary output file is removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def describe(self) -> str:
        """The one-line message: what stopped the command."""
        name = signal.Signals(self.signum).name
        what = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up"}.get(name, "stopped")
        return f"{what} ({name}); nothing was written"


class SignalGuard:
    """Turns SIGINT, SIGTERM and SIGHUP into :class:`Interrupted` while the command runs.

    The first signal is raised where the main thread is and remembered: Python drops exceptions
    raised inside weakref callbacks and destructors (h5py runs some while writing), so
    :meth:`check`, called after each frame and before the output is moved into place, raises it again.
    Later signals are only remembered, so that the clean-up of the first is not cut short. Meanwhile
    Python's report of such a dropped interruption ("Exception ignored in ...") is kept quiet.
    """

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.signum = 0
        self._saved: dict[int, Any] = {}
        self._hook: Any = None

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum:
            return
        self.signum = signum
        raise Interrupted(signum)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal arrived."""
        if self.signum:
            raise Interrupted(self.signum)

    def _unraisable(self, info: Any) -> None:
        if not isinstance(info.exc_value, Interrupted):
            self._hook(info)

    def __enter__(self) -> Self:
        self.signum = 0
        self._hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        for name in self.SIGNALS:
            num = getattr(signal, name, None)
            if num is None:
                continue
            if signal.getsignal(num) == signal.SIG_IGN:
                continue  # ignored on purpose (nohup, a background job): stays ignored
            try:
                self._saved[num] = signal.signal(num, self._handle)
            except ValueError:  # not the main thread (e.g. main() called from a worker thread)
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for num, old in self._saved.items():
            signal.signal(num, old)
        self._saved.clear()
        sys.unraisablehook, self._hook = self._hook, None


_signals = SignalGuard()  # installed by main(); check() is a no-op when no signal arrived


def _fail(msg: str) -> int:
    """Print the one-line error and return exit code 2."""
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 2


def _human_bytes(n: float) -> str:
    """Human readable byte count."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class ExtractStats:
    """Running summary of an extraction (types, QP, flags) without keeping frames."""

    def __init__(self) -> None:
        self.types: Counter[str] = Counter()
        self.flag_counts: Counter[str] = Counter()
        self.flagged = 0
        self.qp_sum = 0.0
        self.qp_n = 0

    def add(self, frame: Any) -> None:
        """Account one frame."""
        t = frame.type if isinstance(frame.type, str) else chr(int(frame.type))
        self.types[t] += 1
        flags = int(frame.flags)
        if flags:
            self.flagged += 1
            for bit, name in enumerate(FLAG_NAMES):
                if flags >> bit & 1:
                    self.flag_counts[name] += 1
        qp = frame.arrays.get("block/qp_y")
        if qp is not None and qp.size:
            # int32 sums int8 maps exactly (< 2**31 / 128 blocks) and twice as fast as int64
            self.qp_sum += int(np.asarray(qp).sum(dtype=np.int32 if qp.size < 1 << 24 else np.int64))
            self.qp_n += qp.size

    def lines(
        self, n: int, seconds: float, nbytes: int, src: str, out: str, fields: Sequence[str]
    ) -> list[str]:
        """The closing summary."""
        order = sorted(self.types, key=lambda t: ("IPB".find(t) % 10, t))
        types = ", ".join(f"{t} {self.types[t]}" for t in order)
        qp = f"{self.qp_sum / self.qp_n:.2f} (block/qp_y)" if self.qp_n else "n/a (block/qp_y not extracted)"
        flagged = str(self.flagged)
        if self.flagged:
            flagged += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.flag_counts.items())) + ")"
        fps = n / seconds if seconds > 0 else float("inf")
        return [
            f"pycodec extract: {src} -> {out}",
            f"  frames    {n} ({types})",
            f"  fields    {','.join(fields)}",
            f"  mean QP   {qp}",
            f"  flagged   {flagged}",
            f"  written   {_human_bytes(nbytes)}",
            f"  speed     {fps:.1f} frames/s ({seconds:.2f} s)",
        ]


# ---------------------------------------------------------------------- commands


def _expected_frames(info: dict[str, Any], frames: slice | None) -> int | None:
    """Frames the extraction should produce, when the container says how many there are."""
    nb = int(info.get("nb_frames") or 0)
    a = frames.start if frames else 0
    b = frames.stop if frames else None
    if nb:
        return max(0, min(nb, b if b is not None else nb) - a)
    return (b - a) if b is not None else None


AHEAD_BLOCKS = 32  # frames decoded ahead when only block maps and small arrays are extracted
AHEAD_PLANES = 4  # ... and with picture planes (megabytes per frame wait in memory)


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _use_writer_thread(choice: str) -> bool:
    """Whether extract writes through a background thread (``--writer-thread``): with auto, when
    there are CPUs enough for it besides the decoding thread and the main one."""
    if choice != "auto":
        return choice == "on"
    return _cpus() >= 3


def _decode_ahead(choice: str, fields: Sequence[str]) -> int:
    """Frames the decoder decodes ahead in its own thread (``--decode-ahead``; 0: none)."""
    if choice.strip().lower() != "auto":
        try:
            n = int(choice)
        except ValueError:
            n = -1
        if n < 0:
            raise CliError(f"--decode-ahead {choice}: expected a number of frames >= 0 or auto; e.g. --decode-ahead 8")
        return n
    if _cpus() < 2:
        return 0
    return AHEAD_PLANES if set(fields) & set(store.PLANE_GROUPS) else AHEAD_BLOCKS


def _chunk_frames(choice: str) -> int:
    """Frames per chunk at most for block maps and codec extras (``--chunk-frames``)."""
    try:
        n = int(choice)
    except ValueError:
        n = 0
    if n < 1:
        raise CliError(f"--chunk-frames {choice}: expected a number of frames >= 1; e.g. --chunk-frames 64")
    return n


def cmd_extract(a: argparse.Namespace) -> int:
    """``pycodec extract IN OUT.h5``."""
    fields = parse_fields(a.fields)
    frames = parse_frames(a.frames)
    # With a second CPU the decoder runs ahead in a thread of its own (C++, no GIL): this thread
    # turns the frames into arrays, compresses and writes them meanwhile.
    ahead = _decode_ahead(a.decode_ahead, fields)
    chunk_frames = _chunk_frames(a.chunk_frames)
    src, out = a.input, a.output
    if os.path.lexists(out) and not a.overwrite:
        raise CliError(f"{out}: already exists; pass --overwrite to replace it")
    if not os.path.lexists(src):
        raise CliError(f"{src}: no such file; check the path")
    if os.path.isdir(src):
        raise CliError(f"{src}: is a directory; give a video file")
    if store.same_file(src, out):
        raise CliError(f"{out}: is the input file; give another output path (the input is never overwritten)")
    t0 = time.perf_counter()
    stats = ExtractStats()
    # The decoder is opened once: its stream information is the reader's.
    explicit = a.fields is not None and a.fields.strip().lower() != "all"
    thread = _use_writer_thread(a.writer_thread)
    # The output is checked and its temporary file made before the input is opened; with the writer
    # thread, that thread creates the HDF5 file while the decoder opens the input (which releases the
    # GIL), and gathers the summary statistics too (off the decoding thread). The root attributes
    # follow once the input is open.
    writer = store.H5Writer(
        out, None, compression=a.compression, overwrite=a.overwrite, defer_open=True, max_chunk_frames=chunk_frames
    )
    writer.before_rename = _signals.check  # a signal swallowed while HDF5 closed the file still aborts
    # all fields: the reader keeps the extras of the video's own codec only. copy=False: block maps
    # and other exported arrays are views of the decoder's export buffer, not copies (the writer
    # copies or writes each frame's arrays before they are dropped, so few buffers are alive).
    with (
        store.PipelinedWriter(writer, on_frame=stats.add) if thread else writer as w,
        pycodec.open(src, fields=fields if explicit else None, frames=frames, copy=False, ahead=ahead) as reader,
    ):
        info = dict(getattr(reader, "info", None) or pycodec.info(src))
        codec = str(info.get("codec", "?"))
        if codec not in SUPPORTED_CODECS:
            raise CliError(
                f"{src}: video codec is {codec}, not H.264 or HEVC; re-encode it with libx264 or libx265 "
                "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"
            )
        # the reader leaves out (or, asked for explicitly, refuses) the other codec's extras
        fields = list(getattr(reader, "fields", None) or pycodec.fields.groups_for_codec(fields, codec))
        nb = int(info.get("nb_frames") or 0)
        if frames is not None and nb and frames.start >= nb:
            raise CliError(
                f"{src}: --frames {a.frames} starts after the last frame (the video has {nb} frames); "
                f"choose a range inside 0:{nb}"
            )
        total = _expected_frames(info, frames)
        attrs = store.root_attrs(
            info,
            fields,
            source=os.path.abspath(src),
            # hashed when the attributes are written: in the writer thread when there is one
            source_sha256=functools.partial(store.sha256_file, src),
            first_frame=frames.start if frames else 0,
            compression=a.compression,
        )
        w.set_attrs(attrs, nb_frames=total or 0)
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (logs, pipes, tests) or with --quiet.
        bar = tqdm(
            total=total,
            unit="frame",
            desc="extract",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            disable=True if a.quiet else None,
        )
        # The frame loop creates no reference cycles: the cyclic garbage collector would only walk
        # the frames in flight (~1 ms per 300 frames at 256x256), so it is paused meanwhile.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            for frame in reader:
                w.append(frame)
                if not thread:
                    stats.add(frame)
                bar.update(1)
                _signals.check()
        finally:
            if gc_enabled:
                gc.enable()
            bar.close()
        if w.n == 0:
            if frames is not None:
                raise CliError(
                    f"{src}: no frames in --frames {a.frames}; choose a range inside the video "
                    "(see `pycodec info`)"
                )
            raise CliError(
                f"{src}: no frame could be decoded (truncated or corrupted stream); "
                "check the file with `pycodec info` or re-encode it"
            )
    seconds = time.perf_counter() - t0
    if not a.quiet:
        nbytes = os.path.getsize(out)
        print("\n".join(stats.lines(w.n, seconds, nbytes, src, out, fields)))
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    """``pycodec info IN``."""
    src = a.input
    if not os.path.lexists(src):
        raise CliError(f"{src}: no such file; check the path")
    info = dict(pycodec.info(src))
    if a.json:
        print(json.dumps(info, indent=2, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
        return 0
    width = max(len(k) for k in info) if info else 0
    for k, v in info.items():
        if k == "crop" and isinstance(v, (tuple, list)) and len(v) == 4:
            v = "top {} bottom {} left {} right {}".format(*v)
        elif isinstance(v, (tuple, list)):
            v = (
                "/".join(str(x) for x in v)
                if k in ("frame_rate", "time_base")
                else " ".join(str(x) for x in v)
            )
        print(f"{k:<{width}}  {v}")
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    """``pycodec show OUT.h5 --frame N -o out.png``."""
    from pycodec import viz

    folder = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(folder):
        raise CliError(f"{a.output}: directory {folder} does not exist; create it first")
    with store.open_h5(a.h5) as f:
        n = len(f)
        if not -n <= a.frame < n:
            raise CliError(
                f"{a.h5}: frame {a.frame} is out of range (the file has {n} frames); "
                f"choose --frame between 0 and {n - 1}"
            )
        try:
            fig = viz.frame_figure(f, a.frame)
        except store.READ_ERRORS as exc:  # damage in a dataset the figure reads
            raise store.damaged(a.h5, exc) from exc
    viz.save_figure(fig, a.output)
    print(f"wrote {a.output}")
    return 0


def cmd_restore(a: argparse.Namespace) -> int:
    """``pycodec restore IN OUT``: :func:`pycodec.restore.restore` with the command's signal checks;
    a folder or list file: :func:`pycodec.batch.restore_many` (exit 1 when an input failed)."""
    import importlib

    if a.batch_size < 1:
        raise CliError(f"--batch-size {a.batch_size}: expected a number of frames >= 1; e.g. --batch-size 4")
    from pycodec import batch

    try:
        shard = batch.parse_shard(a.shard)
    except ValueError as exc:
        raise CliError(f"{exc}; it picks every N-th video of a folder or list") from None
    many = os.path.isdir(a.input) or batch.is_list_file(a.input)
    if many and os.path.splitext(a.output)[1].lower() in (".mkv", ".mp4", ".y4m") and not os.path.isdir(a.output):
        kind = "a directory" if os.path.isdir(a.input) else "a list of videos"
        raise CliError(f"{a.input}: is {kind}; to restore every video in it, give an output directory "
                       f"(not the file {a.output}), e.g. pycodec restore {a.input} restored/")
    if a.report is not None and many:
        raise CliError(f"--report {a.report}: one report per video; restore the videos one by one for reports")
    if shard is not None and not many:
        raise CliError(f"--shard {a.shard}: only for a folder or list of videos; drop it for one video")
    engine = importlib.import_module("pycodec.restore")
    options = {"model": a.model, "checkpoint": a.checkpoint, "device": a.device, "bp": not a.no_bp,
               "batch_size": a.batch_size, "check": _signals.check, "keyframe_policy": a.keyframe_policy,
               "max_keyframes": a.max_keyframes}
    if many:
        items = batch.restore_many(a.input, a.output, ext=f".{a.format}", shard=shard, overwrite=a.overwrite,
                                   progress=not a.quiet, log=None if not a.quiet else (lambda s: None), **options)
        if not a.quiet:
            print("\n".join(batch.summary_lines(items)))
        return 1 if any(it.status == "failed" for it in items) else 0
    summary = engine.restore(a.input, a.output, overwrite=a.overwrite, progress=not a.quiet, report=a.report,
                             **options)
    if not a.quiet:
        print(summary.line())
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    """``pycodec compare A B [--reference GT] [--plot OUT.png]``."""
    from pycodec import compare as C

    if a.plot is not None:
        if not a.plot.lower().endswith(".png"):
            raise CliError(f"{a.plot}: the plot is a PNG; e.g. --plot compare.png")
        folder = os.path.dirname(os.path.abspath(a.plot))
        if not os.path.isdir(folder):
            raise CliError(f"{a.plot}: directory {folder} does not exist; create it first")
    res = C.compare(a.a, a.b, a.reference, progress=not a.quiet)
    if a.json:
        figs = {k: v.figures() for k, v in res.sides.items()}
        print(json.dumps({"frames": res.frames, "faces": res.faces, "face_frames": res.face_frames,
                          "reference": res.reference, "a": res.a, "b": res.b, "figures": figs}, indent=1))
    else:
        print("\n".join(res.lines()))
    if a.plot is not None:
        res.plot(a.plot)
        if not a.json:
            print(f"wrote {a.plot}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pycodec`` command; returns the exit code."""
    parser = _parser()
    path: str | None = None
    try:
        with _signals:
            args = parser.parse_args(argv)
            if not getattr(args, "command", None):
                parser.print_help(sys.stderr)
                return 2
            path = getattr(args, "input", None) or getattr(args, "h5", None)
            rc = int(args.func(args))
            _signals.check()  # a signal swallowed on the way (see SignalGuard) is still an interruption
            return rc
    except KeyboardInterrupt as exc:
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"{PROG}: error: {stop.describe()}", file=sys.stderr)
        return 128 + stop.signum
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except USER_ERRORS as exc:
        return _fail(describe_error(exc, path))


if __name__ == "__main__":
    sys.exit(main())
