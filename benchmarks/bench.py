"""Benchmark: plain decode vs extraction to HDF5 (block fields, all fields), PyAV and motion-vector-extractor.

Usage: python benchmarks/bench.py --out docs/benchmarks.md [--repeat 3] [--cpu N] [--quick]

Everything runs in this process, pinned to one CPU, one after the other; each row is the best of
``--repeat`` wall times over the whole file (open, decode, export, write, close).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pycodec
from pycodec import cli, samples

X264 = {"preset": "medium", "crf": "23", "x264-params": "keyint=60:bframes=3"}
X265 = {"preset": "medium", "crf": "28", "x265-params": "keyint=60:bframes=3:log-level=error"}
ENCODERS = {"h264": ("libx264", X264), "hevc": ("libx265", X265)}
TARGET_RATIO = 1.3  # MV/QP/partitions extraction vs plain decode
TARGET_FPS = 150.0  # all fields at 256x256, one core


@dataclass
class Stream:
    """One benchmark input."""

    name: str
    width: int
    height: int
    frames: int
    codec: str = "h264"


@dataclass
class Row:
    """One timed method on one stream."""

    method: str
    seconds: float
    frames: int
    out_bytes: int | None = None
    note: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def best_of(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` runs of ``fn`` (which returns the number of frames)."""
    best, n = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def pycodec_decode(path: Path, fields: str) -> int:
    """Decode with pycodec, touching nothing (frames only)."""
    with pycodec.open(path, fields=fields) as reader:
        return sum(1 for _ in reader)


def extract(path: Path, out: Path, fields: str, compression: str = "lzf") -> int:
    """``pycodec extract`` through the CLI entry point."""
    rc = cli.main(
        [
            "extract",
            str(path),
            str(out),
            "--fields",
            fields,
            "--compression",
            compression,
            "--overwrite",
            "--quiet",
        ]
    )
    if rc:
        raise SystemExit(f"bench: extract failed with exit code {rc}")
    with h5py.File(out) as h:
        return int(h["frame/pts"].shape[0])


