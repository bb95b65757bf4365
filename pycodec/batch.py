"""Restoring many videos: every video of a folder (recursively) or of a list file, one output per
input in an output folder (the input's relative path, the chosen format's extension), going on past
a bad file and reporting it; ``shard=(i, N)`` takes the inputs whose index % N == i (cluster array
jobs, as ``make dataset --shard``); outputs that exist are kept (a rerun finishes what is missing)."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import PycodecError

VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts", ".mts",
              ".wmv", ".3gp", ".ogv", ".y4m", ".h264", ".264", ".hevc", ".265")
LIST_EXTS = (".txt", ".lst", ".jsonl")


class BatchError(PycodecError):
    """A batch that cannot start (no inputs, a bad list file, a bad output folder)."""


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` (0 <= i < N) -> (i, N); None for None or ""."""
    if text in (None, ""):
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", str(text).strip())
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard {text!r}: expected i/N with 0 <= i < N, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def in_shard(index: int, shard: tuple[int, int] | None) -> bool:
    """Round-robin slicing: item ``index`` belongs to slice i of N when index % N == i."""
    return shard is None or index % shard[1] == shard[0]


def is_list_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(LIST_EXTS)


def find_videos(src: str) -> list[tuple[str, str]]:
    """(path, name relative to the batch) of the videos of folder ``src`` (recursively, sorted,
    hidden files left out) or of list file ``src`` (``.txt``/``.lst``: one path per line, ``#``
    comments; ``.jsonl``: objects with ``path``, ``source`` or ``video``; relative paths are
    relative to the list's folder)."""
    if os.path.isdir(src):
        out = []
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.lower().endswith(VIDEO_EXTS) and not f.startswith("."):
                    p = os.path.join(root, f)
                    out.append((p, os.path.relpath(p, src)))
        return out
    base = os.path.dirname(os.path.abspath(src))
    paths = []
    with open(src, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if src.lower().endswith(".jsonl"):
                try:
                    row = json.loads(line)
                    p = next(str(row[k]) for k in ("path", "source", "video") if k in row)
                except (ValueError, StopIteration, TypeError) as exc:
                    raise BatchError(f"{src}: line {n} is not a JSON object with 'path', 'source' or 'video'; "
                                     "fix the list") from exc
            else:
                p = line
            paths.append(p if os.path.isabs(p) else os.path.join(base, p))
    names = [os.path.basename(p) for p in paths]
    if len(set(names)) != len(names):  # two inputs of one name: keep their paths in the output folder
        rel = [os.path.relpath(os.path.abspath(p), base) for p in paths]
        names = [r if not r.startswith("..") else os.path.abspath(p).lstrip(os.sep) for r, p in zip(rel, paths)]
    return list(zip(paths, names))


def output_path(out_dir: str, name: str, ext: str) -> str:
    """``out_dir/name`` with ``ext`` in place of the input's extension."""
    return os.path.join(out_dir, os.path.splitext(name)[0] + ext)


@dataclass
class BatchItem:
    """One input of a batch: where it went and how it went (status ``ok``, ``exists`` or ``failed``)."""

    source: str
    output: str
    status: str = "pending"
    message: str = ""
    frames: int = 0
    seconds: float = 0.0
    faces: int = 0
    mode: str = ""


def restore_many(src: str, out_dir: str, ext: str = ".mkv", shard: tuple[int, int] | None = None,
                 overwrite: bool = False, progress: bool = True, report: str | None = None,
                 log: Callable[[str], None] | None = None, **kwargs: Any) -> list[BatchItem]:
    """Restore every video of ``src`` (folder or list file) into ``out_dir`` (module docstring);
    ``kwargs`` go to :func:`pycodec.restore.restore`. A failing input is recorded (``failed`` and
    its one-line message) and the batch goes on; an interruption (Ctrl-C, SIGTERM) stops it. The
    report (TSV: source, output, status, frames, seconds, faces, mode, message) is written to
    ``report`` (default ``out_dir/restore-report[.i-of-N].tsv``), also when interrupted."""
    from .restore import FORMATS, restore

    if ext not in FORMATS:
        raise BatchError(f"format {ext}: choose one of {', '.join(FORMATS)}")
    if not (os.path.isdir(src) or is_list_file(src)):
        raise BatchError(f"{src}: not a folder or a list file ({', '.join(LIST_EXTS)}); give one of those")
    videos = find_videos(src)
    if not videos:
        raise BatchError(f"{src}: no video files found; give a folder with videos (extensions: {' '.join(VIDEO_EXTS)})")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BatchError(f"{out_dir}: exists and is not a folder; give an output folder")
    os.makedirs(out_dir, exist_ok=True)
    items = [BatchItem(p, output_path(out_dir, name, ext)) for i, (p, name) in enumerate(videos) if in_shard(i, shard)]
    if report is None:
        tag = f".{shard[0]}-of-{shard[1]}" if shard else ""
        report = os.path.join(out_dir, f"restore-report{tag}.tsv")
    log = log or (lambda s: print(s, file=sys.stderr))
    try:
        for k, it in enumerate(items, 1):
            head = f"[{k}/{len(items)}] {it.source}"
            if os.path.exists(it.output) and not overwrite:
                it.status, it.message = "exists", "kept (pass --overwrite to redo)"
                log(f"{head}: {it.output} exists, kept")
                continue
            os.makedirs(os.path.dirname(it.output) or ".", exist_ok=True)
            t0 = time.perf_counter()
            try:
                s = restore(it.source, it.output, overwrite=overwrite, progress=progress, **kwargs)
            except PycodecError as exc:
                it.status, it.message, it.seconds = "failed", " ".join(str(exc).split()), time.perf_counter() - t0
                log(f"{head}: failed: {it.message}")
                continue
            it.status, it.frames, it.seconds, it.faces, it.mode = "ok", s.frames, s.seconds, s.faces, s.mode
            log(f"{head}: {s.line()}")
    finally:
        write_report(report, items)
    return items


def write_report(path: str, items: list[BatchItem]) -> None:
    """The batch report as TSV (written whole, then renamed into place)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["source", "output", "status", "frames", "seconds", "faces", "mode", "message"])
        for it in items:
            w.writerow([it.source, it.output, it.status, it.frames, f"{it.seconds:.1f}", it.faces, it.mode, it.message])
    os.replace(tmp, path)


def summary_lines(items: list[BatchItem]) -> list[str]:
    """The closing table: counts per status, then each failure with its reason."""
    counts = {s: sum(it.status == s for it in items) for s in ("ok", "exists", "failed", "pending")}
    frames = sum(it.frames for it in items)
    secs = sum(it.seconds for it in items if it.status == "ok")
    lines = [f"pycodec restore: {len(items)} videos: {counts['ok']} restored ({frames} frames, {secs:.0f} s), "
             f"{counts['exists']} kept, {counts['failed']} failed"
             + (f", {counts['pending']} not reached" if counts["pending"] else "")]
    lines += [f"  failed: {it.source}: {it.message}" for it in items if it.status == "failed"]
    return lines
