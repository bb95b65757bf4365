"""What every step shares: classified failures, status files, atomic outputs and the step runner."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pycodec import batch as _batch

# Reasons a source video is skipped: a property of the input, not a bug.  A step that meets one
# writes a "failed" status (so the batch goes on and a rerun does not retry it) and exits 0.
REASONS = ("unreadable", "no-video", "no-face", "too-short", "encode-failed")


class StepFailure(Exception):
    """A source video cannot become a shard, for a reason in :data:`REASONS`."""

    def __init__(self, reason: str, message: str, upstream: bool = False) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        super().__init__(message)
        self.reason, self.message, self.upstream = reason, message, upstream


def safe_id(text: str) -> str:
    """A file-, Make- and HDF5-safe identifier: path separators become ``__``, odd characters ``_``."""
    text = text.replace(os.sep, "__").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text).strip("._") or "video"


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success, delete it on error."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix or ".tmp", dir=d)
    os.close(fd)
    os.unlink(tmp)  # writers create it themselves (some refuse an existing file)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (sorted keys: byte-identical for equal content)."""
    with atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def write_if_changed(path: str, text: str) -> bool:
    """Write ``text`` unless ``path`` already has it (keeps Make timestamps); True when written."""
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return True


def read_json(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` (0 <= i < N) -> (i, N): the slice a Slurm array task takes
    (:func:`pycodec.batch.parse_shard`, as an argparse type)."""
    try:
        return _batch.parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


in_shard = _batch.in_shard


def run_step(name: str, status_path: str, body: Callable[[], dict[str, Any]], context: dict[str, Any],
             describe: Callable[[dict[str, Any]], str] | None = None) -> int:
    """Run one step for one item and record its status.

    ``body`` returns the step's result (written to ``status_path`` as ``status: ok``).  A
    :class:`StepFailure` is recorded as ``status: failed`` with its reason and the step exits 0: the
    input is reported and skipped.  Anything else is a bug or an environment problem: one line on
    stderr (traceback in ``<status>.log``), no status file, exit 2, so ``make -k`` goes on and a
    rerun retries it.
    """
    log = status_path[: -len(".json")] + ".log" if status_path.endswith(".json") else status_path + ".log"
    t0 = time.perf_counter()
    try:
        result = body()
    except StepFailure as exc:
        write_json(status_path, {**context, "step": name, "status": "failed", "reason": exc.reason,
                                 "message": exc.message})
        if not exc.upstream:  # reported once, by the step that met it
            print(f"{name} {context.get('video', '?')}: skipped: {exc.reason}: {exc.message}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written for {context.get('video', '?')}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, logged, and the batch goes on
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
        with open(log, "w") as f:
            traceback.print_exc(file=f)
        print(f"{name}: error on {context.get('video', '?')}: {type(exc).__name__}: {exc} "
              f"(traceback in {log}; fix the cause and run again)", file=sys.stderr)
        return 2
    if os.path.exists(log):
        os.unlink(log)
    write_json(status_path, {**context, "step": name, "status": "ok", **result})
    what = f": {describe(result)}" if describe else ""
    print(f"{name} {context.get('video', '?')}{what} [{time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    return 0


def progress(total: int | None, desc: str, quiet: bool = False, unit: str = "frame") -> Any:
    """A tqdm bar on stderr (hidden when stderr is not a terminal, or with --quiet)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=True if quiet else None)


def main_guard(fn: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Turn argument errors into one-line messages with exit code 2."""
    def wrapped(argv: Sequence[str] | None = None) -> int:
        try:
            return fn(argv)
        except argparse.ArgumentTypeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return wrapped