def pyav_decode(path: Path) -> int:
    """PyAV decode of the same file, one thread, no pixel conversion."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        return sum(1 for _ in c.decode(s))


def mvx_available() -> str:
    """Version of motion-vector-extractor, or '' if it is not importable."""
    try:
        from importlib.metadata import version

        import mvextractor.videocap  # noqa: F401

        return version("motion-vector-extractor")
    except Exception:  # noqa: BLE001 - any import problem just drops the row
        return ""


def mvx_decode(path: Path) -> int:
    """motion-vector-extractor: motion vectors only (set_decode_frames(False))."""
    from mvextractor.videocap import VideoCap

    cap = VideoCap()
    if not cap.open(str(path)):
        raise SystemExit(f"bench: motion-vector-extractor cannot open {path}")
    cap.set_decode_frames(False)
    n = 0
    while True:
        ok, _frame, _mvs, _ftype = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """Versions of everything that affects the numbers."""
    import av
    import tqdm

    return {
        "python": platform.python_version(),
        "pycodec": pycodec.__version__,
        "FFmpeg in pycodec": str(pycodec._core.ffmpeg_version()),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "HDF5": h5py.version.hdf5_version,
        "PyAV": av.__version__,
        "FFmpeg in PyAV": ".".join(str(x) for x in av.library_versions.get("libavcodec", ()))
        + " (libavcodec)",
        "tqdm": tqdm.__version__,
        "motion-vector-extractor": mvx_available() or "not installed",
    }


def make_stream(s: Stream, folder: Path) -> Path:
    """Encode (once) the sample for a stream."""
    path = folder / f"{s.name}.mp4"
    if not path.exists():
        print(f"bench: encoding {path.name} ({s.width}x{s.height}, {s.frames} frames)", flush=True)
        tmp = folder / f".{s.name}.tmp.mp4"
        encoder, options = ENCODERS[s.codec]
        samples.make_talking_sample(
            tmp, s.width, s.height, s.frames, fps=30, codec=encoder, codec_options=options, seed=0
        )
        tmp.replace(path)
    return path


def no_export_frames(h5: Path) -> int:
    """Frames flagged NO_EXPORT in an extracted file (the decoder attached no internals)."""
    with h5py.File(h5) as h:
        return int(np.count_nonzero(h["frame/flags"][:] & int(pycodec.FrameFlag.NO_EXPORT)))


def bench_stream(s: Stream, folder: Path, repeat: int) -> tuple[list[Row], dict[str, int]]:
    """Time every method on one stream."""
    path = make_stream(s, folder)
    rows: list[Row] = []
    checks: dict[str, int] = {}

    def add(method: str, fn: Callable[[], int], out: Path | None = None, note: str = "") -> None:
        print(f"bench: {s.name}: {method} ...", end=" ", flush=True)
        sec, n = best_of(fn, repeat)
        rows.append(Row(method, sec, n, out.stat().st_size if out else None, note))
        print(f"{sec:.3f} s, {n / sec:.1f} frames/s", flush=True)

    add(
        "plain decode: `pycodec.open(fields='frame')` (export off, no arrays)",
        lambda: pycodec_decode(path, "frame"),
    )
    add("decode + export of block,frame in memory (no HDF5)", lambda: pycodec_decode(path, "frame,block"))
    out_b = folder / f"{s.name}.block.h5"
    add("`pycodec extract --fields block,frame` to HDF5", lambda: extract(path, out_b, "block,frame"), out_b)
    out_n = folder / f"{s.name}.block-raw.h5"
    add(
        "`pycodec extract --fields block,frame --compression none` (informative)",
        lambda: extract(path, out_n, "block,frame", "none"),
        out_n,
    )
    add("decode + export of all fields in memory (no HDF5)", lambda: pycodec_decode(path, "all"))
    out_a = folder / f"{s.name}.all.h5"
    add("`pycodec extract` (all fields) to HDF5", lambda: extract(path, out_a, "all"), out_a)
    add("reference: PyAV 1-thread decode of the same file (no conversion)", lambda: pyav_decode(path))
    if mvx_available() and s.codec == "h264":  # it decodes H.264 and MPEG-4 only
        add(
            "peer: motion-vector-extractor, motion vectors only",
            lambda: mvx_decode(path),
            note="its own FFmpeg; `set_decode_frames(False)`",
        )
    checks["no_export_block"] = no_export_frames(out_b)
    checks["no_export_all"] = no_export_frames(out_a)
    return rows, checks


def report(
    streams: list[Stream],
    results: dict[str, tuple[list[Row], dict[str, int]]],
    repeat: int,
    cpu: int | None,
    load: tuple[float, float, float],
    mvx_note: str,
) -> str:
    """The markdown report."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `benchmarks/bench.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}. "
        f"Each number is the best of {repeat} wall-clock runs over the whole file (open, decode, export, "
        "write, close), in one process pinned to one CPU"
        + (f" (CPU {cpu})" if cpu is not None else "")
        + ". pycodec always decodes with one thread.",
        "",
        (
            'Inputs: scikit-image\'s `astronaut` moved, zoomed and "talking" (`pycodec/samples.py`), encoded by '
            f"libx264 through PyAV with `{X264}` (B-frames), and by libx265 with `{X265}`."
        ),
        "",
        "## Machine",
        "",
        (
            f"* CPU: {cpu_model()}; {os.cpu_count()} logical cores on the machine, "
            f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} used (pinned)"
        ),
        (
            f"* load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
            "(the machine is shared: numbers are noisy)"
        ),
        f"* {platform.platform()}",
        "",
        "## Versions",
        "",
    ]
    lines += [f"* {k}: {v}" for k, v in versions().items()]
    verdicts = []
    for s in streams:
        rows, checks = results[s.name]
        plain = rows[0].seconds
        lines += [
            "",
            f"## {s.codec.upper()} {s.width}x{s.height}, {s.frames} frames (`{s.name}.mp4`)",
            "",
            "| method | best wall time (s) | frames/s | x plain decode | HDF5 size |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in rows:
            size = f"{r.out_bytes / 1e6:.1f} MB" if r.out_bytes else ""
            note = f" ({r.note})" if r.note else ""
            lines.append(
                f"| {r.method}{note} | {r.seconds:.3f} | {r.fps:.1f} | {r.seconds / plain:.2f} | {size} |"
            )
        block = next(r for r in rows if "--fields block,frame` to HDF5" in r.method)
        mem = next(r for r in rows if r.method.startswith("decode + export of block"))
        ratio = block.seconds / plain
        verdicts.append(
            f"* {s.codec.upper()} MV/QP/partitions (`extract --fields block,frame`) <= {TARGET_RATIO}x plain "
            f"decode at {s.width}x{s.height}: **{ratio:.2f}x, {'met' if ratio <= TARGET_RATIO else 'NOT met'}**; "
            f"the decoder-side export alone (in memory) is {mem.seconds / plain:.2f}x, "
            f"{'within' if mem.seconds / plain <= TARGET_RATIO else 'above'} the target"
        )
        allf = next(r for r in rows if r.method.startswith("`pycodec extract` (all"))
        mem_all = next(r for r in rows if r.method.startswith("decode + export of all"))
        lines += [
            "",
            (
                f"Time spent writing HDF5 (extract minus in-memory export): block,frame "
                f"{(block.seconds - mem.seconds) / s.frames * 1e3:.2f} ms/frame, all fields "
                f"{(allf.seconds - mem_all.seconds) / s.frames * 1e3:.2f} ms/frame."
            ),
        ]
        if (s.width, s.height) == (256, 256):
            verdicts.append(
                f"* {s.codec.upper()} all fields at 256x256 >= {TARGET_FPS:.0f} frames/s on one core: "
                f"**{allf.fps:.1f} frames/s, {'met' if allf.fps >= TARGET_FPS else 'NOT met'}**"
            )
        if checks["no_export_block"] or checks["no_export_all"]:
            verdicts.append(
                f"* WARNING ({s.name}): the decoder attached no export data to "
                f"{max(checks.values())} of {s.frames} frames (flag NO_EXPORT): those arrays are zeros, "
                "so the extraction rows understate the real cost"
            )
    lines += ["", "## Targets", ""] + verdicts
    lines += [
        "",
        "Notes:",
        "",
        (
            "* Extraction time is dominated by HDF5 writing, not by the export: every dataset is chunked one "
            "frame per chunk, ~16 block datasets per frame. Under `lzf` and `none` each chunk is written with "
            "HDF5's direct chunk write (~7 us per chunk in HDF5 itself) after pycodec's own LZF compressor "
            "(~1.5 GB/s on block maps); `gzip` goes through h5py."
        ),
        (
            "* Plain decoding of a 256x256 frame takes ~0.17 ms here, so writing even the ~115 KB of block "
            "maps per frame costs several times the decode; the 1.3x target is within reach only for the "
            "in-memory export."
        ),
    ]
    if mvx_note:
        lines += ["", mvx_note]
    lines += ["", "Timed assertions are never part of the test suite; rerun with `make bench`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown report to write")
    p.add_argument("--repeat", type=int, default=3, help="runs per row; the best is reported (default 3)")
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed one)")
    p.add_argument("--work", default=str(ROOT / "build" / "bench"), help="folder for inputs and outputs")
    p.add_argument("--quick", action="store_true", help="small streams (a smoke test of this script)")
    a = p.parse_args(argv)
    load = os.getloadavg()
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = a.cpu if a.cpu is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    streams = [Stream("talk256", 256, 256, 300), Stream("talk720p", 1280, 720, 60),
               Stream("talk256-hevc", 256, 256, 300, "hevc"), Stream("talk720p-hevc", 1280, 720, 60, "hevc")]
    if a.quick:
        streams = [Stream("quick256", 256, 256, 30), Stream("quick720p", 1280, 720, 6),
                   Stream("quick256-hevc", 256, 256, 30, "hevc"), Stream("quick720p-hevc", 1280, 720, 6, "hevc")]
    folder = Path(a.work)
    folder.mkdir(parents=True, exist_ok=True)
    mvx_note = (
        ""
        if mvx_available()
        else (
            "motion-vector-extractor is not installed in this environment (`.venv/bin/pip install "
            "motion-vector-extractor`), so its peer row is missing."
        )
    )
    results = {s.name: bench_stream(s, folder, a.repeat) for s in streams}
    text = report(streams, results, a.repeat, cpu, load, mvx_note)
    end = os.getloadavg()
    text = text.replace(
        " (the machine is shared",
        f"; at the end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} (the machine is shared",
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(a.out)
    print(f"bench: wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
