"""Benchmark: plain decode vs extraction to HDF5 (block fields, all fields), PyAV and motion-vector-extractor.

Usage: python benchmarks/bench.py --out docs/benchmarks.md [--repeat 5] [--cpu N] [--quick]

Everything runs in this process, pinned to one CPU (rows marked "2 cores" are pinned to that CPU and
one more, for `extract`'s writer thread). The methods are timed in rounds (each round runs every
method once, so that a change of load on a shared machine hits all of them alike); each row is the
best of ``--repeat`` wall times over the whole file (open, decode, export, write, close).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
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


def pycodec_decode(path: Path, fields: str, copy: bool = True) -> int:
    """Decode with pycodec, touching nothing (frames only)."""
    with pycodec.open(path, fields=fields, copy=copy) as reader:
        return sum(1 for _ in reader)


ONE_THREAD = ("--writer-thread", "off", "--decode-ahead", "0")


def extract(path: Path, out: Path, fields: str, compression: str = "lzf", threads: Sequence[str] = ONE_THREAD) -> int:
    """``pycodec extract`` through the CLI entry point (``threads``: its thread options; () the defaults)."""
    rc = cli.main(
        ["extract", str(path), str(out), "--fields", fields, "--compression", compression, "--quiet", *threads]
    )
    if rc:
        raise SystemExit(f"bench: extract failed with exit code {rc}")
    return 0  # frames: counted in the file after the timed runs (opening it is not part of extract)


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


@dataclass
class Method:
    """One timed method: a label, the function (returns the frame count), its output, its CPUs."""

    label: str
    fn: Callable[[], int]
    out: Path | None = None
    note: str = ""
    cpus: set[int] | None = None  # None: the benchmark's one CPU


def read_latency(h5: Path, repeat: int) -> dict[str, float]:
    """Random access to an extracted file (block maps): best of ``repeat`` passes over 20 random frames.

    ``open``: open the file and read every block map of frame t (``ExtractedFile.frame``), close;
    ``one``: ``ds[t]`` of one block dataset in an open file (mean over the block datasets);
    ``window``: ``ds[[t-2..t+2]]`` likewise (what ``pycodec.nn.CodecWindowDataset`` reads).
    """
    from pycodec import store

    with h5py.File(h5) as f:
        n = int(f["frame/pts"].shape[0])
        names = sorted(k for k in f["block"])
    ts = np.random.default_rng(0).integers(0, n, 20).tolist()
    best = {"open": float("inf"), "one": float("inf"), "window": float("inf")}
    for _ in range(repeat):
        t0 = time.perf_counter()
        for t in ts:
            with store.open_h5(h5) as f:
                f.frame(t, fields=[f"block/{k}" for k in names])
        best["open"] = min(best["open"], (time.perf_counter() - t0) / len(ts))
        with h5py.File(h5) as f:
            ds = [f[f"block/{k}"] for k in names]
            t0 = time.perf_counter()
            for t in ts:
                for d in ds:
                    d[t]
            best["one"] = min(best["one"], (time.perf_counter() - t0) / len(ts) / len(ds))
            t0 = time.perf_counter()
            for t in ts:
                w = sorted({min(max(t + k, 0), n - 1) for k in range(-2, 3)})
                for d in ds:
                    d[w]
            best["window"] = min(best["window"], (time.perf_counter() - t0) / len(ts) / len(ds))
    return best


def bench_stream(s: Stream, folder: Path, repeat: int, cpu2: set[int] | None) -> tuple[list[Row], dict[str, int]]:
    """Time every method on one stream, in ``repeat`` rounds."""
    path = make_stream(s, folder)
    checks: dict[str, int] = {}
    out_b = folder / f"{s.name}.block.h5"
    out_n = folder / f"{s.name}.block-raw.h5"
    out_k = folder / f"{s.name}.block-k64.h5"
    out_a = folder / f"{s.name}.all.h5"
    out_b2 = folder / f"{s.name}.block-2cores.h5"
    out_a2 = folder / f"{s.name}.all-2cores.h5"
    out_w2 = folder / f"{s.name}.block-writer.h5"
    methods = [
        Method(
            "plain decode: `pycodec.open(fields='frame')` (export off, no arrays)",
            lambda: pycodec_decode(path, "frame"),
        ),
        Method("decode + export of block,frame in memory (no HDF5)", lambda: pycodec_decode(path, "frame,block")),
        Method(
            "the same, arrays as views of the export buffer (`copy=False`, as `extract` reads)",
            lambda: pycodec_decode(path, "frame,block", copy=False),
        ),
        Method(
            "`pycodec extract --fields block,frame` to HDF5 (1 core)",
            lambda: extract(path, out_b, "block,frame"),
            out_b,
        ),
        Method(
            "`pycodec extract --fields block,frame --compression none` (informative, 1 core)",
            lambda: extract(path, out_n, "block,frame", "none"),
            out_n,
        ),
        Method(
            "`pycodec extract --fields block,frame --chunk-frames 64` (informative, 1 core: block maps several "
            "frames per chunk)",
            lambda: extract(path, out_k, "block,frame", threads=(*ONE_THREAD, "--chunk-frames", "64")),
            out_k,
        ),
        Method("decode + export of all fields in memory (no HDF5)", lambda: pycodec_decode(path, "all")),
        Method("`pycodec extract` (all fields) to HDF5 (1 core)", lambda: extract(path, out_a, "all"), out_a),
        Method("reference: PyAV 1-thread decode of the same file (no conversion)", lambda: pyav_decode(path)),
    ]
    if mvx_available() and s.codec == "h264":  # it decodes H.264 and MPEG-4 only
        methods.append(
            Method(
                "peer: motion-vector-extractor, motion vectors only",
                lambda: mvx_decode(path),
                note="its own FFmpeg; `set_decode_frames(False)`",
            )
        )
    if cpu2:
        methods += [
            Method(
                "`pycodec extract --fields block,frame` to HDF5, 2 cores (defaults: decoder ahead in its thread)",
                lambda: extract(path, out_b2, "block,frame", threads=()),
                out_b2,
                cpus=cpu2,
            ),
            Method(
                "`pycodec extract` (all fields) to HDF5, 2 cores (defaults: decoder ahead in its thread)",
                lambda: extract(path, out_a2, "all", threads=()),
                out_a2,
                cpus=cpu2,
            ),
            Method(
                "`pycodec extract --fields block,frame --decode-ahead 0 --writer-thread on` (informative, 2 cores: "
                "a writer thread instead)",
                lambda: extract(path, out_w2, "block,frame", threads=("--decode-ahead", "0", "--writer-thread", "on")),
                out_w2,
                cpus=cpu2,
            ),
        ]
    best = [float("inf")] * len(methods)
    frames = [0] * len(methods)
    one = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    for r in range(repeat):
        print(f"bench: {s.name}: round {r + 1}/{repeat}", flush=True)
        for i, m in enumerate(methods):
            if m.cpus and one is not None:
                os.sched_setaffinity(0, m.cpus)
            if m.out is not None and m.out.exists():
                m.out.unlink()  # untimed: each run writes a new file (replacing one costs its deletion)
            if hasattr(os, "sync"):
                os.sync()  # untimed: no write-back of earlier outputs (up to 150 MB) during this run
            try:
                t = time.perf_counter()
                frames[i] = m.fn()
                best[i] = min(best[i], time.perf_counter() - t)
            finally:
                if m.cpus and one is not None:
                    os.sched_setaffinity(0, one)
    for i, m in enumerate(methods):
        if m.out is not None:
            with h5py.File(m.out) as f:
                frames[i] = int(f["frame/pts"].shape[0])
    rows = [
        Row(m.label, sec, n, m.out.stat().st_size if m.out else None, m.note)
        for m, sec, n in zip(methods, best, frames, strict=True)
    ]
    for row in rows:
        print(f"bench: {s.name}: {row.method}: {row.seconds:.3f} s, {row.fps:.1f} frames/s", flush=True)
    checks["no_export_block"] = no_export_frames(out_b)
    checks["no_export_all"] = no_export_frames(out_a)
    lat = read_latency(out_b, repeat)
    checks.update({f"read_{k}_us": round(v * 1e6) for k, v in lat.items()})
    with h5py.File(out_b) as f:
        checks["chunk_mv"] = int(f["block/mv_l0"].chunks[0])
        checks["chunk_qp"] = int(f["block/qp_y"].chunks[0])
    return rows, checks


def report(
    streams: list[Stream],
    results: dict[str, tuple[list[Row], dict[str, int]]],
    repeat: int,
    cpu: int | None,
    cpu2: set[int] | None,
    load: tuple[float, float, float],
    mvx_note: str,
) -> str:
    """The markdown report."""
    two = ", ".join(str(c) for c in sorted(cpu2)) if cpu2 else ""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `benchmarks/bench.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}. "
        f"Each number is the best of {repeat} wall-clock runs over the whole file (open, decode, export, "
        "write, close), in one process pinned to one CPU"
        + (f" (CPU {cpu})" if cpu is not None else "")
        + (f"; rows marked *2 cores* are pinned to CPUs {two} (decoding on one, `extract`'s writer thread "
           "compressing and writing on the other)" if cpu2 else "")
        + ". The methods run in rounds (one run of each per round), so that load changes on the machine "
        "hit all of them alike. pycodec always decodes with one thread; *x plain decode* is relative to the "
        "first row (one core).",
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
            f"1 used (pinned){', 2 for the rows marked 2 cores' if cpu2 else ''}"
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

    def find(rows: list[Row], prefix: str) -> Row | None:
        return next((r for r in rows if r.method.startswith(prefix)), None)

    def verdict(ratio: float) -> str:
        return "met" if ratio <= TARGET_RATIO else "NOT met"

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
        mem = find(rows, "decode + export of block")
        view = find(rows, "the same, arrays as views")
        block = find(rows, "`pycodec extract --fields block,frame` to HDF5 (1 core)")
        block2 = find(rows, "`pycodec extract --fields block,frame` to HDF5, 2 cores")
        mem_all = find(rows, "decode + export of all")
        allf = find(rows, "`pycodec extract` (all fields) to HDF5 (1 core)")
        assert mem and view and block and mem_all and allf
        size = f"{s.width}x{s.height}"
        ratio1, ratio2 = block.seconds / plain, block2.seconds / plain if block2 else None
        verdicts.append(
            f"* {s.codec.upper()} MV/QP/partitions to HDF5 (`extract --fields block,frame`) <= {TARGET_RATIO}x plain "
            f"decode at {size}: "
            + (
                f"2 cores (`extract`'s defaults there: the decoder runs ahead in a thread of its own): "
                f"**{ratio2:.2f}x, {verdict(ratio2)}**; "
                if ratio2 is not None
                else ""
            )
            + f"1 core: **{ratio1:.2f}x, {verdict(ratio1)}**. In memory (`pycodec.open`, no HDF5), informative: "
            f"{view.seconds / plain:.2f}x as views of the export buffer (`copy=False`, as `extract` reads), "
            f"{mem.seconds / plain:.2f}x with copied arrays (`copy=True`, the default)"
        )
        lines += [
            "",
            (
                f"Time spent writing HDF5 on one core (extract minus in-memory export, as `extract` reads it): "
                f"block,frame {(block.seconds - view.seconds) / s.frames * 1e3:.2f} ms/frame, all fields "
                f"{(allf.seconds - mem_all.seconds) / s.frames * 1e3:.2f} ms/frame."
            ),
            "",
            (
                f"Random access to the block,frame file ({checks['chunk_mv']} frames per chunk in "
                f"`block/mv_l0`, {checks['chunk_qp']} in `block/qp_y`): open it and read every block map of "
                f"frame t {checks['read_open_us'] / 1e3:.2f} ms; in an open file, `ds[t]` "
                f"{checks['read_one_us']} us and `ds[[t-2..t+2]]` {checks['read_window_us']} us per block "
                "dataset (best of the rounds, 20 random t)."
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
                f"{max(checks['no_export_block'], checks['no_export_all'])} of {s.frames} frames (flag "
                "NO_EXPORT): those arrays are zeros, "
                "so the extraction rows understate the real cost"
            )
    lines += ["", "## Targets", ""] + verdicts
    lines += [
        "",
        "Notes:",
        "",
        (
            "* H.264 block maps (motion vectors, partitions, QP; ~1.7 MB per 720p frame) are not written by the "
            "decoder: per macroblock it only records what its slice context alone holds, and the frame carries "
            "references to the picture's own tables (motion vectors, reference indices, MB types, QP) with one "
            "record per slice setup. `avcodec_expand_internals()` (our FFmpeg patch) writes the 4x4 maps from "
            "them in the reading thread: on the decoding thread the export costs about 0.015x of a plain decode "
            "(`_core.Decoder(...).skip()` loop, 256x256 and 720p), the expansion 0.15-0.25x wherever the frames "
            "are read. Building numpy arrays would copy the block maps once more; `extract` reads them as views "
            "of the export buffer instead (`pycodec.open(copy=False)`). The HEVC export is still written by the "
            "decoder as it decodes."
        ),
        (
            "* Writing HDF5: every dataset is stored one frame per chunk (the schema's layout; docs/schema.md, "
            "Storage). Each frame's arrays are LZF-compressed as they arrive (pycodec's own row-aware LZF, one C++ "
            "call per frame for all datasets, GIL released) and written with HDF5's direct chunk write, one per "
            "dataset and frame (~16 for block,frame): a few microseconds each, which is what one core spends "
            "beyond the export at 256x256, with the LZF of ~115 KB of block maps per frame (~25 us) and the fixed "
            "cost of creating and closing the file (~5 ms, 0.1x of this 300-frame file's decode). "
            "`--chunk-frames 64` (informative row) puts up to 64 frames of a block map in one chunk of about "
            "128 KiB: one chunk write per 64 frames, faster on one core; on two cores both layouts run at "
            "about the decoding thread's speed."
        ),
        (
            "* With a second CPU (`extract`'s default when it has one) the decoder runs ahead in a thread of its "
            "own (`--decode-ahead`, C++, without the GIL; still one decoding thread per file, in order, so the "
            "frames and the file are byte-identical): the main thread turns frames into arrays, compresses and "
            "writes them meanwhile. For H.264 the wall time is then close to the decoding thread's (plain decode "
            "plus ~0.015x), plus creating the file and writing the last chunks, as long as the main thread "
            "(expansion, compression, writes) keeps up; for HEVC the decoding thread also writes the export. The "
            "older alternative, a Python writer thread (`--writer-thread on`, the informative row; on by default "
            "from 3 CPUs), leaves more on the decoding thread: building each frame's arrays and handing it over "
            "(which also needs the GIL the writer thread holds while it runs h5py). This machine is a 2-vCPU "
            "virtual machine "
            "shared with other jobs: rows vary by a few hundredths from run to run. Before each run, outputs are "
            "deleted and written data is flushed to disk (untimed)."
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
    p.add_argument("--repeat", type=int, default=5, help="runs per row; the best is reported (default 5)")
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed one)")
    p.add_argument("--work", default=str(ROOT / "build" / "bench"), help="folder for inputs and outputs")
    p.add_argument("--quick", action="store_true", help="small streams (a smoke test of this script)")
    a = p.parse_args(argv)
    load = os.getloadavg()
    cpu = None
    cpu2: set[int] | None = None
    if hasattr(os, "sched_setaffinity"):
        allowed = os.sched_getaffinity(0)
        cpu = a.cpu if a.cpu is not None else min(allowed)
        others = sorted(allowed - {cpu})
        cpu2 = {cpu, others[0]} if others else None  # the 2-core rows, when a second CPU is allowed
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
    results = {s.name: bench_stream(s, folder, a.repeat, cpu2) for s in streams}
    text = report(streams, results, a.repeat, cpu, cpu2, load, mvx_note)
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
